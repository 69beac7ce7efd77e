"""The project's own checkpoints and the official-layout exporter: round trips and clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from vlora.checkpoints import describe, detect, load_model, official_vlora, own, save_model
from vlora.errors import CheckpointError


def _same_logits(a, b, images):
    batch = a.prepare([a.prompt("What is it?"), a.prompt("Text only.", with_image=False)], [images[0], None])
    with torch.no_grad():
        return torch.equal(a(batch).logits, b(batch).logits)


def test_own_round_trip(tiny_model, images, tmp_path):
    save_model(tiny_model, tmp_path / "ckpt")
    assert detect(tmp_path / "ckpt") is own
    again = load_model(tmp_path / "ckpt").eval()
    assert again.config == tiny_model.config
    assert _same_logits(tiny_model, again, images)
    assert again.tokenizer.get_vocab() == tiny_model.tokenizer.get_vocab()


def test_own_round_trip_sharded(tiny_model, images, tmp_path):
    save_model(tiny_model, tmp_path / "ckpt", max_shard_size=100_000)
    assert (tmp_path / "ckpt" / "model.safetensors.index.json").is_file()
    assert _same_logits(tiny_model, load_model(tmp_path / "ckpt").eval(), images)


@pytest.mark.parametrize("shared", [False, True])
def test_official_export_round_trip(tiny_config, images, tmp_path, shared):
    from conftest import randomize_w_s

    from vlora.model import build_model
    from vlora.overrides import apply_overrides

    model = randomize_w_s(build_model(apply_overrides(tiny_config, {"connector.shared": shared}), seed=2)).eval()
    official_vlora.export(model, tmp_path / "off", tmp_path / "clip")
    assert detect(tmp_path / "off") is official_vlora
    keys = load_file(str(tmp_path / "off" / "model.safetensors"))
    assert keys["model.mm_projector.Bs"].shape == (1, 5 * 2, 64 * 4)
    assert ("model.mm_projector.gen.queries" in keys) == shared
    again = load_model(tmp_path / "off").eval()
    assert again.config == model.config
    assert _same_logits(model, again, images)


def test_own_mis_shaped_key(tiny_model, tmp_path):
    folder = save_model(tiny_model, tmp_path / "ckpt")
    state = load_file(str(folder / "model.safetensors"))
    state["connector.visual_proj.weight"] = torch.zeros(7, 32)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"'connector\.visual_proj\.weight' has shape \[7, 32\], the model expects \[32, 32\]"):
        load_model(folder)
    assert any("visual_proj" in p for p in describe(folder).problems)


def test_unknown_format_version(tiny_model, tmp_path):
    folder = save_model(tiny_model, tmp_path / "ckpt")
    manifest = json.loads((folder / "vlora_eval.json").read_text())
    manifest["version"] = 99
    (folder / "vlora_eval.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="unsupported format 'vlora-eval' version 99"):
        load_model(folder)


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "llama").mkdir()
    (tmp_path / "llama" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(CheckpointError, match="neither vlora_eval.json nor config.json"):
        load_model(tmp_path / "empty")
    with pytest.raises(CheckpointError, match="describes no supported multimodal layout"):
        load_model(tmp_path / "llama")
    assert describe(tmp_path / "missing").kind == "none"


def test_missing_shard_named_by_the_index(tiny_model, tmp_path):
    folder = save_model(tiny_model, tmp_path / "ckpt", max_shard_size=100_000)
    shard = sorted(folder.glob("model-*.safetensors"))[0]
    shard.unlink()
    with pytest.raises(CheckpointError, match=shard.name):
        load_model(folder)

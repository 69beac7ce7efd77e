"""Loading the official release layout: keys, shapes, errors, and outputs against the independent
reference implementation of the official forward path (tests/reference/official_vlora.py)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from conftest import OFFICIAL_TINY, make_image, write_official_checkpoint
from reference.official_vlora import (
    random_official_state_dict,
    reference_greedy,
    reference_logits,
    reference_perceptual_weights,
)

from vlora.checkpoints import describe, load_model
from vlora.errors import CheckpointError
from vlora.prompting import IMAGE_TOKEN_INDEX


def _features_and_batch(model, prompts, images):
    """The batch and CLIP features per sample [B, c, d_v] (zeros where a sample has no image)."""
    batch = model.prepare(prompts, images)
    used = model.vision(batch.pixel_values)
    features = used.new_zeros(len(prompts), *used.shape[1:])
    features[batch.image_owner] = used
    return batch, features


def _ids_with_placeholder(batch):
    return batch.input_ids.masked_fill(batch.image_positions, IMAGE_TOKEN_INDEX)


@pytest.mark.parametrize("weights_sep", [True, False])
def test_official_layout_reproduces_reference_a_and_b(tmp_path, weights_sep):
    cfg = dataclasses.replace(OFFICIAL_TINY, weights_sep=weights_sep)
    folder = tmp_path / "ckpt"
    state = write_official_checkpoint(folder, cfg)
    model = load_model(folder, dtype=torch.float64).eval()  # fp64: the two derivations agree to ~1e-15
    prompts = [model.prompt("What is this?"), model.prompt("What is this?", with_image=False)]
    batch, features = _features_and_batch(model, prompts, [make_image(1), make_image(2)])
    ours = model.perceptual_weights(batch)
    state64 = {k: v.double() for k, v in state.items()}
    ref = reference_perceptual_weights(state64, cfg, features, _ids_with_placeholder(batch))
    filled = [(layer, t) for layer, entry in enumerate(ref) for t, (a, _) in entry.items() if a is not None]
    assert sorted(filled) == ours.keys()
    for layer, t in filled:
        a_ref, b_ref = ref[layer][t]
        torch.testing.assert_close(ours.a[layer, t], a_ref, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(ours.b[layer, t], b_ref, rtol=0, atol=0)
        assert ours.a[layer, t][1].abs().max() == 0  # the text-only sample gets A = 0


@pytest.mark.parametrize("shards,safetensors", [(1, False), (3, False), (2, True)])
def test_official_logits_match_reference(tmp_path, shards, safetensors):
    folder = tmp_path / "ckpt"
    state = write_official_checkpoint(folder, shards=shards, safetensors=safetensors)
    model = load_model(folder).eval()
    prompts = [model.prompt("What colour is the circle?"), model.prompt("Count them."),
               model.prompt("No image here.", with_image=False)]
    batch, features = _features_and_batch(model, prompts, [make_image(4), make_image(5, (30, 80)), None])
    with torch.no_grad():
        ours = model(batch).logits
    content = batch.attention_mask.bool() | batch.image_positions
    ref = reference_logits(state, OFFICIAL_TINY, _ids_with_placeholder(batch), content.long(), features)
    valid = batch.attention_mask.bool()
    torch.testing.assert_close(ours[valid], ref[valid], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("official_positions", [True, False])
def test_official_greedy_tokens_match_reference(official_checkpoint, official_positions):
    folder, state = official_checkpoint
    model = load_model(folder).eval()
    prompt = model.prompt("Describe the picture in detail.")
    batch, features = _features_and_batch(model, [prompt], [make_image(6)])
    ours = model.decode(batch, 12, official_positions=official_positions)[0]
    ref = reference_greedy(state, OFFICIAL_TINY, _ids_with_placeholder(batch), features, 12,
                           official_positions=official_positions)
    assert ours == [t for t in ref if t != model.tokenizer.eos_token_id]


def test_official_positions_change_later_tokens(official_checkpoint):
    folder, _ = official_checkpoint
    model = load_model(folder).eval()
    batch = model.prepare([model.prompt("Describe the picture in detail.")], [make_image(6)])
    quirk = model.decode(batch, 12, official_positions=True)[0]
    plain = model.decode(batch, 12, official_positions=False)[0]
    assert quirk[0] == plain[0]  # the first token comes from the prefill, which is identical
    assert quirk != plain


def test_ignored_keys_are_ignored(tmp_path):
    folder = tmp_path / "ckpt"
    state = write_official_checkpoint(folder, with_extras=True)
    assert any(k.endswith("rotary_emb.inv_freq") for k in state)
    assert any(k.startswith("model.vision_tower.") for k in state)
    load_model(folder)  # does not complain
    report = describe(folder)
    assert report.kind == "official-vlora"
    assert report.problems == []
    assert any("ignored" in note for note in report.notes)


def test_mis_shaped_key_names_key_and_both_shapes(tmp_path):
    state = random_official_state_dict(OFFICIAL_TINY, seed=0)
    key = "model.layers.1.self_attn.k_proj.weight"
    state[key] = torch.zeros(48, 64)
    write_official_checkpoint(tmp_path / "ckpt", state=state)
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "ckpt")
    message = str(err.value)
    assert key in message and "[48, 64]" in message and "[64, 64]" in message
    assert "\n" not in message


def test_missing_and_unexpected_keys(tmp_path):
    state = random_official_state_dict(OFFICIAL_TINY, seed=0)
    del state["model.mm_projector.gen.2.decoders.1.norm3.bias"]
    write_official_checkpoint(tmp_path / "a", state=state)
    with pytest.raises(CheckpointError, match=r"missing key 'model\.mm_projector\.gen\.2\.decoders\.1\.norm3\.bias'"):
        load_model(tmp_path / "a")

    state = random_official_state_dict(OFFICIAL_TINY, seed=0)
    state["model.layers.0.mlp.extra.weight"] = torch.zeros(3)
    write_official_checkpoint(tmp_path / "b", state=state)
    with pytest.raises(CheckpointError, match=r"unexpected key 'model\.layers\.0\.mlp\.extra\.weight' \(shape \[3\]\)"):
        load_model(tmp_path / "b")


def test_generator_width_comes_from_tensors(tmp_path):
    folder = tmp_path / "ckpt"
    write_official_checkpoint(folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["vlora_dim"] = 1024  # the official scripts disagree on vlora_dim: the tensors decide
    (folder / "config.json").write_text(json.dumps(cfg))
    model = load_model(folder)
    assert model.config.connector.hidden == OFFICIAL_TINY.vlora_dim
    report = describe(folder)
    assert any("vlora_dim = 1024" in p and f"give {OFFICIAL_TINY.vlora_dim}" in p for p in report.problems)


def test_missing_vision_tower_is_a_clear_error(tmp_path):
    folder = tmp_path / "ckpt"
    write_official_checkpoint(folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["mm_vision_tower"] = "clip-vit-large-patch14-336"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="--vision-tower"):
        load_model(folder)
    model = load_model(folder, vision_tower=tmp_path / "ckpt-clip")  # the user's CLIP folder
    assert model.config.vision.num_patches == OFFICIAL_TINY.vlora_pos_num

"""LLaVA-v1.5 and LLaVA-v1.5-QFormer: parity with transformers' LlavaForConditionalGeneration, both
LLaVA layouts, visual token counts, batching, own-checkpoint round trips, bad input."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import make_image
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

from vlora.checkpoints import describe, detect, llava_hf, llava_original, load_model, save_model
from vlora.errors import InputError
from vlora.model import build_model
from vlora.presets import preset
from vlora.tokenizer import build_tiny_tokenizer

IMAGE_ID = 1000  # the tiny llava-hf's image token (32000 in llava-1.5-7b-hf)


@pytest.fixture(scope="module")
def hf_llava():
    torch.manual_seed(0)
    config = LlavaConfig(
        text_config=LlamaConfig(hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
                                num_key_value_heads=4, vocab_size=1024, tie_word_embeddings=False),
        vision_config=CLIPVisionConfig(image_size=56, patch_size=14, hidden_size=32, intermediate_size=64,
                                       num_hidden_layers=2, num_attention_heads=4),
        image_token_index=IMAGE_ID)
    return LlavaForConditionalGeneration(config).eval()


def _hf_logits(hf, model, batch, row):
    """transformers' logits for one row of our batch: image slots hold the image token."""
    keep = batch.attention_mask[row].bool()
    ids = batch.input_ids[row][keep].clone()
    ids[batch.image_positions[row][keep]] = IMAGE_ID
    pixels = batch.pixel_values[batch.image_owner == row]
    with torch.no_grad():
        return hf(input_ids=ids[None], pixel_values=pixels, attention_mask=torch.ones_like(ids)[None]).logits[0]


def _check_parity(hf, model):
    prompts = [model.prompt("What is the colour of the shape?"), model.prompt("Count.")]
    batch = model.prepare(prompts, [make_image(1), make_image(2, (30, 70))])
    with torch.no_grad():
        ours = model(batch).logits
    for row in range(2):
        keep = batch.attention_mask[row].bool()
        torch.testing.assert_close(ours[row][keep], _hf_logits(hf, model, batch, row), rtol=1e-5, atol=1e-5)


def test_llava_hf_layout_matches_transformers(hf_llava, tmp_path):
    hf_llava.save_pretrained(tmp_path / "hf")
    build_tiny_tokenizer().save_pretrained(tmp_path / "hf")
    assert detect(tmp_path / "hf") is llava_hf
    model = load_model(tmp_path / "hf").eval()
    assert model.config.kind == "llava" and model.config.visual_tokens == 16
    _check_parity(hf_llava, model)


def test_llava_hf_in_memory_key_spelling_loads(hf_llava, tmp_path):
    from safetensors.torch import save_file

    folder = tmp_path / "hf-mem"
    hf_llava.save_pretrained(folder)
    (folder / "model.safetensors").unlink()
    state = {k: v.contiguous() for k, v in hf_llava.state_dict().items()}  # model.language_model.*, lm_head.*
    assert any(k.startswith("model.language_model.") for k in state)
    save_file(state, str(folder / "model.safetensors"))
    build_tiny_tokenizer().save_pretrained(folder)
    _check_parity(hf_llava, load_model(folder).eval())


def _write_original_layout(hf, folder, clip_folder):
    """The liuhaotian/llava-v1.5-7b layout, renamed key by key from the llava-hf model (by hand)."""
    from safetensors.torch import save_file

    state = {}
    for key, value in hf.state_dict().items():
        if key.startswith("model.language_model."):
            state["model." + key[len("model.language_model."):]] = value
        elif key == "lm_head.weight":
            state[key] = value
        elif key.startswith("model.multi_modal_projector.linear_1."):
            state["model.mm_projector.0." + key.rsplit(".", 1)[1]] = value
        elif key.startswith("model.multi_modal_projector.linear_2."):
            state["model.mm_projector.2." + key.rsplit(".", 1)[1]] = value
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    config = hf.config.text_config.to_dict()
    config.update(architectures=["LlavaLlamaForCausalLM"], model_type="llava_llama", mm_projector_type="mlp2x_gelu",
                  mm_vision_tower=str(clip_folder), mm_hidden_size=32, mm_vision_select_layer=-2,
                  mm_vision_select_feature="patch", image_aspect_ratio="pad")
    (folder / "config.json").write_text(json.dumps(config))
    build_tiny_tokenizer().save_pretrained(folder)
    hf.model.vision_tower.save_pretrained(clip_folder)


def test_llava_original_layout_matches_transformers(hf_llava, tmp_path):
    _write_original_layout(hf_llava, tmp_path / "orig", tmp_path / "clip")
    assert detect(tmp_path / "orig") is llava_original
    report = describe(tmp_path / "orig")
    assert report.kind == "llava" and report.problems == []
    assert report.parameters["connector"] == 32 * 64 + 64 + 64 * 64 + 64
    _check_parity(hf_llava, load_model(tmp_path / "orig").eval())


def test_llava_original_export_round_trip(tmp_path, images):
    model = build_model(preset("llava-tiny"), seed=1).eval()
    llava_original.export(model, tmp_path / "orig", tmp_path / "clip")
    again = load_model(tmp_path / "orig").eval()
    batch = model.prepare([model.prompt("What?")], images[:1])
    with torch.no_grad():
        assert torch.equal(model(batch).logits, again(batch).logits)


@pytest.mark.parametrize("name,expected", [("vlora-7b", 0), ("llava-7b", 576), ("llava-qformer-7b", 128),
                                           ("vlora-tiny", 0), ("llava-tiny", 16), ("llava-qformer-tiny", 8)])
def test_visual_token_counts_from_configs(name, expected):
    config = preset(name)
    assert config.visual_tokens == expected
    if config.kind == "llava":
        assert expected == (config.vision.image_size // config.vision.patch_size) ** 2  # one per CLIP patch
    if config.kind == "llava-qformer":
        assert expected == config.connector.queries


def test_visual_tokens_lengthen_the_input(images):
    """Same prompt, same image: the LLM input grows by the visual tokens (VLoRA: one masked slot)."""
    lengths = {}
    for name in ("vlora-tiny", "llava-tiny", "llava-qformer-tiny"):
        model = build_model(preset(name), seed=0)
        batch = model.prepare([model.prompt("What is it?")], images[:1])
        lengths[name] = (batch.input_ids.shape[1], int(batch.attention_mask.sum()))
    text = lengths["vlora-tiny"][0] - 1
    assert lengths["vlora-tiny"] == (text + 1, text)  # the slot is there but attends to nothing
    assert lengths["llava-tiny"] == (text + 16, text + 16)
    assert lengths["llava-qformer-tiny"] == (text + 8, text + 8)


@pytest.mark.parametrize("name", ["llava-tiny", "llava-qformer-tiny"])
def test_batched_equals_single_for_token_connectors(name, images):
    model = build_model(preset(name), seed=0).eval()
    prompts = [model.prompt("What is the colour of the big shape?"), model.prompt("How many?"),
               model.prompt("Only text here.", with_image=False)]
    batch_images = [images[0], images[1], None]
    batch = model.prepare(prompts, batch_images)
    with torch.no_grad():
        together = model(batch).logits
        for i in range(3):
            alone = model.prepare(prompts[i:i + 1], batch_images[i:i + 1])
            torch.testing.assert_close(together[i][batch.attention_mask[i].bool()], model(alone).logits[0],
                                       rtol=1e-5, atol=1e-5)
    assert model.generate(prompts, batch_images, 6) == [model.generate([p], [im], 6)[0]
                                                       for p, im in zip(prompts, batch_images, strict=True)]


def test_qformer_connector_is_transformers_blip2_qformer():
    from transformers import Blip2QFormerModel

    model = build_model(preset("llava-qformer-tiny"), seed=0)
    q = preset("llava-qformer-tiny").connector
    assert isinstance(model.connector.qformer, Blip2QFormerModel)
    assert model.connector.qformer.config.num_hidden_layers == q.blocks
    assert model.connector.qformer.config.hidden_size == q.hidden
    qformer = sum(p.numel() for p in model.connector.qformer.parameters())
    assert model.parameter_counts()["connector"] == qformer + q.queries * q.hidden + q.hidden * 64 + 64
    tokens = model.connector(torch.randn(3, 16, 32))
    assert tokens.shape == (3, q.queries, 64)


@pytest.mark.parametrize("name", ["vlora-tiny", "llava-tiny", "llava-qformer-tiny"])
def test_own_round_trip_for_all_three(name, tmp_path, images):
    model = build_model(preset(name), seed=4).eval()
    save_model(model, tmp_path / "ckpt")
    report = describe(tmp_path / "ckpt")
    assert report.kind == "own" and report.problems == [] and report.parameters == model.parameter_counts()
    again = load_model(tmp_path / "ckpt").eval()
    assert again.config == model.config
    batch = model.prepare([model.prompt("What?")], images[:1])
    with torch.no_grad():
        assert torch.equal(model(batch).logits, again(batch).logits)


def test_token_connectors_need_matching_placeholders(images):
    model = build_model(preset("llava-tiny"), seed=0)
    with pytest.raises(InputError, match=r"sample 0: the prompt has 0 <image> placeholder\(s\) but 1 image"):
        model.prepare([model.prompt("What?", with_image=False)], images[:1])
    with pytest.raises(InputError, match=r"sample 1: the prompt has 1 <image> placeholder\(s\) but 0 image"):
        model.prepare([model.prompt("A?"), model.prompt("B?")], [images[0], None])
    two = model.prepare([model.template.prompt("<image>\n<image>\nCompare.")], [[images[0], images[1]]])
    assert two.image_positions.sum() == 32 and two.pixel_values.shape[0] == 2

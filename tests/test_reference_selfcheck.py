"""Self-checks of the independent official-VLoRA reference (tests/reference/official_vlora.py) against
things that are true independently of it: transformers' Llama, PyTorch's nn.TransformerDecoderLayer, the
merged-weight identity W' = W + B A^T, and the placement / zeroing rules of the spec."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from reference.official_vlora import (
    OfficialTinyConfig,
    official_config_json,
    random_official_state_dict,
    reference_greedy,
    reference_logits,
    reference_perceptual_weights,
)
from torch import nn

transformers = pytest.importorskip("transformers")


def _features(cfg: OfficialTinyConfig, batch: int = 1, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, cfg.vlora_pos_num, cfg.vlora_visual_dim, generator=g)


def _hf_llama(cfg: OfficialTinyConfig, sd: dict[str, torch.Tensor]):
    hf_cfg = transformers.LlamaConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        rms_norm_eps=cfg.rms_norm_eps,
        max_position_embeddings=4096,
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_base},
        tie_word_embeddings=False,
        attn_implementation="eager",
    )
    model = transformers.LlamaForCausalLM(hf_cfg).eval()
    llm = {k: v for k, v in sd.items() if not k.startswith("model.mm_projector.")}
    model.load_state_dict(llm, strict=True)
    assert model.config._attn_implementation == "eager"
    return model


def test_matches_hf_llama_when_bs_zero():
    cfg = OfficialTinyConfig()
    sd = random_official_state_dict(cfg, seed=0)
    sd["model.mm_projector.Bs"].zero_()
    ids = torch.tensor([[1, 5, 17, 33, 250, 8, 9, 42], [0, 0, 1, 7, 7, 123, 99, 3]])
    mask = torch.tensor([[1] * 8, [0, 0] + [1] * 6])  # second row left-padded
    pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    ours = reference_logits(sd, cfg, ids, mask, _features(cfg, 2))
    with torch.no_grad():
        hf = _hf_llama(cfg, sd)(input_ids=ids, attention_mask=mask, position_ids=pos).logits
    valid = mask.bool()
    torch.testing.assert_close(ours[valid], hf[valid], atol=1e-5, rtol=1e-5)


def test_placeholder_is_unk_masked_and_keeps_position():
    """Bs = 0: a -200 prompt equals HF Llama on ids with 0 there, that slot masked, arange positions."""
    cfg = OfficialTinyConfig()
    sd = random_official_state_dict(cfg, seed=3)
    sd["model.mm_projector.Bs"].zero_()
    ids = torch.tensor([[1, 11, 12, -200, 29, 13, 40, 41]])
    mask = torch.ones_like(ids)
    ours = reference_logits(sd, cfg, ids, mask, _features(cfg))
    assert ids[0, 3] == -200 and mask.all()  # the caller's tensors are not mutated
    hf_mask = mask.clone()
    hf_mask[0, 3] = 0
    with torch.no_grad():
        hf = _hf_llama(cfg, sd)(
            input_ids=ids.clamp(min=0), attention_mask=hf_mask, position_ids=torch.arange(8)[None]
        ).logits
    torch.testing.assert_close(ours, hf, atol=1e-5, rtol=1e-5)


def test_qkvo_bypass_equals_merged_weights():
    """Batch of one, types qkvo: the bypass equals HF Llama with W' = W + B A^T merged in."""
    cfg = OfficialTinyConfig(vlora_type="qkvo")
    sd = random_official_state_dict(cfg, seed=4)
    ids = torch.tensor([[1, 20, -200, 29, 13, 77, 78, 79, 80]])
    mask = torch.ones_like(ids)
    feats = _features(cfg)
    ours = reference_logits(sd, cfg, ids, mask, feats)
    merged = dict(sd)
    for layer, w in enumerate(reference_perceptual_weights(sd, cfg, feats, ids)):
        for t in "qkvo":
            A, B = w[t]
            if A is not None:
                key = f"model.layers.{layer}.self_attn.{t}_proj.weight"
                merged[key] = sd[key] + B @ A[0].T  # [d, d]
    hf_mask = mask.clone()
    hf_mask[0, 2] = 0
    with torch.no_grad():
        hf = _hf_llama(cfg, merged)(
            input_ids=ids.clamp(min=0), attention_mask=hf_mask, position_ids=torch.arange(9)[None]
        ).logits
    torch.testing.assert_close(ours, hf, atol=1e-4, rtol=1e-4)
    sd["model.mm_projector.Bs"].zero_()
    assert (reference_logits(sd, cfg, ids, mask, feats) - ours).abs().max() > 1e-3  # Bs matters


@pytest.mark.parametrize("weights_sep", [True, False])
def test_generator_matches_torch_decoder_layer(weights_sep):
    cfg = OfficialTinyConfig(weights_sep=weights_sep)
    sd = random_official_state_dict(cfg, seed=5)
    feats = _features(cfg, 2)
    ids = torch.tensor([[1, -200, 5], [1, -200, 6]])
    T, S, D = len(cfg.vlora_type), cfg.num_layers // cfg.skip_layers, cfg.vlora_dim
    P = "model.mm_projector."
    with torch.no_grad():
        mem = nn.functional.linear(feats, sd[f"{P}visual_proj.weight"], sd[f"{P}visual_proj.bias"])
        mem = mem + sd[f"{P}pos_embed"]
        outs = []
        for gp in [f"{P}gen.{i}." for i in range(T)] if weights_sep else [f"{P}gen."]:
            q = sd[f"{gp}queries"].expand(2, -1, -1)
            for j in range(cfg.vlora_depth):
                layer = nn.TransformerDecoderLayer(
                    D,
                    cfg.vlora_heads,
                    4 * D,
                    dropout=0.0,
                    activation="gelu",
                    batch_first=True,
                    norm_first=True,
                ).eval()
                pre = f"{gp}decoders.{j}."
                layer.load_state_dict({k[len(pre) :]: v for k, v in sd.items() if k.startswith(pre)})
                q = layer(q, mem)
            q = nn.functional.layer_norm(q, (D,), sd[f"{gp}norm.weight"], sd[f"{gp}norm.bias"], 1e-5)
            outs.append(nn.functional.linear(q, sd[f"{gp}weights_head.weight"], sd[f"{gp}weights_head.bias"]))
        A_torch = torch.cat(outs, 1).reshape(2, T, S, cfg.hidden_size, cfg.vlora_rank)
    ws = reference_perceptual_weights(sd, cfg, feats, ids)
    Bs = sd[f"{P}Bs"][0].reshape(T, S, cfg.hidden_size, cfg.vlora_rank)
    for layer in range(cfg.num_layers):
        if (layer + 1) % cfg.skip_layers:
            continue
        s = layer // cfg.skip_layers
        for t_idx, t in enumerate(cfg.vlora_type):
            A, B = ws[layer][t]
            torch.testing.assert_close(A, A_torch[:, t_idx, s], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(B, Bs[t_idx, s] * cfg.vlora_alpha / cfg.vlora_rank)


@pytest.mark.parametrize(("num_layers", "skip"), [(4, 1), (4, 2), (4, 4), (8, 1), (8, 2), (8, 4)])
def test_placement(num_layers, skip):
    cfg = OfficialTinyConfig(num_layers=num_layers, skip_layers=skip, vlora_type="qkvm")
    sd = random_official_state_dict(cfg)
    assert sd["model.mm_projector.Bs"].shape == (1, 4 * num_layers // skip, cfg.hidden_size * cfg.vlora_rank)
    assert sd["model.mm_projector.gen.0.queries"].shape == (1, num_layers // skip, cfg.vlora_dim)
    ws = reference_perceptual_weights(sd, cfg, _features(cfg), torch.tensor([[1, -200, 3]]))
    assert len(ws) == num_layers
    for layer, w in enumerate(ws):
        assert set(w) == set("qkvom")
        assert w["o"] == (None, None)  # type not in vlora_type
        filled = (layer + 1) % skip == 0
        for t in "qkvm":
            assert (w[t][0] is not None) == filled and (w[t][1] is not None) == filled
            if filled:
                assert w[t][0].shape == (1, cfg.hidden_size, cfg.vlora_rank)
                assert w[t][1].shape == (cfg.hidden_size, cfg.vlora_rank)
                assert w[t][0].abs().sum() > 0


def test_no_placeholder_gives_zero_A_per_sample():
    cfg = OfficialTinyConfig()
    sd = random_official_state_dict(cfg)
    ids = torch.tensor([[1, 5, 6, 7], [1, -200, 6, 7]])
    ws = reference_perceptual_weights(sd, cfg, _features(cfg, 2), ids)
    for w in ws:
        for t in "qkvom":
            A, _ = w[t]
            if A is not None:
                assert torch.all(A[0] == 0)
                assert A[1].abs().sum() > 0


def test_batch_matches_single_samples():
    cfg = OfficialTinyConfig()
    sd = random_official_state_dict(cfg, seed=6)
    ids = torch.tensor([[1, -200, 29, 13, 50, 51], [1, 9, -200, 29, 13, 60]])
    mask = torch.ones_like(ids)
    feats = _features(cfg, 2)
    batched = reference_logits(sd, cfg, ids, mask, feats)
    for b in range(2):
        single = reference_logits(sd, cfg, ids[b : b + 1], mask[b : b + 1], feats[b : b + 1])
        torch.testing.assert_close(batched[b : b + 1], single, atol=1e-5, rtol=1e-5)
    swapped = reference_logits(sd, cfg, ids, mask, feats.flip(0))
    assert (swapped - batched).abs().max() > 1e-3  # the image changes the logits


def test_greedy_first_token_independent_of_position_mode():
    cfg = OfficialTinyConfig()
    sd = random_official_state_dict(cfg, seed=7)
    ids = torch.tensor([[1, 3, 4, -200, 29, 13, 44, 45]])
    feats = _features(cfg)
    off = reference_greedy(sd, cfg, ids, feats, max_new_tokens=6, eos_token_id=-1, official_positions=True)
    plain = reference_greedy(sd, cfg, ids, feats, max_new_tokens=6, eos_token_id=-1, official_positions=False)
    assert len(off) == len(plain) == 6
    assert off[0] == plain[0]
    expected = reference_logits(sd, cfg, ids, torch.ones_like(ids), feats)[0, -1].argmax().item()
    assert off[0] == expected


def test_extras_and_config_json():
    cfg = OfficialTinyConfig(weights_sep=False)
    sd = random_official_state_dict(cfg, with_extras=True)
    assert "model.layers.0.self_attn.rotary_emb.inv_freq" in sd
    assert any(k.startswith("model.vision_tower.vision_tower.vision_model.") for k in sd)
    assert sd["model.mm_projector.gen.queries"].shape == (1, 5 * 2, cfg.vlora_dim)
    assert not any(k.startswith("model.mm_projector.gen.0.") for k in sd)
    cj = official_config_json(dataclasses.replace(cfg, weights_sep=True), vision_tower="/x/clip")
    assert cj["model_type"] == "llava_vlora" and cj["mm_vision_tower"] == "/x/clip"
    assert cj["num_hidden_layers"] == cfg.num_layers and cj["vlora_llm_depth"] == cfg.num_layers
    assert cj["weights_sep"] is True and cj["skip_layers"] == cfg.skip_layers

"""Configs, placement of perceptual weights by layer and type, and parameter counts in closed form."""

from __future__ import annotations

import pytest
import torch
from accelerate import init_empty_weights

from vlora.config import GeneratorConfig, LLMConfig, ModelConfig, VisionConfig
from vlora.errors import ConfigError
from vlora.generator import PerceptualWeightsGenerator
from vlora.overrides import apply_overrides
from vlora.presets import preset

SMALL_LLM = LLMConfig(hidden_size=32, intermediate_size=48, num_layers=8, num_heads=4, num_kv_heads=4, vocab_size=64)
SMALL_VISION = VisionConfig(image_size=28, patch_size=14, hidden_size=16, intermediate_size=32, num_layers=1, num_heads=2)


def _generator_params(d_v: int, c: int, h: int, out: dict[str, int], g: GeneratorConfig, k: int) -> int:
    """Closed form, derived by hand from Fig. 3 and the official layout (biases everywhere)."""
    D, r, N, T = g.hidden, g.rank, g.blocks, len(g.types)
    attention = 4 * D * D + 4 * D  # in_proj [3D, D] + [3D], out_proj [D, D] + [D]
    block = 2 * attention + (g.mlp_ratio * D * D + g.mlp_ratio * D) + (g.mlp_ratio * D * D + D) + 6 * D
    decoder = N * block + 2 * D + (D * h * r + h * r)  # blocks, final LayerNorm, shared head to h * r
    decoders = decoder + k * T * D if g.shared else T * (decoder + k * D)
    return (d_v * D + D) + c * D + decoders + sum(k * out[t] * r for t in g.types)


@pytest.mark.parametrize("skip,expected", [(1, list(range(8))), (2, [1, 3, 5, 7]), (4, [3, 7]), (8, [7])])
@pytest.mark.parametrize("types", ["qkvom", "qk", "om", "vq"])
def test_placement_by_layer_and_type(skip, expected, types):
    config = ModelConfig(llm=SMALL_LLM, vision=SMALL_VISION,
                         connector=GeneratorConfig(types=types, rank=2, blocks=1, hidden=8, heads=2, skip=skip))
    generator = PerceptualWeightsGenerator(config)
    weights = generator(torch.randn(2, SMALL_VISION.num_patches, 16), torch.tensor([True, True]))
    assert weights.keys() == sorted((layer, t) for layer in expected for t in types)
    for (layer, t), a in weights.a.items():
        assert a.shape == (2, 32, 2) and weights.b[layer, t].shape == (32, 2)
        slot = expected.index(layer)
        assert layer // skip == slot  # the official rule: layer l receives slot l // skip
        torch.testing.assert_close(weights.b[layer, t], generator.scale * generator.w_s[t][slot])


def test_type_order_selects_the_generator(tiny_model):
    """gen.{i} serves types[i]: A of type types[i] comes from type_decoders[i]."""
    features = torch.randn(1, tiny_model.config.vision.num_patches, tiny_model.config.vision.hidden_size)
    generator = tiny_model.connector
    weights = generator(features, torch.tensor([True]))
    memory = generator.visual_proj(features) + generator.pos_embed
    h, r = tiny_model.config.llm.hidden_size, generator.rank
    for i, t in enumerate(generator.types):
        rows = generator.type_decoders[i](memory)  # [1, k, h * r]
        for slot, layer in enumerate(generator.layers):
            torch.testing.assert_close(weights.a[layer, t][0], rows[0, slot].view(h, r))


def test_explicit_layers_override_skip():
    g = GeneratorConfig(skip=4, layers=(0, 5))
    assert g.target_layers(32) == (0, 5)
    with pytest.raises(ConfigError, match=r"generator.layers \[40\] lie outside the LLM's 32 layers"):
        GeneratorConfig(layers=(1, 40)).target_layers(32)


@pytest.mark.parametrize("bad,message", [
    (dict(types="qx"), "subset of 'qkvom'"),
    (dict(types="qq"), "repeats a type"),
    (dict(hidden=30, heads=4), "not a multiple of generator.heads"),
    (dict(rank=0), "must be positive"),
])
def test_bad_generator_config_is_a_clear_error(bad, message):
    with pytest.raises(ConfigError, match=message):
        GeneratorConfig(**bad)


def test_config_round_trips_through_plain_data(tiny_config):
    again = ModelConfig.from_dict(tiny_config.to_dict())
    assert again == tiny_config
    with pytest.raises(ConfigError, match=r"^model config: connector.ranks: not a setting here \(did you mean rank\?\)$"):
        ModelConfig.from_dict({**tiny_config.to_dict(), "connector": {"kind": "vlora", "ranks": 8}})
    with pytest.raises(ConfigError, match=r"^model config: llm.hidden_size: expects int, got '64'$"):
        ModelConfig.from_dict({**tiny_config.to_dict(), "llm": {**tiny_config.to_dict()["llm"], "hidden_size": "64"}})
    with pytest.raises(ConfigError, match=r"^model config: connector: unknown connector kind 'mlp'"):
        ModelConfig.from_dict({**tiny_config.to_dict(), "connector": {"kind": "mlp"}})


@pytest.mark.parametrize("connector", [
    GeneratorConfig(types="qkvom", rank=4, blocks=2, hidden=16, heads=4, skip=2),
    GeneratorConfig(types="qko", rank=3, blocks=1, hidden=8, heads=2, skip=4, shared=True),
    GeneratorConfig(types="kv", rank=2, blocks=3, hidden=8, heads=2, skip=1, alpha=None),
])
def test_parameter_counts_match_closed_form(connector):
    llm = LLMConfig(hidden_size=32, intermediate_size=48, num_layers=8, num_heads=4, num_kv_heads=2, vocab_size=64)
    config = ModelConfig(llm=llm, vision=SMALL_VISION, connector=connector)
    generator = PerceptualWeightsGenerator(config)
    k = len(connector.target_layers(8))
    out = {"q": 32, "k": 16, "v": 16, "o": 32, "m": 32}  # GQA: k and v project to 2 heads of 8
    expected = _generator_params(16, SMALL_VISION.num_patches, 32, out, connector, k)
    assert sum(p.numel() for p in generator.parameters()) == expected


@pytest.mark.parametrize("hidden,expected", [(512, 851_891_712), (1024, 2_027_531_264)])
def test_paper_scale_generator_on_meta(hidden, expected):
    """Vicuna-7B, CLIP-L, N = 8, k = 8, r = 64, qkvom (the release's counts, both widths)."""
    config = apply_overrides(preset("vlora-7b"), {"connector.hidden": hidden})
    with init_empty_weights():
        generator = PerceptualWeightsGenerator(config)
    count = sum(p.numel() for p in generator.parameters())
    assert count == expected
    out = {t: 4096 for t in "qkvom"}
    assert count == _generator_params(1024, 576, 4096, out, config.connector, 8)

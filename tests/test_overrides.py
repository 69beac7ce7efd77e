"""One override path (`--set`), derived facts defined once, models built from a local generator."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from flops.analytic import generator_flops, model_flops, vlora_branches
from vlora.checkpoints import load_model, official_vlora
from vlora.config import GeneratorConfig, ModelConfig, Space
from vlora.errors import ConfigError
from vlora.initialization import initialize, materialize
from vlora.model import MultimodalLM, build_model
from vlora.overrides import apply_overrides
from vlora.presets import preset
from vlora_eval.cli import app


# --- apply_overrides ----------------------------------------------------------------------------------
def test_dotted_and_flat_keys_apply_with_their_types():
    base = preset("vlora-tiny")
    config = apply_overrides(base, ["connector.rank=8", "llm.num_layers=2", "vision.num_layers=1", "types=qk",
                                    "connector.alpha=null", "shared=true", "llm.rms_norm_eps=1e-6",
                                    "connector.layers=[0, 1]"])
    assert (config.connector.rank, config.llm.num_layers, config.vision.num_layers) == (8, 2, 1)
    assert (config.connector.types, config.connector.alpha, config.connector.shared) == ("qk", None, True)
    assert config.llm.rms_norm_eps == 1e-6 and config.connector.layers == (0, 1)
    assert config.llm.hidden_size == base.llm.hidden_size  # untouched fields stay
    assert apply_overrides(base, {"connector.rank": 8}) == apply_overrides(base, ["connector.rank=8"])
    assert apply_overrides(base, []) == base


@pytest.mark.parametrize("override,message", [
    ("connector.ranks=8", "'connector.ranks' is not a setting of a vlora model; did you mean connector.rank"),
    ("ranq=8", "did you mean connector.rank"),
    ("hidden_size=32", "'hidden_size' is ambiguous: llm.hidden_size or vision.hidden_size"),
    ("num_layers=2", "'num_layers' is ambiguous: llm.num_layers or vision.num_layers"),
    ("connector.rank=abc", "--set connector.rank: expects int, got 'abc'"),
    ("connector.rank=2.5", "--set connector.rank: expects int, got 2.5"),
    ("connector.rank=0", "generator.rank, blocks, hidden and skip must be positive"),
    ("connector.types=qkx", "must be a non-empty subset of 'qkvom'"),
    ("connector.layers=3", "expects a list"),
    ("rank", "'rank' is not KEY=VALUE"),
    ("=3", "is not KEY=VALUE"),
    ("model.rank=3", "'model.rank' is not a setting"),
])
def test_unknown_ambiguous_and_ill_typed_keys_are_refused(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        apply_overrides(preset("vlora-tiny"), [override])


def test_a_field_of_another_connector_is_not_a_setting():
    with pytest.raises(ConfigError, match="'connector.rank' is not a setting of a llava model"):
        apply_overrides(preset("llava-tiny"), ["connector.rank=4"])
    assert apply_overrides(preset("llava-qformer-tiny"), ["queries=4"]).visual_tokens == 4


def test_set_on_the_commands_that_build_a_model(tmp_path):
    runner = CliRunner()
    out = runner.invoke(app, ["generate", "--model", "vlora-tiny", "--question", "Q?", "--max-new-tokens", "2",
                              "--set", "connector.rank=2", "--set", "llm.num_layers=2", "--json"])
    assert out.exit_code == 0, out.output
    bad = runner.invoke(app, ["generate", "--model", "vlora-tiny", "--question", "Q?", "--set", "num_layers=2"])
    assert bad.exit_code == 2 and "ambiguous" in bad.output and "Traceback" not in bad.output
    flops = json.loads(runner.invoke(app, ["flops", "--model", "vlora-tiny", "--set", "connector.rank=2", "--json"]).stdout)
    tiny = apply_overrides(preset("vlora-tiny"), ["connector.rank=2"])
    vlora = next(r for r in flops["architecture_exact"] if r["model"] == "VLoRA" and r["mode"] == "factorized")
    assert vlora["perceptual_weights"] == pytest.approx(vlora_branches(tiny, 32 + 1) / 1e9)


# --- derived facts: one definition, the same answer everywhere -------------------------------------------
CONFIGS = [
    preset("vlora-tiny"),
    apply_overrides(preset("vlora-tiny"), ["connector.skip=1", "connector.types=qko"]),
    apply_overrides(preset("vlora-tiny"), ["connector.shared=true", "connector.rank=3"]),
    apply_overrides(preset("vlora-tiny"), ["llm.num_kv_heads=2", "connector.layers=[3, 0]", "connector.types=kvm"]),
    apply_overrides(preset("vlora-tiny"), ["llm.num_layers=8", "connector.skip=4"]),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.connector.types}-k{c.k}-shared{c.connector.shared}")
def test_generator_loaders_and_flops_agree_on_the_derived_facts(config, tmp_path):
    model = build_model(config, seed=0)
    generator = model.connector
    assert generator.layers == config.receiving_layers and len(generator.layers) == config.k
    decoders, queries = config.query_layout
    assert len(generator.type_decoders) == decoders
    assert all(d.queries.shape[1] == queries for d in generator.type_decoders)
    assert {t: generator.w_s[t].shape for t in config.connector.types} == {
        t: (config.k, config.weight_widths[t], config.connector.rank) for t in config.connector.types}
    with torch.no_grad():
        weights = generator(torch.zeros(1, config.vision.num_patches, config.vision.hidden_size),
                            torch.ones(1, dtype=torch.bool))
    assert sorted({layer for layer, _ in weights.keys()}) == sorted(config.receiving_layers)
    # the batch: one masked position per placeholder
    batch = model.prepare([model.prompt("Q?")], [_image()])
    assert int(batch.image_positions.sum()) == config.positions_per_image == 1
    # the FLOPs code: branches over k blocks with the configured widths, generator queries as laid out
    h, r = config.llm.hidden_size, config.connector.rank
    n = 10
    assert vlora_branches(config, n) == config.k * sum(2 * n * r * (h + config.weight_widths[t])
                                                       for t in config.connector.types)
    assert generator_flops(config)["weights_head"] == decoders * 2 * queries * config.connector.hidden * h * r
    assert model_flops(config, 9)["llm"] == model_flops(config, 10 - config.positions_per_image)["llm"]
    # the loaders: the official layout reads k, the layers and W_s back
    if all(config.weight_widths[t] == h for t in config.connector.types) and config.connector.layers is None:
        official_vlora.export(model, tmp_path / "off", tmp_path / "clip")
        loaded = load_model(tmp_path / "off")
        assert loaded.config.k == config.k and loaded.config.receiving_layers == config.receiving_layers


@pytest.mark.parametrize("name,space,positions", [("vlora-tiny", Space.PARAMETER, 1), ("llava-tiny", Space.INPUT, 16),
                                                  ("llava-qformer-tiny", Space.INPUT, 8)])
def test_the_space_fork_and_positions_per_image(name, space, positions):
    config = preset(name)
    assert config.space is space and config.positions_per_image == positions
    model = build_model(config, seed=0)
    batch = model.prepare([model.prompt("Q?")], [_image()])
    assert int(batch.image_positions.sum()) == positions
    masked = int(((batch.attention_mask == 0) & batch.image_positions).sum())
    assert masked == (1 if space is Space.PARAMETER else 0)


def _image():
    from conftest import make_image

    return make_image(0)


# --- building a model: a local generator, the meta path equals the CPU path ------------------------------
def test_building_a_model_does_not_touch_the_global_rng():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = build_model(preset("vlora-tiny"), seed=7)
    assert torch.equal(torch.get_rng_state(), before)
    second = build_model(preset("vlora-tiny"), seed=7)
    other = build_model(preset("vlora-tiny"), seed=8)
    for key, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[key]), key
    assert not torch.equal(first.llm.lm_head.weight, other.llm.lm_head.weight)


@pytest.mark.parametrize("name", ["vlora-tiny", "llava-tiny", "llava-qformer-tiny"])
def test_meta_path_and_cpu_path_agree(name):
    """build_model materialises a weightless skeleton; a model constructed on the CPU (the libraries'
    own init) and then initialised from the same generator is the same model."""
    config = preset(name)
    via_meta = build_model(config, seed=3)
    with torch.random.fork_rng():
        on_cpu = MultimodalLM(config, *_cpu_parts(config), via_meta.tokenizer)
    initialize(on_cpu, torch.Generator().manual_seed(3))
    for key, value in via_meta.state_dict().items():
        assert torch.equal(value, on_cpu.state_dict()[key]), key
    image, prompt = _image(), via_meta.prompt("What is it?")
    via_meta.eval(), on_cpu.eval()
    with torch.no_grad():
        a = via_meta(via_meta.prepare([prompt], [image])).logits
        b = on_cpu(on_cpu.prepare([prompt], [image])).logits
    assert torch.equal(a, b)


def _cpu_parts(config: ModelConfig):
    from transformers import LlamaForCausalLM

    from vlora.connectors import build_connector
    from vlora.vision import VisionTower

    return LlamaForCausalLM(config.llm.to_hf()), VisionTower(config.vision), build_connector(config)


def test_build_in_a_dtype_keeps_rope_in_float32():
    model = build_model(preset("vlora-tiny"), seed=0, dtype=torch.bfloat16)
    assert model.llm.lm_head.weight.dtype == torch.bfloat16 and model.connector.w_s["q"].dtype == torch.bfloat16
    assert model.llm.model.rotary_emb.inv_freq.dtype == torch.float32
    answer = model.generate([model.prompt("Q?")], [_image()], max_new_tokens=2)
    assert isinstance(answer[0], str)


def test_materialize_needs_a_rule_for_every_parameter():
    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mystery = torch.nn.Parameter(torch.empty(2, device="meta"))

    with pytest.raises(RuntimeError, match="no initialisation rule for parameter"):
        initialize(materialize(Odd(), "cpu"), torch.Generator())


def test_generator_config_still_validates_its_placement():
    with pytest.raises(ConfigError, match="exceeds the LLM's 4 layers"):
        ModelConfig(llm=preset("vlora-tiny").llm, connector=GeneratorConfig(skip=8))

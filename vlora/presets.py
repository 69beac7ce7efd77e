"""Preset configurations as data: the LLM and vision tower of each size, and `preset("<kind>-<size>")`.

    7b      Vicuna-7B-v1.5 + CLIP-L/14 at 336 px: the paper's models
    small   h = 512, 8 blocks, CLIP at 336 px (576 patches): CPU benchmarks at the paper's visual tokens
    tiny    h = 64, 4 blocks, CLIP at 56 px: tests, demos and the embedded default (milliseconds on a CPU)

Each connector kind gives its connector at every size (vlora/connector_kinds.py), so `vlora-small` is
the small LLM and tower with VLoRA's small generator, and the three kinds of one size share the LLM
and the tower.
"""

from __future__ import annotations

from vlora.config import LLMConfig, ModelConfig, VisionConfig
from vlora.connector_kinds import KINDS, SIZES, connector_kind
from vlora.errors import ConfigError

TINY_VOCAB = 1024  # the project's generated tiny tokenizer fits in this

BODIES: dict[str, tuple[LLMConfig, VisionConfig]] = {
    "7b": (LLMConfig(), VisionConfig()),
    "small": (LLMConfig(hidden_size=512, intermediate_size=1376, num_layers=8, num_heads=8, num_kv_heads=8,
                        vocab_size=4096),
              VisionConfig(image_size=336, patch_size=14, hidden_size=128, intermediate_size=512, num_layers=2,
                           num_heads=4)),
    "tiny": (LLMConfig(hidden_size=64, intermediate_size=160, num_layers=4, num_heads=4, num_kv_heads=4,
                       vocab_size=TINY_VOCAB, max_position_embeddings=1024),
             VisionConfig(image_size=56, patch_size=14, hidden_size=32, intermediate_size=64, num_layers=2,
                          num_heads=4)),
}
assert tuple(BODIES) == SIZES


def preset(name: str) -> ModelConfig:
    """`<kind>-<size>`: e.g. vlora-7b, llava-small, llava-qformer-tiny."""
    kind, _, size = name.rpartition("-")
    if size not in BODIES or kind not in KINDS:
        raise ConfigError(f"unknown model preset {name!r}; known: {', '.join(preset_names())}")
    llm, vision = BODIES[size]
    return ModelConfig(llm=llm, vision=vision, connector=connector_kind(kind).presets[size])


def preset_names() -> list[str]:
    return [f"{kind}-{size}" for kind in KINDS for size in SIZES]


def model_names() -> dict[str, tuple[str, bool]]:
    """The `--model` names: per connector kind its full-size model (`model_name`: the 7b preset, needs a
    checkpoint) and `<kind>-tiny` (the tiny preset, built at random) -> (preset name, needs a checkpoint)."""
    full = {k.model_name: (f"{k.name}-7b", True) for k in KINDS.values()}
    return {**full, **{k.tiny_name: (f"{k.name}-tiny", False) for k in KINDS.values()}}


def model_preset(name: str) -> ModelConfig:
    """The configuration a `--model` name builds without a checkpoint."""
    names = model_names()
    if name not in names:
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(names)}")
    return preset(names[name][0])

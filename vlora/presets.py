"""Preset configurations as data: the paper's 7B models and tiny random ones for tests and demos."""

from __future__ import annotations

from vlora.config import GeneratorConfig, LLMConfig, ModelConfig, ProjectorConfig, QFormerConfig, VisionConfig
from vlora.errors import ConfigError

TINY_VOCAB = 1024  # the project's generated tiny tokenizer fits in this

_TINY_LLM = LLMConfig(hidden_size=64, intermediate_size=160, num_layers=4, num_heads=4, num_kv_heads=4,
                      vocab_size=TINY_VOCAB, max_position_embeddings=1024)
_TINY_VISION = VisionConfig(image_size=56, patch_size=14, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4)

PRESETS: dict[str, ModelConfig] = {
    # The paper's models: Vicuna-7B-v1.5 + CLIP-L/14-336; VLoRA with N = 8, k = 8, r = 64, h_p = 512,
    # qkvom; LLaVA-v1.5 (576 visual tokens); the Q-Former baseline (128 queries, the generator's N, h_p).
    "vlora-7b": ModelConfig(),
    "llava-v1.5-7b": ModelConfig(connector=ProjectorConfig()),
    "llava-v1.5-7b-qformer": ModelConfig(connector=QFormerConfig()),
    # Tiny random configurations for tests and demos: milliseconds on a CPU. Same LLM and vision.
    "vlora-tiny": ModelConfig(
        llm=_TINY_LLM, vision=_TINY_VISION,
        connector=GeneratorConfig(types="qkvom", rank=4, alpha=8.0, blocks=2, hidden=32, heads=4, skip=2)),
    "llava-tiny": ModelConfig(llm=_TINY_LLM, vision=_TINY_VISION, connector=ProjectorConfig()),
    "llava-qformer-tiny": ModelConfig(llm=_TINY_LLM, vision=_TINY_VISION,
                                      connector=QFormerConfig(queries=8, blocks=2, hidden=32, heads=4)),
}


def preset(name: str) -> ModelConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown model preset {name!r}; known: {sorted(PRESETS)}") from None

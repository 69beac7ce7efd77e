"""What a FLOPs report is about: the text length and the VLoRA configuration, with LLaVA-v1.5 and the
Q-Former built on the same LLM and vision tower (the paper's Table 2 set-up)."""

from __future__ import annotations

from dataclasses import dataclass, field

from vlora.config import GeneratorConfig, ModelConfig, ProjectorConfig, QFormerConfig
from vlora.presets import preset

G = 1e9  # FLOPs per GFLOP


@dataclass(frozen=True)
class FlopsSettings:
    text_len: int = 32
    base: ModelConfig = field(default_factory=lambda: preset("vlora-7b"))  # LLM, vision, generator

    @property
    def k(self) -> int:
        return self.base.k

    def models(self) -> dict[str, ModelConfig]:
        """The three models on the same LLM and vision tower (the paper's Table 2 set-up)."""
        g: GeneratorConfig = self.base.connector
        return {"LLaVA-v1.5": ModelConfig(self.base.llm, self.base.vision, ProjectorConfig()),
                "LLaVA-v1.5-QFormer": ModelConfig(self.base.llm, self.base.vision,
                                                  QFormerConfig(blocks=g.blocks, hidden=g.hidden, heads=g.heads)),
                "VLoRA": self.base}

    @property
    def llava_tokens(self) -> int:
        """LLaVA-v1.5's visual tokens on this vision tower (576 for CLIP-L/14 at 336 px)."""
        return self.models()["LLaVA-v1.5"].visual_tokens

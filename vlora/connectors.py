"""Connectors: how CLIP features [N, c, d_v] reach the LLM (the only fork of the multimodal model).

Input-space alignment (paper Fig. 1a) returns visual tokens [N, L, h] (N images) spliced at the `<image>`
placeholder: `MLPProjector` (LLaVA-v1.5, L = c = 576) and `QFormerConnector` (L = 128 queries).
Parameter-space alignment (Fig. 1b) returns perceptual weights: `PerceptualWeightsGenerator`
(vlora/generator.py), L = 0.
"""

from __future__ import annotations

import torch
from torch import nn

from vlora.config import ModelConfig, QFormerConfig


class MLPProjector(nn.Module):
    """LLaVA-v1.5 `mlp2x_gelu`: one visual token per CLIP patch."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.linear_1 = nn.Linear(config.vision.hidden_size, config.llm.hidden_size)
        self.act = nn.GELU()  # exact (erf) GELU, as LLaVA and llava-hf
        self.linear_2 = nn.Linear(config.llm.hidden_size, config.llm.hidden_size)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(features)))  # [N, c, d_v] -> [N, c, h]


class QFormerConnector(nn.Module):
    """Learnable queries -> transformers' Blip2QFormerModel (cross-attending to CLIP) -> Linear to h."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        from transformers import Blip2QFormerConfig, Blip2QFormerModel

        q: QFormerConfig = config.connector
        self.query_tokens = nn.Parameter(torch.zeros(1, q.queries, q.hidden))  # drawn by vlora/initialization.py
        self.qformer = Blip2QFormerModel(Blip2QFormerConfig(
            hidden_size=q.hidden, num_hidden_layers=q.blocks, num_attention_heads=q.heads,
            intermediate_size=q.mlp_ratio * q.hidden, encoder_hidden_size=config.vision.hidden_size,
            cross_attention_frequency=q.cross_attention_frequency))
        self.proj = nn.Linear(q.hidden, config.llm.hidden_size)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        queries = self.query_tokens.expand(features.shape[0], -1, -1)  # [N, Q, h_q]
        out = self.qformer(query_embeds=queries, encoder_hidden_states=features).last_hidden_state
        return self.proj(out)  # [N, Q, h]


def build_connector(config: ModelConfig) -> nn.Module:
    """The connector module of the configuration's kind (its registration names the class)."""
    from vlora.connector_kinds import connector_kind

    return connector_kind(config.kind).build(config)

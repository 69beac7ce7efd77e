"""The perceptual weights generator (paper Sect. 3.2, Fig. 3, Eq. 4-5).

CLIP features z [n, c, d_v] of n samples -> memory [n, c, h_p] -> k perceptual queries refined by N
pre-norm decoder blocks -> p_v [n, k, h_p] -> a shared linear to h * r gives W_v = A [n, h, r] per query
(Eq. 4). The paired W_s = B [h_out, r] per (type, query) is learned, image-independent and
zero-initialised (Eq. 5), so Delta W = B . A^T starts at zero and the LLM starts unchanged.

One `QueryDecoder` per weight type (official `weights_sep=True`) or one shared decoder whose
k * T queries serve all types. Attribute names follow torch's and the official checkpoint's
(`self_attn`, `multihead_attn`, `linear1`, `norm1`, ...) so that loading is a rename table.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vlora.config import ModelConfig
from vlora.perceptual_weights import PerceptualWeights


class PerceptualDecoderBlock(nn.Module):
    """Pre-norm block: self-attention over the queries, cross-attention to the visual memory, GELU FFN."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.multihead_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.linear1 = nn.Linear(dim, mlp_ratio * dim)
        self.linear2 = nn.Linear(mlp_ratio * dim, dim)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, queries: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        # queries [n, k, D], memory [n, c, D]. The calls mirror the official ones (same tensor for q, k
        # and v in self-attention) so torch picks the same attention kernels: bit parity is reachable.
        y = self.norm1(queries)
        queries = queries + self.self_attn(y, y, value=y)[0]
        queries = queries + self.multihead_attn(query=self.norm2(queries), key=memory, value=memory)[0]
        return queries + self.linear2(F.gelu(self.linear1(self.norm3(queries))))


class QueryDecoder(nn.Module):
    """k learnable perceptual queries -> N decoder blocks -> norm -> shared head to h * r (Eq. 4)."""

    def __init__(self, num_queries: int, dim: int, heads: int, blocks: int, mlp_ratio: int, head_out: int):
        super().__init__()
        self.queries = nn.Parameter(torch.zeros(1, num_queries, dim))  # drawn by vlora/initialization.py
        self.decoders = nn.ModuleList(PerceptualDecoderBlock(dim, heads, mlp_ratio) for _ in range(blocks))
        self.norm = nn.LayerNorm(dim)
        self.weights_head = nn.Linear(dim, head_out)  # W_share in Eq. 4

    def forward(self, memory: torch.Tensor) -> torch.Tensor:
        q = self.queries.expand(memory.shape[0], -1, -1)  # [n, k, D]
        for block in self.decoders:
            q = block(q, memory)
        return self.weights_head(self.norm(q))  # [n, k, h * r]


class PerceptualWeightsGenerator(nn.Module):
    """Connector of parameter-space alignment: CLIP features -> `PerceptualWeights` for the LLM."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        g, llm, vision = config.connector, config.llm, config.vision
        self.config = config
        self.types = g.types
        self.layers = config.receiving_layers
        self.rank, self.scale, self.in_dim = g.rank, g.scale, llm.hidden_size
        self.visual_proj = nn.Linear(vision.hidden_size, g.hidden)
        self.pos_embed = nn.Parameter(torch.zeros(1, vision.num_patches, g.hidden))
        decoders, queries = config.query_layout
        self.type_decoders = nn.ModuleList(
            QueryDecoder(queries, g.hidden, g.heads, g.blocks, g.mlp_ratio, llm.hidden_size * g.rank)
            for _ in range(decoders)
        )
        # W_s (Eq. 5): one [h_out, r] matrix per (type, query), zero-initialised.
        widths = config.weight_widths
        self.w_s = nn.ParameterDict({t: nn.Parameter(torch.zeros(config.k, widths[t], g.rank)) for t in g.types})
        # Random values are drawn by vlora/initialization.py (the official rules) from a local generator.

    def forward(self, features: torch.Tensor, has_image: torch.Tensor) -> PerceptualWeights:
        """features [n, c, d_v] (CLIP patches of n samples); has_image [n] bool: False rows get A = 0
        (official)."""
        memory = self.visual_proj(features) + self.pos_embed  # [n, c, D]
        n, k = features.shape[0], len(self.layers)
        heads = [decoder(memory) for decoder in self.type_decoders]  # [n, k or k*T, h*r] each
        per_type = torch.cat(heads, dim=1).view(n, len(self.types), k, self.in_dim, self.rank)
        per_type = per_type * has_image.to(per_type.dtype).view(n, 1, 1, 1, 1)  # [n, T, k, h, r]
        a = {(layer, t): per_type[:, i, query]  # W_v = A [n, h, r]
             for i, t in enumerate(self.types) for query, layer in enumerate(self.layers)}
        return PerceptualWeights(a=a, b=self.b_matrices())

    def b_matrices(self) -> dict[tuple[int, str], torch.Tensor]:
        """B = (alpha / r) W_s [h_out, r] per (layer, type): the same for every image."""
        return {(layer, t): self.scale * self.w_s[t][query] for t in self.types for query, layer in enumerate(self.layers)}

    def weight_keys(self) -> list[tuple[int, str]]:
        """The (layer, type) pairs that receive perceptual weights, in a fixed order."""
        return sorted((layer, t) for t in self.types for layer in self.layers)

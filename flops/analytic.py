"""FLOPs on paper: the VLoRA paper's formulas exactly as written (Sect. 3.4, App. A), then counts
exact for the architecture (what torch's FlopCounterMode counts: matrix products, 2 FLOPs per
multiply-add; norms, activations, softmax and adds are left out, as in the paper).

Notation (paper): d blocks, h hidden, C text tokens, L visual tokens, k blocks that receive
perceptual weights, r rank.
"""

from __future__ import annotations

from dataclasses import dataclass

from vlora.config import GeneratorConfig, LLMConfig, ModelConfig, QFormerConfig, Space, VisionConfig

# --- the paper's formulas, as written ----------------------------------------------------------------


def paper_input_space(L: int, C: int, d: int, h: int) -> float:
    """Input-space alignment (LLaVA etc.): 24(L+C)dh^2 + 4(L+C)^2 dh."""
    n = L + C
    return 24 * n * d * h**2 + 4 * n**2 * d * h


def paper_vlora_training(C: int, d: int, h: int, k: int, r: int) -> float:
    """VLoRA with Delta W as a branch: 24Cdh^2 + 4C^2dh + 24krh^2 + 12Ckh^2 + 14Ckh."""
    return 24 * C * d * h**2 + 4 * C**2 * d * h + 24 * k * r * h**2 + 12 * C * k * h**2 + 14 * C * k * h


def paper_vlora_inference(C: int, d: int, h: int, k: int, r: int, merge_term: bool = True) -> float:
    """VLoRA with Delta W merged: 24Cdh^2 + 4C^2dh + 24krh^2 + 12kh^2 (Table 1's 619 leaves 12kh^2 out)."""
    return 24 * C * d * h**2 + 4 * C**2 * d * h + 24 * k * r * h**2 + (12 * k * h**2 if merge_term else 0)


def paper_vlora_factorized(C: int, d: int, h: int, k: int, r: int, types: int = 5) -> float:
    """In the paper's accounting, VLoRA run with x.A.B^T branches instead of a materialised Delta W:
    24Cdh^2 + 4C^2dh + 4hr per token, block and branch (k blocks, `types` branches each)."""
    return 24 * C * d * h**2 + 4 * C**2 * d * h + 4 * C * k * types * h * r


# --- exact for the architecture -------------------------------------------------------------------


@dataclass(frozen=True)
class LLMCount:
    """FLOPs of one LLM forward over n tokens, by part."""

    attention_projections: float
    attention_core: float
    mlp: float
    lm_head: float

    @property
    def total(self) -> float:
        return self.attention_projections + self.attention_core + self.mlp + self.lm_head


def llm_prefill(llm: LLMConfig, n: int, logits: str = "all", causal: bool = False) -> LLMCount:
    """A Llama forward over n tokens: q/k/v/o with grouped-query k/v, SwiGLU with the real
    intermediate size, QK^T and AV over the full n x n (as FLOP counters and the paper count them) or
    the causal half, and the LM head for every position or the last only."""
    h, kv, d = llm.hidden_size, llm.kv_size, llm.num_layers
    pairs = n * (n + 1) / 2 if causal else n * n
    return LLMCount(attention_projections=d * 2 * n * h * (2 * h + 2 * kv),
                    attention_core=d * 2 * 2 * pairs * h,
                    mlp=d * 6 * n * h * llm.intermediate_size,
                    lm_head=2 * (n if logits == "all" else 1) * h * llm.vocab_size)


def vlora_branches(config: ModelConfig, n: int, mode: str = "factorized") -> float:
    """What perceptual weights add to an LLM forward over n tokens (one image):
    factorized  x.A then .B^T per receiving block and type: 2n r (h + out)
    merged      B.A^T materialised for q, k, v, o (2 out h r each; the addition is not a product),
                m stays a factorized branch
    delta       B.A^T materialised for every type, then x.DeltaW^T: 2 out h r + 2 n h out"""
    g: GeneratorConfig = config.connector
    h, r, k, out = config.llm.hidden_size, g.rank, config.k, config.weight_widths
    per_block = 0.0
    for t in g.types:
        if mode == "factorized" or (mode == "merged" and t == "m"):
            per_block += 2 * n * r * (h + out[t])
        elif mode == "merged":
            per_block += 2 * out[t] * h * r
        elif mode == "delta":
            per_block += 2 * out[t] * h * r + 2 * n * h * out[t]
        else:
            raise ValueError(f"unknown execution mode {mode!r}")
    return k * per_block


def merge_crossover(h: int, r: int) -> float:
    """Text length above which merging one branch beats running it factorized: materialising
    B.A^T (2h^2 r) plus adding it (h^2) equals n tokens x 4hr, so n = (2r + 1) h / (4r). The formula
    lives with the execution-mode dispatch that falls back on it (vlora/dispatch.py)."""
    from vlora.dispatch import flops_crossover

    return flops_crossover(h, r)


def generator_flops(config: ModelConfig) -> dict[str, float]:
    """The perceptual weights generator's own cost per image (the paper leaves it out)."""
    g, c, dv = config.connector, config.vision.num_patches, config.vision.hidden_size
    D, h, r = g.hidden, config.llm.hidden_size, g.rank
    decoders, q = config.query_layout
    self_attn = 2 * q * D * 3 * D + 2 * 2 * q * q * D + 2 * q * D * D
    cross_attn = 2 * q * D * D + 2 * c * D * 2 * D + 2 * 2 * q * c * D + 2 * q * D * D
    ffn = 2 * 2 * q * D * g.mlp_ratio * D
    return {"visual_proj": 2 * c * dv * D,
            "decoder_blocks": decoders * g.blocks * (self_attn + cross_attn + ffn),
            "weights_head": decoders * 2 * q * D * h * r}


def qformer_flops(config: ModelConfig) -> dict[str, float]:
    """A Q-Former connector per image: query self-attention, cross-attention to c CLIP tokens
    (every block when cross_attention_frequency is 1), FFN, then the projection to h."""
    q: QFormerConfig = config.connector
    Q, H, c, dv = q.queries, q.hidden, config.vision.num_patches, config.vision.hidden_size
    cross_blocks = len(range(0, q.blocks, q.cross_attention_frequency))
    self_attn = 2 * Q * H * 3 * H + 2 * 2 * Q * Q * H + 2 * Q * H * H
    cross = 2 * Q * H * H + 2 * c * dv * 2 * H + 2 * 2 * Q * c * H + 2 * Q * H * H
    ffn = 2 * 2 * Q * H * q.mlp_ratio * H
    return {"blocks": q.blocks * (self_attn + ffn) + cross_blocks * cross,
            "projection": 2 * Q * H * config.llm.hidden_size}


def projector_flops(config: ModelConfig) -> dict[str, float]:
    c, dv, h = config.vision.num_patches, config.vision.hidden_size, config.llm.hidden_size
    return {"mlp": 2 * c * (dv * h + h * h)}


def vision_flops(vision: VisionConfig) -> float:
    """CLIP ViT forward (all layers run, though features come from hidden_states[-2])."""
    n, w, p = vision.num_patches + 1, vision.hidden_size, vision.patch_size
    per_layer = 2 * n * w * 3 * w + 2 * 2 * n * n * w + 2 * n * w * w + 2 * 2 * n * w * vision.intermediate_size
    return vision.num_layers * per_layer + 2 * vision.num_patches * 3 * p * p * w


CONNECTOR_FLOPS = {"vlora": generator_flops, "llava": projector_flops, "llava-qformer": qformer_flops}


def connector_flops(config: ModelConfig) -> dict[str, float]:
    """The connector's cost per image, by part: the formula written for its kind (CONNECTOR_FLOPS), or, for
    a kind without one, FlopCounterMode's count of its module on the meta device (the part "counted")."""
    formula = CONNECTOR_FLOPS.get(config.kind)
    if formula is not None:
        return formula(config)
    from flops.counted import count_connector

    return {"counted": float(count_connector(config))}


def model_flops(config: ModelConfig, text_tokens: int, mode: str = "factorized", logits: str = "all") -> dict[str, float]:
    """One prefill of a whole model (one image + text), by part: vision, connector, LLM (+ branches).
    The LLM sees text + the image's positions (VLoRA: text + its one masked placeholder position)."""
    n = text_tokens + config.positions_per_image
    parts = {"vision": vision_flops(config.vision), "connector": sum(connector_flops(config).values()),
             "llm": llm_prefill(config.llm, n, logits).total}
    if config.space is Space.PARAMETER:
        parts["perceptual_weights"] = vlora_branches(config, n, mode)
    return parts

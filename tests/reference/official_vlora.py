"""Independent reference of the official VLoRA forward path (FeipengMa6/VLoRA, arXiv 2405.20339).

For tests only. Derived from the written specification (shared/reference/vlora_official.md, sections 0, 1,
2.1-2.5, 2.7, 2.8), not from the official code and not from this repository's `vlora/` package. Pure
functional PyTorch on a raw state dict in the OFFICIAL key layout; attention is written out with
matmul + softmax on purpose (no SDPA, no nn.MultiheadAttention, no transformers modules).

Notation: B batch, L sequence, d LLM hidden, H LLM heads, hd = d / H, P CLIP patches, Dv CLIP width,
D generator width, T = len(vlora_type), S = num_layers // skip_layers (slots), r rank.

Choices where the spec leaves room (also listed in the test-suite docs):
* default position_ids = cumsum(attention_mask) - 1 with padded slots (mask 0) set to 1, as the
  4.31-era Llama `prepare_inputs_for_generation` does; computed from the caller's mask, i.e. BEFORE the
  placeholder is masked, so placeholder slots keep their arange position (spec 2.4 / 2.5 prefill).
* masked scores are filled with finfo(dtype).min (not -inf), so fully masked query rows (left-pad slots)
  give a uniform softmax instead of NaN; logits at such rows are meaningless and must not be compared.
* weights_sep=False: the single generator's query index is type-major, t * S + s (same order as Bs rows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

IMAGE_TOKEN_INDEX = -200
TYPES = "qkvom"
GEN = "model.mm_projector."


@dataclass(frozen=True)
class OfficialTinyConfig:
    # LLM (Llama) fields
    hidden_size: int = 64
    intermediate_size: int = 96
    num_layers: int = 4
    num_heads: int = 4
    vocab_size: int = 300
    rms_norm_eps: float = 1e-5
    rope_base: float = 10000.0
    # generator (vlora_*) fields
    vlora_dim: int = 32  # D, generator width
    vlora_depth: int = 2  # decoder blocks per generator
    vlora_heads: int = 4  # the official code hard-codes 16; tiny config uses 4
    vlora_visual_dim: int = 24  # CLIP width
    vlora_pos_num: int = 16  # number of CLIP patch tokens
    vlora_rank: int = 4
    vlora_alpha: float = 8.0
    vlora_type: str = "qkvom"
    skip_layers: int = 2
    weights_sep: bool = True  # False = one shared generator (see spec 1.2 last bullets)


def _gen_prefixes(cfg: OfficialTinyConfig) -> list[str]:
    """Prefix of each generator: one per type ('gen.{i}.') or a single shared one ('gen.')."""
    if cfg.weights_sep:
        return [f"{GEN}gen.{i}." for i in range(len(cfg.vlora_type))]
    return [f"{GEN}gen."]


# --------------------------------------------------------------------------------------------- state dict
def random_official_state_dict(
    cfg: OfficialTinyConfig, seed: int = 0, with_extras: bool = False
) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape: int, std: float = 1.0, mean: float = 0.0) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * std + mean

    def lin(out_f: int, in_f: int) -> torch.Tensor:
        return rnd(out_f, in_f, std=1.0 / math.sqrt(in_f))

    d, f, D, r = cfg.hidden_size, cfg.intermediate_size, cfg.vlora_dim, cfg.vlora_rank
    T, S = len(cfg.vlora_type), cfg.num_layers // cfg.skip_layers
    sd: dict[str, torch.Tensor] = {"model.embed_tokens.weight": rnd(cfg.vocab_size, d)}
    for i in range(cfg.num_layers):
        p = f"model.layers.{i}."
        for n in "qkvo":
            sd[f"{p}self_attn.{n}_proj.weight"] = lin(d, d)
        sd[f"{p}mlp.gate_proj.weight"] = lin(f, d)
        sd[f"{p}mlp.up_proj.weight"] = lin(f, d)
        sd[f"{p}mlp.down_proj.weight"] = lin(d, f)
        sd[f"{p}input_layernorm.weight"] = rnd(d, std=0.1, mean=1.0)
        sd[f"{p}post_attention_layernorm.weight"] = rnd(d, std=0.1, mean=1.0)
    sd["model.norm.weight"] = rnd(d, std=0.1, mean=1.0)
    sd["lm_head.weight"] = lin(cfg.vocab_size, d)

    sd[f"{GEN}visual_proj.weight"] = lin(D, cfg.vlora_visual_dim)
    sd[f"{GEN}visual_proj.bias"] = rnd(D, std=0.02)
    sd[f"{GEN}pos_embed"] = rnd(1, cfg.vlora_pos_num, D)
    sd[f"{GEN}Bs"] = rnd(1, T * S, d * r, std=0.02)
    n_queries = S if cfg.weights_sep else T * S
    for gp in _gen_prefixes(cfg):
        sd[f"{gp}queries"] = rnd(1, n_queries, D)
        for j in range(cfg.vlora_depth):
            bp = f"{gp}decoders.{j}."
            for att in ("self_attn", "multihead_attn"):
                sd[f"{bp}{att}.in_proj_weight"] = lin(3 * D, D)
                sd[f"{bp}{att}.in_proj_bias"] = rnd(3 * D, std=0.02)
                sd[f"{bp}{att}.out_proj.weight"] = lin(D, D)
                sd[f"{bp}{att}.out_proj.bias"] = rnd(D, std=0.02)
            sd[f"{bp}linear1.weight"] = lin(4 * D, D)
            sd[f"{bp}linear1.bias"] = rnd(4 * D, std=0.02)
            sd[f"{bp}linear2.weight"] = lin(D, 4 * D)
            sd[f"{bp}linear2.bias"] = rnd(D, std=0.02)
            for k in (1, 2, 3):
                sd[f"{bp}norm{k}.weight"] = rnd(D, std=0.1, mean=1.0)
                sd[f"{bp}norm{k}.bias"] = rnd(D, std=0.02)
        sd[f"{gp}norm.weight"] = rnd(D, std=0.1, mean=1.0)
        sd[f"{gp}norm.bias"] = rnd(D, std=0.02)
        sd[f"{gp}weights_head.weight"] = lin(d * r, D)
        sd[f"{gp}weights_head.bias"] = rnd(d * r, std=0.02)

    if with_extras:  # keys a loader must ignore (spec 1.2)
        hd = d // cfg.num_heads
        inv_freq = 1.0 / cfg.rope_base ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd)
        for i in range(cfg.num_layers):
            sd[f"model.layers.{i}.self_attn.rotary_emb.inv_freq"] = inv_freq.clone()
        vt = "model.vision_tower.vision_tower.vision_model."
        sd[f"{vt}embeddings.patch_embedding.weight"] = rnd(cfg.vlora_visual_dim, 3, 14, 14, std=0.02)
        sd[f"{vt}embeddings.class_embedding"] = rnd(cfg.vlora_visual_dim, std=0.02)
        sd[f"{vt}post_layernorm.weight"] = torch.ones(cfg.vlora_visual_dim)
    return sd


def official_config_json(cfg: OfficialTinyConfig, vision_tower: str = "clip") -> dict:
    return {
        "architectures": ["LlavaLlamaVLoRAForCausalLM"],
        "model_type": "llava_vlora",
        # Llama fields
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.num_heads,
        "vocab_size": cfg.vocab_size,
        "max_position_embeddings": 4096,
        "rms_norm_eps": cfg.rms_norm_eps,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
        "hidden_act": "silu",
        "initializer_range": 0.02,
        "tie_word_embeddings": False,
        "pretraining_tp": 1,
        "rope_scaling": None,
        "rope_theta": cfg.rope_base,  # never read by the official 4.31-era Llama copy (base hard-coded)
        "attention_bias": False,
        "use_cache": True,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.37.2",
        # multimodal fields
        "mm_vision_tower": vision_tower,
        "mm_projector_type": "vlora",
        "mm_hidden_size": cfg.vlora_visual_dim,
        "mm_vision_select_layer": -2,
        "mm_vision_select_feature": "patch",
        "use_mm_proj": True,
        "mm_use_im_start_end": False,
        "mm_use_im_patch_token": False,
        "image_aspect_ratio": "pad",
        "tokenizer_padding_side": "right",
        "tokenizer_model_max_length": 2048,
        "tune_mm_mlp_adapter": False,
        "tune_vision_tower": False,
        "freeze_mm_mlp_adapter": False,
        "mm_projector_lr": None,
        # generator fields
        "vlora_dim": cfg.vlora_dim,
        "vlora_depth": cfg.vlora_depth,
        "vlora_visual_dim": cfg.vlora_visual_dim,
        "vlora_pos_num": cfg.vlora_pos_num,
        "vlora_llm_dim": cfg.hidden_size,
        "vlora_llm_depth": cfg.num_layers,
        "vlora_rank": cfg.vlora_rank,
        "vlora_alpha": cfg.vlora_alpha,
        "vlora_type": cfg.vlora_type,
        "weights_sep": cfg.weights_sep,
        "skip_layers": cfg.skip_layers,
    }


# ------------------------------------------------------------------------------------------ generator
def _linear(x: torch.Tensor, sd: dict, key: str) -> torch.Tensor:
    y = x @ sd[f"{key}.weight"].T
    return y + sd[f"{key}.bias"] if f"{key}.bias" in sd else y


def _layer_norm(x: torch.Tensor, sd: dict, key: str, eps: float = 1e-5) -> torch.Tensor:
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)  # biased variance, as nn.LayerNorm
    return (x - mu) / torch.sqrt(var + eps) * sd[f"{key}.weight"] + sd[f"{key}.bias"]


def _mha(q_in: torch.Tensor, kv_in: torch.Tensor, sd: dict, key: str, heads: int) -> torch.Tensor:
    """nn.MultiheadAttention math (batch_first, no mask, no dropout). q_in [B, Nq, D], kv_in [B, Nk, D]."""
    W, b = sd[f"{key}.in_proj_weight"], sd[f"{key}.in_proj_bias"]  # [3D, D], [3D]: rows [W_q; W_k; W_v]
    D = W.shape[1]
    q = q_in @ W[:D].T + b[:D]  # [B, Nq, D]
    k = kv_in @ W[D : 2 * D].T + b[D : 2 * D]  # [B, Nk, D]
    v = kv_in @ W[2 * D :].T + b[2 * D :]  # [B, Nk, D]
    hd = D // heads

    def split(t: torch.Tensor) -> torch.Tensor:  # [B, N, D] -> [B, heads, N, hd]
        return t.reshape(t.shape[0], t.shape[1], heads, hd).transpose(1, 2)

    scores = split(q) @ split(k).transpose(-1, -2) / math.sqrt(hd)  # [B, heads, Nq, Nk]
    out = torch.softmax(scores, dim=-1) @ split(v)  # [B, heads, Nq, hd]
    out = out.transpose(1, 2).reshape(q_in.shape[0], q_in.shape[1], D)  # [B, Nq, D]
    return _linear(out, sd, f"{key}.out_proj")


def _run_generator(sd: dict, cfg: OfficialTinyConfig, gp: str, mem: torch.Tensor) -> torch.Tensor:
    """One query decoder: mem [B, P, D] -> [B, Nq, d*r]."""
    q = sd[f"{gp}queries"].expand(mem.shape[0], -1, -1)  # [B, Nq, D]
    for j in range(cfg.vlora_depth):
        bp = f"{gp}decoders.{j}."
        y = _layer_norm(q, sd, f"{bp}norm1")
        q = q + _mha(y, y, sd, f"{bp}self_attn", cfg.vlora_heads)
        q = q + _mha(_layer_norm(q, sd, f"{bp}norm2"), mem, sd, f"{bp}multihead_attn", cfg.vlora_heads)
        hid = F.gelu(_linear(_layer_norm(q, sd, f"{bp}norm3"), sd, f"{bp}linear1"))  # [B, Nq, 4D], exact GELU
        q = q + _linear(hid, sd, f"{bp}linear2")
    return _linear(_layer_norm(q, sd, f"{gp}norm"), sd, f"{gp}weights_head")


def reference_perceptual_weights(
    sd, cfg: OfficialTinyConfig, features: torch.Tensor, input_ids: torch.Tensor
) -> list[dict[str, tuple[torch.Tensor | None, torch.Tensor | None]]]:
    Bn, d, r = features.shape[0], cfg.hidden_size, cfg.vlora_rank
    T, S = len(cfg.vlora_type), cfg.num_layers // cfg.skip_layers
    mem = _linear(features, sd, f"{GEN}visual_proj") + sd[f"{GEN}pos_embed"]  # [B, P, D]
    heads = [_run_generator(sd, cfg, gp, mem) for gp in _gen_prefixes(cfg)]  # each [B, S or T*S, d*r]
    h = torch.cat(heads, dim=1)  # [B, T*S, d*r], type-major
    A_all = h.reshape(Bn, T, S, d, r)  # A[b, t, s][i, k] = h[b, t*S + s, i*r + k]
    has_image = (input_ids == IMAGE_TOKEN_INDEX).any(dim=1).to(A_all.dtype)  # [B]
    A_all = A_all * has_image[:, None, None, None, None]  # zero A for samples without placeholder
    scale = cfg.vlora_alpha / cfg.vlora_rank if cfg.vlora_alpha is not None else 1.0
    B_all = sd[f"{GEN}Bs"][0].reshape(T, S, d, r) * scale  # [T, S, d, r]

    out = []
    for layer in range(cfg.num_layers):
        entry: dict[str, tuple[torch.Tensor | None, torch.Tensor | None]] = {t: (None, None) for t in TYPES}
        if (layer + 1) % cfg.skip_layers == 0:
            s = layer // cfg.skip_layers
            for t_idx, t in enumerate(cfg.vlora_type):
                entry[t] = (A_all[:, t_idx, s], B_all[t_idx, s])  # [B, d, r], [d, r]
        out.append(entry)
    return out


# ------------------------------------------------------------------------------------------------ LLM
def _rms_norm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def _bypass(x: torch.Tensor, AB: tuple[torch.Tensor | None, torch.Tensor | None]) -> torch.Tensor | float:
    """(x @ A) @ B^T; x [B, L, d], A [B, d, r], B [d, r] -> [B, L, d]; 0 when A is None."""
    A, Bm = AB
    if A is None:
        return 0.0
    return (x @ A) @ Bm.T


def reference_logits(
    sd,
    cfg: OfficialTinyConfig,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    features: torch.Tensor,
    position_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    Bn, L = input_ids.shape
    d, H = cfg.hidden_size, cfg.num_heads
    hd = d // H
    is_ph = input_ids == IMAGE_TOKEN_INDEX  # [B, L]
    ids = input_ids.masked_fill(is_ph, 0)  # copy: placeholder -> <unk> (id 0)
    if position_ids is None:  # from the caller's mask, before the placeholder is masked
        position_ids = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 1)
    key_ok = attention_mask.bool() & ~is_ph  # [B, L]; the placeholder slot is masked out of attention
    weights = reference_perceptual_weights(sd, cfg, features, input_ids)

    x = sd["model.embed_tokens.weight"][ids]  # [B, L, d]
    dtype = x.dtype
    causal = torch.ones(L, L, dtype=torch.bool).tril()  # [Lq, Lk]
    allowed = causal[None, None] & key_ok[:, None, None, :]  # [B, 1, Lq, Lk]

    rt = (
        torch.float64 if dtype == torch.float64 else torch.float32
    )  # RoPE tables in fp32 (fp64 fixtures: fp64)
    inv_freq = 1.0 / cfg.rope_base ** (torch.arange(0, hd, 2, dtype=rt) / hd)  # [hd/2]
    freqs = position_ids.to(rt)[..., None] * inv_freq  # [B, L, hd/2]
    emb = torch.cat((freqs, freqs), dim=-1)  # [B, L, hd]
    cos, sin = emb.cos().to(dtype)[:, None], emb.sin().to(dtype)[:, None]  # [B, 1, L, hd]

    for layer in range(cfg.num_layers):
        p, w = f"model.layers.{layer}.", weights[layer]
        h = _rms_norm(x, sd[f"{p}input_layernorm.weight"], cfg.rms_norm_eps)  # [B, L, d]
        qkv = []
        for n in "qkv":
            t = h @ sd[f"{p}self_attn.{n}_proj.weight"].T + _bypass(h, w[n])  # [B, L, d]
            qkv.append(t.reshape(Bn, L, H, hd).transpose(1, 2))  # [B, H, L, hd]
        q, k, v = qkv
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        scores = q @ k.transpose(-1, -2) / math.sqrt(hd)  # [B, H, Lq, Lk]
        scores = scores.masked_fill(~allowed, torch.finfo(dtype).min)
        probs = torch.softmax(scores.to(rt), dim=-1).to(dtype)  # fp32 (or fp64) softmax
        a = (probs @ v).transpose(1, 2).reshape(Bn, L, d)  # [B, L, d], attention output before o_proj
        x = x + a @ sd[f"{p}self_attn.o_proj.weight"].T + _bypass(a, w["o"])

        m = _rms_norm(x, sd[f"{p}post_attention_layernorm.weight"], cfg.rms_norm_eps)  # MLP input [B, L, d]
        gate = F.silu(m @ sd[f"{p}mlp.gate_proj.weight"].T)  # [B, L, f]
        up = m @ sd[f"{p}mlp.up_proj.weight"].T  # [B, L, f]
        x = x + (gate * up) @ sd[f"{p}mlp.down_proj.weight"].T + _bypass(m, w["m"])

    x = _rms_norm(x, sd["model.norm.weight"], cfg.rms_norm_eps)
    return x @ sd["lm_head.weight"].T  # [B, L, vocab]


@torch.no_grad()
def reference_greedy(
    sd,
    cfg: OfficialTinyConfig,
    input_ids: torch.Tensor,
    features: torch.Tensor,
    max_new_tokens: int,
    eos_token_id: int = 2,
    official_positions: bool = True,
) -> list[int]:
    assert input_ids.shape[0] == 1, "batch of one sample"
    L = input_ids.shape[1]
    # decode quirk (spec 2.5): generated token at index L+k gets position L+k-1 if the prompt has a placeholder
    shift = 1 if official_positions and bool((input_ids == IMAGE_TOKEN_INDEX).any()) else 0
    seq, new = input_ids.clone(), []
    for _ in range(max_new_tokens):
        n = seq.shape[1]
        pos = torch.arange(n)
        pos[L:] -= shift
        logits = reference_logits(sd, cfg, seq, torch.ones_like(seq), features, position_ids=pos[None])
        tok = int(logits[0, -1].argmax())
        new.append(tok)
        if tok == eos_token_id:
            break
        seq = torch.cat([seq, torch.tensor([[tok]], dtype=seq.dtype)], dim=1)
    return new

"""FLOPs counted by running: torch's FlopCounterMode on the meta device (any Hugging Face config, the
7B shapes without weights), part by part for the project's models; fvcore as a second opinion on
small real models (it counts multiply-adds, i.e. half).

FlopCounterMode has no formula for CPU's fused attention op in torch 2.13; `register_cpu_sdpa_formula`
adds it (once, when counting starts: no import-time side effects), so attention is never dropped.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from vlora.config import ModelConfig, Space


def register_cpu_sdpa_formula() -> None:
    from torch.utils.flop_counter import flop_registry, register_flop_formula, sdpa_flop_count

    op = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    if op in flop_registry:
        return

    @register_flop_formula(op)
    def _cpu_sdpa(q_shape, k_shape, v_shape, *args, out_shape=None, **kwargs) -> int:
        return sdpa_flop_count(q_shape, k_shape, v_shape)


def count(fn, *args, **kwargs) -> tuple[int, dict[str, int]]:
    """Total FLOPs of fn(*args, **kwargs) and the count per aten op."""
    register_cpu_sdpa_formula()
    with FlopCounterMode(display=False) as counter:
        fn(*args, **kwargs)
    per_op = {str(op).split(".")[-1] if "." in str(op) else str(op): int(v)
              for op, v in counter.get_flop_counts()["Global"].items()}
    return int(counter.get_total_flops()), per_op


def meta_llm(llm_config, attn_implementation: str = "sdpa") -> nn.Module:
    """A weightless `LlamaForCausalLM` (a transformers config or the project's LLMConfig)."""
    from transformers import LlamaForCausalLM

    hf = llm_config.to_hf(attn_implementation) if hasattr(llm_config, "to_hf") else llm_config
    with torch.device("meta"):
        return LlamaForCausalLM(hf).eval()


def count_llm(llm: nn.Module, n: int, logits: str = "all", inputs_embeds: bool = False) -> int:
    """One prefill over n tokens. On meta, `use_cache=True` without a mask avoids transformers'
    data-dependent checks (an explicit mask or use_cache=False call .item())."""
    kwargs = {"use_cache": True, "logits_to_keep": 0 if logits == "all" else 1}
    if inputs_embeds:
        kwargs["inputs_embeds"] = torch.zeros(1, n, llm.config.hidden_size, device="meta")
    else:
        kwargs["input_ids"] = torch.zeros(1, n, dtype=torch.long, device="meta")
    with torch.no_grad():
        return count(llm, **kwargs)[0]


def count_model(config: ModelConfig, text_tokens: int, mode: str = "factorized", logits: str = "all") -> dict[str, int]:
    """A whole model, part by part, weightless: vision tower, connector, LLM (with the perceptual weights
    in place for VLoRA, in the given execution mode)."""
    from vlora.model import MultimodalLM
    from vlora.perceptual_weights import perceptual_weights_applied

    with torch.device("meta"):
        model = MultimodalLM.from_config(config, tokenizer=object())
    side = config.vision.image_size
    pixels = torch.zeros(1, 3, side, side, device="meta")
    parts = {"vision": count(model.vision, pixels)[0]}
    features = model.vision(pixels)
    n = text_tokens + config.positions_per_image
    parts["connector"] = _count_connector(model.connector, config, features)
    if config.space is Space.PARAMETER:
        has_image = torch.ones(1, dtype=torch.bool, device="meta")
        with torch.no_grad():
            weights = model.connector(features, has_image)
            parts["llm"] = count_llm(model.llm, n, logits)
            with_weights = _count_with_weights(model.llm, weights, n, logits, mode, perceptual_weights_applied)
        parts["perceptual_weights"] = with_weights - parts["llm"]
    else:
        parts["llm"] = count_llm(model.llm, n, logits, inputs_embeds=True)
    return parts


def _count_connector(connector: nn.Module, config: ModelConfig, features: torch.Tensor) -> int:
    """One image's features [1, c, d_v] through the connector. With autograd on, nn.MultiheadAttention
    takes its plain path (its fused inference op has no formula)."""
    if config.space is Space.PARAMETER:
        return count(connector, features, torch.ones(1, dtype=torch.bool, device="meta"))[0]
    return count(connector, features)[0]


def count_connector(config: ModelConfig) -> int:
    """The connector's FLOPs per image, counted on the meta device (for a kind without a formula)."""
    from vlora.connector_kinds import connector_kind

    with torch.device("meta"), torch.random.fork_rng(devices=[]):
        connector = connector_kind(config.kind).build(config)
    features = torch.zeros(1, config.vision.num_patches, config.vision.hidden_size, device="meta")
    return _count_connector(connector, config, features)


def _count_with_weights(llm, weights, n, logits, mode, applied) -> int:
    register_cpu_sdpa_formula()
    with FlopCounterMode(display=False) as counter:
        with applied(llm, weights, mode):  # merging's B.A^T products are counted too
            llm(input_ids=torch.zeros(1, n, dtype=torch.long, device="meta"), use_cache=True,
                logits_to_keep=0 if logits == "all" else 1)
    return int(counter.get_total_flops())


def fvcore_count(module: nn.Module, *inputs) -> tuple[int, dict[str, int]]:
    """fvcore's `FlopCountAnalysis` (real tensors, jit tracing): multiply-adds, and the unsupported ops."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fvcore is built on torch.jit
        from fvcore.nn import FlopCountAnalysis

        analysis = FlopCountAnalysis(module, inputs)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        return int(analysis.total()), dict(analysis.unsupported_ops())

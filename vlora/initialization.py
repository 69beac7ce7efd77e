"""Random initialisation from a local `torch.Generator`: building a model never reseeds the global RNG.

A model is built as a weightless skeleton (parameters on the meta device), materialised on its device
in its dtype, then every parameter is drawn here from the caller's generator. The rules are those of
the libraries the parts come from (Hugging Face's Llama / CLIP / BLIP-2 `_init_weights`: normal(0,
0.02) linears and embeddings, unit norms) and of the official VLoRA generator (trunc-normal linears,
standard-normal queries and positions, W_s = 0). A parameter no rule covers is an error, not a guess.
"""

from __future__ import annotations

import torch
from torch import nn

STD = 0.02  # initializer_range of Llama, CLIP and BLIP-2 configs; the official generator's trunc-normal std


def materialize(model: nn.Module, device: torch.device | str, dtype: torch.dtype | None = None) -> nn.Module:
    """Give every meta parameter uninitialised storage on `device` (floating ones in `dtype`); buffers
    move to `device` and keep their dtype (RoPE's inv_freq stays float32)."""
    for module in model.modules():
        for name, param in list(module.named_parameters(recurse=False)):
            if param.is_meta:
                kind = dtype if dtype is not None and param.is_floating_point() else param.dtype
                empty = torch.empty(param.shape, device=device, dtype=kind)
                module._parameters[name] = nn.Parameter(empty, requires_grad=param.requires_grad)
        for name, buffer in list(module.named_buffers(recurse=False)):
            if buffer is not None:
                module._buffers[name] = buffer.to(device)
    return model


def _norm(module: nn.Module) -> bool:
    return type(module).__name__.endswith(("LayerNorm", "RMSNorm", "layrnorm"))


@torch.no_grad()
def initialize(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """Draw every parameter of `model` from `generator` (module by module, in registration order)."""
    from vlora.generator import PerceptualWeightsGenerator, QueryDecoder

    done: set[int] = set()

    def draw(param: nn.Parameter | None, how: str, std: float = STD) -> None:
        if param is None or id(param) in done:
            return
        if how == "normal":
            nn.init.normal_(param, 0.0, std, generator=generator)
        elif how == "trunc_normal":
            nn.init.trunc_normal_(param, 0.0, std, generator=generator)
        elif how == "xavier":
            nn.init.xavier_uniform_(param, generator=generator)
        elif how == "zeros":
            nn.init.zeros_(param)
        elif how == "ones":
            nn.init.ones_(param)
        done.add(id(param))

    generator_modules = {id(m) for g in model.modules() if isinstance(g, PerceptualWeightsGenerator) for m in g.modules()}
    for module in model.modules():
        official = id(module) in generator_modules  # the VLoRA generator follows the official init
        if isinstance(module, PerceptualWeightsGenerator):
            draw(module.pos_embed, "normal", 1.0)
            for w_s in module.w_s.values():
                draw(w_s, "zeros")  # Eq. 5: W_s starts at zero, so the LLM starts unchanged
        elif isinstance(module, QueryDecoder):
            draw(module.queries, "normal", 1.0)
        elif isinstance(module, nn.MultiheadAttention):
            draw(module.in_proj_weight, "xavier")  # torch's own init, kept by the release
            draw(module.in_proj_bias, "zeros")
        elif isinstance(module, nn.Linear):
            draw(module.weight, "trunc_normal" if official else "normal")
            draw(module.bias, "zeros")
        elif isinstance(module, (nn.Embedding, nn.Conv2d)):
            draw(module.weight, "normal")
            draw(getattr(module, "bias", None), "zeros")
        elif _norm(module):
            draw(module.weight, "ones")
            draw(getattr(module, "bias", None), "zeros")
        elif hasattr(module, "query_tokens"):  # the Q-Former connector's learned queries
            draw(module.query_tokens, "normal")
        elif hasattr(module, "class_embedding"):  # CLIP's CLS embedding
            draw(module.class_embedding, "normal")
    missed = [name for name, p in model.named_parameters() if id(p) not in done]
    if missed:
        raise RuntimeError(f"no initialisation rule for parameter(s) {missed[:3]} (add one to vlora/initialization.py)")
    return model

"""Perceptual weights and how they enter an unmodified Hugging Face Llama (paper Eq. 3 / 6).

For a receiving block l and a type t, the generator gives A = W_v [n, h_in, r] (one per sample of
the n in a batch) and B = (alpha/r) W_s [h_out, r] (learned), and the block computes with
W_hat = W + Delta W,
Delta W = B . A^T (nn.Linear layout [out, in]). Where it enters (official release):
  q, k, v: x = input_layernorm output, Delta added to the q/k/v_proj output;
  o:       x = attention output before o_proj, Delta added to the o_proj output;
  m:       x = MLP input, Delta added to the MLP output: a parallel h x h branch around the MLP.

Three execution modes give the same numbers:
  factorized  x . A . B^T as a branch (default; 4hr FLOPs per token, per-sample A in a batch)
  merged      W <- W + B . A^T in place for one image, restored afterwards (m stays a branch)
  delta       the explicit Delta W [n, out, in] as a branch (the paper's training accounting)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from vlora.config import ExecutionMode
from vlora.errors import InputError

BRANCHES = "perceptual_branches"  # attribute of the LLM: the (module, hook) pairs applied right now
MODULE_OF_TYPE = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
                  "o": "self_attn.o_proj", "m": "mlp"}


@dataclass
class PerceptualWeights:
    """A [n, h_in, r] and B [h_out, r] for every (layer, type) that receives perceptual weights."""

    a: dict[tuple[int, str], torch.Tensor]
    b: dict[tuple[int, str], torch.Tensor]

    @property
    def batch_size(self) -> int:
        return next(iter(self.a.values())).shape[0]

    def keys(self) -> list[tuple[int, str]]:
        return sorted(self.a)


def _branch_hook(a: torch.Tensor, b: torch.Tensor, mode: ExecutionMode):
    """A forward hook that adds the perceptual-weights branch to a module's output."""
    delta = torch.matmul(b, a.transpose(1, 2)) if mode is ExecutionMode.DELTA else None  # [n, out, in]

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        x = args[0]  # [n, s, h_in] (s positions)
        if x.shape[0] != a.shape[0]:
            raise InputError(f"perceptual weights were made for {a.shape[0]} samples, the LLM got {x.shape[0]}")
        if delta is not None:
            return output + torch.matmul(x, delta.transpose(1, 2).to(x.dtype))  # [n, s, out]
        return output + torch.matmul(torch.matmul(x, a.to(x.dtype)), b.to(x.dtype).t())  # [n, s, r] -> [n, s, out]

    return hook


@contextmanager
def perceptual_weights_applied(llm: nn.Module, weights: PerceptualWeights,
                               mode: ExecutionMode | str = ExecutionMode.FACTORIZED) -> Iterator[None]:
    """Within the block, `llm` (an HF `LlamaForCausalLM`) computes with W + Delta W.

    Nothing outlives the block, even on an exception: hooks are removed and merged weights restored
    bit for bit from a saved copy.
    """
    mode = ExecutionMode(mode)
    if mode is ExecutionMode.MERGED and weights.batch_size != 1:
        raise InputError(f"merged execution folds one image's weights into the LLM; got a batch of "
                         f"{weights.batch_size} (use the factorized mode for batches)")
    layers = llm.model.layers
    handles, saved, branches = [], [], []
    outer = getattr(llm, BRANCHES, ())
    try:
        for layer, type_ in weights.keys():
            module = layers[layer].get_submodule(MODULE_OF_TYPE[type_])
            a, b = weights.a[layer, type_], weights.b[layer, type_]
            if mode is ExecutionMode.MERGED and type_ != "m":
                saved.append((module.weight, module.weight.detach().clone()))
                with torch.no_grad():
                    merged = module.weight.float() + torch.matmul(b.float(), a[0].float().t())  # W + B A^T
                    module.weight.copy_(merged.to(module.weight.dtype))
            else:
                hook = _branch_hook(a, b, mode)
                handles.append(module.register_forward_hook(hook))
                branches.append((module, hook))
        setattr(llm, BRANCHES, tuple(branches))  # what recompute_context puts back in backward
        yield
    finally:
        setattr(llm, BRANCHES, outer)
        for handle in handles:
            handle.remove()
        with torch.no_grad():
            for weight, original in saved:
                weight.copy_(original)


def recompute_context(llm: nn.Module):
    """For activation checkpointing (torch.utils.checkpoint's `context_fn`, called at each layer's
    forward): the branches applied at that forward are put back while the layer is recomputed in the
    backward pass, which runs after `perceptual_weights_applied` has removed them."""
    return nullcontext(), _branches_installed(llm, getattr(llm, BRANCHES, ()))


@contextmanager
def _branches_installed(llm: nn.Module, branches: tuple) -> Iterator[None]:
    if getattr(llm, BRANCHES, ()) is branches:  # still applied (backward inside the block): nothing to add
        yield
        return
    handles = [module.register_forward_hook(hook) for module, hook in branches]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()

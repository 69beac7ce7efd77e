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
  merged      W <- W + B . A^T for one image, the original W put back afterwards (m stays a branch)
  delta       the explicit Delta W [n, out, in] as a branch (the paper's training accounting)
(`auto`, the fourth value of ExecutionMode, picks factorized or merged per call: vlora/dispatch.py.)
A decoding loop that drops finished rows narrows the branches with `AppliedWeights.keep_rows`.
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


class _Branch:
    """One module's perceptual-weights branch: a forward hook that adds x . A . B^T (or x . Delta W^T) to
    the module's output, for the rows still in the batch (`keep_rows`)."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor, mode: ExecutionMode):
        self.a, self.b = a, b  # [n, h_in, r], [h_out, r]
        self.delta = torch.matmul(b, a.transpose(1, 2)) if mode is ExecutionMode.DELTA else None  # [n, out, in]

    def keep_rows(self, rows: torch.Tensor) -> None:
        self.a = self.a[rows]
        if self.delta is not None:
            self.delta = self.delta[rows]

    def __call__(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        x, a = args[0], self.a  # x [n, s, h_in] (s positions)
        if x.shape[0] != a.shape[0]:
            raise InputError(f"perceptual weights were made for {a.shape[0]} samples, the LLM got {x.shape[0]}")
        if self.delta is not None:
            return output + torch.matmul(x, self.delta.transpose(1, 2).to(x.dtype))  # [n, s, out]
        return output + torch.matmul(torch.matmul(x, a.to(x.dtype)), self.b.to(x.dtype).t())  # [n, s, r] -> [n, s, out]


class AppliedWeights:
    """What `perceptual_weights_applied` yields: the branches in place, narrowed together to the rows a
    decoding loop still runs (`keep_rows(rows)`, rows indexing the current batch)."""

    def __init__(self, branches: list[_Branch]):
        self._branches = branches

    def keep_rows(self, rows: torch.Tensor) -> None:
        for branch in self._branches:
            branch.keep_rows(rows)


@contextmanager
def perceptual_weights_applied(llm: nn.Module, weights: PerceptualWeights,
                               mode: ExecutionMode | str = ExecutionMode.FACTORIZED) -> Iterator[AppliedWeights]:
    """Within the block, `llm` (an HF `LlamaForCausalLM`) computes with W + Delta W; the block yields
    the branches' handle (`AppliedWeights.keep_rows`).

    Nothing outlives the block, even on an exception: hooks are removed and merged weights restored
    (the original tensors, set aside untouched, are put back). `mode` is a concrete mode (`auto` is
    resolved by the caller, vlora/dispatch.py).
    """
    mode = ExecutionMode(mode)
    if mode is ExecutionMode.AUTO:
        raise InputError("execution mode 'auto' must be resolved to factorized or merged before the weights "
                         "are applied (vlora.dispatch.choose_mode)")
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
                with torch.no_grad():  # W + B A^T in float32, one rounding to W's dtype
                    merged = torch.addmm(module.weight.float(), b.float(), a[0].float().t()).to(module.weight.dtype)
                saved.append((module.weight, module.weight.data))
                module.weight.data = merged  # the original tensor is kept aside, untouched
            else:
                branch = _Branch(a, b, mode)
                handles.append(module.register_forward_hook(branch))
                branches.append((module, branch))
        setattr(llm, BRANCHES, tuple(branches))  # what recompute_context puts back in backward
        yield AppliedWeights([branch for _, branch in branches])
    finally:
        setattr(llm, BRANCHES, outer)
        for handle in handles:
            handle.remove()
        for weight, original in saved:
            weight.data = original


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

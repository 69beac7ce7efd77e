"""Filling a weightless model skeleton from checkpoint tensors, with errors that name key and shapes,
and the report that `vlora-eval inspect` prints."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from vlora.errors import CheckpointError


@dataclass
class CheckpointReport:
    """What a folder is: its kind, dimensions, parameter counts per part and any problem found."""

    path: str
    kind: str  # a layout name, or "none" when the folder is not a checkpoint
    summary: str
    dims: dict[str, dict[str, Any]] = field(default_factory=dict)
    parameters: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # facts that need no action (e.g. ignored keys)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fmt(shape) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def shape_problems(found: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]],
                   ignored: Callable[[str], bool] = lambda key: False, limit: int = 20) -> list[str]:
    """Missing, unexpected and mis-shaped keys, one line each (found / expected keyed alike)."""
    problems = []
    for key in sorted(expected):
        if key not in found:
            problems.append(f"missing key {key!r} (expected shape {_fmt(expected[key])})")
        elif tuple(found[key]) != tuple(expected[key]):
            problems.append(f"key {key!r} has shape {_fmt(found[key])}, the model expects {_fmt(expected[key])}")
    problems += [f"unexpected key {key!r} (shape {_fmt(found[key])})"
                 for key in sorted(found) if key not in expected and not ignored(key)]
    if len(problems) > limit:
        problems = problems[:limit] + [f"... and {len(problems) - limit} more"]
    return problems


def raise_problems(source: str, problems: list[str]) -> None:
    """One-line CheckpointError with the first problem and how many more there are."""
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise CheckpointError(f"{source}: {problems[0]}{more}")


def fill(model: nn.Module, tensors: Iterable[tuple[str, str, torch.Tensor]], source: str,
         dtype: torch.dtype | None = None, checkpoint_name: Callable[[str], str] = str) -> None:
    """Assign (model key, checkpoint key, tensor) triples into a skeleton built with empty weights.

    Every model parameter must be filled exactly once with the right shape; the error names the
    checkpoint key, both shapes and `source` (the folder or file).
    """
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    filled: set[str] = set()
    chunk: dict[str, torch.Tensor] = {}
    for model_key, ckpt_key, tensor in tensors:
        if model_key not in expected:
            raise CheckpointError(f"{source}: unexpected key {ckpt_key!r} (shape {_fmt(tensor.shape)})")
        if tuple(tensor.shape) != expected[model_key]:
            raise CheckpointError(f"{source}: key {ckpt_key!r} has shape {_fmt(tensor.shape)}, "
                                  f"the model expects {_fmt(expected[model_key])}")
        if tensor.is_floating_point() and dtype is not None:
            tensor = tensor.to(dtype)
        chunk[model_key] = tensor
        filled.add(model_key)
        if len(chunk) >= 64:
            model.load_state_dict(chunk, strict=False, assign=True)
            chunk = {}
    model.load_state_dict(chunk, strict=False, assign=True)
    missing = sorted({checkpoint_name(k) for k, p in model.named_parameters() if p.is_meta})
    if missing:
        raise CheckpointError(f"{source}: missing key {missing[0]!r}"
                              + (f" and {len(missing) - 1} more" if len(missing) > 1 else ""))


def count_by_part(shapes: dict[str, tuple[int, ...]], part_of: Callable[[str], str | None]) -> dict[str, int]:
    """Parameter counts per part (llm / connector / vision / ...) from tensor shapes."""
    counts: dict[str, int] = {}
    for key, shape in shapes.items():
        part = part_of(key)
        if part is not None:
            counts[part] = counts.get(part, 0) + int(torch.Size(shape).numel())
    return counts

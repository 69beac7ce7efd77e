"""Execution-mode dispatch for VLoRA: factorized or merged, per call, from the merge crossover.

Merging folds one image's B . A^T into q/k/v/o once per call (a fixed cost, ~2 h^2 r FLOPs per weight,
plus saving and restoring W); factorized branches cost ~4 h r FLOPs per token. So merging pays above a
text length: the crossover. `auto` picks merged when a call carries one sample, with an image, whose
LLM positions (prompt + new tokens) exceed the crossover; factorized otherwise (merging folds one image,
so it never applies to a batch of several samples).

The crossover is a measured number, recorded as data in vlora/crossover.yaml (per device kind and dtype,
written by benchmarks/merge_crossover.py). Lookup, in order, each saying where its number comes from:
  1. a measurement on this device kind and dtype at this (h, r);
  2. the measurement on this device kind and dtype at the nearest h, scaled by the FLOPs formula's
     ratio between the two shapes;
  3. where nothing was measured for the device kind and dtype: the FLOPs formula (2r + 1) h / (4r)
     (flops/analytic.merge_crossover; ~2,064 text tokens at 7B, h = 4096, r = 64).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vlora.config import ExecutionMode
from vlora.errors import ConfigError

CROSSOVER_TABLE = Path(__file__).with_name("crossover.yaml")
FIELDS = ("device", "dtype", "hidden", "rank", "tokens")  # what a measurement must have


@dataclass(frozen=True)
class Crossover:
    """LLM positions of one call above which merged execution beats factorized, and where that comes from."""

    tokens: float
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"tokens": round(self.tokens, 1), "source": self.source}


def flops_crossover(hidden: int, rank: int) -> float:
    """The FLOPs formula (flops/analytic.merge_crossover): 2 h^2 r + h^2 = n . 4 h r -> n = (2r + 1) h / (4r)."""
    return (2 * rank + 1) * hidden / (4 * rank)


def device_kind(device: torch.device | str) -> str:
    """What a measurement is filed under: "cpu", or the accelerator's name (e.g. "NVIDIA H200")."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return device.type


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


@dataclass(frozen=True)
class Measurement:
    """One measured crossover (benchmarks/merge_crossover.py --write)."""

    device: str  # "cpu" or the accelerator's name
    dtype: str
    hidden: int
    rank: int
    tokens: float  # LLM positions of one call above which merging pays (inf: never)
    flops_tokens: float | None = None  # what the FLOPs formula says, for comparison
    layers: int | None = None
    threads: int | None = None
    torch: str | None = None
    measured: str | None = None  # the date


@dataclass(frozen=True)
class CrossoverTable:
    measurements: list[Measurement]


def read_table(path: Path = CROSSOVER_TABLE) -> list[Measurement]:
    """The measurements of a crossover table (a YAML file with a `measurements` list), read strictly."""
    from vlora.schema import read_yaml

    if not path.is_file():
        raise ConfigError(f"crossover table {path} not found (benchmarks/merge_crossover.py writes it)")
    return read_yaml(path, CrossoverTable).measurements


def crossover_for(hidden: int, rank: int, device: torch.device | str, dtype: torch.dtype,
                  table: list[Measurement] | None = None) -> Crossover:
    """The crossover for an LLM of width `hidden` with perceptual weights of rank `rank` on `device` in `dtype`."""
    rows = read_table() if table is None else table
    kind, dname = device_kind(device), dtype_name(dtype)
    mine = [r for r in rows if r.device == kind and r.dtype == dname]
    where = f"{kind}, {dname}"
    if not mine:
        return Crossover(flops_crossover(hidden, rank),
                         f"FLOPs formula (2r+1)h/(4r) at h={hidden}, r={rank}: nothing measured for {where}")
    exact = [r for r in mine if r.hidden == hidden and r.rank == rank]
    if exact:
        row = exact[-1]  # the latest measurement of this shape
        return Crossover(row.tokens, f"measured on {where} at h={hidden}, r={rank}")
    row = min(mine, key=lambda r: (abs(math.log(r.hidden / hidden)), abs(r.rank - rank)))
    scale = flops_crossover(hidden, rank) / flops_crossover(row.hidden, row.rank)
    return Crossover(row.tokens * scale,
                     f"measured on {where} at h={row.hidden}, r={row.rank}, scaled to h={hidden}, r={rank} "
                     "by the FLOPs formula")


def choose_mode(mode: ExecutionMode | str, crossover: Crossover, samples: int, with_image: bool,
                positions: int) -> ExecutionMode:
    """The concrete mode of one call: `mode` itself unless it is auto; auto -> merged for one sample with
    an image whose `positions` (prompt + new tokens through the LLM) exceed the crossover."""
    mode = ExecutionMode(mode)
    if mode is not ExecutionMode.AUTO:
        return mode
    merge = samples == 1 and with_image and positions > crossover.tokens
    return ExecutionMode.MERGED if merge else ExecutionMode.FACTORIZED

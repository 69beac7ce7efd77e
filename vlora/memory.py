"""Sizes that cannot fit are refused before anything is allocated: a model's parameters against the memory
its device has free (the CPU's available memory, or the GPU's free memory)."""

from __future__ import annotations

import os

import torch
from torch import nn

from vlora.errors import ConfigError

GIB = 1 << 30


def available_bytes(device: torch.device | str) -> int | None:
    """Free memory of the device: a GPU's free memory, the CPU's MemAvailable (Linux), else None (unknown)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def parameter_bytes(model: nn.Module, dtype: torch.dtype | None = None) -> int:
    """Bytes the parameters take once materialised (floating ones in `dtype`, when given)."""
    total = 0
    for param in model.parameters():
        size = dtype.itemsize if dtype is not None and param.is_floating_point() else param.element_size()
        total += param.numel() * size
    return total


def check_fits(nbytes: int, device: torch.device | str, what: str) -> None:
    """A one-line ConfigError when `nbytes` exceed the device's free memory."""
    free = available_bytes(device)
    if free is not None and nbytes > free:
        raise ConfigError(f"{what} take {nbytes / GIB:,.1f} GiB, more than the {free / GIB:,.1f} GiB free on {device}; "
                          "choose smaller sizes (--set) or another --device")


def config_parameter_bytes(config, dtype: torch.dtype | None = None) -> int:
    """Bytes the parameters of a ModelConfig's model take, counted on a skeleton built wholly on the meta
    device (nothing allocated, whatever the sizes)."""
    from transformers import LlamaForCausalLM

    from vlora.connectors import build_connector
    from vlora.vision import VisionTower

    with torch.device("meta"), torch.random.fork_rng(devices=[]):
        parts = (LlamaForCausalLM(config.llm.to_hf()), VisionTower(config.vision), build_connector(config))
    return sum(parameter_bytes(part, dtype) for part in parts)

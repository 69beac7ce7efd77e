"""Where a model runs: the process (rank, world size), the device, the dtype and the CPU threads.

All of it is resolved once, at the edge (the CLI), and passed down; nothing below reads the
environment. Under `torchrun` / `accelerate launch` each process takes the GPU of its LOCAL_RANK.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from vlora.errors import ConfigError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}


@dataclass(frozen=True)
class Process:
    """This process among its peers: global rank and world size, and its place on this machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def shard(self) -> tuple[int, int]:
        return self.rank, self.world_size

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Process:
        """As torchrun and accelerate launch set RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE."""
        try:
            world = int(environ.get("WORLD_SIZE", "1"))
            rank = int(environ.get("RANK", "0"))
            local_rank = int(environ.get("LOCAL_RANK", str(rank if world > 1 else 0)))
            local_world = int(environ.get("LOCAL_WORLD_SIZE", str(world)))
        except ValueError as e:
            raise ConfigError(f"RANK / WORLD_SIZE / LOCAL_RANK must be integers ({e})") from None
        if not (world >= 1 and 0 <= rank < world and 0 <= local_rank < max(local_world, 1)):
            raise ConfigError(f"inconsistent RANK={rank} WORLD_SIZE={world} LOCAL_RANK={local_rank}")
        return cls(rank, world, local_rank, max(local_world, 1))


def resolve_device(name: str, process: Process = Process()) -> torch.device:
    """auto: this process's GPU when CUDA is present, else the CPU; cuda: the GPU of LOCAL_RANK;
    cuda:N: that GPU; cpu. A GPU that is not there is an error, not a silent CPU run."""
    name = name.strip().lower()
    if name == "cpu":
        return torch.device("cpu")
    if name == "auto" and not torch.cuda.is_available():
        return torch.device("cpu")
    if name in ("auto", "cuda"):
        index = process.local_rank
    elif name.startswith("cuda:") and name[5:].isdigit():
        index = int(name[5:])
    else:
        raise ConfigError(f"--device {name!r}: choose auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    if index >= torch.cuda.device_count():
        raise ConfigError(f"--device {name}: GPU {index} does not exist ({torch.cuda.device_count()} GPU(s))")
    return torch.device("cuda", index)


def resolve_dtype(name: str, device: torch.device, stored: torch.dtype | None = None) -> torch.dtype:
    """auto: the checkpoint's stored dtype on a GPU (the official VLoRA runs in half precision), float32
    on the CPU (and for random models); otherwise the named dtype."""
    if name == "auto":
        return stored if device.type == "cuda" and stored is not None else torch.float32
    try:
        return DTYPES[name]
    except KeyError:
        raise ConfigError(f"--dtype {name!r}: choose auto, {', '.join(DTYPES)}") from None


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity where the OS has one), not the machine's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cpu_threads(process: Process = Process(), requested: int | None = None, load: float | None = None) -> int:
    """Torch's CPU threads: the cores this process may use, shared among this machine's processes of
    the run, minus the cores other programs keep busy (`load`: the 1-minute load average, read before
    this process starts working). Oversubscribed cores are what to avoid: on 2 shared cores, two
    processes with 2 threads each ran 4x to 12x slower than with 1 thread each (measured several
    times), because torch's threads spin while they wait for each other (benchmarks/cpu_threads.py)."""
    if requested is not None:
        if requested < 1:
            raise ConfigError(f"--threads {requested} must be at least 1")
        return requested
    cores = usable_cores()
    busy = round(os.getloadavg()[0]) if load is None and hasattr(os, "getloadavg") else round(load or 0)
    return max(1, min(cores // process.local_world_size, cores - busy))


def device_name(device: torch.device) -> str:
    """What the manifest records: the GPU's name, or the CPU's."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return platform.processor() or platform.machine() or "cpu"


@dataclass(frozen=True)
class Placement:
    """Everything about where a command runs, resolved once at the edge and passed down."""

    process: Process
    device: torch.device
    dtype: torch.dtype
    threads: int

    @classmethod
    def resolve(cls, device: str = "auto", dtype: str = "auto", threads: int | None = None,
                stored: torch.dtype | None = None, environ: Mapping[str, str] = os.environ) -> Placement:
        process = Process.from_environment(environ)
        where = resolve_device(device, process)
        return cls(process, where, resolve_dtype(dtype, where, stored), cpu_threads(process, threads))

    def apply(self) -> None:
        """Set torch's CPU threads for this process (the one process-wide setting a command makes)."""
        torch.set_num_threads(self.threads)

    def describe(self) -> dict[str, object]:
        """What manifests record."""
        return {"device": str(self.device), "device_name": device_name(self.device),
                "dtype": str(self.dtype).removeprefix("torch."), "cpu_threads": self.threads,
                "rank": self.process.rank, "world_size": self.process.world_size}

"""What every `vlora-eval` command shares: option types, one-line errors and exit codes, the placement
resolved at the edge, and the note / warning lines."""

from __future__ import annotations

import functools
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from evalsuite.extraction import DEFAULT_RULES, Rules
from vlora.config import ExecutionMode
from vlora_eval.cli import views

console = views.console
PAPER_RULES = Rules(DEFAULT_RULES)  # VLMEvalKit's extraction rules of the paper's era


class DType(str, Enum):
    AUTO = "auto"
    FLOAT32 = "float32"
    BFLOAT16 = "bfloat16"
    FLOAT16 = "float16"
    FLOAT64 = "float64"


Device = Annotated[str, typer.Option(help="auto (the GPU of this process's LOCAL_RANK when CUDA is present, else "
                                            "the CPU) | cpu | cuda | cuda:N")]
Dtype = Annotated[DType, typer.Option(help="auto: the checkpoint's dtype on a GPU, float32 on the CPU.")]
Mode = Annotated[ExecutionMode, typer.Option(help="VLoRA execution: auto picks factorized or merged per call from "
                                            "the measured crossover (vlora/crossover.yaml); the others fix it.")]
Sets = Annotated[list[str] | None, typer.Option("--set", help="Override a setting of the model's configuration: "
                                                "KEY=VALUE with a dotted key (connector.rank=16); repeatable.")]
Threads = Annotated[int | None, typer.Option(min=1, help="CPU threads (default: this process's cores, shared among "
                                             "the processes of this machine).")]


def warn(message: str) -> None:
    Console(stderr=True).print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


def user_errors(command):
    """Print a `VLoRAEvalError` as one line and exit 2; an interrupt exits 130 without a traceback."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from vlora.errors import VLoRAEvalError

        try:
            return command(*args, **kwargs)
        except VLoRAEvalError as e:
            Console(stderr=True).print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            Console(stderr=True).print("[bold yellow]interrupted:[/] what was written is kept; run the same "
                                       "command again to resume", highlight=False, soft_wrap=True)
            raise typer.Exit(130) from None
    return wrapper


def resolve_placement(device: str, dtype: DType, threads: int | None, checkpoint: Path | None = None):
    """Process, device, dtype and CPU threads, resolved once here and passed down."""
    from vlora.checkpoints import stored_dtype
    from vlora.placement import Placement

    stored = stored_dtype(checkpoint) if checkpoint is not None else None
    placement = Placement.resolve(device, DType(dtype).value, threads, stored)
    placement.apply()
    return placement


def check_folder_option(path: Path | None, option: str) -> None:
    """An output folder option must not name a file."""
    from vlora.errors import InputError

    if path is not None and path.exists() and not path.is_dir():
        raise InputError(f"{option} {path} is a file, not a folder")


def say(message: str) -> None:
    Console(stderr=True).print(f"[cyan]note:[/] {message}", highlight=False, soft_wrap=True)


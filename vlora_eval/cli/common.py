"""What every `vlora-eval` command shares: option types, one-line errors and exit codes, the placement
resolved at the edge, and the note / warning lines."""

from __future__ import annotations

import errno
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


EXIT_INPUT, EXIT_DISK, EXIT_INTERRUPTED = 2, 3, 130
DISK_ERRNOS = {errno.EROFS, errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EIO, errno.EFBIG,
               errno.EMFILE, errno.ENFILE, errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR}
# A user's runs, sweeps and report go here by default: outside a checkout's committed results/, which only the
# project's own regeneration commands write (with --results results / --out results/...)
RESULTS = Path("vlora-eval-results")
OUTPUT_OPTIONS = ("results", "out", "clip_out", "plot")  # where a command writes, named when the system does not


def _error(message: str) -> None:
    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)


def disk_message(e: OSError, kwargs: dict) -> str:
    """One line: the path (the system's, else the command's output folder), what the errno means, and that the
    same command resumes once the disk is fixed."""
    where = e.filename or next((f"under {kwargs[k]}" for k in OUTPUT_OPTIONS if kwargs.get(k) is not None), None)
    name = errno.errorcode.get(e.errno, "") if e.errno is not None else ""
    return (f"cannot write {where or 'a file'}: {e.strerror or e} ({name}); what was written before is kept: fix the disk "
            "(free space, permissions, a writable folder) and run the same command again to resume")


def user_errors(command):
    """Print a `VLoRAEvalError` as one line and exit 2; a disk or permission error (read-only, full, not
    allowed) as one line and exit 3; running out of memory as one line and exit 2; an interrupt exits 130
    without a traceback."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        import torch

        from vlora.errors import VLoRAEvalError

        try:
            return command(*args, **kwargs)
        except VLoRAEvalError as e:
            _error(str(e))
            raise typer.Exit(EXIT_INPUT) from None
        except KeyboardInterrupt:
            Console(stderr=True).print("[bold yellow]interrupted:[/] what was written is kept; run the same "
                                       "command again to resume", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except OSError as e:
            if e.errno not in DISK_ERRNOS:
                raise
            _error(disk_message(e, kwargs))
            raise typer.Exit(EXIT_DISK) from None
        except (MemoryError, torch.OutOfMemoryError) as e:
            _error(f"out of memory ({type(e).__name__}): use a smaller model, --batch-size, or another --device")
            raise typer.Exit(EXIT_INPUT) from None
        except RuntimeError as e:
            if "can't allocate memory" not in str(e) and "out of memory" not in str(e).lower():
                raise
            _error(f"out of memory ({str(e).splitlines()[0][:160]}): use a smaller model, --batch-size, or another "
                   "--device")
            raise typer.Exit(EXIT_INPUT) from None
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



HFConfig = Annotated[str | None, typer.Option(help="A Hugging Face copy's config, where it holds several (default: "
                                              "the one lmms-eval reads, e.g. en for MMBench).")]
HFSplit = Annotated[str | None, typer.Option(help="A Hugging Face copy's split (default: the benchmark's, e.g. dev).")]


def benchmark_data(bench: str, data_dir: Path | None, data: Path | None, check_images: bool = True,
                   hf_config: str | None = None, hf_split: str | None = None):
    """The benchmark's checked table: the user's data (a TSV or a Hugging Face copy), else ~/LMUData's, else the
    embedded mini-suite's; its warnings said."""
    from evalsuite.benchmarks import benchmark
    from evalsuite.data import load_benchmark_data
    from vlora_eval.workflows.embedded import benchmark_tsv

    spec = benchmark(bench)
    path, embedded = benchmark_tsv(spec, data_dir, data, say, warn)
    loaded = load_benchmark_data(spec, path, check_images=check_images, embedded=embedded, hf_config=hf_config,
                                 hf_split=hf_split)
    for warning in loaded.warnings:
        warn(warning)
    return loaded

"""Checkpoint layouts: detect what a folder is, load it, describe it, save our own.

Each layout module offers `NAME`, `matches(folder)`, `load(folder, vision_tower, dtype)` and
`describe(folder, vision_tower)`; `LAYOUTS` lists them in detection order.
"""

from __future__ import annotations

from pathlib import Path

import torch

from vlora.checkpoints import llava_hf, llava_original, official_vlora, own
from vlora.checkpoints.assemble import CheckpointReport
from vlora.errors import CheckpointError

LAYOUTS = (own, official_vlora, llava_hf, llava_original)


def detect(folder: str | Path):
    """The layout module of a checkpoint folder, or None."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    return next((layout for layout in LAYOUTS if layout.matches(folder)), None)


def _why_not(folder: Path) -> str:
    if not folder.exists():
        return f"{folder} does not exist"
    if not folder.is_dir():
        return f"{folder} is a file, not a checkpoint folder"
    if not (folder / "config.json").is_file():
        return f"{folder} has neither {own.MANIFEST} nor config.json"
    return f"{folder}/config.json describes no supported multimodal layout ({', '.join(m.NAME for m in LAYOUTS)})"


def checkpoints_inside(folder: Path, depth: int = 4, budget: int = 2000) -> list[Path]:
    """Checkpoint folders below `folder` (a training or cache folder holds its models a few levels down);
    at most `depth` levels and `budget` folders are looked at."""
    import os

    found: list[Path] = []
    if not folder.is_dir():
        return found
    for root, dirs, files in os.walk(folder):
        budget -= 1
        here = Path(root)
        level = len(here.relative_to(folder).parts)
        if budget < 0 or level >= depth:
            dirs[:] = []
        dirs.sort()
        if here != folder and (own.MANIFEST in files or "config.json" in files) and detect(here) is not None:
            found.append(here)
            dirs[:] = []
    return found


def load_model(folder: str | Path, vision_tower: str | Path | None = None, dtype: torch.dtype | None = None):
    """A `MultimodalLM` from any supported checkpoint folder."""
    layout = detect(folder)
    if layout is None:
        raise CheckpointError(f"not a checkpoint: {_why_not(Path(folder))}")
    return layout.load(Path(folder), vision_tower=vision_tower, dtype=dtype)


def describe(folder: str | Path, vision_tower: str | Path | None = None) -> CheckpointReport:
    """What `vlora-eval inspect` prints; a folder that is no checkpoint gets kind "none" and the reason."""
    folder = Path(folder)
    try:
        layout = detect(folder)
    except CheckpointError as e:  # a config file that cannot be read tells no layout
        return CheckpointReport(path=str(folder), kind="none", summary="unreadable checkpoint", problems=[str(e)])
    if layout is None:
        inside = checkpoints_inside(folder)
        notes = [f"checkpoints inside it: {', '.join(str(p) for p in inside[:5])}" + (" ..." if len(inside) > 5 else "")
                 ] if inside else []
        return CheckpointReport(path=str(folder), kind="none", summary="not a checkpoint",
                                problems=[_why_not(folder)], notes=notes)
    try:
        return layout.describe(folder, vision_tower=vision_tower)
    except CheckpointError as e:
        return CheckpointReport(path=str(folder), kind=layout.NAME, summary="unreadable checkpoint", problems=[str(e)])


def stored_dtype(folder: str | Path) -> torch.dtype | None:
    """The dtype a checkpoint's floating-point weights are stored in (what `--dtype auto` uses on a GPU)."""
    from vlora.checkpoints.files import tensor_shapes, weight_files

    if detect(folder) is None:
        raise CheckpointError(f"not a checkpoint: {_why_not(Path(folder))}")
    names = {"BF16": "bfloat16", "F16": "float16", "F32": "float32", "F64": "float64"}  # safetensors' names
    for _, name in tensor_shapes(weight_files(Path(folder))[0]).values():
        kind = getattr(torch, names.get(name, name), None)
        if isinstance(kind, torch.dtype) and kind.is_floating_point:
            return kind
    return None


def save_model(model, folder: str | Path, max_shard_size: str | int = "5GB") -> Path:
    """Save in the project's own layout (safetensors + vlora_eval.json + tokenizer)."""
    return own.save(model, folder, max_shard_size)


__all__ = ["CheckpointReport", "LAYOUTS", "describe", "detect", "load_model", "save_model", "stored_dtype"]

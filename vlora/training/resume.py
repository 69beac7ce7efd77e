"""What a run keeps on disk to resume exactly, and the run's private randomness.

    out/checkpoints/step-00000200/   accelerate's save_state (model, optimizer, scheduler, RNG states)
                                     + train_state.json (step, recipe, data fingerprint, model kind)
    out/train_log.jsonl              one JSON line per logged step

A checkpoint is written under a `.tmp` name and renamed when complete, so a run killed while saving
leaves no half checkpoint that a resume could pick. The data position is not stored: it follows
from the step (a seeded order per epoch, whole optimizer steps per epoch).
"""

from __future__ import annotations

import json
import random
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vlora.errors import ConfigError
from vlora.training.recipe import TrainingRecipe

STATE_FILE = "train_state.json"
STATE_VERSION = 1
# recipe fields that do not change the numbers of a run, so a resume may change them
HARMLESS = frozenset({"save_every", "log_every", "keep_checkpoints", "gradient_checkpointing"})


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int
    state: dict


class CheckpointFolder:
    """The resumable checkpoints of one output folder, newest last."""

    def __init__(self, folder: Path):
        self.folder = folder

    def all(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        found = [p for p in self.folder.iterdir() if p.is_dir() and re.fullmatch(r"step-\d{8}", p.name)
                 and (p / STATE_FILE).is_file()]
        return sorted(found, key=lambda p: int(p.name[len("step-"):]))

    def latest(self) -> Checkpoint | None:
        paths = self.all()
        if not paths:
            return None
        state = json.loads((paths[-1] / STATE_FILE).read_text())
        return Checkpoint(paths[-1], int(state["step"]), state)

    def save(self, accelerator, step: int, state: dict, keep: int) -> Path:
        """accelerate's save_state into `step-N.tmp`, our state file, then the rename (main process)."""
        final = self.folder / f"step-{step:08d}"
        staging = final.with_name(final.name + ".tmp")
        if accelerator.is_main_process and staging.exists():
            shutil.rmtree(staging)  # a save that was cut short by a kill
        accelerator.wait_for_everyone()
        accelerator.save_state(str(staging))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            (staging / STATE_FILE).write_text(json.dumps({"version": STATE_VERSION, "step": step, **state}, indent=2))
            if final.exists():
                shutil.rmtree(final)
            staging.rename(final)
            for old in self.all()[:-keep]:
                shutil.rmtree(old)
        accelerator.wait_for_everyone()
        return final


def run_state(recipe: TrainingRecipe, data_fingerprint: str, model_kind: str) -> dict:
    """What must match for a checkpoint to continue this run exactly."""
    return {"recipe": recipe.to_dict(), "data": data_fingerprint, "model": model_kind}


def check_resumable(checkpoint: Checkpoint, expected: dict) -> None:
    """A one-line ConfigError when the checkpoint belongs to another recipe, data file or model."""
    saved = checkpoint.state
    if saved.get("version") != STATE_VERSION:
        raise ConfigError(f"{checkpoint.path}: checkpoint state version {saved.get('version')!r}, expected {STATE_VERSION}")
    if saved.get("model") != expected["model"]:
        raise ConfigError(f"{checkpoint.path} was written for a {saved.get('model')} model, not {expected['model']}")
    if saved.get("data") != expected["data"]:
        raise ConfigError(f"{checkpoint.path} was written for other training data (or another tokenizer); "
                          "use a new output folder or resume=False")
    old, new = saved.get("recipe", {}), expected["recipe"]
    changed = sorted(k for k in set(old) | set(new) if k not in HARMLESS and old.get(k) != new.get(k))
    if changed:
        diff = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed)
        raise ConfigError(f"{checkpoint.path} was written with another recipe ({diff}); "
                          "use a new output folder or the same settings")


@contextmanager
def private_rng(seed: int) -> Iterator[None]:
    """The block draws torch's randomness (dropout) from `seed`; the caller's global RNG states
    (torch CPU / CUDA, python, numpy, which accelerate's load_state also sets) are restored after."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


class StepLog:
    """The JSONL log; a resumed run first drops the lines written after its checkpoint."""

    def __init__(self, path: Path, resume_step: int, write: bool):
        self.path, self.write_lines, self.last_loss = path, write, float("nan")
        if not write:
            return
        kept = []
        if resume_step and path.is_file():
            kept = [line for line in path.read_text().splitlines() if _step_of(line) <= resume_step]
            self.last_loss = json.loads(kept[-1])["loss"] if kept else self.last_loss
        path.write_text("".join(line + "\n" for line in kept))

    def write(self, record: dict) -> None:
        if self.write_lines:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")


def _step_of(line: str) -> float:
    """The step of a log line; a line cut by a kill counts as after every checkpoint."""
    try:
        return json.loads(line)["step"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return float("inf")


def read_log(path: str | Path) -> list[dict]:
    """The logged steps of a run, in order."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]

"""What a run keeps on disk to resume exactly, and the run's private randomness.

    out/checkpoints/step-00000200/   accelerate's save_state (model, optimizer, scheduler, RNG states)
                                     + train_state.json (step, the job's identity, every file's size and
                                     sha256), written last
    out/train_log.jsonl              one JSON line per logged step

The job's identity (`job_identity`: the model's configuration, the recipe, the data's content, the
tokenizer, where the model started) is what a resume must share with the checkpoint; the first
difference is named. A checkpoint is written under a `.tmp` name and renamed when complete, so a run
killed while saving leaves no half checkpoint; one damaged afterwards (a file cut short, changed or
missing, train_state.json unreadable) is found by its manifest before anything is loaded, and the
resume falls back to the newest intact checkpoint, saying which file was damaged. The data position
is not stored: it follows from the step (a seeded order per epoch, whole optimizer steps per epoch).
"""

from __future__ import annotations

import hashlib
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

from vlora.atomic import write_text_atomic
from vlora.errors import ConfigError
from vlora.training.recipe import TrainingRecipe

STATE_FILE = "train_state.json"
STATE_VERSION = 2
HASHED_UP_TO = 1 << 30  # files up to 1 GiB are hashed; larger ones (7B optimizer states) are checked by size
# recipe fields that do not change the numbers of a run, so a resume may change them
HARMLESS = frozenset({"save_every", "log_every", "keep_checkpoints", "gradient_checkpointing"})


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int
    state: dict


def job_identity(model: dict, tokenizer, recipe: TrainingRecipe, data_file: Path, start: str) -> dict:
    """What makes a training run this run (`model`: the configuration as plain data): equal identities resume
    each other exactly."""
    from vlora.errors import InputError
    from vlora.training.data import tokenizer_fingerprint

    try:
        data = _sha256(Path(data_file))[:20]
    except FileNotFoundError:
        raise InputError(f"training data {data_file} does not exist") from None
    except (IsADirectoryError, PermissionError) as e:
        raise InputError(f"training data {data_file} cannot be read ({e.strerror})") from None
    return {"model": model, "recipe": {k: v for k, v in recipe.to_dict().items() if k not in HARMLESS},
            "data": data, "tokenizer": tokenizer_fingerprint(tokenizer)[:20], "start": start}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_manifest(folder: Path) -> dict[str, dict]:
    """Every file of a checkpoint (but the state file): size, and sha256 for files up to 1 GiB."""
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != STATE_FILE):
        size = path.stat().st_size
        files[str(path.relative_to(folder))] = {"size": size, **({"sha256": _sha256(path)} if size <= HASHED_UP_TO else {})}
    return files


def damage(path: Path) -> str | None:
    """What is wrong with a checkpoint folder (naming the file), or None when it is intact."""
    try:
        state = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"{STATE_FILE} is missing or unreadable"
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION or not isinstance(state.get("files"), dict):
        return f"{STATE_FILE} is not a version-{STATE_VERSION} checkpoint state"
    for name, expected in state["files"].items():
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        if file.stat().st_size != expected.get("size"):
            return f"{name} holds {file.stat().st_size} bytes, {expected.get('size')} were written"
        if "sha256" in expected and _sha256(file) != expected["sha256"]:
            return f"{name} was changed since it was written (sha256 differs)"
    return None


class CheckpointFolder:
    """The resumable checkpoints of one output folder, newest last."""

    def __init__(self, folder: Path):
        self.folder = folder

    def all(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        found = [p for p in self.folder.iterdir() if p.is_dir() and re.fullmatch(r"step-\d{8}", p.name)]
        return sorted(found, key=lambda p: int(p.name[len("step-"):]))

    def latest_intact(self) -> tuple[Checkpoint | None, list[str]]:
        """The newest checkpoint whose files match their manifest, and what was wrong with newer ones."""
        problems = []
        for path in reversed(self.all()):
            problem = damage(path)
            if problem is None:
                state = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
                return Checkpoint(path, int(state["step"]), state), problems
            problems.append(f"{path}: {problem}")
        return None, problems

    def save(self, accelerator, step: int, identity: dict, keep: int) -> Path:
        """accelerate's save_state into `step-N.tmp`, our state file (with the file manifest) last, then the
        rename (main process); older checkpoints beyond `keep` are deleted."""
        final = self.folder / f"step-{step:08d}"
        staging = final.with_name(final.name + ".tmp")
        if accelerator.is_main_process and staging.exists():
            shutil.rmtree(staging)  # a save that was cut short by a kill
        accelerator.wait_for_everyone()
        accelerator.save_state(str(staging))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            state = {"version": STATE_VERSION, "step": step, "job": identity, "files": file_manifest(staging)}
            (staging / STATE_FILE).write_text(json.dumps(state, indent=2))
            if final.exists():
                shutil.rmtree(final)
            staging.rename(final)
            for old in self.all()[:-keep]:
                shutil.rmtree(old)
        accelerator.wait_for_everyone()
        return final


def check_resumable(checkpoint: Checkpoint, identity: dict) -> None:
    """A one-line ConfigError naming the first difference when the checkpoint belongs to another job."""
    from vlora.output_folder import first_difference

    difference = first_difference(checkpoint.state.get("job"), json.loads(json.dumps(identity, default=str)))
    if difference:
        raise ConfigError(f"{checkpoint.path} was written for another job ({difference}); use a new output folder or "
                          "the same settings")


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
        write_text_atomic(path, "".join(line + "\n" for line in kept))  # a failed rewrite keeps the old log

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

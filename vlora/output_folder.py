"""The one rule for every command that writes a model (train, export, demo, the foundations): a folder is
reused only when it holds the tool's own output of the same job; nothing else is replaced.

    <folder>/.vlora-eval-output.json   {"writer", "job" (what makes the job this job), "finished",
                                        "foreign" (files that were there before the tool, kept),
                                        "files" (what the finished job wrote)}

Claiming a folder gives its state:
    new        nothing there (or only files the tool may write beside, with --force): start
    resume     the tool's own, unfinished output of the same job: continue it
    finished   the tool's own, finished output of the same job: nothing to do (skip)
and refuses, in one line naming the folder and the first difference, a folder that holds files the tool
did not write, or the tool's output of another job (another writer, model, recipe, data, tokenizer).
`force` takes such a folder anyway: it deletes the tool's own files of the other job (the files its finished
job recorded; of an unfinished one, what lies under the writer's own names, e.g. train's checkpoints/ and
model/), never a file that was there before the tool or that someone put beside; files the new job writes may
replace same-named files that were.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from vlora.atomic import write_json_atomic
from vlora.errors import ConfigError

MARKER = ".vlora-eval-output.json"
VERSION = 1


class State(str, Enum):
    NEW = "new"
    RESUME = "resume"
    FINISHED = "finished"


@dataclass(frozen=True)
class Job:
    writer: str  # "train" | "export" | "demo" | ...
    identity: dict[str, Any]  # plain data: what must be equal for a folder to hold this job's output


def first_difference(old: Any, new: Any, prefix: str = "") -> str | None:
    """`key: old -> new` for the first dotted key (in sorted order) whose values differ, or None."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            where = f"{prefix}.{key}" if prefix else str(key)
            if key not in old or key not in new:
                return f"{where}: {old.get(key, '(absent)')!r} -> {new.get(key, '(absent)')!r}"
            found = first_difference(old[key], new[key], where)
            if found:
                return found
        return None
    return None if old == new else f"{prefix or 'value'}: {_short(old)} -> {_short(new)}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class OutputFolder:
    """A folder that a model writer owns, claimed for one job."""

    def __init__(self, folder: str | Path, job: Job, option: str = "--out", owned: tuple[str, ...] | None = None):
        """`owned`: the top-level names the writer writes (None: whatever it finds that was not there before)."""
        self.folder, self.job, self.option, self.owned = Path(folder), job, option, owned

    @property
    def marker(self) -> Path:
        return self.folder / MARKER

    def _record(self) -> dict | None:
        if not self.marker.is_file():
            return None
        try:
            record = json.loads(self.marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {"damaged": True}
        return record if isinstance(record, dict) else {"damaged": True}

    def files(self) -> list[Path]:
        """Every file under the folder (relative), the marker left out."""
        if not self.folder.is_dir():
            return []
        return sorted(p.relative_to(self.folder) for p in self.folder.rglob("*")
                      if (p.is_file() or p.is_symlink()) and p.name != MARKER)

    def is_finished(self) -> bool:
        """The folder holds this job's finished output (read only; claim() decides everything else)."""
        record = self._record()
        return record is not None and self._other_job(record) is None and bool(record.get("finished"))

    def claim(self, force: bool = False, restart: bool = False) -> State:
        """The folder's state for this job (see the module's docstring); `restart`: the same unfinished job
        starts over (its own files deleted)."""
        if self.folder.exists() and not self.folder.is_dir():
            raise ConfigError(f"{self.option} {self.folder} is a file, not a folder")
        record = self._record()
        if record is None:
            present = self.files()
            if present and not force:
                raise ConfigError(f"{self.option} {self.folder} holds files vlora-eval did not write (e.g. {present[0]}); "
                                  "choose another folder, or pass --force to write beside them")
            return self._start(foreign=present)
        problem = self._other_job(record)
        if problem is not None:
            if not force:
                raise ConfigError(f"{self.option} {self.folder} holds {problem}; use another folder, the same settings, "
                                  "or --force (which deletes only vlora-eval's own files there)")
            return self.redo(record)
        if record.get("finished") and not force:
            return State.FINISHED
        if record.get("finished") or restart:
            return self.redo(record)
        return State.RESUME

    def redo(self, record: dict | None = None) -> State:
        """Start this job over in its folder: the tool's own files deleted, every other file kept."""
        record = record if record is not None else (self._record() or {})
        self.delete_own(record)
        return self._start(foreign=[p for p in self.files() if not self._mine(p, record)])

    def _other_job(self, record: dict) -> str | None:
        if record.get("damaged") or record.get("version") != VERSION:
            return f"a damaged or unknown {MARKER}"
        if record.get("writer") != self.job.writer:
            return f"the output of vlora-eval {record.get('writer')}, not of {self.job.writer}"
        difference = first_difference(record.get("job"), _plain(self.job.identity))
        return f"the output of another {self.job.writer} job ({difference})" if difference else None

    def _start(self, foreign: list[Path]) -> State:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._write({"version": VERSION, "writer": self.job.writer, "job": _plain(self.job.identity),
                     "finished": False, "foreign": [str(p) for p in foreign]})
        return State.NEW

    def finish(self, **extra: Any) -> None:
        """The job's output is complete (written last, so a killed writer leaves an unfinished folder); the
        files it wrote are recorded (what a later --force may delete)."""
        record = self._record() or {}
        foreign = set(record.get("foreign", []))
        written = [str(p) for p in self.files() if str(p) not in foreign]
        self._write({**record, **extra, "finished": True, "files": written})

    def _mine(self, path: Path, record: dict) -> bool:
        """Whether `path` (relative) is the tool's own output according to `record`."""
        if record.get("damaged"):
            return False
        if str(path) in set(record.get("foreign", [])):
            return False
        if record.get("finished") and isinstance(record.get("files"), list):
            return str(path) in set(record["files"])
        return self.owned is None or path.parts[0] in self.owned

    def delete_own(self, record: dict) -> None:
        """Delete the tool's own files (see `_mine`) and the folders they leave empty; nothing else."""
        for path in self.files():
            if self._mine(path, record):
                (self.folder / path).unlink()
        for directory in sorted((p for p in self.folder.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            if not any(directory.iterdir()):
                directory.rmdir()

    def _write(self, record: dict) -> None:
        write_json_atomic(self.marker, record)


def _plain(identity: dict[str, Any]) -> Any:
    return json.loads(json.dumps(identity, default=str))

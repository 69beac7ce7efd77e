"""The append-only predictions files of a run folder, and the lock that gives each one one writer.

    predictions.jsonl / predictions.shard-<i>-of-<n>.jsonl   one JSON object per line, flushed per batch
    .<file>.lock, .<file>.owner                               held while a process appends (filelock)
    <file>.corrupt                                            damaged lines kept aside, byte for byte

Reading back: only a cut *last* line (no newline: the batch in flight when a run was killed) may be
dropped. Any other line that is not a JSON object with an `index` is a damaged line: the writer that
holds the file's lock moves it to `<file>.corrupt` and says which line it was; a reader without the
lock leaves the file as it is and skips the line, saying so. No valid record is ever lost.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from evalsuite.errors import ResultsError

PREDICTIONS_GLOB = "predictions*.jsonl"


def shard_file(folder: Path, shard: tuple[int, int]) -> Path:
    index, count = shard
    return folder / ("predictions.jsonl" if count == 1 else f"predictions.shard-{index}-of-{count}.jsonl")


# --- one writer per file ------------------------------------------------------------------------------
def _hidden(target: Path, suffix: str) -> Path:
    return target.with_name(f".{target.name}{suffix}")


class WriterLock:
    """An exclusive, non-blocking lock on `target` for this process (`filelock`), with a note of who
    holds it, so a second process is refused with one line that names the holder."""

    def __init__(self, target: Path, what: str = "written", timeout: float = 0):
        self.target, self.what = target, what
        self.lock = FileLock(_hidden(target, ".lock"), timeout=timeout)
        self.owner = _hidden(target, ".owner")

    def holder(self) -> str:
        try:
            info = json.loads(self.owner.read_text())
            return f"pid {info['pid']} on {info['host']} since {info['since']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "a process that left no note"

    def __enter__(self) -> WriterLock:
        try:
            self.lock.acquire()
        except Timeout:
            raise ResultsError(f"{self.target} is being {self.what} by another vlora-eval process "
                               f"({self.holder()}); wait for it to end, or use another --run-name") from None
        note = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                "command": " ".join(sys.argv)}
        self.owner.write_text(json.dumps(note))
        return self

    def __exit__(self, *exc) -> None:
        self.owner.unlink(missing_ok=True)
        self.lock.release()


def is_held(path: Path) -> bool:
    """Whether another process holds the writer lock of `path` right now."""
    probe = FileLock(_hidden(path, ".lock"), timeout=0)
    try:
        probe.acquire()
    except Timeout:
        return True
    probe.release()
    return False


# --- writing --------------------------------------------------------------------------------------------
def append_records(path: Path, records: list[dict[str, Any]]) -> None:
    """Append and flush to disk: a killed run loses at most the batch in flight."""
    with open(path, "a", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


# --- reading back ---------------------------------------------------------------------------------------
@dataclass
class ReadBack:
    """The valid records of one or more predictions files and what was noticed on the way."""

    records: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _record(line: bytes) -> dict[str, Any] | None:
    """The record a line holds, or None when the line is damaged."""
    try:
        value = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(value, dict) or "index" not in value or not isinstance(value.get("prediction"), str):
        return None
    return value


def read_records(path: Path, repair: bool = False) -> ReadBack:
    """The valid records of one predictions file.

    A cut last line is dropped; other damaged lines are skipped and reported by line number. With
    `repair` (the caller holds the file's writer lock) the file is rewritten without them and they go
    to `<file>.corrupt`, so the next append starts on a clean line.
    """
    out = ReadBack()
    if not path.is_file():
        return out
    raw = path.read_bytes()
    lines = raw.splitlines(keepends=True)
    good: list[bytes] = []
    damaged: list[tuple[int, bytes]] = []
    cut = lines and not lines[-1].endswith(b"\n")
    for number, line in enumerate(lines[:-1] if cut else lines, 1):
        if not line.strip():
            continue
        record = _record(line)
        if record is None:
            damaged.append((number, line))
        else:
            out.records.append(record)
            good.append(line)
    if damaged:
        numbers = ", ".join(str(n) for n, _ in damaged[:5]) + (" ..." if len(damaged) > 5 else "")
        if repair:
            aside = Path(f"{path}.corrupt")
            with open(aside, "ab") as f:
                f.writelines(line if line.endswith(b"\n") else line + b"\n" for _, line in damaged)
            out.notes.append(f"{path}: {len(damaged)} damaged line(s) (line {numbers}) moved to {aside}; "
                             f"the {len(out.records)} valid record(s) are kept")
        else:
            out.notes.append(f"{path}: {len(damaged)} damaged line(s) (line {numbers}) skipped")
    if repair and (damaged or cut):
        tmp = Path(f"{path}.tmp")
        tmp.write_bytes(b"".join(good))
        tmp.replace(path)
    return out


def read_folder(folder: Path, own: Path | None = None) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Every prediction in the folder over all shard files, by index (the first one wins), and notes.
    Only `own` (the file whose lock the caller holds) is repaired; the others are read as they are."""
    merged: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    duplicates = 0
    for path in sorted(folder.glob(PREDICTIONS_GLOB)):
        back = read_records(path, repair=own is not None and path == own)
        notes += back.notes
        for record in back.records:
            key = str(record["index"])
            duplicates += key in merged
            merged.setdefault(key, record)
    if duplicates:
        notes.append(f"{folder}: {duplicates} prediction(s) repeat an index already predicted; the first is used")
    return merged, notes

"""The results folder, read and written in one place.

    results/<run>/<bench>/
      predictions.jsonl                     append-only, one line per row (resume reads it back);
      predictions.shard-<i>-of-<n>.jsonl    the same, per shard
      run.json                              what the predictions depend on (checked on resume)
      <run>_<bench>.tsv                     VLMEvalKit's predictions layout: the table without images + prediction
      <run>_<bench>_acc.csv | _score.csv    VLMEvalKit's full table (MCQ fractions / Y/N x100)
      verdicts.tsv                          per question: extracted answer, hit / score
      scores.json                           headline numbers, extraction rules, answer mode, notes
      manifest.json                         model card + config hash, data md5, rules, prompt style,
                                            library versions, timings, counts
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Any

import pandas as pd

from vlora.errors import VLoRAEvalError

PREDICTIONS_GLOB = "predictions*.jsonl"


def run_folder(root: str | Path, run: str, bench: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_.@" else "_" for c in run)
    return Path(root) / safe / bench


def shard_file(folder: Path, shard: tuple[int, int]) -> Path:
    index, count = shard
    return folder / ("predictions.jsonl" if count == 1 else f"predictions.shard-{index}-of-{count}.jsonl")


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def read_records(path: Path) -> list[dict[str, Any]]:
    """The complete lines of a predictions file; a line cut short by a kill is dropped from the file."""
    if not path.is_file():
        return []
    raw = path.read_bytes()
    records, good = [], 0
    for line in raw.splitlines(keepends=True):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
        if not line.endswith(b"\n"):
            records.pop()
            break
        good += len(line)
    if good < len(raw):
        with open(path, "r+b") as f:
            f.truncate(good)
    return records


def append_records(path: Path, records: list[dict[str, Any]]) -> None:
    """Append and flush to disk: a killed run loses at most the batch in flight."""
    with open(path, "a", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def all_records(folder: Path) -> dict[str, dict[str, Any]]:
    """Every prediction in the folder, over all shard files (first one wins for an index)."""
    merged: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob(PREDICTIONS_GLOB)):
        for record in read_records(path):
            merged.setdefault(str(record["index"]), record)
    return merged


def check_run(folder: Path, expected: dict[str, Any]) -> None:
    """Predictions in `folder` must come from the same model, data and prompting as this run."""
    path = folder / "run.json"
    if path.is_file():
        stored = json.loads(path.read_text())
        expected = json.loads(json.dumps(expected, default=str))  # as it would read back
        changed = [k for k in expected if stored.get(k) != expected[k]]
        if changed:
            raise VLoRAEvalError(f"{folder} holds predictions made with other settings ({', '.join(changed)}); "
                                 "pass --fresh to start over or --run-name to keep both")
    else:
        folder.mkdir(parents=True, exist_ok=True)
        _write_json(path, expected)


def stored_run(folder: Path) -> dict[str, Any]:
    """The settings a results folder's predictions were made with (written by the first run)."""
    path = folder / "run.json"
    if not path.is_file():
        raise VLoRAEvalError(f"{folder} holds no run (no run.json): nothing to merge")
    return json.loads(path.read_text())


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    tmp.replace(path)


def write_outputs(folder: Path, spec, table: pd.DataFrame, records: dict[str, dict[str, Any]],
                  report, manifest: dict[str, Any]) -> dict[str, Path]:
    """The merged predictions in VLMEvalKit's layout, the score tables and the manifest."""
    stem = f"{folder.parent.name}_{spec.name}"
    rows = table[table["index"].astype(str).isin(records)].drop(columns=["image", "line"], errors="ignore").copy()
    rows["prediction"] = [records[str(i)]["prediction"] for i in rows["index"]]
    paths = {"predictions": folder / f"{stem}.tsv"}
    rows.to_csv(paths["predictions"], sep="\t", index=False)
    if report is not None:
        paths["table"] = folder / f"{stem}_{'acc' if spec.type == 'MCQ' else 'score'}.csv"
        report.table.to_csv(paths["table"], index=False)
        paths["verdicts"] = folder / "verdicts.tsv"
        report.verdicts.to_csv(paths["verdicts"], sep="\t", index=False)
        paths["scores"] = folder / "scores.json"
        _write_json(paths["scores"], report.to_dict())
    paths["manifest"] = folder / "manifest.json"
    _write_json(paths["manifest"], manifest)
    return paths


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("vlora-eval", "torch", "transformers", "pandas", "numpy", "pillow"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out

"""The results folder, read and written in one place (the predictions files: predictions.py).

    results/<run>/<bench>/                  <run> is one plain folder name; nothing lies outside --results
      predictions.jsonl                     append-only, one line per row (resume reads it back);
      predictions.shard-<i>-of-<n>.jsonl    the same, per shard; one writer each (a filelock)
      predictions*.jsonl.corrupt            damaged lines kept aside (never deleted by the tool)
      run.json                              what the predictions depend on (checked on resume)
      <run>_<bench>.tsv                     VLMEvalKit's predictions layout: the table without images + prediction
      <run>_<bench>_acc.csv | _score.csv    VLMEvalKit's full table (MCQ fractions / Y/N x100)
      verdicts.tsv                          per question: extracted answer, hit / score
      scores.json                           headline numbers, extraction rules, answer mode, notes
      manifest.json                         model card + config hash, data md5, rules, prompt style,
                                            library versions, timings, counts, notes

--fresh deletes only these files of the tool's (`own_files`); anything else in the folder stays.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
from pathlib import Path
from typing import Any

import pandas as pd

from evalsuite.errors import ResultsError
from evalsuite.predictions import PREDICTIONS_GLOB, is_held
from vlora.atomic import write_json_atomic

RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")
OUTPUT_NAMES = ("verdicts.tsv", "scores.json", "manifest.json")


def run_folder(root: str | Path, run: str, bench: str) -> Path:
    """results/<run>/<bench>, strictly inside the results root: a run name is one plain folder name,
    and neither folder may be a symbolic link (nothing the tool deletes can lie outside the root)."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ResultsError(f"--results {root} is a file, not a folder")
    if not RUN_NAME.fullmatch(run):
        raise ResultsError(f"run name {run!r} is not a plain folder name (letters, digits and . _ @ + -, "
                           "starting with a letter or digit)")
    folder = root / run / bench
    for path in (root / run, folder):
        if path.is_symlink():
            raise ResultsError(f"{path} is a symbolic link; a run folder must be a real folder inside {root}")
        if path.exists() and not path.is_dir():
            raise ResultsError(f"{path} is a file, not a run folder")
    return folder


def own_files(folder: Path) -> list[Path]:
    """The files of a run folder that the tool wrote (what --fresh may delete): predictions, run.json
    and the outputs. Anything else in the folder, and the damaged lines kept aside, stay."""
    stem = f"{folder.parent.name}_{folder.name}"
    names = [*OUTPUT_NAMES, "run.json", f"{stem}.tsv", f"{stem}_acc.csv", f"{stem}_score.csv"]
    return sorted([*folder.glob(PREDICTIONS_GLOB), *(folder / n for n in names if (folder / n).is_file())])


def clear_run(folder: Path, keep: Path | None = None) -> list[Path]:
    """--fresh: delete the tool's own files in `folder`, except predictions files another process is
    writing now (`keep`, whose lock the caller holds, is deleted too). Returns what was deleted."""
    removed = []
    for path in own_files(folder):
        if path.match(PREDICTIONS_GLOB) and path != keep and is_held(path):
            continue
        path.unlink()
        removed.append(path)
    return removed


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def _read_run_json(path: Path) -> dict[str, Any]:
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ResultsError(f"{path} is damaged ({type(e).__name__}); the settings of the predictions beside it "
                           "are unknown: pass --fresh to start over, or --run-name to keep it") from None
    if not isinstance(stored, dict):
        raise ResultsError(f"{path} holds a JSON {type(stored).__name__}, not the run's settings; pass --fresh "
                           "to start over, or --run-name to keep it")
    return stored


def check_run(folder: Path, expected: dict[str, Any]) -> None:
    """Predictions in `folder` must come from the same model, data and prompting as this run."""
    path = folder / "run.json"
    if path.is_file():
        stored = _read_run_json(path)
        expected = json.loads(json.dumps(expected, default=str))  # as it would read back
        changed = [k for k in expected if stored.get(k) != expected[k]]
        if changed:
            raise ResultsError(f"{folder} holds predictions made with other settings ({', '.join(changed)}); "
                               "pass --fresh to start over or --run-name to keep both")
    else:
        folder.mkdir(parents=True, exist_ok=True)
        _write_json(path, expected)


def stored_run(folder: Path, data_md5: str | None = None) -> dict[str, Any]:
    """The settings a results folder's predictions were made with (written by the first run); with
    `data_md5`, the data must be the table the run predicted."""
    path = folder / "run.json"
    if not path.is_file():
        raise ResultsError(f"{folder} holds no run (no run.json): nothing to merge")
    stored = _read_run_json(path)
    if data_md5 is not None and stored.get("data_md5") != data_md5:
        raise ResultsError(f"{folder} was predicted on data with md5 {stored.get('data_md5')}, not this table "
                           f"(md5 {data_md5}); give the TSV the run used")
    return stored


def _write_json(path: Path, data: Any) -> None:
    write_json_atomic(path, data)


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

"""Scoring any predictions file against a benchmark: join, check, score, headline numbers.

Predictions are VLMEvalKit's layout (`index` + `prediction`, with or without the benchmark's
columns; .tsv, .csv, .jsonl or .xlsx). The benchmark's own columns come from its TSV; a partial
file scores what is present and says how many rows are missing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from evalsuite.benchmarks import BenchmarkSpec
from evalsuite.errors import DataError
from evalsuite.extraction import check_rules
from evalsuite.prompts import is_missing


@dataclass
class ScoreReport:
    benchmark: str
    rules: str  # the extraction rules used ("2024-05" / "2026-08")
    answer_mode: str  # "generate" (free text, exact matching) | "likelihood" (highest log-likelihood choice)
    headline: dict[str, float]  # the numbers papers report, primary first
    table: pd.DataFrame  # VLMEvalKit's _acc.csv / _score.csv
    verdicts: pd.DataFrame  # per question (or per circular group)
    scored_rows: int
    missing_rows: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"benchmark": self.benchmark, "extraction_rules": self.rules, "answer_mode": self.answer_mode,
                "headline": self.headline, "scored_rows": self.scored_rows, "missing_rows": self.missing_rows,
                "notes": self.notes, "table": _records(self.table)}


def _records(table: pd.DataFrame) -> list[dict]:
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
            for row in table.to_dict("records")]


def read_predictions(path: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """A predictions file -> (DataFrame with at least `index` and `prediction`, one row per index; notes, such
    as how many repeated rows were counted once)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"predictions file {path} " + ("is a folder" if path.is_dir() else "does not exist"))
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":
            table = _read_jsonl(path)
        elif suffix == ".xlsx":
            table = pd.read_excel(path)
        else:
            table = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    except ImportError as e:
        raise DataError(f"{path}: reading {suffix} needs an extra package ({e}); save it as .tsv") from None
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as e:
        raise DataError(f"{path}: cannot read predictions ({type(e).__name__}: {e})") from None
    except Exception as e:  # a fake .xlsx raises zipfile / openpyxl errors of many types
        if suffix != ".xlsx":
            raise
        raise DataError(f"{path}: not a readable .xlsx file ({type(e).__name__}: {e})") from None
    missing = [c for c in ("index", "prediction") if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing} (a predictions file needs index and prediction)")
    return _one_per_index(table, path)


def jsonl_objects(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) of every non-empty line of a JSONL file; a line that is not a JSON object is a
    DataError naming it."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise DataError(f"{path}: line {number} is not JSON ({e})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}: line {number} holds a JSON {type(row).__name__}, not an object")
        yield number, row


def _read_jsonl(path: Path) -> pd.DataFrame:
    return pd.DataFrame([row for _, row in jsonl_objects(path)])


def _one_per_index(table: pd.DataFrame, path: Path) -> tuple[pd.DataFrame, list[str]]:
    """Repeated indices are refused unless every repeat carries the same prediction; those are counted once,
    and said."""
    keys = table["index"].astype(str)
    repeated = keys.duplicated(keep=False)
    if repeated.any():
        answers = table.loc[repeated, "prediction"].astype(str).groupby(keys[repeated]).nunique()
        disagree = answers[answers > 1]
        if not disagree.empty:
            first = next(k for k in keys[repeated] if k in disagree.index)
            raise DataError(f"{path}: index {first} has {answers[first]} different predictions "
                            f"({len(disagree)} such index(es)); keep one prediction per index")
        extra = int(keys.duplicated(keep="first").sum())
        table = table[~keys.duplicated(keep="first")]
        return table, [f"{path}: {extra} row(s) repeat an index with the same prediction "
                       f"({int(keys[repeated].nunique())} index(es) repeated); each index is counted once"]
    return table, []


def empty_prediction_note(predictions: pd.DataFrame) -> str | None:
    """One note when predictions are empty (a model that answers nothing scores 0 without a word)."""
    empty = int(predictions["prediction"].map(lambda p: is_missing(p) or not str(p).strip()).sum())
    if not empty:
        return None
    return f"{empty} of {len(predictions)} predictions are empty" + (" (all of them)" if empty == len(predictions) else "")


def score_predictions(spec: BenchmarkSpec, meta: pd.DataFrame, predictions: pd.DataFrame, rules: str,
                      answer_mode: str = "generate", source: str = "predictions") -> ScoreReport:
    """Score `predictions` (index, prediction) against the benchmark table `meta` (rows with images)."""
    check_rules(rules)
    if not spec.answers:
        raise DataError(f"{spec.name} has no answers: submit the predictions TSV to the official server")
    keys = meta["index"].astype(str)
    known = set(keys)
    strays = [i for i in predictions["index"].astype(str) if i not in known]
    if strays:
        raise DataError(f"{source}: index {strays[0]} is not a row of {spec.name} "
                        f"({len(strays)} such row(s)); is it the right benchmark?")
    by_index = dict(zip(predictions["index"].astype(str), predictions["prediction"], strict=True))
    present = meta[keys.isin(by_index)].copy()
    present["prediction"] = [str(by_index[str(i)]) for i in present["index"]]
    if present.empty:
        raise DataError(f"{source}: no prediction matches a row of {spec.name}")
    verdicts, table, notes = spec.handler.score(present.drop(columns=["image", "line"], errors="ignore"), rules)
    missing = len(meta) - len(present)
    if missing:
        notes = [f"{missing} of {len(meta)} rows have no prediction: the scores cover the rest"] + notes
    if note := empty_prediction_note(predictions):
        notes.append(note)
    headline = spec.handler.headline_numbers(table, spec.headline)
    if not headline:
        notes.append(f"no headline: no scored row of split {spec.headline.row!r}; see the full table")
    return ScoreReport(spec.name, rules, answer_mode, headline, table, verdicts, len(present), missing, notes)

"""lmms-eval's `--log_samples` files as predictions: VLMEvalKit-exact, judge-free scores for what lmms-eval ran.

A `<date>_samples_<task>.jsonl` holds one JSON line per document: `doc_id` (the row of the task's split in the
Hugging Face copy it read), the response after the task's filters (`filtered_resps`: in the file lmms-eval
0.7.3 writes, the text itself; in memory a list), sometimes the raw `resps`, `target`, `input`, and the
task's metric payload (MMBench's carries the benchmark's `index`). The model's own text is taken: the first of
`resps` where the file keeps them, else `filtered_resps` (lmms-eval's six tasks filter by taking the first
response, the text unchanged).

A row is found by `doc_id` in the HF copy's table (its `hf_split` / `hf_row`, evalsuite/hf_copies.py), the
split being the task's (TASKS); with a TSV, only where the payload carries the benchmark's own index.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd

from evalsuite.data import BenchmarkData
from evalsuite.errors import DataError
from evalsuite.scoring import jsonl_objects

# lmms-eval 0.7.3's tasks over the six benchmarks -> (our benchmark, the HF copy's split they read)
TASKS = {"mmbench_en_dev": ("MMBench_DEV_EN", "dev"), "mmbench_en_dev_static": ("MMBench_DEV_EN", "dev"),
         "mmbench_cn_cc": ("CCBench", "test"), "mme": ("MME", "test"), "scienceqa_img": ("ScienceQA_TEST", "test"),
         "mmmu_val": ("MMMU_DEV_VAL", "validation"), "hallusion_bench_image": ("HallusionBench", "image")}
INDEX_PAYLOADS = ("index",)  # payload fields that hold the benchmark's own index


def task_of(path: Path) -> str | None:
    """The task a samples file is of, from its name (`..._samples_<task>.jsonl`)."""
    match = re.search(r"samples_(.+)\.jsonl$", path.name)
    return match.group(1) if match else None


def is_lmms_samples(path: Path) -> bool:
    """A .jsonl file whose first line holds a `doc_id` (lmms-eval's log_samples layout)."""
    if path.suffix != ".jsonl" or not path.is_file():
        return False
    with path.open(encoding="utf-8") as f:
        first = f.readline()
    try:
        return isinstance(row := json.loads(first), dict) and "doc_id" in row
    except ValueError:
        return False


def _text(value: Any) -> str:
    """The first string of a (nested) list of responses; a (logprob, is_greedy) pair is no text."""
    while isinstance(value, (list, tuple)) and value:
        value = value[0]
    if not isinstance(value, str):
        raise ValueError(f"not a generated text ({type(value).__name__}): a log-likelihood task's sample")
    return value


def _payload_index(row: dict) -> Any:
    for value in row.values():
        if isinstance(value, dict):
            for key in INDEX_PAYLOADS:
                if key in value:
                    return value[key]
    return None


def read_lmms_samples(path: Path, data: BenchmarkData, split: str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """(index, prediction) of every sample, and notes. `split`: the HF copy's split the task read (default: the
    task's, from the file name)."""
    task = task_of(path)
    if split is None and task in TASKS:
        expected, split = TASKS[task]
        if expected != data.spec.name:
            raise DataError(f"{path} is lmms-eval's {task}, a sample file of {expected}, not of {data.spec.name}")
    by_row = None
    if data.source is not None:
        if split is None:
            raise DataError(f"{path}: the task {task!r} is not one of {', '.join(TASKS)}; give the copy's split "
                            "(--hf-split)")
        mine = data.table[data.table["hf_split"] == split]
        by_row = dict(zip(mine["hf_row"].astype(int), mine["index"], strict=True))
    rows = []
    for number, row in jsonl_objects(path):
        try:
            text = _text(row["resps"] if row.get("resps") else row["filtered_resps"])
            doc_id = int(row["doc_id"])
        except (ValueError, KeyError, TypeError) as e:
            raise DataError(f"{path}: line {number} is not an lmms-eval sample ({type(e).__name__}: {e})") from None
        if by_row is not None:
            if doc_id not in by_row:
                raise DataError(f"{path}: line {number}: doc_id {doc_id} is not a row of split {split!r} of "
                                f"{data.path} (it has {len(by_row)}); is it the copy lmms-eval read?")
            index = by_row[doc_id]
        elif (index := _payload_index(row)) is None:
            raise DataError(f"{path}: line {number}: the sample carries no benchmark index; give the Hugging Face "
                            "copy lmms-eval read (--data DIR), where doc_id names the row")
        rows.append({"index": index, "prediction": text})
    if not rows:
        raise DataError(f"{path}: holds no samples")
    notes = [f"{path}: {len(rows)} lmms-eval samples of task {task or '?'}" + (f", split {split}" if split else "")
             + "; scored from the model's own responses with VLMEvalKit's rules (no judge)"]
    return pd.DataFrame(rows), notes

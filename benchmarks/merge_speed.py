"""Seconds to merge a run's predictions and write its outputs (`runner.finish`), against the number of rows.

Linear is the goal: the time per row should stay flat from 2,500 to 20,000 predictions (an earlier
version rebuilt the table's index set per prediction: 8,000 rows took 26 s).

    .venv/bin/python benchmarks/merge_speed.py
"""

from __future__ import annotations

import base64
import io
import json
import tempfile
import time
from pathlib import Path

import pandas as pd
from PIL import Image

from evalsuite.adapter import ModelCard
from evalsuite.benchmarks import benchmark
from evalsuite.data import load_benchmark_data
from evalsuite.runner import RunOptions, finish
from vlora.presets import preset


def mme_table(rows: int) -> pd.DataFrame:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buffer, format="PNG")
    image = base64.b64encode(buffer.getvalue()).decode()
    return pd.DataFrame({"index": range(rows), "image": [image] + ["0"] * (rows - 1),
                         "question": [f"Is it {i}? Please answer yes or no." for i in range(rows)],
                         "answer": ["Yes" if i % 2 else "No" for i in range(rows)],
                         "category": "color", "image_path": [f"color/{i // 2}.jpg" for i in range(rows)]})


def time_merge(rows: int, root: Path) -> float:
    path = root / f"MME_{rows}.tsv"
    mme_table(rows).to_csv(path, sep="\t", index=False)
    data = load_benchmark_data(benchmark("MME"), path, check_images=False)
    folder = root / "results" / f"run{rows}" / "MME"
    folder.mkdir(parents=True)
    with open(folder / "predictions.jsonl", "w") as f:
        for i in range(rows):
            f.write(json.dumps({"index": i, "prediction": "Yes"}) + "\n")
    card = ModelCard(name="bench", config=preset("vlora-tiny"), parameters={})
    start = time.perf_counter()
    result = finish(folder, card, data, RunOptions(results_root=root / "results", progress=False))
    seconds = time.perf_counter() - start
    assert result.complete and result.report is not None
    return seconds


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'rows':>8}{'seconds':>10}{'ms per 1000 rows':>20}")
        for rows in (2_500, 5_000, 10_000, 20_000):
            seconds = time_merge(rows, Path(tmp))
            print(f"{rows:>8}{seconds:>10.2f}{1000 * seconds / rows * 1000:>20.1f}")


if __name__ == "__main__":
    main()

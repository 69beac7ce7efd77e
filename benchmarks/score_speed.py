"""Time to score 100,000 predictions of each benchmark type (exact matching, no model).

Synthetic tables in each protocol's layout (no images) and predictions that mix right answers,
wrong letters, verbose sentences and unparseable text; scored by `score_predictions`, the same path
as `vlora-eval score`. Prints seconds and rows per second per protocol.

    python benchmarks/score_speed.py [--rows 100000] [--rules 2024-05]
"""

from __future__ import annotations

import argparse
import random
import time
from collections import deque

import pandas as pd

from evalsuite.benchmarks import benchmark
from evalsuite.scoring import score_predictions

ANSWERS = ["{a}", "{a}.", "The answer is {a}", "I think it is {t}", "no idea", "({w}) maybe"]


def _mcq(rows: int, rng: random.Random, circular: bool) -> pd.DataFrame:
    out, g = [], 0
    while len(out) < rows:
        k = rng.choice([2, 3, 4])
        labels = "ABCD"[:k]
        options = [f"thing {g}-{i}" for i in range(k)]
        answer = rng.randrange(k)
        for j in range(k if circular else 1):
            rot = deque(labels)
            rot.rotate(j)
            out.append({"index": g + j * 1_000_000, "question": "Q?", **{rot[i]: options[i] for i in range(k)},
                        "answer": rot[answer], "split": "dev", "category": f"c{g % 20}",
                        "l2-category": f"l{g % 6}", "image": "x" * 100})
        g += 1
    return pd.DataFrame(out[:rows])


def _predict(table: pd.DataFrame, rng: random.Random) -> pd.DataFrame:
    predictions = []
    for row in table.to_dict("records"):
        template = rng.choice(ANSWERS)
        wrong = rng.choice([c for c in "ABCD" if c in row and isinstance(row[c], str)] or ["B"])
        predictions.append(template.format(a=row["answer"], t=row.get(row["answer"], "yes"), w=wrong))
    return pd.DataFrame({"index": table["index"], "prediction": predictions})


def tables(rows: int, rng: random.Random) -> dict[str, pd.DataFrame]:
    mmmu = _mcq(rows, rng, circular=False).assign(split="validation")
    mmmu.loc[mmmu.index % 5 == 0, ["A", "B", "C", "D"]] = None
    mmmu.loc[mmmu.index % 5 == 0, "answer"] = "42"
    mme = pd.DataFrame({"index": range(rows), "question": "Is it? Please answer yes or no.",
                        "answer": ["Yes", "No"] * (rows // 2), "image": "x" * 100,
                        "category": [("color", "count", "OCR", "code_reasoning")[(i // 2) % 4] for i in range(rows)],
                        "image_path": [f"{i // 2}.jpg" for i in range(rows)]})
    hallusion = pd.DataFrame({"index": [f"VS_chart_1_{i // 4}_{(i // 2) % 2}_{i % 2}" for i in range(rows)],
                              "question": "Q?", "answer": rng.choices(["Yes", "No"], k=rows), "image": "x" * 100,
                              "category": "VS", "l2-category": "VS_chart"})
    return {"MMBench_DEV_EN": _mcq(rows, rng, circular=True), "ScienceQA_VAL": _mcq(rows, rng, circular=False),
            "MMMU_DEV_VAL": mmmu, "MME": mme, "HallusionBench": hallusion}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rules", default="2024-05")
    args = parser.parse_args()
    rng = random.Random(0)
    print(f"scoring {args.rows:,} predictions per benchmark type, rules {args.rules}")
    print(f"{'benchmark':<16}{'protocol':<16}{'seconds':>9}{'rows/s':>12}")
    for name, table in tables(args.rows, rng).items():
        spec = benchmark(name)
        predictions = _predict(table, rng) if spec.type == "MCQ" else pd.DataFrame(
            {"index": table["index"], "prediction": rng.choices(["Yes", "No", "yes, it is", "I don't know"], k=len(table))})
        start = time.perf_counter()
        report = score_predictions(spec, table, predictions, args.rules)
        seconds = time.perf_counter() - start
        print(f"{name:<16}{spec.protocol:<16}{seconds:>9.2f}{len(table) / seconds:>12,.0f}   "
              f"headline {next(iter(report.headline.values())):.1f}")


if __name__ == "__main__":
    main()

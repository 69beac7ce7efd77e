"""How far the mini-suite's draw moves a model's score: the embedded models on the MMBench of other draws of the
mini-suite (other seeds, the embedded recipe's scale) beside the shipped draw (the embedded mini-suite, seed 0).

MMBench's circular score over 120 groups carries a bootstrap interval of about +-9 points, but a new draw also
asks other questions about other scenes. A model's score on several draws says what it can do better than one
draw's. Another draw's benchmark scenes were not kept out of the embedded training set (only the shipped
draw's are), so each draw is also scored without the groups whose image is one of the training images.

    .venv/bin/python benchmarks/draw_noise.py [--seeds 1 2 3] [--model vlora ...] [--out FILE.md]

Every number comes from `vlora-eval run` (the embedded models, scored as VLMEvalKit scores). About a minute
per draw and model on 2 cores, plus the first run's set-up. Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

CLI = Path(sys.executable).with_name("vlora-eval")
BENCH = "MMBench_DEV_EN"


def training_image_keys(suite: Path) -> set[str]:
    """The canonical keys of the embedded mini-suite's training images (what the embedded models saw)."""
    from PIL import Image

    from evalsuite.mini.world import pixel_key

    return {pixel_key(Image.open(path).convert("RGB")) for path in sorted((suite / "train" / "images").glob("*.png"))}


def group_image_keys(tsv: Path) -> dict[int, str]:
    """MMBench index -> the canonical key of the row's image, read as a run reads it."""
    from evalsuite.benchmarks import benchmark
    from evalsuite.data import load_benchmark_data
    from evalsuite.mini.world import pixel_key

    data = load_benchmark_data(benchmark(BENCH), tsv, check_images=False)
    return {int(data.table["index"].iloc[position]): pixel_key(data.images(position)[0].convert("RGB"))
            for position in range(len(data.table))}


def circular_scores(model: str, suite: Path, results: Path, seen: set[str]) -> dict[str, float]:
    """`vlora-eval run` on the suite's MMBench; the circular score over all groups and over unseen ones."""
    done = subprocess.run([str(CLI), "run", "--model", model, "--data-dir", str(suite), "--bench", "mmbench",
                           "--results", str(results), "--json"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if done.returncode != 0:
        raise SystemExit(f"vlora-eval run --model {model} --data-dir {suite} failed:\n{done.stderr[-2000:]}")
    verdicts = pd.read_csv(next(results.glob(f"*/{BENCH}/verdicts.tsv")), sep="\t")
    groups = verdicts.groupby("g_index")["hit"].min()  # a group counts when every circular copy is right
    keys = group_image_keys(suite / f"{BENCH}.tsv")
    unseen = [g for g in groups.index if keys[int(g)] not in seen]
    return {"groups": len(groups), "score": 100 * groups.mean(), "seen_groups": len(groups) - len(unseen),
            "unseen_score": 100 * groups[unseen].mean()}


def main() -> None:
    from evalsuite.mini import write_mini_suite
    from vlora_eval.workflows import embedded

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--model", action="append", default=None, help="embedded model (repeatable; default vlora)")
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this markdown file")
    args = parser.parse_args()
    models = args.model or ["vlora"]
    shipped = embedded.mini_suite(lambda message: print(message, file=sys.stderr), training=True)
    seen = training_image_keys(shipped)
    work = Path(tempfile.mkdtemp(prefix="vlora-eval-draws-"))
    settings = embedded.recipe().mini_suite
    suites = {settings.seed: shipped}
    for seed in args.seeds:
        suites[seed] = work / f"seed{seed}"
        write_mini_suite(suites[seed], seed=seed, scale=settings.scale, training=False)
    lines = ["| model | draw (seed) | groups | circular score | groups showing a training image | score without them |",
             "|---|---|---:|---:|---:|---:|"]
    for model in models:
        scores = []
        for seed, suite in suites.items():
            row = circular_scores(model, suite, work / f"results-{model}-{seed}", seen)
            scores.append(row["unseen_score"])
            label = f"{seed} (shipped)" if suite == shipped else str(seed)
            lines.append(f"| {model} | {label} | {row['groups']} | {row['score']:.1f} | {row['seen_groups']} | "
                         f"{row['unseen_score']:.1f} |")
            print(lines[-1], flush=True)
        lines.append(f"| {model} | mean of {len(scores)} draws | | | | {sum(scores) / len(scores):.1f} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(f"# MMBench on other draws of the mini-suite\n\nRegenerate: `.venv/bin/python "
                            f"benchmarks/draw_noise.py --seeds {' '.join(map(str, args.seeds))} "
                            + " ".join(f"--model {m}" for m in models) + f" --out {args.out}`\n\n"
                            f"{text}\n", encoding="utf-8")
    print(json.dumps({"work": str(work)}), file=sys.stderr)


if __name__ == "__main__":
    main()

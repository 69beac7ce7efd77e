"""The mini-suite: small versions of the six benchmarks, in VLMEvalKit's exact TSV formats, drawn from a
deterministic synthetic world (world.py), plus LLaVA-format training data from disjoint scenes.

    write_mini_suite(out, seed=0, scale=1) -> {name: path}

Layout: out/{MMBench_DEV_EN,CCBench,MME,HallusionBench,ScienceQA_VAL,MMMU_DEV_VAL}.tsv,
out/train/{pretrain,finetune}.json, out/train/images/*.png, out/README.md.
Same seed and scale, byte-identical files. Each file draws from its own random stream, seeded by
(seed, file name).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd

from evalsuite.mini.training import write_training
from evalsuite.mini.writers import ImageBank, write_ccbench, write_mmbench, write_mmmu, write_scienceqa
from evalsuite.mini.writers_yn import write_hallusionbench, write_mme

__all__ = ["BENCHMARKS", "write_mini_suite"]

BENCHMARKS = {"MMBench_DEV_EN": write_mmbench, "CCBench": write_ccbench, "MME": write_mme,
              "HallusionBench": write_hallusionbench, "ScienceQA_VAL": write_scienceqa,
              "MMMU_DEV_VAL": write_mmmu}


def stream(seed: int, name: str) -> random.Random:
    """The random stream of one output file (a string seed: stable across runs and Python versions)."""
    return random.Random(f"vlora-eval mini-suite/{seed}/{name}")


def write_mini_suite(out: Path, seed: int = 0, scale: int = 1) -> dict[str, Path]:
    """Write the six benchmark TSVs and the training data under `out`; return {name: path} with keys
    'MMBench_DEV_EN', 'CCBench', 'MME', 'HallusionBench', 'ScienceQA_VAL', 'MMMU_DEV_VAL',
    'pretrain' (JSON), 'finetune' (JSON). `scale` multiplies the number of questions/samples."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, not {seed!r}")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive int, not {scale!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bank = ImageBank()
    paths: dict[str, Path] = {}
    for name, writer in BENCHMARKS.items():
        paths[name] = writer(out / f"{name}.tsv", stream(seed, name), bank, scale)
    paths.update(write_training(out / "train", stream(seed, "train"), scale, bank.keys))
    _write_readme(out, seed, scale, paths, bank)
    return paths


def _write_readme(out: Path, seed: int, scale: int, paths: dict[str, Path], bank: ImageBank) -> None:
    lines = ["# vlora-eval mini-suite", "",
             "Synthetic, deterministic small versions of six benchmarks in VLMEvalKit's TSV formats",
             "(PIL-drawn shapes, words, code, sums, bar charts and tables), plus LLaVA-format training data",
             "whose scenes never appear in a benchmark. Written by `evalsuite.mini.write_mini_suite`.",
             "Not the real benchmarks: scores test a pipeline, or a model trained on the training data.",
             "", f"- seed: {seed}, scale: {scale}",
             f"- benchmark images: {bank.count} ({len(bank.keys)} distinct)", ""]
    lines += ["| file | rows | questions |", "|---|---|---|"]
    for name in BENCHMARKS:
        frame = pd.read_csv(paths[name], sep="\t")
        circular = name in ("MMBench_DEV_EN", "CCBench")
        questions = int((frame["index"] < 1e6).sum()) if circular else len(frame)
        lines.append(f"| {paths[name].name} | {len(frame)} | {questions} |")
    images = len(list((out / "train" / "images").glob("mini_*.png")))
    for name in ("pretrain", "finetune"):
        records = len(json.loads(paths[name].read_text(encoding="utf-8")))
        lines.append(f"| train/{paths[name].name} | {records} records | images: {images} in train/images |")
    (out / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")

"""The mini-suite: small versions of the six benchmarks, in VLMEvalKit's exact TSV formats, drawn from a
deterministic synthetic world (world.py), plus LLaVA-format training data from disjoint scenes.

    write_mini_suite(out, seed=0, scale=1, train_scale=None, training=True) -> {name: path}

Layout: out/{MMBench_DEV_EN,CCBench,MME,HallusionBench,ScienceQA_VAL,MMMU_DEV_VAL}.tsv,
out/train/{pretrain,finetune}.json, out/train/images/*.png, out/README.md.
Same seed and scales, byte-identical files. Each file draws from its own random stream, seeded by
(seed, file name), so the training set's size (`train_scale`) never changes a benchmark file, and a suite
written without its training set (`training=False`: what evaluation alone needs, ~50x faster to write) has
the same benchmark files; writing it again with `training=True` adds the training set.

The suite is drawn in a staging folder inside `out`, then moved into place. A file already in `out`
is replaced only when the tool wrote it (listed with its md5 in `out/.vlora-eval-mini.json`) or with
`force`; otherwise nothing is written and the first such file is named. Pointed at a real
`~/LMUData`, it never replaces the user's benchmark files.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from evalsuite.benchmarks import benchmark
from evalsuite.errors import DataError
from evalsuite.mini.items import AnswerStyle
from evalsuite.mini.training import DEFAULT_STYLE, write_training
from evalsuite.mini.writers import ImageBank, write_ccbench, write_mmbench, write_mmmu, write_scienceqa
from evalsuite.mini.writers_yn import write_hallusionbench, write_mme

__all__ = ["BENCHMARKS", "MARKER", "benchmark_image_keys", "is_written", "write_mini_suite"]

MARKER = ".vlora-eval-mini.json"  # {"files": {relative path: md5}} of what the tool wrote in the folder

BENCHMARKS = {"MMBench_DEV_EN": write_mmbench, "CCBench": write_ccbench, "MME": write_mme,
              "HallusionBench": write_hallusionbench, "ScienceQA_VAL": write_scienceqa,
              "MMMU_DEV_VAL": write_mmmu}


def stream(seed: int, name: str) -> random.Random:
    """The random stream of one output file (a string seed: stable across runs and Python versions)."""
    return random.Random(f"vlora-eval mini-suite/{seed}/{name}")


def write_mini_suite(out: Path, seed: int = 0, scale: int = 1, force: bool = False,
                     style: AnswerStyle = DEFAULT_STYLE, train_scale: int | None = None,
                     training: bool = True) -> dict[str, Path]:
    """Write the six benchmark TSVs and the training data under `out`; return {name: path} with keys
    'MMBench_DEV_EN', 'CCBench', 'MME', 'HallusionBench', 'ScienceQA_VAL', 'MMMU_DEV_VAL',
    'pretrain' (JSON), 'finetune' (JSON) (these two only with `training`). `scale` multiplies the number of
    benchmark questions, `train_scale` (default: `scale`) the number of training scenes; `style` is how the
    training data answers (evalsuite/mini/items.py).
    Files in `out` that the tool did not write are never replaced unless `force`."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, not {seed!r}")
    train_scale = scale if train_scale is None else train_scale
    for name, value in (("scale", scale), ("train_scale", train_scale)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, not {value!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".vlora-eval-mini-", dir=out))
    try:
        bank = ImageBank()
        for name, writer in BENCHMARKS.items():
            writer(staging / f"{name}.tsv", stream(seed, name), bank, scale)
        if training:
            write_training(staging / "train", stream(seed, "train"), train_scale, bank.keys, style)
        _write_readme(staging, seed, scale, train_scale, bank, style, training)
        _publish(staging, out, force)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    paths = {name: out / f"{name}.tsv" for name in BENCHMARKS}
    if training:
        paths.update({name: out / "train" / f"{name}.json" for name in ("pretrain", "finetune")})
    return paths


def is_written(folder: Path, training: bool = True) -> bool:
    """Whether `folder` holds a whole mini-suite (its marker is written last), with its training set if `training`."""
    try:
        files = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return isinstance(files, dict) and (not training or "train/finetune.json" in files)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def written_by_the_tool(path: Path, md5: str) -> bool:
    """Whether a TSV is the mini-suite's, as `data mini` (or the embedded default) wrote it: listed with this
    md5 in its folder's marker (an edited copy is not)."""
    try:
        written = json.loads((path.parent / MARKER).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return isinstance(written, dict) and written.get(path.name) == md5


def _publish(staging: Path, out: Path, force: bool) -> None:
    """Move the staged files into `out`, replacing only the tool's own files (or any, with `force`);
    own files of an earlier suite that this one does not have are removed."""
    marker = out / MARKER
    try:
        written = json.loads(marker.read_text(encoding="utf-8"))["files"] if marker.is_file() else {}
        if not isinstance(written, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise DataError(f"{marker} is damaged: cannot tell which files the tool wrote; remove it or pass --force") from None
    new = {p.relative_to(staging).as_posix(): p for p in sorted(staging.rglob("*")) if p.is_file()}

    def ours(rel: str) -> bool:
        return (out / rel).is_file() and written.get(rel) == _md5(out / rel)

    foreign = [rel for rel in new if (out / rel).exists() and not ours(rel)]
    if foreign and not force:
        raise DataError(f"{out / foreign[0]} exists and was not written by vlora-eval ({len(foreign)} such file(s)); "
                        "nothing was written: choose another --out, or pass --force to replace them")
    if not force and any((out / rel).is_dir() for rel in new):
        raise DataError(f"{out / next(rel for rel in new if (out / rel).is_dir())} is a folder; nothing was written")
    stale = [rel for rel in written if rel not in new and ours(rel)]
    record = {}
    for rel, path in new.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        record[rel] = _md5(path)
        path.replace(out / rel)
    for rel in stale:
        (out / rel).unlink()
    marker.write_text(json.dumps({"format": "vlora-eval mini-suite", "files": record}, indent=1), encoding="utf-8")


def _write_readme(out: Path, seed: int, scale: int, train_scale: int, bank: ImageBank, style: AnswerStyle,
                  training: bool) -> None:
    paths = {name: out / f"{name}.tsv" for name in BENCHMARKS}
    paths.update({name: out / "train" / f"{name}.json" for name in ("pretrain", "finetune")})  # read if `training`
    lines = ["# vlora-eval mini-suite", "",
             "Synthetic, deterministic small versions of six benchmarks in VLMEvalKit's TSV formats",
             "(PIL-drawn shapes, words, code, sums, bar charts and tables), plus LLaVA-format training data",
             "whose scenes never appear in a benchmark. Written by `evalsuite.mini.write_mini_suite`.",
             "Not the real benchmarks: scores test a pipeline, or a model trained on the training data.",
             "", f"- seed: {seed}, scale: {scale}, training scale: {train_scale}",
             f"- benchmark images: {bank.count} ({len(bank.keys)} distinct)",
             f"- training answers ({style.mcq}, {style.yes_no}): {style.describe()}", ""]
    lines += ["| file | rows | questions |", "|---|---|---|"]
    for name in BENCHMARKS:
        frame = pd.read_csv(paths[name], sep="\t")
        questions = benchmark(name).handler.question_count(frame)
        lines.append(f"| {paths[name].name} | {len(frame)} | {questions} |")
    if training:
        images = len(list((out / "train" / "images").glob("mini_*.png")))
        for name in ("pretrain", "finetune"):
            records = len(json.loads(paths[name].read_text(encoding="utf-8")))
            lines.append(f"| train/{paths[name].name} | {records} records | images: {images} in train/images |")
    else:
        lines += ["", "The training set is not written here (written with `training=True`, when a model is trained)."]
    (out / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def benchmark_image_keys(folder: Path) -> set[str]:
    """The canonical keys (world.pixel_key) of every image in a written suite's six TSVs, read as a run reads
    them (evalsuite.data): what training scenes drawn elsewhere (the foundations' corpus) must avoid."""
    from evalsuite.data import load_benchmark_data
    from evalsuite.mini.world import pixel_key

    keys: set[str] = set()
    for name in BENCHMARKS:
        data = load_benchmark_data(benchmark(name), Path(folder) / f"{name}.tsv", check_images=False)
        groups = {data.image_group(position): position for position in range(len(data.table))}  # each image once
        keys |= {pixel_key(image.convert("RGB")) for position in groups.values() for image in data.images(position)}
    return keys

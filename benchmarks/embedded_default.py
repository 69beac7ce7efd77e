"""The embedded default, measured: the main job on a clean cache, again on a warm one, then the three
embedded models on all six mini-benchmarks beside chance and the answer key.

    .venv/bin/python benchmarks/embedded_default.py [--out results/mini] [--cache DIR]

Writes OUT/scores.csv, OUT/scores.md and OUT/scores.png (all numbers from the project's own commands:
`vlora-eval run`, scored as VLMEvalKit scores), and the three models' runs under OUT/runs (their
manifests are what `vlora-eval report` links in Table 1). Each model also runs two controls: its images
shuffled across rows (`run --shuffle-images`; the score must fall toward chance) and the foundations only
(the connector untrained; a floor). Goals: first run <= 5 min, second <= 1 min; VLoRA above chance on all
six (outside the bootstrap interval), at least halfway from chance to the answer key on four.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCHES = ["MMBench_DEV_EN", "CCBench", "MME", "HallusionBench", "ScienceQA_VAL", "MMMU_DEV_VAL"]
MODELS = ["vlora", "llava-v1.5", "llava-v1.5-qformer"]
CLI = Path(sys.executable).with_name("vlora-eval")


def run(args: list[str], env: dict[str, str]) -> tuple[float, list[dict]]:
    start = time.perf_counter()
    done = subprocess.run([str(CLI), *args, "--json"], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"vlora-eval {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - start, json.loads(done.stdout)


def headline(scores: dict) -> tuple[str, float]:
    name, value = next(iter(scores["headline"].items()))
    return name, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/mini"))
    parser.add_argument("--cache", type=Path, default=None, help="cache folder (default: a new temporary one)")
    args = parser.parse_args()
    cache = args.cache or Path(tempfile.mkdtemp(prefix="vlora-eval-cache-"))
    work = Path(tempfile.mkdtemp(prefix="vlora-eval-run-"))
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "HOME": str(work / "home"), "PYTHONWARNINGS": "ignore"}
    env.pop("LMUData", None)
    results = ["--results", str(work / "results")]

    first, _ = run(["run", "--model", "vlora", "--bench", "mmbench", *results], env)
    second, _ = run(["run", "--model", "vlora", "--bench", "mmbench", *results, "--fresh"], env)
    print(f"first run (clean cache; the shipped embedded model installed, or trained if the recipe changed): {first:.0f} s; second run: {second:.0f} s", flush=True)

    from evalsuite.baselines import answer_key, chance
    from evalsuite.benchmarks import benchmark
    from evalsuite.data import load_benchmark_data
    from vlora.schema import to_data
    from vlora_eval.workflows.embedded import mini_suite, recipe

    os.environ.update({"XDG_CACHE_HOME": str(cache)})
    suite = mini_suite(say=lambda m: None, training=True)
    rows = []
    for bench in BENCHES:
        data = load_benchmark_data(benchmark(bench), suite / f"{bench}.tsv", embedded=True)
        name, value = next(iter(chance(data, "2024-05").items()))
        rows.append({"benchmark": bench, "metric": name, "model": "chance", "score": value, "seconds": None})
        rows.append({"benchmark": bench, "metric": name, "model": "answer key",
                     "score": answer_key(data, "2024-05")[name], "seconds": None})
    timings = {"first_run_seconds": round(first, 1), "second_run_seconds": round(second, 1)}
    seeing = {}
    every = sum((["--bench", b] for b in BENCHES), [])
    for model in MODELS:
        seconds, out = run(["run", "--model", model, *every, "--results", str(args.out / "runs"), "--fresh"], env)
        timings[f"{model}_all_six_seconds"] = round(seconds, 1)
        rows += score_rows(model, "trained", out, suite)
        _, out = run(["run", "--model", model, *every, "--results", str(args.out / "runs"), "--fresh",
                      "--shuffle-images"], env)
        rows += score_rows(model, "shuffled images", out, suite)
        floor = foundations_only(model, work / "floor" / model)
        _, out = run(["run", "--model", model, "--checkpoint", str(floor), *every, "--results", str(work / "floor-runs"),
                      "--fresh"], env)
        rows += score_rows(model, "foundations only", out, suite)
        seeing[model] = image_dependence(model, suite)
    write(args.out, rows, timings, seeing, to_data(recipe()))


def score_rows(model: str, condition: str, out: list[dict], suite: Path) -> list[dict]:
    """One row per benchmark: the headline, its bootstrap 95% interval over questions, the run's seconds."""
    rows = []
    for entry in out:
        name, value = headline(entry["scores"])
        low, high = interval(entry["benchmark"], Path(entry["folder"]), suite)[name]
        rows.append({"benchmark": entry["benchmark"], "metric": name, "model": model, "condition": condition,
                     "score": value, "low": low, "high": high, "seconds": entry["seconds"]})
    return rows


def interval(bench: str, folder: Path, suite: Path) -> dict[str, tuple[float, float]]:
    import pandas as pd

    from evalsuite.benchmarks import benchmark
    from evalsuite.data import load_benchmark_data
    from evalsuite.predictions import read_folder
    from evalsuite.uncertainty import bootstrap_interval

    data = load_benchmark_data(benchmark(bench), suite / f"{bench}.tsv", embedded=True)
    records, _ = read_folder(folder)  # as the runner reads a run back
    predictions = pd.DataFrame({"index": list(records), "prediction": [r["prediction"] for r in records.values()]})
    return bootstrap_interval(data.spec, data.table, predictions, "2024-05")


def foundations_only(model_name: str, folder: Path) -> Path:
    """The floor: the model on the foundations with its connector untrained (VLoRA's W_s is zero: the LLM alone)."""
    from vlora.checkpoints import save_model
    from vlora_eval.workflows.embedded import foundations, plan
    from vlora_eval.workflows.train import TrainingSet, starting_model

    current = plan(model_name)
    model = starting_model(current.model, TrainingSet({}, folder), foundations=foundations(),
                           seed=current.recipes()[0].seed).model
    save_model(model, folder)
    return folder


def image_dependence(model_name: str, suite: Path) -> dict[str, dict[str, float]]:
    """Does the model use the image? The finished model's mean loss per learned token on each stage's data
    (captions: pre-training's; answers: fine-tuning's) with each record's own image and with the images
    shuffled (the same texts): a model that sees does better with its own."""
    from vlora.placement import Placement
    from vlora_eval.workflows.embedded import trained_model

    final = trained_model(model_name, placement=Placement.resolve("cpu"), say=lambda m: None)  # <model>/finetune/model
    return {stage: shuffled_image_loss(final, suite, stage) for stage in ("pretrain", "finetune")}


def shuffled_image_loss(folder: Path, suite: Path, stage: str, samples: int = 256) -> dict[str, float]:
    import dataclasses

    import torch

    from vlora.checkpoints import load_model
    from vlora.training.data import ImageBatchCollator, load_training_data
    from vlora.training.loop import learned_tokens, summed_token_loss

    model = load_model(folder).eval()
    data = load_training_data(suite / "train" / f"{stage}.json", suite / "train", model.tokenizer, stage,
                              max_length=1024, positions_per_image=model.config.positions_per_image,
                              cache_dir=Path(tempfile.mkdtemp()))
    collate = ImageBatchCollator(model.collate, data)
    rows = [data.dataset[i] for i in range(samples)]
    shuffled = [dict(r, image=rows[(i + 7) % samples]["image"]) for i, r in enumerate(rows)]
    losses = {}
    with torch.no_grad():
        for name, chunk in (("own image", rows), ("shuffled images", shuffled)):
            total = tokens = 0.0
            for at in range(0, samples, 32):
                batch = collate(chunk[at:at + 32])
                logits = model(dataclasses.replace(batch, labels=None)).logits
                total += float(summed_token_loss(logits, batch.labels))
                tokens += learned_tokens(batch)
            losses[name] = round(total / tokens, 4)
    return losses


def write(out: Path, rows: list[dict], timings: dict, seeing: dict, made_of: dict) -> None:
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows)
    frame.to_csv(out / "scores.csv", index=False)
    reference = frame[frame["model"].isin(["chance", "answer key"])].pivot_table(
        index=["benchmark", "metric"], columns="model", values="score", sort=False)
    lines = ["# The embedded default: tiny models on the foundations, trained on the mini-suite", "",
             "Regenerate: `.venv/bin/python benchmarks/embedded_default.py` (a clean cache; CPU). Every model starts "
             "from the shipped foundations (vlora_eval/foundations/) and runs the paper's two stages (trained once by "
             "`vlora-eval embedded build`, shipped in vlora_eval/embedded_models/ and installed by the first run); "
             "answer style "
             f"{made_of['mini_suite']['answer_style']} (README: Answer style).", "",
             f"Timings (seconds): {json.dumps(timings)}", ""]
    trained = {}
    for model in MODELS:
        mine = frame[frame["model"] == model].set_index(["benchmark", "metric", "condition"])
        lines += [f"## {model}", "",
                  "| benchmark | metric | chance | trained [95% interval] | shuffled images | foundations only | "
                  "answer key | share of the way from chance to the key | above chance (interval) |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---|"]
        for (bench, metric), ref in reference.iterrows():
            got = mine.loc[(bench, metric, "trained")]
            share = (got["score"] - ref["chance"]) / (ref["answer key"] - ref["chance"])
            trained[(model, bench)] = (share, got["low"] > ref["chance"])
            lines.append(f"| {bench} | {metric} | {ref['chance']:.1f} | {got['score']:.1f} [{got['low']:.1f}, "
                         f"{got['high']:.1f}] | {mine.loc[(bench, metric, 'shuffled images')]['score']:.1f} | "
                         f"{mine.loc[(bench, metric, 'foundations only')]['score']:.1f} | {ref['answer key']:.1f} | "
                         f"{share:.2f} | {'yes' if got['low'] > ref['chance'] else 'no'} |")
        lines.append("")
    lines += ["## The goals (issue 23)", ""]
    for model in MODELS:
        halfway = sum(trained[(model, b)][0] >= 0.5 for b in BENCHES)
        above = sum(bool(trained[(model, b)][1]) for b in BENCHES)
        lines.append(f"- {model}: at least halfway from chance to the key on {halfway} of 6; above chance (the "
                     f"interval's low end) on {above} of 6")
    lines += ["", "Do the models use the image? Loss per learned token on 256 training records with their own images "
              "and with the images shuffled (the same texts), of the finished models: captions (the pre-training data) and "
              "answers (the fine-tuning data):",
              "", "| model | captions, own image | captions, shuffled | answers, own image | answers, shuffled |",
              "|---|---:|---:|---:|---:|",
              *[f"| {m} | {v['pretrain']['own image']:.3f} | {v['pretrain']['shuffled images']:.3f} | "
                f"{v['finetune']['own image']:.3f} | {v['finetune']['shuffled images']:.3f} |" for m, v in seeing.items()],
              "", "The recipe (vlora_eval/workflows/embedded.yaml):", "", "```json", json.dumps(made_of, indent=1),
              "```", ""]
    (out / "scores.md").write_text("\n".join(lines), encoding="utf-8")
    wide = frame[frame["condition"].isin(["trained"]) | frame["model"].isin(["chance", "answer key"])].pivot_table(
        index=["benchmark", "metric"], columns="model", values="score", sort=False)
    plot(wide[["chance", *MODELS, "answer key"]], out / "scores.png")
    print("\n".join(lines))


def plot(wide, path: Path) -> None:
    from matplotlib.figure import Figure

    share = wide.sub(wide["chance"], axis=0).div(wide["answer key"] - wide["chance"], axis=0)
    fig = Figure(figsize=(10, 4))
    ax = fig.subplots()
    labels = [bench for bench, _ in share.index]
    width = 0.25
    for i, model in enumerate(MODELS):
        ax.bar([x + (i - 1) * width for x in range(len(labels))], share[model], width, label=model)
    ax.axhline(0.0, color="grey", lw=0.8, label="chance")
    ax.axhline(0.5, color="grey", lw=0.8, ls="--", label="halfway to the answer key")
    ax.set_xticks(range(len(labels)), labels, rotation=15)
    ax.set_ylabel("(score - chance) / (key - chance)")
    ax.set_title("Embedded tiny models on the mini-suite (0 = chance, 1 = answer key)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()

"""Stage-1 (pretrain) training throughput of VLoRA, LLaVA-v1.5 and LLaVA-v1.5-QFormer, side by side, beside
the FLOPs of one training step (issue 23: the paper's training-cost claim).

The small configuration (vlora/presets.py: h = 512, 8 blocks, CLIP at 336 px, 576 patches; VLoRA r = 16,
N = 2; the Q-Former with 128 queries), the release's stage 1 (pretrain: the plain template, captions of the
mini-suite, only the connector learns, the LLM and CLIP frozen) through the project's own training path
(vlora_eval/workflows/train.py: accelerate, AdamW, the collator decoding images per batch), float32 on the CPU.
samples/s over the steps after the first (warm-up), median of --repeats runs, the three models interleaved
(repeat > model). FLOPs of one step (forward + backward) counted by torch's FlopCounterMode on the real
model and batch: LLaVA's LLM runs over 576 visual tokens + the caption, VLoRA's over the caption and one
masked slot; in stage 1 the backward pass still runs through the LLM (to reach the connector), but computes
no weight gradients of the frozen LLM.

    python benchmarks/training_throughput.py                         # prints the table
    python benchmarks/training_throughput.py --out results/throughput   # + training.md / training.csv

Timings are only worth committing from a quiet machine. Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from vlora.connector_kinds import KINDS
from vlora.placement import Placement
from vlora.presets import preset
from vlora.training import official_recipe


def training_set(folder: Path):
    from evalsuite.mini import write_mini_suite
    from vlora_eval.workflows.train import TrainingSet

    write_mini_suite(folder, seed=0, scale=1)
    return TrainingSet({"pretrain": folder / "train" / "pretrain.json"}, folder / "train")


def step_flops(model, data, batch_size: int) -> float:
    """FLOPs of one pretrain step's forward + backward on a real batch (connector-only gradients)."""
    import dataclasses

    from torch.utils.flop_counter import FlopCounterMode

    from vlora.training.data import ImageBatchCollator, load_training_data
    from vlora.training.loop import summed_token_loss

    tokenised = load_training_data(data.files["pretrain"], data.images, model.tokenizer, "pretrain", max_length=1024,
                                   positions_per_image=model.config.positions_per_image,
                                   cache_dir=Path(tempfile.mkdtemp()))
    batch = ImageBatchCollator(model.collate, tokenised)([tokenised.dataset[i] for i in range(batch_size)])
    model.set_trainable(["connector"])
    model.train()
    with FlopCounterMode(display=False) as counter:
        logits = model(dataclasses.replace(batch, labels=None)).logits
        summed_token_loss(logits, batch.labels).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / batch_size


def run_once(name: str, data, work: Path, steps: int, batch_size: int, placement: Placement) -> float:
    """samples/s of one stage-1 run, over the steps after the first."""
    from vlora_eval.workflows.train import run_stage, starting_model

    config = preset(f"{name}-small")
    model = starting_model(config, data, seed=0, say=lambda m: None).model
    recipe = official_recipe("pretrain", batch_size=batch_size, max_steps=steps, dtype="float32",
                             gradient_checkpointing=False, max_length=1024, save_every=0, log_every=1, warmup_ratio=0.0)
    out = Path(tempfile.mkdtemp(dir=work))
    run_stage(model, recipe, data, out, placement=placement, start="random initialisation (benchmark)", progress=False,
              say=lambda m: None)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    seconds = log[-1]["seconds"] - log[0]["seconds"]
    return sum(r["samples"] for r in log[1:]) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="write training.md / training.csv here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    placement = Placement.resolve("cpu", "float32", args.threads)
    work = Path(tempfile.mkdtemp(prefix="training-throughput-"))
    data = training_set(work / "suite")
    names = [kind.name for kind in KINDS.values()]
    runs: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(args.repeats):
        for name in names:
            runs[name].append(run_once(name, data, work, args.steps, args.batch_size, placement))
            print(f"repeat {repeat + 1}: {name}: {runs[name][-1]:.2f} samples/s", flush=True)
    from vlora_eval.workflows.train import starting_model

    rows = []
    for kind in KINDS.values():
        model = starting_model(preset(f"{kind.name}-small"), data, seed=0, say=lambda m: None).model
        rows.append({"model": kind.model_name, "visual_tokens": model.config.visual_tokens,
                     "samples_per_s": statistics.median(runs[kind.name]),
                     "step_gflops_per_sample": step_flops(model, data, args.batch_size) / 1e9})
    llava = next(r for r in rows if r["model"] == "llava-v1.5")
    for row in rows:
        row["speed_vs_llava"] = row["samples_per_s"] / llava["samples_per_s"]
        row["flops_vs_llava"] = row["step_gflops_per_sample"] / llava["step_gflops_per_sample"]
    lines = [f"Stage-1 (pretrain) training throughput, small configuration (h = 512, 8 blocks, 576 patches), "
             f"float32, {args.threads} CPU thread(s), torch {torch.__version__}; batch {args.batch_size}, "
             f"{args.steps} steps (the first left out), median of {args.repeats} interleaved runs.", "",
             "Regenerate: `.venv/bin/python benchmarks/training_throughput.py --out results/throughput`", "",
             "| model | visual tokens | samples/s | x LLaVA | GFLOPs per sample (forward + backward) | x LLaVA |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['visual_tokens']} | {r['samples_per_s']:.2f} | {r['speed_vs_llava']:.2f} | "
                     f"{r['step_gflops_per_sample']:.3f} | {r['flops_vs_llava']:.3f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        import pandas as pd

        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "training.md").write_text(text, encoding="utf-8")
        pd.DataFrame(rows).to_csv(args.out / "training.csv", index=False)


if __name__ == "__main__":
    main()

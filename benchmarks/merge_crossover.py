"""Measure VLoRA's merge crossover on this device: the LLM positions of one call above which merged
execution (fold B . A^T into q/k/v/o, run, restore) beats factorized branches. `auto` reads it.

For each prompt length n of a grid (one sample, one image, random text ids): one prefill (logits of
the last position) in each mode, interleaved, median of --repeats after a warm-up; the image's
perceptual weights come from a warm vision cache, so both modes pay the same for the image. The
crossover is where the least-squares line of merged - factorized (a fixed merge cost against a cost
per position) crosses zero (0 when merging never costs more, .inf when it never pays). B is random
(W_s ~ 0.02): the timing does not depend on the values, only on the shapes.

    python benchmarks/merge_crossover.py                           # print, h=512 r=16 on the CPU
    python benchmarks/merge_crossover.py --hidden 4096 --rank 64 --layers 2 --dtype bfloat16 --device cuda
    python benchmarks/merge_crossover.py ... --write               # record it in vlora/crossover.yaml

Run it on a quiet machine: a shared CPU makes the timings (and so the crossover) noise.
"""

from __future__ import annotations

import argparse
import datetime
import math
import statistics
import time
from pathlib import Path

import torch
import yaml

from vlora.config import GeneratorConfig, LLMConfig, ModelConfig, VisionConfig
from vlora.demo import shapes_image
from vlora.dispatch import CROSSOVER_TABLE, device_kind, dtype_name, flops_crossover, read_table
from vlora.image_sources import image_source
from vlora.model import build_model
from vlora.prompting import IMAGE_TOKEN_INDEX
from vlora.schema import to_data
from vlora.vision_cache import VisionCache


def config(hidden: int, rank: int, layers: int) -> ModelConfig:
    heads = max(hidden // 128, 1)
    return ModelConfig(
        llm=LLMConfig(hidden_size=hidden, intermediate_size=int(hidden * 2.6875), num_layers=layers, num_heads=heads,
                      num_kv_heads=heads, vocab_size=4096, max_position_embeddings=8192),
        vision=VisionConfig(image_size=56, patch_size=14, hidden_size=32, intermediate_size=64, num_layers=1, num_heads=4),
        connector=GeneratorConfig(types="qkvom", rank=rank, alpha=float(rank), blocks=1, hidden=32, heads=4,
                                  skip=1))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_modes(model, n: int, repeats: int, cache: VisionCache, generator: torch.Generator) -> dict[str, float]:
    """Median seconds of one prefill over n positions (BOS, the image, n - 2 text ids) per mode."""
    text = torch.randint(3, model.config.llm.vocab_size, (n - 2,), generator=generator).tolist()
    image = image_source(shapes_image("red", "circle"))
    batch = model.collate([[1, IMAGE_TOKEN_INDEX, *text]], [image], pixels=False).to(model.device)
    times: dict[str, list[float]] = {"factorized": [], "merged": []}

    def once(mode: str) -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            model(batch, mode=mode, logits_to_keep=1, cache=cache)
        _sync(model.device)
        return time.perf_counter() - start

    for mode in times:
        once(mode)  # warm-up (and the image into the cache)
    for _ in range(repeats):
        for mode in times:
            times[mode].append(once(mode))
    return {mode: statistics.median(t) for mode, t in times.items()}


def crossing(lengths: list[int], gaps: list[float]) -> tuple[float, float, float]:
    """The gap merged - factorized is linear in n in theory: the merge's fixed cost c0 against the
    branches' per-position cost c1 (the rest of the prefill is the same in both modes), gap = c0 - c1 n.
    Least squares over the grid; returns (crossover c0 / c1, c0, c1): 0 when merging never costs more,
    inf when the branches cost nothing measurable."""
    mean_n, mean_gap = statistics.fmean(lengths), statistics.fmean(gaps)
    sxx = sum((n - mean_n) ** 2 for n in lengths)
    slope = sum((n - mean_n) * (g - mean_gap) for n, g in zip(lengths, gaps, strict=True)) / sxx
    c0, c1 = mean_gap - slope * mean_n, -slope
    if c0 <= 0:
        return 0.0, c0, c1
    return (c0 / c1 if c1 > 0 else math.inf), c0, c1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--lengths", default="8,16,32,64,128,256,512,1024,2048")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--write", action="store_true", help="record the crossover in --table")
    parser.add_argument("--table", type=Path, default=CROSSOVER_TABLE, help="the crossover table (default: %(default)s)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    model = build_model(config(args.hidden, args.rank, args.layers), seed=0, device=device, dtype=dtype).eval()
    with torch.no_grad():
        for w in model.connector.w_s.values():
            w.normal_(0, 0.02)
    cache, generator = VisionCache(), torch.Generator().manual_seed(0)
    lengths = [int(x) for x in args.lengths.split(",")]
    print(f"h={args.hidden}, r={args.rank}, {args.layers} layers, {device_kind(device)}, {args.dtype}, "
          f"{torch.get_num_threads()} threads; prefill, median of {args.repeats}")
    print(f"{'positions':>10}{'factorized ms':>15}{'merged ms':>12}{'merged/fact.':>14}")
    gaps = []
    for n in lengths:
        t = time_modes(model, n, args.repeats, cache, generator)
        gaps.append(t["merged"] - t["factorized"])
        print(f"{n:>10}{t['factorized'] * 1e3:>15.2f}{t['merged'] * 1e3:>12.2f}{t['merged'] / t['factorized']:>14.2f}")
    (tokens, c0, c1), formula = crossing(lengths, gaps), flops_crossover(args.hidden, args.rank)
    print(f"merged - factorized = {c0 * 1e3:.2f} ms - {c1 * 1e6:.3f} us x positions (least squares); "
          f"crossover: {tokens:.0f} positions (FLOPs formula: {formula:.0f})")
    if args.write:
        entry = {"device": device_kind(device), "dtype": dtype_name(dtype), "hidden": args.hidden, "rank": args.rank,
                 "tokens": round(tokens, 1) if math.isfinite(tokens) else tokens, "flops_tokens": round(formula, 1),
                 "layers": args.layers, "threads": torch.get_num_threads(), "torch": str(torch.__version__),
                 "measured": datetime.date.today().isoformat()}
        rows = [to_data(r) for r in read_table(args.table) if (r.device, r.dtype, r.hidden, r.rank)
                != (entry["device"], entry["dtype"], entry["hidden"], entry["rank"])]
        header = "".join(line + "\n" for line in args.table.read_text().splitlines() if line.startswith("#"))
        args.table.write_text(header + yaml.safe_dump({"measurements": rows + [entry]}, sort_keys=False))
        print(f"written to {args.table}")


if __name__ == "__main__":
    main()

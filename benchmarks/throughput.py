"""Evaluation throughput of VLoRA, LLaVA-v1.5 and LLaVA-v1.5-QFormer, side by side (issue 14).

1. samples/s of a benchmark run (the real runner and adapter: vision cache, grouped batches, EOS-dropping
   decoding) on the mini MMBench (written to a temporary folder), at batch sizes 1, 8, 32 and, as the
   VLMEvalKit way, batch 1 without the vision cache; two configurations:
     tiny    the tiny presets (16 patches)
     small   h=512, 8 layers, CLIP at 336 px: 576 patches (benchmarks/compare_models.py --scale small)
   Every run starts with a fresh adapter (cold cache). Runs are interleaved (repeat > configuration >
   batch size > model) and the median of --repeats is kept, so machine noise hits the models alike.
   Beside each figure: the CLIP passes (images through the vision tower) and the distinct images.
2. a real-width prefill: the 7B width (h=4096, 11008, 32 heads) with --prefill-layers blocks, bfloat16;
   one prefill (logits of the last position, the image's outputs from a warm vision cache) of VLoRA
   (C=32 text positions + the masked image slot) against LLaVA-v1.5 (576 visual tokens + 32); the
   wall-time ratio beside the FLOPs ratio (flops/analytic: LLM projections, attention, MLP, last
   position's LM head, VLoRA's factorized branches).

    python benchmarks/throughput.py                       # prints the tables (~10 minutes on 2 cores)
    python benchmarks/throughput.py --out results/throughput   # + throughput.md, .csv, .png
    python benchmarks/throughput.py --quick               # a smoke run: few rows, one repeat

Timings are only worth committing from a quiet machine. Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from evalsuite.benchmarks import benchmark
from evalsuite.data import BenchmarkData, load_benchmark_data
from evalsuite.mini import write_mini_suite
from evalsuite.multimodal import MultimodalAdapter
from evalsuite.runner import RunOptions, run_benchmark
from flops.analytic import llm_prefill, vlora_branches
from vlora.config import GeneratorConfig, LLMConfig, ModelConfig, ProjectorConfig, VisionConfig
from vlora.connector_kinds import KINDS
from vlora.demo import shapes_image
from vlora.image_sources import image_source
from vlora.model import build_model
from vlora.presets import preset
from vlora.prompting import IMAGE_TOKEN_INDEX
from vlora.vision_cache import VisionCache

MODELS = tuple(kind.model_name for kind in KINDS.values())  # vlora, llava-v1.5, llava-v1.5-qformer


def configurations() -> dict[str, dict[str, ModelConfig]]:
    small = {kind.model_name: preset(f"{kind.name}-small") for kind in KINDS.values()}  # h=512, 576 patches
    tiny = {kind.model_name: preset(f"{kind.name}-tiny") for kind in KINDS.values()}
    return {"tiny": tiny, "small": small}


def built(config: ModelConfig):
    model = build_model(config, seed=0).eval()
    if config.space.value == "parameter":  # W_s starts at zero: give B values, as a trained model has
        with torch.no_grad():
            for w in model.connector.w_s.values():
                w.normal_(0, 0.02, generator=torch.Generator().manual_seed(0))
    return model


@dataclass
class Run:
    config: str
    model: str
    batch: int
    cached: bool
    seconds: list[float]
    rows: int = 0
    clip: int = 0
    distinct: int = 0

    @property
    def samples_per_s(self) -> float:
        return self.rows / statistics.median(self.seconds)

    @property
    def label(self) -> str:
        return f"{self.batch}" + ("" if self.cached else " (no cache)")


def timed_run(model, name: str, data: BenchmarkData, batch: int, cached: bool, limit: int, new_tokens: int,
              folder: Path) -> tuple[float, int, int]:
    """One benchmark run with a fresh adapter: seconds, rows, CLIP passes."""
    adapter = MultimodalAdapter(model, name, batch_size=batch, vision_cache=cached)
    options = RunOptions(batch_size=batch, limit=limit, max_new_tokens=new_tokens, results_root=folder,
                         run_name=f"{name}-{batch}-{cached}-{time.monotonic_ns()}", progress=False)
    start = time.perf_counter()
    result = run_benchmark(adapter, data, options)
    seconds = time.perf_counter() - start
    return seconds, result.predicted, adapter.run_stats()["counts"]["vision_clip"]


def throughput(data: BenchmarkData, args, folder: Path) -> list[Run]:
    configs = {c: m for c, m in configurations().items() if c in args.configs}
    models = {(c, name): built(config) for c, ms in configs.items() for name, config in ms.items()}
    limits = {"tiny": args.rows, "small": args.small_rows}
    runs = {(c, name, b, cached): Run(c, name, b, cached, [])
            for c in configs for b in args.batch_sizes for cached in ((True, False) if b == 1 else (True,))
            for name in MODELS}
    start = time.perf_counter()
    for (_, name), model in models.items():  # warm-up: first calls pay for lazy initialisations
        timed_run(model, name, data, 8, True, 8, args.new_tokens, folder)
    for repeat in range(args.repeats):
        for (c, name, b, cached), run in runs.items():
            seconds, rows, clip = timed_run(models[c, name], name, data, b, cached, limits[c], args.new_tokens, folder)
            run.seconds.append(seconds)
            run.rows, run.clip = rows, clip
        print(f"  repeat {repeat + 1}/{args.repeats} done ({time.perf_counter() - start:.0f} s)", flush=True)
    for run in runs.values():
        positions = range(len(data.table))[: limits[run.config]]
        run.distinct = len({s.key for p in positions for s in data.image_sources(p)[:1]})
    return list(runs.values())


def table(runs: list[Run]) -> list[dict]:
    """One row per run, with its speed-up over batch 1 (cached) and VLoRA's over LLaVA."""
    def speed(c, name, b, cached=True):
        return next(r.samples_per_s for r in runs if (r.config, r.model, r.batch, r.cached) == (c, name, b, cached))

    rows = []
    for r in runs:
        rows.append({"config": r.config, "model": r.model, "batch": r.label, "samples_per_s": round(r.samples_per_s, 1),
                     "x_batch_1": round(r.samples_per_s / speed(r.config, r.model, 1), 2),
                     "x_llava": round(r.samples_per_s / speed(r.config, "llava-v1.5", r.batch, r.cached), 2),
                     "clip_passes": r.clip, "distinct_images": r.distinct, "rows": r.rows,
                     "median_s": round(statistics.median(r.seconds), 3)})
    return rows


def real_width_prefill(layers: int, repeats: int, dtype: torch.dtype) -> dict:
    """Prefill seconds of VLoRA (C=32 + the masked slot) and LLaVA (576 + 32) at the 7B width."""
    llm = LLMConfig(num_layers=layers)  # h=4096, 11008, 32 heads, vocab 32000
    vision = VisionConfig(image_size=336, patch_size=14, hidden_size=64, intermediate_size=128, num_layers=1,
                          num_heads=4)  # 576 patches; its size is outside the prefill (the image is cached)
    generator = GeneratorConfig(rank=64, alpha=64.0, blocks=1, hidden=128, heads=4, skip=min(4, layers))
    configs = {"vlora": ModelConfig(llm, vision, generator), "llava-v1.5": ModelConfig(llm, vision, ProjectorConfig())}
    text = torch.randint(3, llm.vocab_size, (31,), generator=torch.Generator().manual_seed(0)).tolist()
    image = image_source(shapes_image("red", "circle"))
    out: dict = {"layers": layers, "dtype": str(dtype).removeprefix("torch."), "seconds": {}, "positions": {}}
    for name, config in configs.items():
        model = build_model(config, seed=0, dtype=dtype).eval()
        batch = model.collate([[1, IMAGE_TOKEN_INDEX, *text]], [image], pixels=False)
        cache = VisionCache()

        def prefill(model=model, batch=batch, cache=cache) -> float:
            start = time.perf_counter()
            with torch.inference_mode():
                model(batch, logits_to_keep=1, cache=cache)
            return time.perf_counter() - start

        prefill()  # warm-up, and the image's outputs into the cache
        out["seconds"][name] = statistics.median(prefill() for _ in range(repeats))
        out["positions"][name] = batch.input_ids.shape[1]
        del model
    flops = {name: llm_prefill(llm, out["positions"][name], logits="last").total for name in configs}
    flops["vlora"] += vlora_branches(configs["vlora"], out["positions"]["vlora"], "factorized")
    out["flops"] = flops
    out["time_ratio"] = out["seconds"]["vlora"] / out["seconds"]["llava-v1.5"]
    out["flops_ratio"] = flops["vlora"] / flops["llava-v1.5"]
    return out


def goals(rows: list[dict], prefill: dict | None) -> list[str]:
    """The issue's goals, measured: batched >= 5x batch 1 per model; VLoRA >= 3x LLaVA samples/s at the
    small configuration; the real-width prefill's wall-time ratio within 1.5x of its FLOPs ratio."""
    lines = []
    for config in sorted({r["config"] for r in rows}, reverse=True):
        for model in MODELS:
            best = max(r["x_batch_1"] for r in rows if (r["config"], r["model"]) == (config, model))
            lines.append(f"{config} {model}: best batched / batch 1 = {best:.2f} (goal >= 5)")
    for r in rows:
        if r["config"] == "small" and r["model"] == "vlora":
            lines.append(f"small, batch {r['batch']}: VLoRA / LLaVA samples/s = {r['x_llava']:.2f} (goal >= 3)")
    if prefill:
        lines.append(f"real-width prefill: wall-time ratio / FLOPs ratio = "
                     f"{prefill['time_ratio'] / prefill['flops_ratio']:.2f} (goal <= 1.5)")
    return lines


def prefill_line(prefill: dict) -> str:
    return (f"Real-width prefill (h=4096, {prefill['layers']} blocks, {prefill['dtype']}): "
            f"VLoRA {prefill['seconds']['vlora'] * 1e3:.1f} ms ({prefill['positions']['vlora']} positions), "
            f"LLaVA-v1.5 {prefill['seconds']['llava-v1.5'] * 1e3:.1f} ms ({prefill['positions']['llava-v1.5']} "
            f"positions); wall-time ratio {prefill['time_ratio']:.3f}, FLOPs ratio {prefill['flops_ratio']:.3f} "
            f"(wall / FLOPs {prefill['time_ratio'] / prefill['flops_ratio']:.2f})")


def markdown(rows: list[dict], prefill: dict | None, header: str) -> str:
    keys = list(rows[0])
    lines = [header, "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    if prefill:
        lines += ["", prefill_line(prefill)]
    lines += ["", "Goals (issue 14):", ""] + [f"- {line}" for line in goals(rows, prefill)]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    from matplotlib.figure import Figure
    from matplotlib.ticker import ScalarFormatter

    configs = sorted({r["config"] for r in rows}, reverse=True)
    fig = Figure(figsize=(5 * len(configs), 4))
    axes = fig.subplots(1, len(configs), squeeze=False)
    for ax, config in zip(axes[0], configs, strict=True):
        for model in MODELS:
            mine = [r for r in rows if r["config"] == config and r["model"] == model and r["batch"].isdigit()]
            ax.plot([int(r["batch"]) for r in mine], [r["samples_per_s"] for r in mine], marker="o", label=model)
        ax.set(xscale="log", xlabel="batch size", ylabel="samples/s", title=f"{config} configuration")
        ax.set_xticks(sorted({int(r["batch"]) for r in rows if r["batch"].isdigit()}))
        ax.get_xaxis().set_major_formatter(ScalarFormatter())
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def write(out: Path, rows: list[dict], prefill: dict | None, header: str) -> None:
    import csv

    out.mkdir(parents=True, exist_ok=True)
    (out / "throughput.md").write_text(markdown(rows, prefill, header))
    with open(out / "throughput.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, out / "throughput.png")
    print(f"written: {out}/throughput.md, throughput.csv, throughput.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["tiny", "small"], choices=("tiny", "small"))
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--rows", type=int, default=96, help="mini MMBench rows, tiny configuration")
    parser.add_argument("--small-rows", type=int, default=24, help="mini MMBench rows, small configuration")
    parser.add_argument("--new-tokens", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prefill-layers", type=int, default=4, help="0: no real-width prefill")
    parser.add_argument("--prefill-repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="smoke run: 16 / 8 rows, one repeat, 1 prefill layer")
    parser.add_argument("--out", type=Path, default=None, help="write throughput.md / .csv / .png here")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.small_rows, args.repeats, args.prefill_layers, args.prefill_repeats = 16, 8, 1, 1, 1
    torch.set_num_threads(args.threads)
    header = (f"Throughput on {torch.get_num_threads()} CPU thread(s), torch {torch.__version__}: mini MMBench, "
              f"{args.new_tokens} new tokens, median of {args.repeats}; tiny: {args.rows} rows, small (576 patches): "
              f"{args.small_rows} rows")
    print(header)
    with tempfile.TemporaryDirectory() as tmp:
        suite = write_mini_suite(Path(tmp) / "mini", seed=0, scale=1)
        data = load_benchmark_data(benchmark("MMBench_DEV_EN"), suite["MMBench_DEV_EN"], embedded=True)
        rows = table(throughput(data, args, Path(tmp) / "results"))
    keys = list(rows[0])
    print("  ".join(f"{k:>15}" for k in keys))
    for r in rows:
        print("  ".join(f"{r[k]!s:>15}" for k in keys))
    prefill = real_width_prefill(args.prefill_layers, args.prefill_repeats, torch.bfloat16) if args.prefill_layers else None
    if prefill:
        print(prefill_line(prefill))
    print("\n".join(goals(rows, prefill)))
    if args.out is not None:
        write(args.out, rows, prefill, header)


if __name__ == "__main__":
    main()

"""Where the milliseconds of a benchmark run go, per sample: a run of a tiny model on the mini MMBench
under cProfile, its time split into the harness's phases (cumulative time of the functions named
below; the profiler's own overhead inflates Python-heavy phases, so the wall time without the
profiler is printed first).

    python benchmarks/profile_run.py                                # vlora-tiny, batch 1, cached
    python benchmarks/profile_run.py --model llava-tiny --batch-size 8
    python benchmarks/profile_run.py --no-cache --top 30            # + the 30 most expensive functions

Phases overlap where one calls another (LLM calls contain the VLoRA branches); see `PHASES`.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

import torch

from evalsuite.benchmarks import benchmark
from evalsuite.data import load_benchmark_data
from evalsuite.mini import write_mini_suite
from evalsuite.multimodal import MultimodalAdapter
from evalsuite.runner import RunOptions, run_benchmark
from vlora.model import build_model
from vlora.presets import preset

# phase -> (file suffix, function name) whose cumulative time is the phase's
PHASES = {
    "whole run (runner)": ("evalsuite/runner.py", "run_benchmark"),
    "  rows -> requests: image cells, keys": ("evalsuite/data.py", "image_sources"),
    "  requests -> ids: template, tokenizer, checks": ("evalsuite/multimodal.py", "_prepare"),
    "  collate (+ pixels without the cache)": ("vlora/batch.py", "collate"),
    "  vision: decode + CLIP + connector": ("vlora/model.py", "image_outputs"),
    "    image decodes (TSV cells)": ("evalsuite/data.py", "_load"),
    "    CLIP tower": ("vlora/vision.py", "forward"),
    "    connector -> per-image outputs": ("vlora/model.py", "encode_images"),
    "  LLM calls (LlamaForCausalLM forward)": ("transformers/models/llama/modeling_llama.py", "forward"),
    "    VLoRA branches (hooks)": ("vlora/perceptual_weights.py", "__call__"),
    "    causal-mask building": ("transformers/masking_utils.py", "create_causal_mask"),
    "  predictions file (append + fsync)": ("evalsuite/predictions.py", "append_records"),
    "  merge + score + outputs": ("evalsuite/runner.py", "finish"),
}


def cumulative(stats: pstats.Stats, suffix: str, name: str) -> tuple[float, int]:
    """Cumulative seconds and calls of the function `name` in the file ending with `suffix` (of several
    such functions, the outermost: the largest cumulative time)."""
    found = [(cum, primitive) for (file, _, func), (_, primitive, _, cum, _) in stats.stats.items()
             if func == name and file.endswith(suffix)]
    return max(found, default=(0.0, 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="vlora-tiny", choices=("vlora-tiny", "llava-tiny", "llava-qformer-tiny"))
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--new-tokens", type=int, default=8)
    parser.add_argument("--answer-mode", default="generate", choices=("generate", "likelihood"))
    parser.add_argument("--no-cache", action="store_true", help="without the vision cache (every request encodes)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--top", type=int, default=0, help="also print the N functions with the most own time")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = build_model(preset(args.model), seed=0).eval()
    with tempfile.TemporaryDirectory() as tmp:
        suite = write_mini_suite(Path(tmp) / "mini")
        data = load_benchmark_data(benchmark("MMBench_DEV_EN"), suite["MMBench_DEV_EN"], embedded=True)

        def run(name: str) -> float:
            adapter = MultimodalAdapter(model, args.model, batch_size=args.batch_size, vision_cache=not args.no_cache)
            options = RunOptions(batch_size=args.batch_size, max_new_tokens=args.new_tokens, answer_mode=args.answer_mode,
                                 results_root=Path(tmp) / name, progress=False)
            start = time.perf_counter()
            run_benchmark(adapter, data, options)
            return time.perf_counter() - start

        run("warm-up")
        rows = len(data.table)
        wall = run("plain")
        profile = cProfile.Profile()
        profile.enable()
        profiled = run("profiled")
        profile.disable()
    stats = pstats.Stats(profile)
    print(f"{args.model}, batch {args.batch_size}, {'no cache' if args.no_cache else 'vision cache'}, {args.answer_mode}"
          f" ({args.new_tokens} new tokens), mini MMBench {rows} rows, {torch.get_num_threads()} thread(s)")
    print(f"wall time without the profiler: {wall * 1e3 / rows:.2f} ms/sample ({rows / wall:.1f} samples/s); "
          f"with it: {profiled * 1e3 / rows:.2f} ms/sample")
    print(f"{'phase (profiled)':<48}{'ms/sample':>10}{'calls':>8}")
    for phase, (suffix, name) in PHASES.items():
        seconds, calls = cumulative(stats, suffix, name)
        print(f"{phase:<48}{seconds * 1e3 / rows:>10.2f}{calls:>8}")
    if args.top:
        stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()

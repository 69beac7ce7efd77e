"""VLoRA, LLaVA-v1.5 and LLaVA-v1.5-QFormer side by side: parameters and prefill time.

Same LLM, vision tower, prompt and image for the three; only the connector differs. Prefill =
CLIP + connector + one LLM forward over the prompt (logits of the last position), in inference
mode. Runs are interleaved (model 1, 2, 3, 1, 2, 3, ...) after one warm-up each, and the median of
--repeats is printed, so machine noise hits the three alike.

    python benchmarks/compare_models.py                # the tiny presets (16 patches)
    python benchmarks/compare_models.py --scale small  # h=512, 8 layers, CLIP at 336 px: 576 patches
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from vlora.config import ModelConfig
from vlora.connector_kinds import KINDS
from vlora.demo import shapes_image
from vlora.model import build_model
from vlora.presets import preset


def configs(scale: str) -> dict[str, ModelConfig]:
    """The three models at one size of vlora/presets.py (tiny, or small: h=512, CLIP at 336 px, 576 patches)."""
    return {kind.model_name: preset(f"{kind.name}-{scale}") for kind in KINDS.values()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=("tiny", "small"), default="tiny")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = {name: build_model(config, seed=0).eval() for name, config in configs(args.scale).items()}
    question, image = "What is the color of the shape in the middle of the picture?", shapes_image("red", "circle")
    batches = {name: m.prepare([m.prompt(question)], [image]) for name, m in models.items()}

    def prefill(name: str) -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            models[name](batches[name], logits_to_keep=1)
        return time.perf_counter() - start

    for name in models:
        prefill(name)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.repeats):
        for name in models:
            times[name].append(prefill(name))
    print(f"scale {args.scale}; {torch.get_num_threads()} threads, cpu; prefill = CLIP + connector + LLM forward; "
          f"median of {args.repeats}, interleaved")
    print(f"{'model':<20}{'visual tok':>11}{'LLM input':>11}{'params total':>14}{'connector':>12}{'prefill ms':>12}")
    base = statistics.median(times["llava-v1.5"])
    for name, model in models.items():
        counts, batch = model.parameter_counts(), batches[name]
        median = statistics.median(times[name])
        print(f"{name:<20}{model.config.visual_tokens:>11}{int(batch.attention_mask.sum()):>11}"
              f"{sum(counts.values()):>14,}{counts['connector']:>12,}{median * 1e3:>12.2f}"
              f"   ({median / base:.2f}x LLaVA)")


if __name__ == "__main__":
    main()

"""Latency of the real model classes: prefill (vision + connector + LLM over the prompt) and decode
(per new token with a KV cache), against the number of visual tokens; median of n after warm-up.

LLaVA's visual tokens are its CLIP patches, so L is varied through the image size (14 * sqrt(L) px);
VLoRA runs on the same vision tower at each size (its generator reads the same patches).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace

import torch

from vlora.config import GeneratorConfig, LLMConfig, ModelConfig, ProjectorConfig, VisionConfig
from vlora.presets import preset

SMALL = preset("vlora-small")  # h = 512, 8 blocks, CLIP at 336 px (vlora/presets.py)


def median_seconds(fn, repeats: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_model(model, text: str, image, repeats: int = 5, new_tokens: int = 8, mode: str = "factorized",
               device: str = "cpu") -> dict[str, float]:
    """Prefill ms (last position's logits) and decode ms per token for one image + text."""
    batch = model.prepare([model.prompt(text)], [image]).to(torch.device(device))

    def prefill():
        with torch.inference_mode():
            model(batch, mode=mode, logits_to_keep=1)
        _sync(device)

    def generate():
        with torch.inference_mode():
            model.decode(batch, new_tokens, stop_at_eos=False, mode=mode)
        _sync(device)

    prefill_s = median_seconds(prefill, repeats)
    total_s = median_seconds(generate, repeats)
    return {"prefill_ms": 1e3 * prefill_s, "decode_ms_per_token": 1e3 * max(total_s - prefill_s, 0) / max(new_tokens - 1, 1)}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def latency_sweep(visual_tokens=(16, 64, 144, 256, 576), text: str = "What is the color of the shape in the middle?",
                  llm: LLMConfig = SMALL.llm, vision: VisionConfig = SMALL.vision,
                  generator: GeneratorConfig = SMALL.connector, repeats: int = 5, new_tokens: int = 8,
                  device: str = "cpu", dtype: torch.dtype = torch.float32) -> list[dict]:
    """LLaVA-v1.5 and VLoRA (factorized and merged) at each number of visual tokens, side by side."""
    from vlora.demo import shapes_image
    from vlora.model import build_model

    rows = []
    image = shapes_image("red", "circle")
    for L in visual_tokens:
        side = int(round(L ** 0.5))
        if side * side != L:
            raise ValueError(f"{L} visual tokens is not a square number of patches")
        v = replace(vision, image_size=side * vision.patch_size)
        row = {"visual_tokens": L}
        models = {"llava": ModelConfig(llm, v, ProjectorConfig()), "vlora": ModelConfig(llm, v, generator)}
        for name, config in models.items():
            model = build_model(config, seed=0).eval().to(device=device, dtype=dtype)
            for mode in (("factorized", "merged") if name == "vlora" else ("factorized",)):
                key = name if name == "llava" else f"vlora_{mode}"
                timed = time_model(model, text, image, repeats, new_tokens, mode, device)
                row.update({f"{key}_prefill_ms": timed["prefill_ms"], f"{key}_decode_ms": timed["decode_ms_per_token"]})
        row["vlora_over_llava_prefill"] = row["vlora_factorized_prefill_ms"] / row["llava_prefill_ms"]
        rows.append(row)
    return rows

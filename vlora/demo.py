"""A self-contained tour of the VLoRA model on a tiny random configuration (no downloads).

Builds the `vlora-tiny` preset, writes it in the official release layout and in the project's
own layout, loads the official one back, and answers questions about generated images in each
execution mode, checking that the modes, batched and single runs, and the reloaded checkpoint agree.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from vlora.checkpoints import CheckpointReport, describe, load_model, official_vlora, save_model
from vlora.model import build_model
from vlora.output_folder import Job, OutputFolder, State
from vlora.perceptual_weights import ExecutionMode
from vlora.presets import preset


def shapes_image(colour: str, shape: str, size: int = 96) -> Image.Image:
    """A plain picture of one coloured shape on white."""
    image = Image.new("RGB", (size, size), "white")
    draw, box = ImageDraw.Draw(image), (size // 4, size // 4, 3 * size // 4, 3 * size // 4)
    (draw.ellipse if shape == "circle" else draw.rectangle)(box, fill=colour)
    return image


@dataclass
class DemoReport:
    out: Path
    parameters: dict[str, int]
    reports: list[CheckpointReport]
    answers: dict[str, list[str]]  # execution mode -> answers
    agreement: dict[str, float]  # check -> max relative logit difference
    seconds: dict[str, float] = field(default_factory=dict)


def _max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def run_demo(out: Path, seed: int = 0, device: torch.device | str = "cpu", force: bool = False) -> DemoReport:
    """The tour, its checkpoints written under `out` (claimed for the demo: a folder with other files or
    another demo's output is refused unless `force`; the same demo's output is written again)."""
    out = Path(out)
    folder = OutputFolder(out, Job("demo", {"seed": seed, "preset": preset("vlora-tiny").to_dict()}))
    if folder.claim(force=force) is not State.NEW:
        folder.redo()
    model = build_model(preset("vlora-tiny"), seed=seed, device=device).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # W_s starts at zero (the LLM unchanged); draw it so the image matters
        for w in model.connector.w_s.values():
            w.copy_(torch.randn(w.shape, generator=generator) * 2.0)

    official_vlora.export(model, out / "vlora-tiny-official", out / "clip-tiny")
    save_model(model, out / "vlora-tiny")
    reports = [describe(out / "vlora-tiny-official"), describe(out / "vlora-tiny")]
    loaded = load_model(out / "vlora-tiny-official").to(device).eval()

    images = [shapes_image("red", "circle"), shapes_image("blue", "square")]
    prompts = [model.prompt("What is the color of the shape?")] * 2
    answers, seconds = {}, {}
    for mode in ExecutionMode:
        start = time.perf_counter()
        if mode is ExecutionMode.MERGED:  # merging folds one image into the weights: one at a time
            answers[mode.value] = [loaded.generate([p], [im], 8, mode)[0] for p, im in zip(prompts, images, strict=True)]
        else:
            answers[mode.value] = loaded.generate(prompts, images, 8, mode)
        seconds[mode.value] = time.perf_counter() - start

    agreement = {}
    with torch.no_grad():
        single = loaded.prepare(prompts[:1], images[:1])
        factorized = loaded(single).logits
        agreement["merged vs factorized"] = _max_rel(loaded(single, mode="merged").logits, factorized)
        agreement["delta vs factorized"] = _max_rel(loaded(single, mode="delta").logits, factorized)
        agreement["batched vs single"] = _max_rel(loaded(loaded.prepare(prompts, images)).logits[:1], factorized)
        agreement["reloaded vs original"] = _max_rel(model(single).logits, factorized)
    folder.finish()
    return DemoReport(out=out, parameters=loaded.parameter_counts(), reports=reports, answers=answers,
                      agreement=agreement, seconds=seconds)

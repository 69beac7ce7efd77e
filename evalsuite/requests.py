"""Benchmark rows -> `Request`s, with the prompt style the model's card asks for; the benchmark's
protocol (evalsuite.benchmarks) builds the message and the choices.

    dataset     VLMEvalKit's dataset prompt: MCQ text (Hint / Question / Options / instruction) or
                the Y/N question verbatim; MMMU's `<image N>` interleaved where it stands
    llava_mcq   LLaVA's own multiple-choice prompt (all images first), VLMEvalKit's LLaVA wrapper

A model that takes fewer images than a row has (VLoRA: one) gets what VLMEvalKit gives
non-interleaving models (`message_to_promptimg`): the first image and the text parts joined by
newlines. In likelihood mode an MCQ request carries the option letters as choices and a Y/N request
"Yes" / "No"; open MMMU questions are generated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evalsuite.adapter import ModelCard, Request
from evalsuite.benchmarks import BenchmarkSpec
from evalsuite.extraction import AnswerMode
from evalsuite.messages import message_to_request

ANSWER_MODES = tuple(m.value for m in AnswerMode)


@dataclass(frozen=True)
class RowPrompt:
    """What a row asks, before images are decoded: its message with images numbered."""

    index: Any
    message: list[dict[str, Any]]  # {"type": "text", "value": str} | {"type": "image", "value": int}
    choices: tuple[str, ...]
    images_dropped: int = 0
    unknown_images: int = 0  # MMMU: `<image N>` naming an image the row does not have

    @property
    def text_length(self) -> int:
        return sum(len(m["value"]) for m in self.message if m["type"] == "text")


def _fit_images(message: list[dict[str, Any]], max_images: int | None) -> tuple[list[dict[str, Any]], int]:
    images = [m for m in message if m["type"] == "image"]
    if max_images is None or len(images) <= max_images:
        return message, 0
    text = "\n".join(m["value"] for m in message if m["type"] == "text")
    return images[:max_images] + [{"type": "text", "value": text}], len(images) - max_images


def row_prompt(spec: BenchmarkSpec, line: dict, n_images: int, card: ModelCard, answer_mode: str) -> RowPrompt:
    style = card.prompt_style(spec.type)
    message, dropped = _fit_images(spec.handler.message(line, n_images, style), card.max_images)
    choices = spec.handler.choices(line) if answer_mode == "likelihood" else ()
    return RowPrompt(line["index"], message, choices, dropped, spec.handler.unknown_images(line, n_images))


def to_request(prompt: RowPrompt, images: list, max_new_tokens: int) -> Request:
    """The request for a row, its numbered images filled with `images` (decoded, or keyed sources that
    decode on demand: vlora/image_sources.py)."""
    message = [{"type": "image", "value": images[m["value"]]} if m["type"] == "image" else m for m in prompt.message]
    return message_to_request(message, str(prompt.index), max_new_tokens, prompt.choices)

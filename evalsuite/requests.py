"""Benchmark rows -> `Request`s, with the prompt style the model's card asks for.

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

from evalsuite.adapter import ModelCard, Request, message_to_request
from evalsuite.benchmarks import BenchmarkSpec
from evalsuite.extraction import AnswerMode
from evalsuite.prompts import (
    dataset_mcq_prompt,
    is_missing,
    llava_mcq_prompt,
    options_of,
    split_mmmu,
    unknown_image_refs,
)

ANSWER_MODES = tuple(m.value for m in AnswerMode)


@dataclass(frozen=True)
class RowPrompt:
    """What a row asks, before images are decoded: its message with image slots numbered."""

    index: Any
    message: list[dict[str, Any]]  # {"type": "text", "value": str} | {"type": "image", "value": int}
    choices: tuple[str, ...]
    images_dropped: int = 0
    unknown_images: int = 0  # MMMU: `<image N>` naming an image the row does not have

    @property
    def text_length(self) -> int:
        return sum(len(m["value"]) for m in self.message if m["type"] == "text")


def row_message(spec: BenchmarkSpec, line: dict, n_images: int, style: str) -> list[dict[str, Any]]:
    slots = list(range(n_images))
    if spec.type == "Y/N":
        return [{"type": "image", "value": i} for i in slots] + [{"type": "text", "value": str(line["question"])}]
    if style == "llava_mcq":
        hint = None if "hint" not in line or is_missing(line["hint"]) else str(line["hint"])
        text = llava_mcq_prompt(str(line["question"]), options_of(line), hint)
        return [{"type": "image", "value": i} for i in slots] + [{"type": "text", "value": text}]
    text = dataset_mcq_prompt(line)
    if spec.protocol == "mmmu":
        return split_mmmu(text, slots)
    return [{"type": "image", "value": i} for i in slots] + [{"type": "text", "value": text}]


def _fit_images(message: list[dict[str, Any]], max_images: int | None) -> tuple[list[dict[str, Any]], int]:
    images = [m for m in message if m["type"] == "image"]
    if max_images is None or len(images) <= max_images:
        return message, 0
    text = "\n".join(m["value"] for m in message if m["type"] == "text")
    return images[:max_images] + [{"type": "text", "value": text}], len(images) - max_images


def row_prompt(spec: BenchmarkSpec, line: dict, n_images: int, card: ModelCard, answer_mode: str) -> RowPrompt:
    style = card.prompt_style(spec.type)
    message, dropped = _fit_images(row_message(spec, line, n_images, style), card.max_images)
    choices: tuple[str, ...] = ()
    if answer_mode == "likelihood":
        choices = ("Yes", "No") if spec.type == "Y/N" else tuple(options_of(line))
    unknown = unknown_image_refs(dataset_mcq_prompt(line), n_images) if spec.protocol == "mmmu" else 0
    return RowPrompt(line["index"], message, choices, dropped, unknown)


def to_request(prompt: RowPrompt, images: list, max_new_tokens: int) -> Request:
    """The request for a row, its image slots filled with the decoded images."""
    message = [{"type": "image", "value": images[m["value"]]} if m["type"] == "image" else m for m in prompt.message]
    return message_to_request(message, str(prompt.index), max_new_tokens, prompt.choices)

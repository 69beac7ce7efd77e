"""Prompt pieces shared by the benchmarks and the VLMEvalKit wrapper.

`llava_mcq_prompt` is LLaVA's custom multiple-choice prompt as VLMEvalKit's LLaVA wrapper builds it
(both in 2024-05 and today): hint, question, one line per option, then the instruction to answer
with the letter (in Chinese when the text holds Chinese). The mini-suite's training data asks its
multiple-choice questions with it too, so a model trained there sees the prompt it is evaluated with.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping
from typing import Any

# VLMEvalKit's dataset types of the six benchmarks, by name prefix (data, not branches)
DATASET_TYPES = (("MMBench", "MCQ"), ("CCBench", "MCQ"), ("ScienceQA", "MCQ"), ("MMMU", "MCQ"),
                 ("MME", "Y/N"), ("HallusionBench", "Y/N"))


def dataset_type(name: str | None) -> str | None:
    """"MCQ", "Y/N" or None (unknown) for a VLMEvalKit dataset name."""
    if not name:
        return None
    return next((kind for prefix, kind in DATASET_TYPES if name.startswith(prefix)), None)


def is_missing(value: Any) -> bool:
    """None or NaN (pandas' missing cell), without importing pandas."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def has_chinese(text: str) -> bool:
    return re.search("[\u4e00-\u9fff]", text) is not None


def options_of(line: Mapping[str, Any]) -> dict[str, str]:
    """The present options of a row: columns A, B, C, ... that exist and are not missing."""
    return {c: str(line[c]) for c in string.ascii_uppercase if c in line and not is_missing(line[c])}


def llava_mcq_prompt(question: str, options: Mapping[str, str], hint: str | None = None) -> str:
    text = question if is_missing(hint) else f"{hint}\n{question}"
    for letter, option in options.items():
        text += f"\n{letter}. {option}"
    chinese = has_chinese(text)
    if options:
        return text + ("\n请直接回答选项字母。" if chinese else "\nAnswer with the option's letter from the given choices directly.")
    return text + ("\n请直接回答问题。" if chinese else "\nAnswer the question directly.")


def dataset_mcq_prompt(line: Mapping[str, Any]) -> str:
    """VLMEvalKit's `ImageMCQDataset.build_prompt` text (the same in 2024-05 and today)."""
    options = options_of(line)
    text = ""
    if "hint" in line and not is_missing(line["hint"]):
        text += f"Hint: {line['hint']}\n"
    text += f"Question: {line['question']}\n"
    if options:
        text += "Options:\n" + "".join(f"{letter}. {option}\n" for letter, option in options.items())
        text += "Please select the correct answer from the options above. \n"
    return text


def split_mmmu(text: str, images: list) -> list[dict[str, Any]]:
    """VLMEvalKit's `split_MMMU`: `<image N>` (one digit) becomes image N-1 where it stands; images
    never referenced are dropped; without any `<image ` the images all come first."""
    if "<image " not in text:
        return [{"type": "image", "value": im} for im in images] + [{"type": "text", "value": text}]
    parts = text.split("<image ")
    message = [{"type": "text", "value": parts[0]}] if parts[0] else []
    for part in parts[1:]:
        number, rest = part[0], part[2:]  # "N>rest"
        if number.isdigit() and part[1:2] == ">" and 0 < int(number) <= len(images):
            message.append({"type": "image", "value": images[int(number) - 1]})
        else:  # not a placeholder after all: keep the text
            rest = "<image " + part
        if rest:
            message.append({"type": "text", "value": rest})
    return message


def unknown_image_refs(text: str, n_images: int) -> int:
    """How many `<image N>` in `text` name an image the row does not have (split_mmmu keeps them as text)."""
    return sum(1 for n in re.findall(r"<image (\d)>", text) if not 0 < int(n) <= n_images)

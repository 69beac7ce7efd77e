"""Prompt pieces shared by the benchmarks and the VLMEvalKit wrapper.

`llava_mcq_prompt` is LLaVA's custom multiple-choice prompt as VLMEvalKit's LLaVA wrapper builds it
(both in 2024-05 and today): hint, question, one line per option, then the instruction to answer
with the letter (in Chinese when the text holds Chinese).
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

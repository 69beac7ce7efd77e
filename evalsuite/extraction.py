"""Judge-free answer extraction, as VLMEvalKit's exact matching does it, in two eras.

RULES names the rule sets: "2024-05" (VLMEvalKit at commit e0ece590, the VLoRA paper's era) and
"2026-08" (VLMEvalKit HEAD e8e78f0), which adds a position guard and a length guard (2025-08) and
an "answer is X" regex (2026-06). Every score records which one it used.

MCQ: `can_infer(text, choices)` -> a letter, "Z" (none / refused) or False (nothing inferable).
Y/N: `yes_no(text)` -> "Yes", "No" or "Unknown" (the same in both eras for yes/no purposes).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import Enum

RULES = ("2024-05", "2026-08")
DEFAULT_RULES = "2024-05"
Rules = Enum("Rules", [(r, r) for r in RULES], type=str)  # the CLI's choices


class AnswerMode(str, Enum):
    """How a row's answer is obtained: free text then exact matching, or the most likely option."""

    GENERATE = "generate"
    LIKELIHOOD = "likelihood"

REFUSALS = ("Sorry, I can't help with images of people yet.", "I can't process this file.",
            "I'm sorry, but without the image provided", "Cannot determine the answer")
_ANSWER_IS = re.compile(r"(?i)(?:correct\s+)?answer\s+is\s+\**([ABCD])\**")


def check_rules(rules: str) -> str:
    if rules not in RULES:
        from vlora.errors import ConfigError

        raise ConfigError(f"unknown extraction rules {rules!r}; choose from {', '.join(RULES)}")
    return rules


def _tokens(text: str) -> list[str]:
    for char in ".()[],:;!*#{}":
        text = text.replace(char, " ")
    return text.split()


def can_infer_option(text: str, choices: Mapping[str, str], rules: str = DEFAULT_RULES) -> str | bool:
    """The option letter the text names as a standalone token, 'Z', or False."""
    if "Failed to obtain answer via API" in text:
        return False
    if any(refusal in text for refusal in REFUSALS):
        return "Z"
    tokens = _tokens(text)
    named = [letter for letter in choices if letter in tokens]
    if len(named) == 1:
        letter = named[0]
        if rules == "2024-05" or tokens.index(letter) > len(tokens) - 5:  # 2025-08: among the last 4 tokens
            return letter
    elif not named and "Z" in tokens:
        return "Z"
    if rules != "2024-05":
        match = _ANSWER_IS.search(text)  # 2026-06; (?i) makes "the answer is a dog" name A
        if match and match[1].upper() in choices:
            return match[1].upper()
    return False


def can_infer_text(text: str, choices: Mapping[str, str], rules: str = DEFAULT_RULES) -> str | bool:
    """The one option whose text is a (case-insensitive) substring of the answer, or False."""
    text = text.lower()
    if rules != "2024-05" and len(text) > 2 * sum(len(str(v)) for v in choices.values()):
        return False  # 2025-08 length guard
    found = [letter for letter, option in choices.items() if str(option).lower() in text]
    return found[0] if len(found) == 1 else False


def can_infer(text, choices: Mapping[str, str], rules: str = DEFAULT_RULES) -> str | bool:
    text = str(text)
    return can_infer_option(text, choices, rules) or can_infer_text(text, choices, rules)


def extract_choice(text, choices: Mapping[str, str], rules: str = DEFAULT_RULES) -> str:
    """Exact matching's verdict: the inferred letter, or 'Z' when nothing can be inferred."""
    return can_infer(text, choices, rules) or "Z"


# --- yes / no ------------------------------------------------------------------------------------------
_PUNCTUATION = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]
_COMMA_IN_NUMBER = re.compile(r"(\d)(,)(\d)")
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")


def process_punctuation(text: str) -> str:
    """VLMEvalKit's `process_punctuation` (from the VQA evaluation code), quirks included."""
    out = text
    has_number_comma = _COMMA_IN_NUMBER.search(text) is not None
    for p in _PUNCTUATION:
        if (p + " " in text or " " + p in text) or has_number_comma:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD.sub("", out, 32)  # re.UNICODE (= 32) passed as the count argument


def yes_no(text) -> str:
    words = process_punctuation(str(text).lower()).split()
    if "yes" in words and "no" not in words:
        return "Yes"
    if "no" in words and "yes" not in words:
        return "No"
    return "Unknown"

"""Judge-free answer extraction against the example table of the conventions document (both eras)."""

from __future__ import annotations

import pytest

from evalsuite.extraction import can_infer, extract_choice, process_punctuation, yes_no
from vlora.errors import ConfigError

CHOICES = {"A": "cat", "B": "dog", "C": "bird", "D": "fish"}

# text -> (current rules, 2024-05 rules); False = nothing inferable
TABLE = [
    ("A", "A", "A"),
    ("B.", "B", "B"),
    ("(C) bird", "C", "C"),
    ("Answer: B", "B", "B"),
    ("The answer is D", "D", "D"),
    ("A dog is shown in the picture", False, "A"),
    ("Option B: dog is correct because it barks, wags its tail and likes long walks in the park", False, "B"),
    ("B is wrong, the answer is C", "C", False),
    ("the answer is a dog", "A", "B"),
]


@pytest.mark.parametrize("text,current,old", TABLE)
def test_conventions_table(text, current, old):
    assert can_infer(text, dict(CHOICES), "2026-08") == current
    assert can_infer(text, dict(CHOICES), "2024-05") == old


def test_refusals_none_and_failures():
    assert can_infer("Sorry, I can't help with images of people yet.", CHOICES) == "Z"
    assert can_infer("Z", CHOICES) == "Z"  # "none of the options"
    assert can_infer("Failed to obtain answer via API", CHOICES) is False
    assert extract_choice("I have no idea", CHOICES) == "Z"  # exact matching's verdict for nothing inferable


def test_two_letters_are_ambiguous_in_both_eras():
    assert can_infer("A or B", CHOICES, "2024-05") is False
    assert can_infer("A or B", CHOICES, "2026-08") is False


def test_position_guard_counts_the_last_four_tokens():
    text = "I think that the best option here is clearly B"  # B is the last of 10 tokens
    assert can_infer(text, CHOICES, "2026-08") == "B"
    early = "B I think that the option here is clear enough"  # B first of 10 tokens
    assert can_infer(early, CHOICES, "2026-08") is False and can_infer(early, CHOICES, "2024-05") == "B"


def test_text_match_needs_exactly_one_option():
    assert can_infer("a fish next to a bird", CHOICES, "2024-05") is False  # two options named
    assert can_infer("a small bird", CHOICES, "2024-05") == "C"


def test_unknown_rules_are_refused():
    from evalsuite.extraction import check_rules

    with pytest.raises(ConfigError, match="unknown extraction rules '2023'"):
        check_rules("2023")


@pytest.mark.parametrize("text,expected", [
    ("There is no cat", "No"), ("Yes and no", "Unknown"), ("Nope", "Unknown"), ("Yes.", "Yes"),
    ("yes, it is red", "Yes"), ("No, it is not.", "No"), ("", "Unknown"), ("YES!", "Yes"),
])
def test_yes_no_extraction(text, expected):
    assert yes_no(text) == expected


def test_process_punctuation_quirks():
    assert process_punctuation("a-b") == "a b"  # no space next to it: replaced by a space
    assert process_punctuation("a - b") == "a  b"  # next to a space somewhere: deleted
    assert process_punctuation("1,000 items-left") == "1000 itemsleft"  # a digit,digit anywhere: all deleted
    assert process_punctuation("end. 3.5") == "end 3.5"  # periods before a digit stay

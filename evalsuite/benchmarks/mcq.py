"""Multiple-choice scoring as VLMEvalKit's `mcq_vanilla_eval`, `mcq_circular_eval` and `report_acc`
do it with exact matching (no judge).

Input: one row per prediction, with the benchmark's columns (index, answer, options A.., split,
category, l2-category) and `prediction`. Output: the per-question verdicts and the accuracy table
(fractions in 0-1, one row per split), as VLMEvalKit's `_acc.csv`.

The protocols `circular` (MMBench, CCBench), `vanilla` (ScienceQA) and `mmmu` share `MCQProtocol`:
answers are option letters, prompts are VLMEvalKit's `ImageMCQDataset.build_prompt` or LLaVA's own.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from evalsuite.benchmarks.protocol import BenchmarkProtocol, Message, Scored, images_first
from evalsuite.extraction import can_infer, extract_choice
from evalsuite.prompts import (
    dataset_mcq_prompt,
    is_missing,
    llava_mcq_prompt,
    options_of,
    split_mmmu,
    unknown_image_refs,
)

if TYPE_CHECKING:
    from evalsuite.benchmarks import BenchmarkSpec

MMB_ABBRS = {"coarse_perception": "CP", "finegrained_perception (instance-level)": "FP-S",
             "finegrained_perception (cross-instance)": "FP-C", "logic_reasoning": "LR",
             "relation_reasoning": "RR", "attribute_reasoning": "AR"}


def report_acc(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Overall, then one column per l2-category and per category (sorted), for each split."""
    df = verdicts.copy()
    df["split"] = split_of(df)
    splits = sorted(set(df["split"]))
    table: dict[str, list] = {"split": splits,
                              "Overall": [_mean(df[df["split"] == s]["hit"]) for s in splits]}
    for group in ("l2-category", "category"):
        if group not in df:
            continue
        for ability in sorted(set(df[group].dropna().astype(str))):
            sub = df[df[group].astype(str) == ability]
            table[MMB_ABBRS.get(ability, ability)] = [_mean(sub[sub["split"] == s]["hit"]) for s in splits]
    return pd.DataFrame(table)


def split_of(df: pd.DataFrame) -> pd.Series:
    """The split of each row as report_acc groups them: `split` as text, or 'none' without that column."""
    return df["split"].astype(str) if "split" in df else pd.Series("none", index=df.index, dtype=object)


def _mean(values: pd.Series) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def vanilla_verdicts(df: pd.DataFrame, rules: str) -> pd.DataFrame:
    """One pass per question: hit = (extracted letter == GT); nothing inferable counts as 'Z'."""
    out = df.copy()
    out["extracted"] = [extract_choice(row["prediction"], options_of(row), rules) for row in df.to_dict("records")]
    out["hit"] = (out["extracted"] == out["GT"]).astype(int)
    return out


def score_vanilla(df: pd.DataFrame, rules: str) -> Scored:
    df = df.assign(GT=df["answer"])
    verdicts = vanilla_verdicts(df, rules)
    return verdicts, report_acc(verdicts), []


def mmmu_preprocess(df: pd.DataFrame) -> pd.DataFrame:
    """Open questions (A missing) become A = the answer text, B = 'Other Answers'; a GT that is not a
    capital letter becomes 'A' (VLMEvalKit's MMMU_preproc)."""
    out = df.copy()
    for column in ("A", "B"):
        if column not in out:
            out[column] = np.nan
    out["A"] = out["A"].astype(object)
    out["B"] = out["B"].astype(object)
    open_question = out["A"].isna()
    out.loc[open_question, "B"] = "Other Answers"
    out.loc[open_question, "A"] = out.loc[open_question, "answer"]
    out["GT"] = [a if isinstance(a, str) and a in string.ascii_uppercase and len(a) == 1 else "A"
                 for a in out["answer"]]
    return out


def score_mmmu(df: pd.DataFrame, rules: str) -> Scored:
    prepared = mmmu_preprocess(df)
    verdicts = vanilla_verdicts(prepared, rules)
    opened = int(df["A"].isna().sum()) if "A" in df else len(df)
    return verdicts, report_acc(verdicts), [f"{opened} open question(s) scored as two-choice (A = answer, B = 'Other Answers')"]


def group_index(df: pd.DataFrame) -> pd.Series:
    """The question a row belongs to: `g_index` if present, else index mod 1e6."""
    if "g_index" in df:
        return df["g_index"].astype(int)
    return pd.Series([int(int(i) % 1_000_000) for i in df["index"]], index=df.index)


def circular_verdict(copies: list[dict], rules: str) -> tuple[int, str]:
    """CircularEval of one question: every present copy right -> 1; any inferred wrong answer, or any
    copy nothing can be inferred from (exact matching has no judge to ask) -> 0."""
    inferred = []
    for row in copies:
        letter = can_infer(row["prediction"], options_of(row), rules)
        if letter and letter != row["GT"]:
            return 0, f"copy {row['index']}: {letter!r} != GT {row['GT']!r}"
        inferred.append(letter)
    if all(inferred):
        return 1, "all copies right"
    return 0, "an answer could not be inferred (exact matching)"


def score_circular(df: pd.DataFrame, rules: str) -> Scored:
    """Groups are judged on the copies present; a group whose main row (index == g_index) has no
    prediction is not scored, as in VLMEvalKit."""
    df = df.assign(GT=df["answer"], g_index=group_index(df)).sort_values("index")
    groups: dict[int, list[dict]] = {}
    for row in df.to_dict("records"):
        groups.setdefault(row["g_index"], []).append(row)
    main = df[df["index"].astype(int) == df["g_index"]].copy()
    verdicts = [circular_verdict(groups[g], rules) for g in main["g_index"]]
    main["hit"] = [v[0] for v in verdicts]
    main["log"] = [v[1] for v in verdicts]
    main["copies"] = [len(groups[g]) for g in main["g_index"]]
    unscored = len(set(groups) - set(main["g_index"]))
    notes = [f"{unscored} question(s) without a prediction for their main row (copy 0) are not scored"] if unscored else []
    return main, report_acc(main), notes


def llava_row_prompt(line: Mapping[str, Any]) -> str:
    """LLaVA's MCQ prompt of a row, as VLMEvalKit's LLaVA wrapper `build_prompt` builds it."""
    hint = None if "hint" not in line or is_missing(line["hint"]) else str(line["hint"])
    return llava_mcq_prompt(str(line["question"]), options_of(line), hint)


class MCQProtocol(BenchmarkProtocol):
    """What the multiple-choice protocols share: letter answers, option choices, the two prompts, and a
    headline split the table must have."""

    type = "MCQ"

    def value_problem(self, answer: Any, row: Mapping[str, Any]) -> str | None:
        options = list(options_of(row))
        return None if answer in options else f"{answer!r} is not among the options {options}"

    def identity_problem(self, table: pd.DataFrame, spec: BenchmarkSpec) -> str | None:
        """A headline read from a split needs rows of that split (as report_acc names them)."""
        split = spec.headline.row if spec.headline else "first"
        if split != "first" and split not in set(split_of(table)):
            return f"no row of split {split!r}, which {spec.name} reports (is it a table of another benchmark?)"
        return None

    def message(self, line: Mapping[str, Any], n_images: int, style: str) -> Message:
        text = llava_row_prompt(line) if style == "llava_mcq" else dataset_mcq_prompt(line)
        return images_first(n_images, text)

    def choices(self, line: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(options_of(line))


class CircularProtocol(MCQProtocol):
    """MMBench, CCBench: VLMEvalKit's `mcq_circular_eval` over the rotated copies of each question."""

    name = "circular"

    def identity_problem(self, table: pd.DataFrame, spec: BenchmarkSpec) -> str | None:
        """Circular groups need integer indices (VLMEvalKit asserts it), then the split check."""
        bad = next((i for i in table["index"] if not isinstance(i, int)), None)
        if bad is not None:
            return (f"index {bad!r} is not an integer; {spec.name} groups circular copies by integer index "
                    "(is it a table of another benchmark?)")
        return super().identity_problem(table, spec)

    def score(self, df: pd.DataFrame, rules: str) -> Scored:
        return score_circular(df, rules)

    def question_count(self, table: pd.DataFrame) -> int:
        """One question per circular group (index mod 1e6)."""
        return int(group_index(table).nunique())


class VanillaProtocol(MCQProtocol):
    """ScienceQA: VLMEvalKit's `mcq_vanilla_eval`, one pass per question."""

    name = "vanilla"

    def score(self, df: pd.DataFrame, rules: str) -> Scored:
        return score_vanilla(df, rules)


class MMMUProtocol(MCQProtocol):
    """MMMU: open questions (no options, a text answer) scored as two-choice ones (`MMMU_preproc`); the
    dataset prompt interleaves `<image N>` where it stands (`split_MMMU`)."""

    name = "mmmu"

    def value_problem(self, answer: Any, row: Mapping[str, Any]) -> str | None:
        if not options_of(row):
            return None  # an open question: the answer is text
        return super().value_problem(answer, row)

    def message(self, line: Mapping[str, Any], n_images: int, style: str) -> Message:
        if style == "llava_mcq":
            return super().message(line, n_images, style)
        return split_mmmu(dataset_mcq_prompt(line), list(range(n_images)))

    def unknown_images(self, line: Mapping[str, Any], n_images: int) -> int:
        return unknown_image_refs(dataset_mcq_prompt(line), n_images)

    def score(self, df: pd.DataFrame, rules: str) -> Scored:
        return score_mmmu(df, rules)

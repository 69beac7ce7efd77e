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

from evalsuite.benchmarks.protocol import BenchmarkProtocol, Message, Scored, images_first, unit_positions
from evalsuite.errors import DataError
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

M = 1_000_000  # circular copies of question g are g + j * M (VLMEvalKit's index % 1e6 grouping)
MMB_ABBRS = {"coarse_perception": "CP", "finegrained_perception (instance-level)": "FP-S",
             "finegrained_perception (cross-instance)": "FP-C", "logic_reasoning": "LR",
             "relation_reasoning": "RR", "attribute_reasoning": "AR"}


def report_acc(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Overall, then one column per l2-category and per category (sorted), for each split.

    Works on the `hit` values and masks alone (never filtering the whole verdicts frame), so scoring
    stays cheap when it runs many times (the bootstrap in evalsuite/uncertainty.py)."""
    hits = verdicts["hit"].to_numpy()
    split = split_of(verdicts).to_numpy()
    splits = sorted(set(split))
    in_split = [split == s for s in splits]
    table: dict[str, list] = {"split": splits, "Overall": [_mean(hits[m]) for m in in_split]}
    for group in ("l2-category", "category"):
        if group not in verdicts:
            continue
        labels = verdicts[group].astype(str).to_numpy()
        for ability in sorted(set(verdicts[group].dropna().astype(str))):
            of_ability = labels == ability
            table[MMB_ABBRS.get(ability, ability)] = [_mean(hits[of_ability & m]) for m in in_split]
    return pd.DataFrame(table)


def split_of(df: pd.DataFrame) -> pd.Series:
    """The split of each row as report_acc groups them: `split` as text, or 'none' without that column."""
    return df["split"].astype(str) if "split" in df else pd.Series("none", index=df.index, dtype=object)


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def option_columns(df: pd.DataFrame) -> list[str]:
    """The option columns (A, B, ...) the table has."""
    return [c for c in string.ascii_uppercase if c in df]


def vanilla_verdicts(df: pd.DataFrame, rules: str) -> pd.DataFrame:
    """One pass per question: hit = (extracted letter == GT); nothing inferable counts as 'Z'."""
    out = df.copy()
    rows = df[["prediction", *option_columns(df)]].to_dict("records")  # what extraction reads
    out["extracted"] = [extract_choice(row["prediction"], options_of(row), rules) for row in rows]
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
    read = ["index", "g_index", "GT", "prediction", *option_columns(df)]  # what a verdict reads
    for row in df[read].to_dict("records"):
        groups.setdefault(row["g_index"], []).append(row)
    main = df[df["index"].astype(int) == df["g_index"]].copy()
    verdicts = [circular_verdict(groups[g], rules) for g in main["g_index"]]
    main["hit"] = [v[0] for v in verdicts]
    main["log"] = [v[1] for v in verdicts]
    main["copies"] = [len(groups[g]) for g in main["g_index"]]
    unscored = len(set(groups) - set(main["g_index"]))
    notes = [f"{unscored} question(s) without a prediction for their main row (copy 0) are not scored"] if unscored else []
    return main, report_acc(main), notes


def one_row_units(table: pd.DataFrame) -> list[np.ndarray]:
    """Each row alone: `mcq_vanilla_eval` judges every row (question) by itself."""
    return [np.array([i]) for i in range(len(table))]


def renumber_rows(rows: pd.DataFrame, copies: np.ndarray) -> pd.DataFrame:
    """One row per unit: the index becomes the copy number (nothing else identifies a vanilla question)."""
    return rows.assign(index=np.asarray(copies, dtype="int64"))


def relabel_circular(rows: pd.DataFrame, copies: np.ndarray) -> pd.DataFrame:
    """Copy c of a question becomes question c: index = c + (index - group), g_index = c where present.
    index % 1e6 (or g_index) still gathers exactly the copy's rows, the main row (index == g_index) stays
    the main row and each rotation keeps its offset j * 1e6."""
    copies = np.asarray(copies, dtype="int64")
    if len(copies) and copies.max() >= M:
        raise DataError(f"{copies.max() + 1} circular questions in one resample: index % 1e6 cannot tell them apart")
    offset = rows["index"].astype("int64").to_numpy() - group_index(rows).to_numpy()
    out = rows.assign(index=copies + offset)
    return out.assign(g_index=copies) if "g_index" in rows else out


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

    def strata(self, table: pd.DataFrame) -> pd.Series:
        """The split: `report_acc` reports each split on its own and a headline reads one, so a resample
        keeps every split's number of questions."""
        return split_of(table)


class CircularProtocol(MCQProtocol):
    """MMBench, CCBench: VLMEvalKit's `mcq_circular_eval` over the rotated copies of each question."""

    name = "circular"
    headline_meaning = "accuracy in % under CircularEval: a question counts only when every rotation of its options is answered right"

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

    def units(self, table: pd.DataFrame) -> list[np.ndarray]:
        """A question with all its rotated copies: `mcq_circular_eval` groups rows by g_index (index % 1e6)
        and counts a question right only when every copy is."""
        return unit_positions(group_index(table))

    def relabel(self, rows: pd.DataFrame, copies: np.ndarray) -> pd.DataFrame:
        return relabel_circular(rows, copies)


class VanillaProtocol(MCQProtocol):
    """ScienceQA: VLMEvalKit's `mcq_vanilla_eval`, one pass per question."""

    name = "vanilla"
    headline_meaning = "accuracy in % (one pass per question)"

    def score(self, df: pd.DataFrame, rules: str) -> Scored:
        return score_vanilla(df, rules)

    def units(self, table: pd.DataFrame) -> list[np.ndarray]:
        """A question (one row): `mcq_vanilla_eval` judges each row alone."""
        return one_row_units(table)

    def relabel(self, rows: pd.DataFrame, copies: np.ndarray) -> pd.DataFrame:
        return renumber_rows(rows, copies)


class MMMUProtocol(VanillaProtocol):
    """MMMU: open questions (no options, a text answer) scored as two-choice ones (`MMMU_preproc`), then
    by `mcq_vanilla_eval` (so its bootstrap units are the vanilla ones: a row alone); the dataset prompt
    interleaves `<image N>` where it stands (`split_MMMU`)."""

    name = "mmmu"
    headline_meaning = "accuracy in % (open questions as two-choice ones, one pass per question)"

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

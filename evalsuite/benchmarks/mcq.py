"""Multiple-choice scoring as VLMEvalKit's `mcq_vanilla_eval`, `mcq_circular_eval` and `report_acc`
do it with exact matching (no judge).

Input: one row per prediction, with the benchmark's columns (index, answer, options A.., split,
category, l2-category) and `prediction`. Output: the per-question verdicts and the accuracy table
(fractions in 0-1, one row per split), as VLMEvalKit's `_acc.csv`.
"""

from __future__ import annotations

import string

import numpy as np
import pandas as pd

from evalsuite.extraction import can_infer, extract_choice
from evalsuite.prompts import options_of

MMB_ABBRS = {"coarse_perception": "CP", "finegrained_perception (instance-level)": "FP-S",
             "finegrained_perception (cross-instance)": "FP-C", "logic_reasoning": "LR",
             "relation_reasoning": "RR", "attribute_reasoning": "AR"}


def report_acc(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Overall, then one column per l2-category and per category (sorted), for each split."""
    df = verdicts.copy()
    if "split" not in df:
        df["split"] = "none"
    splits = sorted(set(df["split"].astype(str)))
    df["split"] = df["split"].astype(str)
    table: dict[str, list] = {"split": splits,
                              "Overall": [_mean(df[df["split"] == s]["hit"]) for s in splits]}
    for group in ("l2-category", "category"):
        if group not in df:
            continue
        for ability in sorted(set(df[group].dropna().astype(str))):
            sub = df[df[group].astype(str) == ability]
            table[MMB_ABBRS.get(ability, ability)] = [_mean(sub[sub["split"] == s]["hit"]) for s in splits]
    return pd.DataFrame(table)


def _mean(values: pd.Series) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def vanilla_verdicts(df: pd.DataFrame, rules: str) -> pd.DataFrame:
    """One pass per question: hit = (extracted letter == GT); nothing inferable counts as 'Z'."""
    out = df.copy()
    out["extracted"] = [extract_choice(row["prediction"], options_of(row), rules) for row in df.to_dict("records")]
    out["hit"] = (out["extracted"] == out["GT"]).astype(int)
    return out


def score_vanilla(df: pd.DataFrame, rules: str) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
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


def score_mmmu(df: pd.DataFrame, rules: str) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
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


def score_circular(df: pd.DataFrame, rules: str) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
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

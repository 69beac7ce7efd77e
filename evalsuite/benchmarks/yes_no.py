"""Yes/no scoring as VLMEvalKit's `ImageYORNDataset.evaluate`, `MME_rating` and `Hallusion_rating`.

A row's score is (answer == YOrN_Extraction(prediction)); "Unknown" is wrong. Tables are x100
(MME: summed points), as VLMEvalKit's `_score.csv`. Where predictions are partial, what can be
computed is, and the notes say what was left out (VLMEvalKit would raise instead).

The protocols `mme` and `hallusionbench` share `YesNoProtocol`: answers are Yes / No, the prompt is the
question verbatim (`ImageYORNDataset.build_prompt`), likelihood mode compares "Yes" and "No".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from evalsuite.benchmarks.protocol import BenchmarkProtocol, Message, Scored, images_first, unit_positions
from evalsuite.errors import DataError
from evalsuite.extraction import yes_no

MME_PERCEPTION = ("OCR", "artwork", "celebrity", "color", "count", "existence", "landmark", "position", "posters", "scene")
MME_REASONING = ("code_reasoning", "commonsense_reasoning", "numerical_calculation", "text_translation")


def yes_no_verdicts(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["extracted"] = [yes_no(p) for p in df["prediction"]]
    out["score"] = (out["answer"] == out["extracted"]).astype(int)
    return out


def score_mme(df: pd.DataFrame, rules: str) -> Scored:
    """Per subtask: acc = 100 mean(score), acc+ = 100 mean over images of both questions right;
    subtask = acc + acc+ (max 200); perception and reasoning (cognition) are sums of subtasks."""
    verdicts = yes_no_verdicts(df)
    by_image: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for category, path, score in zip(verdicts["category"], verdicts["image_path"], verdicts["score"], strict=True):
        by_image[category][str(path)].append(int(score))
    notes, scores = [], {}
    for category, images in by_image.items():
        every = [s for pair in images.values() for s in pair]
        pairs = [pair for pair in images.values() if len(pair) == 2]
        if len(pairs) < len(images):
            notes.append(f"{category}: {len(images) - len(pairs)} image(s) without both questions left out of acc+")
        plus = np.mean([pair[0] * pair[1] for pair in pairs]) * 100 if pairs else 0.0
        scores[category] = float(np.mean(every) * 100 + plus)
    row: dict[str, float] = {}
    for name, members in (("perception", MME_PERCEPTION), ("reasoning", MME_REASONING)):
        absent = [c for c in members if c not in scores]
        if absent:
            notes.append(f"{name}: subtask(s) {absent} have no predictions; the sum leaves them out")
        row[name] = float(sum(scores.get(c, 0.0) for c in members))
    row.update({c: scores[c] for c in (*MME_PERCEPTION, *MME_REASONING) if c in scores})
    row.update({c: v for c, v in scores.items() if c not in row})
    return verdicts, pd.DataFrame([row]), notes


Columns = Mapping[str, np.ndarray]  # verdict columns by name (the rows of one table row of Hallusion_rating)


def _all_right(verdicts: Columns, keys: list[str]) -> float:
    groups: dict[tuple, list[int]] = defaultdict(list)
    for key, score in zip(zip(*(verdicts[k] for k in keys), strict=True), verdicts["score"], strict=True):
        groups[key].append(int(score))
    return float(np.mean([all(v) for v in groups.values()]) * 100)


def _hallusion_row(name: str, verdicts: Columns) -> dict:
    return {"split": name, "aAcc": float(np.mean(verdicts["score"]) * 100),
            "fAcc": _all_right(verdicts, ["l2-category", "set_id", "figure_id"]),
            "qAcc": _all_right(verdicts, ["l2-category", "set_id", "question_id"])}


def hallusion_fields(index: pd.Series) -> list[list[str]]:
    """The `_`-separated fields of each HallusionBench index: {cat}_{subcat}_{visual}_{set}_{figure}_{question}."""
    fields = [str(i).split("_") for i in index]
    short = next((i for i, f in zip(index, fields, strict=True) if len(f) < 6), None)
    if short is not None:
        raise _short_index(short)
    return fields


def _short_index(index: Any) -> DataError:
    return DataError(f"HallusionBench index {index!r} does not have the 6 fields "
                     "{cat}_{subcat}_{visual}_{set}_{figure}_{question}")


HALLUSION_KEYS = ["category", "l2-category", "set_id", "figure_id", "question_id", "score"]


def _where(columns: Columns, mask: np.ndarray) -> Columns:
    return {k: v[mask] for k, v in columns.items()}


def score_hallusionbench(df: pd.DataFrame, rules: str) -> Scored:
    """aAcc over questions; fAcc over figures (l2-category, set, figure) all right; qAcc over
    questions asked of the original and edited figures (l2-category, set, question) all right."""
    verdicts = yes_no_verdicts(df)
    fields = hallusion_fields(verdicts["index"])
    verdicts["set_id"] = [f[3] for f in fields]
    verdicts["figure_id"] = [f[4] for f in fields]
    verdicts["question_id"] = [f[5] for f in fields]
    columns = {k: verdicts[k].to_numpy() for k in HALLUSION_KEYS}  # filtered per row: arrays, not the frame
    rows = [_hallusion_row("Overall", columns)]
    for group in ("category", "l2-category"):
        for value in sorted(set(columns[group])):
            rows.append(_hallusion_row(value, _where(columns, columns[group] == value)))
    table = pd.DataFrame(rows)
    table["Avg"] = table[["aAcc", "fAcc", "qAcc"]].mean(axis=1)
    return verdicts, table, []


def copy_labels(copies: np.ndarray) -> pd.Series:
    """Each row's drawn-copy number as text, for identifiers that are text."""
    return pd.Series(np.asarray(copies, dtype="int64")).astype(str)


def relabel_mme(rows: pd.DataFrame, copies: np.ndarray) -> pd.DataFrame:
    """image_path gets `#copy` appended (copy c of a pair stays a pair of its own); the index becomes the
    row's position (MME_rating reads nothing from it)."""
    paths = rows["image_path"].astype(str).reset_index(drop=True) + "#" + copy_labels(copies)
    return rows.assign(image_path=paths.to_numpy(), index=np.arange(len(rows), dtype="int64"))


HALLUSION_AROUND_SET = r"\A((?:[^_]*_){3})[^_]*((?:_[^_]*){2,})\Z"  # (cat_subcat_visual_)set(_figure_question...)


def relabel_hallusion(rows: pd.DataFrame, copies: np.ndarray) -> pd.DataFrame:
    """The index's set field (the fourth) becomes the copy number: copy c of a figure set is set c, and
    its figure and question groups are found under it as before."""
    around = rows["index"].astype(str).reset_index(drop=True).str.extract(HALLUSION_AROUND_SET)
    short = around[0].isna().to_numpy()
    if short.any():
        raise _short_index(rows["index"].iloc[int(np.argmax(short))])
    index = around[0] + copy_labels(copies) + around[1]
    return rows.assign(index=index.to_numpy())


class YesNoProtocol(BenchmarkProtocol):
    """What the yes/no protocols share."""

    type = "Y/N"

    def value_problem(self, answer: Any, row: Mapping[str, Any]) -> str | None:
        return None if answer in ("Yes", "No") else f"{answer!r} is not Yes or No"

    def message(self, line: Mapping[str, Any], n_images: int, style: str) -> Message:
        """The question verbatim after the images, whatever the style (custom prompts are MCQ only)."""
        return images_first(n_images, str(line["question"]))

    def choices(self, line: Mapping[str, Any]) -> tuple[str, ...]:
        return ("Yes", "No")


class MMEProtocol(YesNoProtocol):
    """MME: `MME_rating` pairs the two questions of an image by `image_path`."""

    name = "mme"
    headline_meaning = "per subtask acc + acc+ (both questions of an image right), in %, summed: perception (10 subtasks, at most 2000) and reasoning (4, at most 800)"
    columns = ("category", "image_path")

    def score(self, df: pd.DataFrame, rules: str) -> Scored:
        return score_mme(df, rules)

    def units(self, table: pd.DataFrame) -> list[np.ndarray]:
        """An image with its two questions: `MME_rating` pairs rows by image_path within a category
        (acc+ needs both right)."""
        return unit_positions(table["category"], table["image_path"].astype(str))

    def strata(self, table: pd.DataFrame) -> pd.Series:
        """The category (subtask): MME scores each subtask on its own and sums them, so a resample keeps
        every subtask and its number of images."""
        return table["category"].astype(str)

    def relabel(self, rows: pd.DataFrame, copies: np.ndarray) -> pd.DataFrame:
        return relabel_mme(rows, copies)


class HallusionBenchProtocol(YesNoProtocol):
    """HallusionBench: `Hallusion_rating` groups by l2-category and the index's set / figure / question."""

    name = "hallusionbench"
    headline_meaning = "aAcc (per question), fAcc (per figure), qAcc (per question pair) in %, and Avg their mean"
    columns = ("category", "l2-category")

    def score(self, df: pd.DataFrame, rules: str) -> Scored:
        return score_hallusionbench(df, rules)

    def units(self, table: pd.DataFrame) -> list[np.ndarray]:
        """A figure set: rows sharing l2-category and the index's set field. `Hallusion_rating`'s figure
        groups (l2-category, set, figure) and question groups (l2-category, set, question) lie inside it."""
        sets = [f[3] for f in hallusion_fields(table["index"])]
        return unit_positions(table["l2-category"], np.array(sets, dtype=object))

    def strata(self, table: pd.DataFrame) -> pd.Series:
        """One stratum: the headline (the Overall row) pools every figure set."""
        return pd.Series("Overall", index=table.index, dtype=object)

    def relabel(self, rows: pd.DataFrame, copies: np.ndarray) -> pd.DataFrame:
        return relabel_hallusion(rows, copies)

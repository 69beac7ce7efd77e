"""Reference scores of a benchmark, scored by the same code as any model: the answer key (every answer
right) and chance (the mean score of answers drawn uniformly from each row's options, Yes / No for
yes/no questions; an open question is left unanswered, as guessing its text has no chance).

Chance is estimated by drawing `draws` answer sets from a local generator; with CircularEval a
question counts only when every rotated copy is right, so chance there is far below 1 / options.
"""

from __future__ import annotations

import random

import pandas as pd

from evalsuite.data import BenchmarkData
from evalsuite.prompts import options_of
from evalsuite.scoring import score_predictions


def answer_key(data: BenchmarkData, rules: str) -> dict[str, float]:
    """The headline numbers when every prediction is the answer."""
    table = data.table
    predictions = pd.DataFrame({"index": table["index"], "prediction": table["answer"].astype(str)})
    return score_predictions(data.spec, table, predictions, rules).headline


def draws_for(rows: int, budget: int = 100_000) -> int:
    """How many random answer sets `chance` scores for a table of `rows` rows: 200, fewer for large tables
    (about `budget` scored rows in all, at least 10), so a run's chance level costs seconds."""
    return max(10, min(200, budget // max(rows, 1)))


def chance(data: BenchmarkData, rules: str, draws: int = 200, seed: int = 0) -> dict[str, float]:
    """The mean headline numbers of `draws` uniformly random answer sets."""
    table = data.table
    rows = table.to_dict("records")
    choices = [("Yes", "No") if data.spec.type == "Y/N" else tuple(options_of(row)) for row in rows]
    rng = random.Random(seed)
    totals: dict[str, float] = {}
    for _ in range(draws):
        picks = [rng.choice(c) if c else "" for c in choices]
        predictions = pd.DataFrame({"index": table["index"], "prediction": picks})
        for name, value in score_predictions(data.spec, table, predictions, rules).headline.items():
            totals[name] = totals.get(name, 0.0) + value / draws
    return totals

"""The uncertainty of a benchmark score: a bootstrap over the benchmark's questions.

    bootstrap_interval(spec, table, predictions, rules, draws=200, seed=0, level=0.95)
        -> {headline name: (low, high)}

Each draw resamples the benchmark's *units* with replacement and scores the resample with the
project's own `score_predictions`, so the interval is of exactly the number reported. The protocol
owns the units (what its scorer judges together, never split: a circular question with all its
copies, an MME image pair, a HallusionBench figure set, a vanilla / MMMU question), the strata a
resample keeps fixed (a split, an MME subtask) and the relabelling that gives each drawn copy of a
unit fresh identifiers, so a unit drawn twice counts twice (evalsuite/benchmarks/protocol.py).

Only rows with a prediction are resampled (the rows the point score covers). Draws come from a
local `numpy.random.Generator` seeded by `seed`; the global generators are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from evalsuite.benchmarks import BenchmarkSpec
from evalsuite.benchmarks.protocol import BenchmarkProtocol
from evalsuite.scoring import ScoreReport, score_predictions
from vlora.errors import ConfigError

DROPPED = ["image", "line"]  # what scoring drops anyway: not carried through the draws


def scored_rows(table: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """The table's rows that have a prediction (positions 0..), with a `prediction` column, as
    `score_predictions` joins them (by index as text)."""
    by_index = dict(zip(predictions["index"].astype(str), predictions["prediction"], strict=True))
    rows = table[table["index"].astype(str).isin(by_index)].drop(columns=DROPPED, errors="ignore")
    rows = rows.reset_index(drop=True)
    return rows.assign(prediction=[by_index[key] for key in rows["index"].astype(str)])


@dataclass(frozen=True)
class Resampler:
    """The scored rows cut into the protocol's units, grouped by stratum; `draw` makes one resample."""

    handler: BenchmarkProtocol
    rows: pd.DataFrame  # scored_rows: table + prediction
    members: tuple[np.ndarray, ...]  # row positions of each unit
    sizes: np.ndarray  # rows per unit
    strata: tuple[np.ndarray, ...]  # unit numbers of each stratum

    @classmethod
    def of(cls, handler: BenchmarkProtocol, rows: pd.DataFrame) -> Resampler:
        """Units and strata as the protocol finds them; an inconsistent rule is an error."""
        members = tuple(handler.units(rows))
        check_partition(handler, members, len(rows))
        strata = unit_strata(handler, members, handler.strata(rows).to_numpy())
        return cls(handler, rows, members, np.array([len(m) for m in members]), strata)

    def draw(self, rng: np.random.Generator) -> pd.DataFrame:
        """One resample: each stratum's units drawn with replacement (as many as it has), their rows one
        unit after another, relabelled by the protocol (copy k of the draw gets identifiers of its own)."""
        chosen = np.concatenate([units[rng.integers(0, len(units), len(units))] for units in self.strata])
        positions = np.concatenate([self.members[u] for u in chosen])
        copies = np.repeat(np.arange(len(chosen)), self.sizes[chosen])
        return self.handler.relabel(self.rows.iloc[positions].reset_index(drop=True), copies)


def check_partition(handler: BenchmarkProtocol, members: tuple[np.ndarray, ...], n_rows: int) -> None:
    """Every row in exactly one unit, or the protocol's unit rule is wrong."""
    every = np.sort(np.concatenate(members)) if members else np.array([], dtype=int)
    if not np.array_equal(every, np.arange(n_rows)):
        raise ConfigError(f"the {handler.name} protocol's units do not cover each of the {n_rows} rows exactly once")


def unit_strata(handler: BenchmarkProtocol, members: tuple[np.ndarray, ...], labels: np.ndarray
                ) -> tuple[np.ndarray, ...]:
    """The unit numbers of each stratum (strata in the order of their first unit); a unit whose rows lie
    in several strata is an error."""
    by_stratum: dict[object, list[int]] = {}
    for number, rows in enumerate(members):
        stratum = set(labels[rows])
        if len(stratum) != 1:
            raise ConfigError(f"the {handler.name} protocol puts one unit in several strata ({sorted(map(str, stratum))})")
        by_stratum.setdefault(stratum.pop(), []).append(number)
    return tuple(np.array(units) for units in by_stratum.values())


def score_draw(spec: BenchmarkSpec, drawn: pd.DataFrame, rules: str) -> ScoreReport:
    """A resample scored as any predictions are: its table and its predictions through `score_predictions`."""
    predictions = drawn[["index", "prediction"]]
    return score_predictions(spec, drawn.drop(columns=["prediction"]), predictions, rules, source="bootstrap draw")


def bootstrap_distribution(spec: BenchmarkSpec, table: pd.DataFrame, predictions: pd.DataFrame, rules: str,
                           draws: int = 200, seed: int = 0) -> dict[str, np.ndarray]:
    """The headline numbers of `draws` resamples: {headline name: array of `draws` values}; {} when the
    point score has no headline (nothing scored in the headline's split)."""
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 2:
        raise ValueError(f"draws must be an int of at least 2, not {draws!r}")
    point = score_predictions(spec, table, predictions, rules).headline  # raises what scoring raises
    if not point:
        return {}
    resampler = Resampler.of(spec.handler, scored_rows(table, predictions))
    rng = np.random.default_rng(seed)
    values = {name: np.empty(draws) for name in point}
    for d in range(draws):
        headline = score_draw(spec, resampler.draw(rng), rules).headline
        if headline.keys() != point.keys():
            raise ConfigError(f"{spec.name}: a resample's headline has {sorted(headline)}, the score has "
                              f"{sorted(point)}; the {spec.protocol} protocol's strata must keep the headline's rows")
        for name, value in headline.items():
            values[name][d] = value
    return values


def bootstrap_interval(spec: BenchmarkSpec, table: pd.DataFrame, predictions: pd.DataFrame, rules: str,
                       draws: int = 200, seed: int = 0, level: float = 0.95) -> dict[str, tuple[float, float]]:
    """The percentile bootstrap interval at `level` of each headline number: {name: (low, high)}."""
    if isinstance(level, bool) or not isinstance(level, int | float) or not 0 < level < 1:
        raise ValueError(f"level must be a number between 0 and 1, not {level!r}")
    tail = (1 - level) / 2
    distribution = bootstrap_distribution(spec, table, predictions, rules, draws, seed)
    return {name: (float(np.quantile(v, tail)), float(np.quantile(v, 1 - tail))) for name, v in distribution.items()}


def standard_error(spec: BenchmarkSpec, table: pd.DataFrame, predictions: pd.DataFrame, rules: str,
                   draws: int = 200, seed: int = 0) -> dict[str, float]:
    """The bootstrap standard error of each headline number (the draws' standard deviation)."""
    distribution = bootstrap_distribution(spec, table, predictions, rules, draws, seed)
    return {name: float(np.std(v, ddof=1)) for name, v in distribution.items()}

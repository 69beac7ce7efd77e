"""The contract of a scoring protocol, and the headline a benchmark's YAML entry names.

A protocol (circular, vanilla, mmmu in mcq.py; mme, hallusionbench in yes_no.py) owns everything
that differs between benchmarks: the columns a table needs, what a valid answer is, what identifies
a table as its own, the message a row becomes, the likelihood choices of a row, the scorer, how its
questions are counted, and how the headline numbers are read from its score table. Checks return a
problem (text) or None; the caller names the file, line and column.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from evalsuite.prompts import is_missing
from vlora.errors import ConfigError

if TYPE_CHECKING:
    from evalsuite.benchmarks import BenchmarkSpec

Message = list[dict[str, Any]]  # {"type": "text", "value": str} | {"type": "image", "value": image number}
Scored = tuple[pd.DataFrame, pd.DataFrame, list[str]]  # verdicts, score table, notes

@dataclass(frozen=True)
class Headline:
    """The YAML's `headline` entry: which row of the score table (`first`, or the one whose `split` is
    `row`), which columns under which labels (a list of columns: their sum), times `scale`."""

    row: str
    columns: Mapping[str, str | tuple[str, ...]]  # label -> the columns summed (one name, or a list)
    scale: float

    def __post_init__(self) -> None:
        columns = {label: (names,) if isinstance(names, str) else tuple(names) for label, names in self.columns.items()}
        if not columns or not all(columns.values()):
            raise ConfigError("headline columns must map labels to a column or a list of columns")
        if not math.isfinite(self.scale):
            raise ConfigError(f"headline scale must be a finite number, not {self.scale!r}")
        object.__setattr__(self, "columns", columns)


def images_first(n_images: int, text: str) -> Message:
    """All images, then the text: how VLMEvalKit's non-interleaved prompts are laid out."""
    return [{"type": "image", "value": i} for i in range(n_images)] + [{"type": "text", "value": text}]


def unit_positions(*keys: pd.Series | np.ndarray) -> list[np.ndarray]:
    """The row positions of each distinct combination of `keys` (one value per row), units in the order
    of their first row; a missing key value is a value like any other (a unit of its own)."""
    frame = pd.DataFrame({i: np.asarray(key, dtype=object) for i, key in enumerate(keys)})
    codes = frame.groupby(list(frame.columns), sort=False, dropna=False).ngroup().to_numpy()
    order = np.argsort(codes, kind="stable")
    return np.split(order, np.cumsum(np.bincount(codes))[:-1])


class BenchmarkProtocol(ABC):
    """One scoring protocol. Subclasses set `name`, `type` (and `columns`) and implement the abstract methods."""

    name: ClassVar[str]  # the YAML's `protocol`
    type: ClassVar[str]  # VLMEvalKit's dataset TYPE: "MCQ" | "Y/N"
    headline_meaning: ClassVar[str]  # what its headline numbers are, in one line for the user
    columns: ClassVar[tuple[str, ...]] = ()  # required beyond index, question, image (and answer)

    def required_columns(self, answers: bool) -> tuple[str, ...]:
        """The columns a table must have; `answer` only when the benchmark ships answers."""
        return ("index", "question", "image") + (("answer",) if answers else ()) + self.columns

    def answer_problem(self, row: Mapping[str, Any]) -> str | None:
        """What is wrong with the answer of one row, or None."""
        if is_missing(row["answer"]):
            return "no answer"
        return self.value_problem(row["answer"], row)

    @abstractmethod
    def value_problem(self, answer: Any, row: Mapping[str, Any]) -> str | None:
        """What is wrong with a present answer of one row, or None."""

    def identity_problem(self, table: pd.DataFrame, spec: BenchmarkSpec) -> str | None:
        """Why `table` is not a table of `spec`'s benchmark (a table of another one), or None."""
        return None

    @abstractmethod
    def message(self, line: Mapping[str, Any], n_images: int, style: str) -> Message:
        """The row as a message with numbered images, in `style` ("dataset" | "llava_mcq")."""

    @abstractmethod
    def choices(self, line: Mapping[str, Any]) -> tuple[str, ...]:
        """What likelihood mode compares for the row; () means the row is generated."""

    def unknown_images(self, line: Mapping[str, Any], n_images: int) -> int:
        """How many image references in the row's text name an image the row does not have."""
        return 0

    @abstractmethod
    def score(self, df: pd.DataFrame, rules: str) -> Scored:
        """Verdicts, the score table (VLMEvalKit's _acc.csv / _score.csv) and notes."""

    def question_count(self, table: pd.DataFrame) -> int:
        """How many questions the table's rows ask."""
        return len(table)

    def headline_numbers(self, table: pd.DataFrame, headline: Headline) -> dict[str, float]:
        """The headline's columns of its row of the score table, scaled; {} when that row is absent."""
        if headline.row != "first" and "split" not in table:
            raise ConfigError(f"headline row {headline.row!r}: the {self.name} score table has no split column")
        rows = table.iloc[:1] if headline.row == "first" else table[table["split"] == headline.row]
        if rows.empty:
            return {}
        absent = [c for names in headline.columns.values() for c in names if c not in table]
        if absent:
            raise ConfigError(f"headline column(s) {absent} are not in the {self.name} score table "
                              f"(has {list(table.columns)})")
        row = rows.iloc[0]
        return {label: float(sum(float(row[c]) for c in names)) * headline.scale
                for label, names in headline.columns.items()}

    def units(self, table: pd.DataFrame) -> list[np.ndarray]:
        """The row positions of each unit the scorer judges together (every row in exactly one unit)."""
        raise self._no_unit_rule("units")

    def strata(self, table: pd.DataFrame) -> pd.Series:
        """Per row, the stratum its unit is resampled within (a resample keeps each stratum's unit count)."""
        raise self._no_unit_rule("strata")

    def relabel(self, rows: pd.DataFrame, copies: np.ndarray) -> pd.DataFrame:
        """`rows` (drawn units, one after another, positions 0..) with identifiers unique per drawn copy:
        row i belongs to copy `copies[i]` (0, 1, ...), so a unit drawn twice is scored as two."""
        raise self._no_unit_rule("relabel")

    def _no_unit_rule(self, method: str) -> ConfigError:
        return ConfigError(f"the {self.name} protocol has no bootstrap unit rule ({type(self).__name__}.{method} "
                           "is not implemented): its scores cannot carry an interval")

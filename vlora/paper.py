"""The paper's published numbers (VLoRA, arXiv 2405.20339, Tables 1-5) as data: vlora/paper.yaml, read
strictly, one file for the FLOPs report (Table 1's GFLOPs), the sweeps' tables (2-5) and the report."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

from vlora.errors import ConfigError


@dataclass(frozen=True)
class PaperRow:
    scores: tuple[float, ...]  # one per column
    size: str | None = None  # Table 1: parameters as printed ("7.8B")
    visual_tokens: int | None = None  # Table 1
    gflops: float | None = None  # Table 1: the LLM part at C = 32, as printed
    vlora: bool = False  # Table 1: the row the VLoRA formula reproduces (the others: the input-space formula)
    note: str = ""


@dataclass(frozen=True)
class PaperTable:
    title: str
    rows: dict[str, PaperRow]


@dataclass(frozen=True)
class PaperTables:
    columns: tuple[str, ...]  # the benchmarks' VLMEvalKit names, in the paper's order
    tables: dict[str, PaperTable]  # table1 .. table5

    def __post_init__(self) -> None:
        for key, table in self.tables.items():
            for name, row in table.rows.items():
                if len(row.scores) != len(self.columns):
                    raise ConfigError(f"vlora/paper.yaml: tables.{key}.rows.{name}.scores: {len(row.scores)} scores "
                                      f"for {len(self.columns)} columns")


@cache
def paper_tables() -> PaperTables:
    from vlora.schema import read_yaml

    return read_yaml(resources.files("vlora").joinpath("paper.yaml"), PaperTables, "vlora/paper.yaml")


def paper_table(key: str) -> PaperTable:
    tables = paper_tables().tables
    if key not in tables:
        raise ConfigError(f"the paper has no table {key!r} (vlora/paper.yaml has {', '.join(tables)})")
    return tables[key]

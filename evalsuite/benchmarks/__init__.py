"""Benchmarks as data (`benchmarks.yaml`) and one protocol object per scoring protocol.

    circular        MMBench, CCBench: CircularEval over rotated copies (mcq.py)
    vanilla         ScienceQA: one pass per question (mcq.py)
    mmmu            MMMU: open questions turned into two-choice ones, then vanilla (mcq.py)
    mme             MME: acc + acc+ per subtask, perception / reasoning sums (yes_no.py)
    hallusionbench  HallusionBench: aAcc, fAcc, qAcc and their mean (yes_no.py)

A protocol (protocol.py) owns its columns, answer check, prompt, scorer and headline reading; adding
one is a class in one of those modules, a line in PROTOCOLS and entries in the YAML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from evalsuite.benchmarks.mcq import CircularProtocol, MMMUProtocol, VanillaProtocol
from evalsuite.benchmarks.protocol import BenchmarkProtocol, Headline
from evalsuite.benchmarks.yes_no import HallusionBenchProtocol, MMEProtocol
from vlora.errors import ConfigError

PROTOCOLS: dict[str, BenchmarkProtocol] = {p.name: p for p in (
    CircularProtocol(), VanillaProtocol(), MMMUProtocol(), MMEProtocol(), HallusionBenchProtocol())}

@dataclass(frozen=True)
class BenchmarkEntry:
    """One benchmarks.yaml entry, as read (strictly, through vlora.schema)."""

    protocol: str
    md5: dict[str, str] = field(default_factory=dict)  # known releases: md5 -> which VLMEvalKit era
    url: str = ""
    answers: bool = True  # False: a test split scored by an official server
    headline: Headline | None = None  # required with answers, absent without
    aliases: tuple[str, ...] = ()
    mini: str = ""  # the mini-suite file that stands in for it in the embedded default (evalsuite/mini)

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"protocol: unknown protocol {self.protocol!r} (known: {', '.join(PROTOCOLS)})")
        if self.answers != (self.headline is not None):
            raise ConfigError("a benchmark with answers needs a headline, one without answers has none")


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str  # VLMEvalKit's dataset name (and TSV file stem)
    handler: BenchmarkProtocol  # the protocol object the YAML's `protocol` names
    md5: dict[str, str]  # known releases: md5 -> which VLMEvalKit era
    url: str = ""
    answers: bool = True  # False: a test split scored by an official server
    headline: Headline | None = None  # None only without answers
    aliases: tuple[str, ...] = ()
    mini: str = ""  # the mini-suite file that stands in for it in the embedded default (evalsuite/mini)

    @property
    def protocol(self) -> str:
        return self.handler.name

    @property
    def type(self) -> str:
        """VLMEvalKit's dataset TYPE: "MCQ" | "Y/N"."""
        return self.handler.type


def spec_from_entry(name: str, entry: Any) -> BenchmarkSpec:
    """The spec of one entry (plain data, read strictly: a malformed entry is a ConfigError naming it)."""
    from vlora.schema import ROOT, from_data

    entry = from_data(BenchmarkEntry, entry, f"benchmarks.yaml: {name}" + ROOT)
    return BenchmarkSpec(name=name, handler=PROTOCOLS[entry.protocol], md5=entry.md5, url=entry.url,
                         answers=entry.answers, headline=entry.headline, aliases=entry.aliases, mini=entry.mini)


@cache
def specs() -> dict[str, BenchmarkSpec]:
    from vlora.schema import read_yaml

    source = resources.files("evalsuite.benchmarks").joinpath("benchmarks.yaml")
    entries = read_yaml(source, dict[str, Any], "evalsuite/benchmarks/benchmarks.yaml")
    return {name: spec_from_entry(name, entry) for name, entry in entries.items()}


def benchmark(name: str) -> BenchmarkSpec:
    """A benchmark by VLMEvalKit name or alias (case-insensitive)."""
    table = specs()
    if name in table:
        return table[name]
    lowered = name.lower()
    for spec in table.values():
        if lowered == spec.name.lower() or lowered in spec.aliases:
            return spec
    raise ConfigError(f"unknown benchmark {name!r}; known: {', '.join(table)}")

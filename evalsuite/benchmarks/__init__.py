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

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from evalsuite.benchmarks.mcq import CircularProtocol, MMMUProtocol, VanillaProtocol
from evalsuite.benchmarks.protocol import BenchmarkProtocol, Headline
from evalsuite.benchmarks.yes_no import HallusionBenchProtocol, MMEProtocol
from vlora.errors import ConfigError

PROTOCOLS: dict[str, BenchmarkProtocol] = {p.name: p for p in (
    CircularProtocol(), VanillaProtocol(), MMMUProtocol(), MMEProtocol(), HallusionBenchProtocol())}

ENTRY_KEYS = ("protocol", "md5", "url", "answers", "headline", "aliases", "mini")


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
    """The spec of one YAML entry; a malformed entry is a ConfigError naming it."""
    where = f"benchmarks.yaml: {name}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: an entry is a mapping, not {entry!r}")
    unknown = sorted(set(entry) - set(ENTRY_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown} (known: {', '.join(ENTRY_KEYS)})")
    protocol = entry.get("protocol")
    if protocol not in PROTOCOLS:
        raise ConfigError(f"{where}: unknown protocol {protocol!r} (known: {', '.join(PROTOCOLS)})")
    answers = entry.get("answers", True)
    if not isinstance(answers, bool):
        raise ConfigError(f"{where}: answers must be true or false, not {answers!r}")
    if answers != ("headline" in entry):
        raise ConfigError(f"{where}: a benchmark with answers needs a headline, one without answers has none")
    headline = Headline.from_yaml(entry["headline"], where) if answers else None
    return BenchmarkSpec(name=name, handler=PROTOCOLS[protocol], md5=dict(entry.get("md5", {})),
                         url=entry.get("url", ""), answers=answers, headline=headline,
                         aliases=tuple(entry.get("aliases", ())), mini=str(entry.get("mini", "")))


@cache
def specs() -> dict[str, BenchmarkSpec]:
    import yaml

    text = resources.files("evalsuite.benchmarks").joinpath("benchmarks.yaml").read_text(encoding="utf-8")
    return {name: spec_from_entry(name, entry) for name, entry in yaml.safe_load(text).items()}


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

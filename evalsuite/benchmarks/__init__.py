"""Benchmarks as data (`benchmarks.yaml`) and one scorer per protocol.

    circular        MMBench, CCBench: CircularEval over rotated copies (mcq.py)
    vanilla         ScienceQA: one pass per question (mcq.py)
    mmmu            MMMU: open questions turned into two-choice ones, then vanilla (mcq.py)
    mme             MME: acc + acc+ per subtask, perception / reasoning sums (yes_no.py)
    hallusionbench  HallusionBench: aAcc, fAcc, qAcc and their mean (yes_no.py)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from vlora.errors import ConfigError


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str  # VLMEvalKit's dataset name (and TSV file stem)
    type: str  # "MCQ" | "Y/N"
    protocol: str
    md5: dict[str, str]  # known releases: md5 -> which VLMEvalKit era
    url: str = ""
    answers: bool = True  # False: a test split scored by an official server
    headline: dict[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def scorer(self):
        from evalsuite.benchmarks import mcq, yes_no

        return {"circular": mcq.score_circular, "vanilla": mcq.score_vanilla, "mmmu": mcq.score_mmmu,
                "mme": yes_no.score_mme, "hallusionbench": yes_no.score_hallusionbench}[self.protocol]

    @property
    def required_columns(self) -> tuple[str, ...]:
        base = ("index", "question", "image") + (("answer",) if self.answers else ())
        extra = {"mme": ("category", "image_path"), "hallusionbench": ("category", "l2-category")}
        return base + extra.get(self.protocol, ())


@cache
def specs() -> dict[str, BenchmarkSpec]:
    import yaml

    text = resources.files("evalsuite.benchmarks").joinpath("benchmarks.yaml").read_text(encoding="utf-8")
    out = {}
    for name, entry in yaml.safe_load(text).items():
        entry = dict(entry)
        entry["aliases"] = tuple(entry.get("aliases", ()))
        out[name] = BenchmarkSpec(name=name, **entry)
    return out


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

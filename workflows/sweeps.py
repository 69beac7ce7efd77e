"""Ablation sweeps as data: configs/*.yaml -> (variant, seed) jobs -> train + evaluate -> one table.

    config --(checked before any training)--> jobs: every variant x seed, a TrainingPlan each (the
    embedded plan of the base model, the base's and the variant's dotted overrides, the seed)
    --> results/sweeps/<name>/runs/<variant>/seed-<s>/ (train/, eval/, done.json written last)
    --> sweep_table.py: the table beside the paper's, FLOPs per variant, plots, uncertainty

A finished job (done.json) is skipped, an unfinished one resumes (stage checkpoints, finished stages,
the runner's resume), so a sweep killed at any point continues where it stopped. `--shard i/n` (or
the process's rank and world size) takes every n-th job.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlora.errors import ConfigError

CONFIG_KEYS = {"name", "title", "paper", "parameter", "base", "data", "benchmarks", "seeds", "reference",
               "variants", "eval"}
DONE = "done.json"


@dataclass(frozen=True)
class Job:
    variant: str
    seed: int
    model: str  # the embedded model name whose plan the job starts from
    plan: Any  # vlora.training.TrainingPlan

    @property
    def key(self) -> str:
        return f"{self.variant}/seed-{self.seed}"


@dataclass(frozen=True)
class Sweep:
    path: Path
    name: str
    title: str
    paper: str
    parameter: str
    benchmarks: tuple[str, ...]
    reference: str
    data: Any
    eval: dict[str, Any] = field(default_factory=dict)
    jobs: tuple[Job, ...] = ()

    @property
    def variants(self) -> list[str]:
        return list(dict.fromkeys(job.variant for job in self.jobs))


def load_sweep(path: str | Path, overrides: Sequence[str] = ()) -> Sweep:
    """The sweep a config file describes, every variant's plan built and checked (unknown keys, unknown
    models, bad values, an empty variant list, a rank sweep that changes alpha / r) before any work."""
    import yaml

    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: not a readable YAML file ({type(e).__name__})") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: a sweep config is a mapping")
    where = lambda key: f"{path}: {key}"  # noqa: E731
    unknown = sorted(set(config) - CONFIG_KEYS)
    if unknown:
        raise ConfigError(f"{where(unknown[0])} is not a sweep setting (known: {', '.join(sorted(CONFIG_KEYS))})")
    for key in ("name", "paper", "parameter", "base", "benchmarks", "variants"):
        if key not in config:
            raise ConfigError(f"{where(key)} is missing")
    variants = config["variants"]
    if not isinstance(variants, list) or not variants:
        raise ConfigError(f"{where('variants')}: the list of variants is empty")
    seeds = config.get("seeds", 3)
    if not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"{where('seeds')}: a positive number of seeds, not {seeds!r}")
    benchmarks = tuple(_benchmark_names(config["benchmarks"], where("benchmarks")))
    base = config["base"]
    if not isinstance(base, dict) or "model" not in base:
        raise ConfigError(f"{where('base')}: needs a model (vlora, llava-v1.5, llava-v1.5-qformer)")
    jobs = []
    for i, variant in enumerate(variants):
        if not isinstance(variant, dict) or "name" not in variant:
            raise ConfigError(f"{where(f'variants[{i}]')}: a variant is a mapping with a name")
        model = variant.get("model", base["model"])
        changes = [*_as_list(base.get("set", {})), *_as_list(variant.get("set", {})), *overrides]
        plan = _plan(model, changes, f"{path}: variants[{i}] ({variant['name']})")
        for seed in range(seeds):
            jobs.append(Job(str(variant["name"]), seed, model, _seeded(plan, seed)))
    sweep = Sweep(path, str(config["name"]), str(config.get("title", config["name"])), str(config["paper"]),
                  str(config["parameter"]), benchmarks, str(config.get("reference", variants[0]["name"])),
                  config.get("data", "embedded"), dict(config.get("eval", {})), tuple(jobs))
    _check_scale(sweep)
    if sweep.reference not in sweep.variants:
        raise ConfigError(f"{where('reference')}: {sweep.reference!r} is not a variant ({', '.join(sweep.variants)})")
    return sweep


def _as_list(changes: Any) -> list[str]:
    if isinstance(changes, dict):
        return [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in changes.items()]
    if isinstance(changes, list):
        return [str(c) for c in changes]
    raise ConfigError(f"overrides are a mapping of dotted keys, not {changes!r}")


def _benchmark_names(names: Any, where: str) -> list[str]:
    from evalsuite.benchmarks import benchmark

    if not isinstance(names, list) or not names:
        raise ConfigError(f"{where}: a non-empty list of benchmark names")
    try:
        return [benchmark(str(n)).name for n in names]
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def _plan(model: str, changes: list[str], where: str):
    from vlora.overrides import apply_overrides
    from workflows.embedded import plan

    try:
        return apply_overrides(plan(model), changes, source=where)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}" if not str(e).startswith(where) else str(e)) from None


def _seeded(plan, seed: int):
    """The plan with this seed for the model's initialisation and both stages' data order."""
    from vlora.overrides import apply_overrides

    keys = {f"{stage.stage}.seed": stage.seed + seed for stage in plan.stages()}
    return apply_overrides(plan, keys)


def _check_scale(sweep: Sweep) -> None:
    """A rank sweep must not change the branch scale alpha / r on the way (the paper keeps alpha = r)."""
    if sweep.parameter != "connector.rank":
        return
    scales = {job.variant: job.plan.model.connector.scale for job in sweep.jobs}
    if len(set(scales.values())) > 1:
        raise ConfigError(f"{sweep.path}: the variants change alpha / r ({scales}); set connector.alpha with the "
                          "rank so only the rank changes")


# --- running ------------------------------------------------------------------------------------------
def job_folder(out: Path, job: Job) -> Path:
    return out / "runs" / job.variant / f"seed-{job.seed}"


def mine(sweep: Sweep, shard: tuple[int, int]) -> list[Job]:
    index, count = shard
    return list(sweep.jobs[index::count])


def run_sweep(sweep: Sweep, out: Path, *, shard: tuple[int, int] = (0, 1), cpu: bool = True, progress: bool = True,
              say: Callable[[str], None] = print) -> list[dict]:
    """Train and evaluate this shard's jobs that are not done; return every finished job's record."""
    todo = [job for job in mine(sweep, shard) if not (job_folder(out, job) / DONE).is_file()]
    say(f"sweep {sweep.name}: {len(sweep.jobs)} jobs, {len(mine(sweep, shard)) - len(todo)} of this shard's done, "
        f"{len(todo)} to run")
    for number, job in enumerate(todo, 1):
        say(f"[{number}/{len(todo)}] {sweep.name} · {job.key}")
        run_job(sweep, job, job_folder(out, job), cpu=cpu, progress=progress, say=say)
    return finished(sweep, out)


def run_job(sweep: Sweep, job: Job, folder: Path, *, cpu: bool, progress: bool, say: Callable[[str], None]) -> dict:
    """One variant and seed: the plan's stages (resumable), then the benchmarks; done.json last."""
    start = time.perf_counter()
    model_dir = _train(sweep, job, folder / "train", cpu=cpu, progress=progress, say=say)
    scores = _evaluate(sweep, job, model_dir, folder / "eval", progress=progress)
    from flops.analytic import model_flops

    record = {"variant": job.variant, "seed": job.seed, "model": job.model, "config": job.plan.model.to_dict(),
              "stages": [r.to_dict() for r in job.plan.stages()], "scores": scores,
              "gflops": sum(model_flops(job.plan.model, 32).values()) / 1e9, "branch_scale": _scale(job),
              "seconds": round(time.perf_counter() - start, 1), "model_dir": str(model_dir)}
    (folder / DONE).write_text(json.dumps(record, indent=2))
    return record


def _scale(job: Job) -> float | None:
    connector = job.plan.model.connector
    return getattr(connector, "scale", None)


def _data(sweep: Sweep, say: Callable[[str], None]) -> tuple[Path, Path]:
    """(training folder with pretrain.json / finetune.json and the images, benchmark folder)."""
    if sweep.data == "embedded":
        from workflows.embedded import mini_suite

        suite = mini_suite(say)
        return suite / "train", suite
    if isinstance(sweep.data, dict) and {"train", "benchmarks"} <= set(sweep.data):
        return Path(sweep.data["train"]), Path(sweep.data["benchmarks"])
    raise ConfigError(f"{sweep.path}: data is `embedded` or {{train: DIR, benchmarks: DIR}}, not {sweep.data!r}")


def _train(sweep: Sweep, job: Job, folder: Path, *, cpu: bool, progress: bool, say: Callable[[str], None]) -> Path:
    from workflows.embedded import train_plan

    train_dir, _ = _data(sweep, say)
    return train_plan(job.plan, train_dir, folder, label=f"{sweep.name} {job.key}", cpu=cpu, progress=progress,
                      say=say)


def _evaluate(sweep: Sweep, job: Job, model_dir: Path, folder: Path, *, progress: bool) -> dict[str, dict]:
    """Headline numbers and their bootstrap 95% intervals per benchmark (the project's runner and scoring)."""
    from evalsuite.benchmarks import benchmark
    from evalsuite.data import load_benchmark_data
    from evalsuite.registry import create_model
    from evalsuite.runner import RunOptions, run_benchmark
    from evalsuite.uncertainty import bootstrap_interval

    _, bench_dir = _data(sweep, print)
    settings = {"batch_size": 16, "max_new_tokens": 8, **sweep.eval}
    adapter = create_model(job.model, model_dir, batch_size=settings["batch_size"])
    scores = {}
    for name in sweep.benchmarks:
        spec = benchmark(name)
        data = load_benchmark_data(spec, bench_dir / f"{spec.mini or spec.name}.tsv", embedded=sweep.data == "embedded")
        options = RunOptions(batch_size=settings["batch_size"], max_new_tokens=settings["max_new_tokens"],
                             results_root=folder, run_name="run", progress=progress)
        result = run_benchmark(adapter, data, options, str(model_dir))
        predictions = _predictions(result)
        intervals = bootstrap_interval(spec, data.table, predictions, options.rules)
        scores[spec.name] = {"headline": result.report.headline, "interval": intervals,
                             "manifest": str(result.paths["manifest"])}
    return scores


def chance_levels(sweep: Sweep) -> dict[str, dict[str, float]]:
    """Per benchmark, the headline numbers of uniformly random answers (evalsuite.baselines.chance) on the
    sweep's own benchmark data: the floor a toy-scale score is read against."""
    from evalsuite.baselines import chance
    from evalsuite.benchmarks import benchmark
    from evalsuite.data import load_benchmark_data
    from evalsuite.extraction import DEFAULT_RULES

    _, bench_dir = _data(sweep, print)
    levels = {}
    for name in sweep.benchmarks:
        spec = benchmark(name)
        data = load_benchmark_data(spec, bench_dir / f"{spec.mini or spec.name}.tsv", embedded=sweep.data == "embedded")
        levels[spec.name] = chance(data, DEFAULT_RULES)
    return levels


def _predictions(result):
    import pandas as pd

    table = pd.read_csv(result.paths["predictions"], sep="\t")
    return table[["index", "prediction"]]


def finished(sweep: Sweep, out: Path) -> list[dict]:
    """The records of every job that is done (any shard's)."""
    return [json.loads((job_folder(out, job) / DONE).read_text()) for job in sweep.jobs
            if (job_folder(out, job) / DONE).is_file()]

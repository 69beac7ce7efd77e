"""Ablation sweeps as data: a sweep config -> (variant, seed) jobs -> train + evaluate -> one table.

    config (a shipped name: main, types, rank, blocks; or a YAML path; read strictly, every variant's
    plan built and checked before any training) --> jobs: every variant x seed, a TrainingPlan each (the
    embedded plan of the base model: the shared foundations' LLM and CLIP, as in the paper's Table 2; the
    base's and the variant's dotted overrides, the seed)
    --> <out>/runs/<variant>/seed-<s>/ (train/, eval/, done.json written last)
    --> sweep_table.py: the table beside the paper's, FLOPs per variant, plots, uncertainty

A finished job (done.json) is skipped, an unfinished one resumes (stage checkpoints, finished stages,
the runner's resume), so a sweep killed at any point continues where it stopped. `--shard i/n` (or
the process's rank and world size) takes every n-th job. Training and evaluation both run on the
placement resolved at the CLI edge, and every manifest records it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from vlora.atomic import write_json_atomic
from vlora.errors import ConfigError
from vlora.placement import Placement

DONE = "done.json"
SHIPPED = "vlora_eval.configs"  # the package that holds the shipped sweep configs


# --- the file, read strictly -------------------------------------------------------------------------
@dataclass(frozen=True)
class Base:
    model: str  # an embedded model name (vlora, llava-v1.5, ...)
    set: dict[str, Any] = field(default_factory=dict)  # dotted overrides of its plan


@dataclass(frozen=True)
class Variant:
    name: str
    model: str | None = None  # another embedded model (its plan: the same recipe, its own connector)
    set: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataFolders:
    train: str  # <stage>.json per stage and the images they name
    benchmarks: str  # the benchmarks' TSVs


@dataclass(frozen=True)
class EvalSettings:
    batch_size: int = 16
    max_new_tokens: int = 8


@dataclass(frozen=True)
class SweepFile:
    name: str
    paper: str  # the paper's table it stands beside (vlora/paper.yaml)
    parameter: str
    base: Base
    benchmarks: list[str]
    variants: list[Variant]
    title: str | None = None
    data: Literal["embedded"] | DataFolders = "embedded"
    seeds: int = 3
    reference: str | None = None  # default: the first variant
    eval: EvalSettings = field(default_factory=EvalSettings)


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
    source: str  # the config as a user names it (a shipped name's file, or the path given)
    file: SweepFile
    benchmarks: tuple[str, ...]  # VLMEvalKit names
    jobs: tuple[Job, ...]

    @property
    def name(self) -> str:
        return self.file.name

    @property
    def title(self) -> str:
        return self.file.title or self.file.name

    @property
    def paper(self) -> str:
        return self.file.paper

    @property
    def parameter(self) -> str:
        return self.file.parameter

    @property
    def reference(self) -> str:
        return self.file.reference or self.file.variants[0].name

    @property
    def variants(self) -> list[str]:
        return list(dict.fromkeys(job.variant for job in self.jobs))


def shipped() -> list[str]:
    """The names of the sweep configs shipped with the package (the paper's Tables 2-5)."""
    return sorted(p.name.removesuffix(".yaml") for p in resources.files(SHIPPED).iterdir() if p.name.endswith(".yaml"))


def config_source(config: str | Path):
    """A sweep config by path, or by the name of a shipped one (`rank` -> vlora_eval/configs/rank.yaml)."""
    path = Path(config)
    if path.is_file():
        return path, str(path)
    name = str(config).removesuffix(".yaml")
    if name in shipped():
        return resources.files(SHIPPED).joinpath(f"{name}.yaml"), f"vlora_eval/configs/{name}.yaml"
    if path.exists():
        raise ConfigError(f"sweep config {config} is not a file")
    raise ConfigError(f"sweep config {config!r} is neither a file nor a shipped sweep ({', '.join(shipped())})")


def load_sweep(config: str | Path, overrides: Sequence[str] = ()) -> Sweep:
    """The sweep a config describes, every variant's plan built and checked (unknown keys, unknown models,
    bad values, an empty variant list, a rank sweep that changes alpha / r) before any work."""
    from vlora.schema import read_yaml

    source, label = config_source(config)
    spec = read_yaml(source, SweepFile, label)
    where = lambda key: f"{label}: {key}"  # noqa: E731
    if not spec.variants:
        raise ConfigError(f"{where('variants')}: the list of variants is empty")
    if spec.seeds < 1:
        raise ConfigError(f"{where('seeds')}: a positive number of seeds, not {spec.seeds!r}")
    benchmarks = tuple(_benchmark_names(spec.benchmarks, where("benchmarks")))
    jobs = []
    for i, variant in enumerate(spec.variants):
        model = variant.model or spec.base.model
        plan = _plan(model, {**spec.base.set, **variant.set}, overrides, f"{label}: variants[{i}] ({variant.name})")
        jobs += [Job(variant.name, seed, model, _seeded(plan, seed)) for seed in range(spec.seeds)]
    sweep = Sweep(label, spec, benchmarks, tuple(jobs))
    _check_scale(sweep)
    if sweep.reference not in sweep.variants:
        raise ConfigError(f"{where('reference')}: {sweep.reference!r} is not a variant ({', '.join(sweep.variants)})")
    return sweep


def _benchmark_names(names: list[str], where: str) -> list[str]:
    from evalsuite.benchmarks import benchmark

    if not names:
        raise ConfigError(f"{where}: a non-empty list of benchmark names")
    try:
        return [benchmark(n).name for n in names]
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def _plan(model: str, changes: dict[str, Any], overrides: Sequence[str], where: str):
    from vlora.overrides import apply_overrides
    from vlora_eval.workflows.embedded import plan

    try:
        return apply_overrides(apply_overrides(plan(model), changes, source=where), overrides)
    except ConfigError as e:
        raise ConfigError(str(e) if str(e).startswith(where) else f"{where}: {e}") from None


def _seeded(plan, seed: int):
    """The plan with this seed for the model's initialisation and every stage's data order."""
    from vlora.overrides import apply_overrides

    return apply_overrides(plan, {f"{name}.seed": recipe.seed + seed for name, recipe in plan.stages.items()})


def _check_scale(sweep: Sweep) -> None:
    """A rank sweep must not change the branch scale alpha / r on the way (the paper keeps alpha = r)."""
    if sweep.parameter != "connector.rank":
        return
    scales = {job.variant: job.plan.model.connector.scale for job in sweep.jobs}
    if len(set(scales.values())) > 1:
        raise ConfigError(f"{sweep.source}: the variants change alpha / r ({scales}); set connector.alpha with the "
                          "rank so only the rank changes")


# --- running ------------------------------------------------------------------------------------------
def job_folder(out: Path, job: Job) -> Path:
    return out / "runs" / job.variant / f"seed-{job.seed}"


def mine(sweep: Sweep, shard: tuple[int, int]) -> list[Job]:
    index, count = shard
    return list(sweep.jobs[index::count])


def run_sweep(sweep: Sweep, out: Path, *, placement: Placement, shard: tuple[int, int] = (0, 1),
              progress: bool = True, force: bool = False, say: Callable[[str], None] = print) -> list[dict]:
    """Train and evaluate this shard's jobs that are not done, on the placement; return every finished
    job's record. A job done for another plan (the config changed since) is refused, or with `force` redone
    (deleting only the sweep's own files of that job)."""
    data = data_identity(sweep, say)
    todo = [job for job in mine(sweep, shard) if not _done(job, job_folder(out, job), data, force)]
    say(f"sweep {sweep.name}: {len(sweep.jobs)} jobs, {len(mine(sweep, shard)) - len(todo)} of this shard's done, "
        f"{len(todo)} to run on {placement.device} ({str(placement.dtype).removeprefix('torch.')} evaluation)")
    for number, job in enumerate(todo, 1):
        say(f"[{number}/{len(todo)}] {sweep.name} · {job.key}")
        run_job(sweep, job, job_folder(out, job), data, placement=placement, progress=progress, force=force, say=say)
    return finished(sweep, out)


def data_identity(sweep: Sweep, say: Callable[[str], None] = print) -> dict[str, str]:
    """The md5 of every file a job reads by name: each stage's training JSON (train/<file>) and each benchmark's
    TSV; a job done on other data is not this job's."""
    from evalsuite.data import md5_of
    from vlora_eval.workflows.train import TrainingSet

    train_dir, bench_dir = _data(sweep, say)
    stages = sorted({stage for job in sweep.jobs for stage in job.plan.stages})
    files = {f"train/{path.name}": path for path in TrainingSet.folder(train_dir, stages).files.values()}
    files.update({path.name: path for path in (_benchmark_file(sweep, bench_dir, name) for name in sweep.benchmarks)})
    return {label: md5_of(path) for label, path in files.items() if path.is_file()}


def _done(job: Job, folder: Path, data: dict[str, str], force: bool) -> bool:
    """Whether the job's done.json is there and was written for this job's plan on these foundations and data."""
    from vlora.output_folder import first_difference
    from vlora_eval.workflows.embedded import foundations

    path = folder / DONE
    if not path.is_file():
        return False
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        written = {"config": record["config"], "stages": record["stages"],
                   "foundations": record["foundations"]["fingerprint"], "data": record.get("data", "(not recorded)")}
    except (OSError, ValueError, KeyError, TypeError):
        written = None
    expected = json.loads(json.dumps({"config": job.plan.model.to_dict(), "stages": [r.to_dict() for r in job.plan.recipes()],
                                      "foundations": foundations().fingerprint, "data": data}))
    difference = "unreadable" if written is None else first_difference(written, expected)
    if difference is None:
        return True
    if not force:
        raise ConfigError(f"{path} was written for another plan, other foundations or other data ({difference}); use another --out, or --force to redo "
                          "the job (only the sweep's own files are replaced)")
    path.unlink()
    return False


def run_job(sweep: Sweep, job: Job, folder: Path, data: dict[str, str], *, placement: Placement, progress: bool,
            force: bool = False, say: Callable[[str], None]) -> dict:
    """One variant and seed: the plan's stages (resumable), then the benchmarks; done.json last, with `data`
    (data_identity) recorded."""
    from flops.analytic import model_flops
    from vlora_eval.workflows.embedded import foundations, foundations_record
    from vlora_eval.workflows.train import TrainingSet, train_plan

    start = time.perf_counter()
    train_dir, bench_dir = _data(sweep, say)
    model_dir, tokenizer = train_plan(job.plan, TrainingSet.folder(train_dir, list(job.plan.stages)), folder / "train",
                                      placement=placement, label=f"{sweep.name} {job.key}", foundations=foundations(),
                                      progress=progress, force=force, say=say)
    scores = _evaluate(sweep, job, model_dir, bench_dir, folder / "eval", placement=placement, progress=progress,
                       fresh=force)
    record = {"variant": job.variant, "seed": job.seed, "model": job.model, "config": job.plan.model.to_dict(),
              "stages": [r.to_dict() for r in job.plan.recipes()], "tokenizer": tokenizer,
              "foundations": foundations_record(), "data": data, "scores": scores,
              "gflops": sum(model_flops(job.plan.model, 32).values()) / 1e9,
              "branch_scale": getattr(job.plan.model.connector, "scale", None), "placement": placement.describe(),
              "seconds": round(time.perf_counter() - start, 1), "model_dir": str(model_dir)}
    write_json_atomic(folder / DONE, record)
    return record


def _data(sweep: Sweep, say: Callable[[str], None]) -> tuple[Path, Path]:
    """(training folder with <stage>.json per stage and the images, benchmark folder)."""
    if isinstance(sweep.file.data, DataFolders):
        return Path(sweep.file.data.train), Path(sweep.file.data.benchmarks)
    from vlora_eval.workflows.embedded import mini_suite

    suite = mini_suite(say, training=True)
    return suite / "train", suite


def _benchmark_file(sweep: Sweep, bench_dir: Path, name: str) -> Path:
    from evalsuite.benchmarks import benchmark

    spec = benchmark(name)
    return bench_dir / f"{spec.name if isinstance(sweep.file.data, DataFolders) else spec.mini}.tsv"


def _benchmark_data(sweep: Sweep, bench_dir: Path, name: str):
    from evalsuite.benchmarks import benchmark
    from evalsuite.data import load_benchmark_data

    return load_benchmark_data(benchmark(name), _benchmark_file(sweep, bench_dir, name),
                               embedded=not isinstance(sweep.file.data, DataFolders))


def _evaluate(sweep: Sweep, job: Job, model_dir: Path, bench_dir: Path, folder: Path, *, placement: Placement,
              progress: bool, fresh: bool = False) -> dict[str, dict]:
    """Headline numbers and their bootstrap 95% intervals per benchmark (the project's runner and scoring),
    on the placement's device and dtype."""
    from evalsuite.registry import create_model
    from evalsuite.runner import RunOptions, run_benchmark
    from evalsuite.uncertainty import bootstrap_interval

    settings = sweep.file.eval
    adapter = create_model(job.model, model_dir, device=placement.device, dtype=placement.dtype,
                           batch_size=settings.batch_size)
    scores = {}
    for name in sweep.benchmarks:
        data = _benchmark_data(sweep, bench_dir, name)
        options = RunOptions(batch_size=settings.batch_size, max_new_tokens=settings.max_new_tokens,
                             results_root=folder, run_name="run", progress=progress, fresh=fresh,
                             environment=placement.describe())
        result = run_benchmark(adapter, data, options, str(model_dir))
        intervals = bootstrap_interval(data.spec, data.table, result.predictions, options.rules)
        scores[data.spec.name] = {"headline": result.report.headline, "interval": intervals,
                                  "manifest": str(result.paths["manifest"])}
    return scores


def chance_levels(sweep: Sweep) -> dict[str, dict[str, float]]:
    """Per benchmark, the headline numbers of uniformly random answers (evalsuite.baselines.chance) on the
    sweep's own benchmark data: the floor a toy-scale score is read against."""
    from evalsuite.baselines import chance
    from evalsuite.extraction import DEFAULT_RULES

    _, bench_dir = _data(sweep, print)
    return {name: chance(_benchmark_data(sweep, bench_dir, name), DEFAULT_RULES) for name in sweep.benchmarks}


def finished(sweep: Sweep, out: Path) -> list[dict]:
    """The records of every job that is done (any shard's)."""
    return [json.loads((job_folder(out, job) / DONE).read_text()) for job in sweep.jobs
            if (job_folder(out, job) / DONE).is_file()]

"""The embedded default: the mini-suite and tiny trained models, prepared once per machine and cached.

    embedded.yaml --> mini-suite (evalsuite.mini; its training data in the recipe's answer style)
                  --> per model name: a TrainingPlan (the foundations' LLM and CLIP, its kind's tiny connector +
                      overrides, the stages)
                  --> workflows/train.py's train_plan (from the foundations, with their tokenizer)

Everything lives under `cache_root()` (the user cache directory, e.g. ~/.cache/vlora-eval/embedded),
in folders named by a fingerprint of what made them, so a changed recipe is a new folder. A process
that is killed while preparing resumes where it stopped (stage checkpoints; a finished stage keeps
its model); two processes preparing at once take turns (a file lock).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from vlora.atomic import write_json_atomic
from vlora.errors import ConfigError
from vlora.placement import Placement
from vlora.schema import to_data

MODELS_FILE = "embedded.yaml"
DONE = "embedded.json"  # written last in a prepared model folder: what made it


@dataclass(frozen=True)
class MiniSuiteSettings:
    seed: int
    scale: int  # multiplies the benchmark questions
    answer_style: dict[str, str] = field(default_factory=dict)  # evalsuite.mini.items.AnswerStyle's fields
    train_scale: int | None = None  # multiplies the training scenes (1,000 each); None: `scale`

    def __post_init__(self):
        for key in ("scale", "train_scale"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ValueError(f"{key}: must be at least 1, not {value}")  # read_yaml names the file and key

    def style(self):
        from evalsuite.mini.items import AnswerStyle

        try:
            return AnswerStyle(**self.answer_style)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"vlora_eval/workflows/{MODELS_FILE}: mini_suite.answer_style: {e}") from None


@dataclass(frozen=True)
class EmbeddedModel:
    set: dict[str, Any] = field(default_factory=dict)  # dotted overrides of the kind's tiny preset


@dataclass(frozen=True)
class EmbeddedRecipe:
    """embedded.yaml: the foundations, the mini-suite, per model name its overrides (every connector kind has
    an embedded model: its tiny preset's connector), and the stages with their recipe changes, in order."""

    version: int
    foundations: str  # "shipped" (vlora_eval/foundations/) or a foundations folder
    mini_suite: MiniSuiteSettings
    stages: dict[str, dict[str, Any]]
    models: dict[str, EmbeddedModel] = field(default_factory=dict)


@cache
def recipe() -> EmbeddedRecipe:
    """embedded.yaml, read strictly (unknown or ill-typed keys are refused, naming the key)."""
    from vlora.schema import read_yaml

    return read_yaml(resources.files("vlora_eval.workflows").joinpath(MODELS_FILE), EmbeddedRecipe,
                     f"vlora_eval/workflows/{MODELS_FILE}")


@cache
def foundations():
    """The foundations every embedded model starts from (their files checked against their manifest)."""
    from vlora.foundations import Foundations
    from vlora_eval.workflows.foundations import shipped

    where = recipe().foundations
    return Foundations.load(shipped() if where == "shipped" else Path(where).expanduser())


def cache_root() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("vlora-eval")) / "embedded"


def fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def names() -> list[str]:
    """The model names that have an embedded tiny model: each connector kind's full-size name."""
    from vlora.connector_kinds import KINDS

    return [kind.model_name for kind in KINDS.values()]


def plan(name: str):
    """The TrainingPlan of the embedded model `name`: its kind's tiny connector on the foundations' LLM and
    vision tower, with the file's overrides, and each stage's recipe with the file's changes (all through the
    one override path)."""
    from evalsuite.registry import model_spec
    from vlora.overrides import apply_overrides
    from vlora.presets import preset
    from vlora.training import TrainingPlan, official_recipe

    current = recipe()
    unknown = sorted(set(current.models) - set(names()))
    if unknown:
        raise ConfigError(f"vlora_eval/workflows/{MODELS_FILE}: models.{unknown[0]} is not a model name "
                          f"({', '.join(names())})")
    if name not in names():
        raise ConfigError(f"no embedded model for {name!r}; embedded: {', '.join(names())}")
    entry = current.models.get(name, EmbeddedModel())
    on_foundations = foundations().model_config(preset(f"{model_spec(name).kind}-tiny").connector)
    config = apply_overrides(on_foundations, entry.set, source=f"{MODELS_FILE} models.{name}")
    stages = {stage: official_recipe(stage, **_changes(stage, changes)) for stage, changes in current.stages.items()}
    return TrainingPlan(model=config, stages=stages)


def _changes(stage: str, changes: dict[str, Any]) -> dict[str, Any]:
    from vlora.training import stage_record

    try:
        stage_record(stage)
    except ConfigError as e:
        raise ConfigError(f"vlora_eval/workflows/{MODELS_FILE}: stages.{stage}: {e}") from None
    return changes


@cache
def _prepare_lock(root: Path) -> FileLock:
    """One lock object per cache folder, so a preparation that needs another part (a model its tokenizer)
    re-enters the lock it holds instead of waiting for itself."""
    return FileLock(root / ".prepare.lock")


class _Turn:
    """The cache's lock: one process prepares at a time; the others wait and are told why."""

    def __init__(self, say: Callable[[str], None]):
        cache_root().mkdir(parents=True, exist_ok=True)
        self.lock, self.say = _prepare_lock(cache_root()), say

    def __enter__(self) -> None:
        try:
            self.lock.acquire(timeout=0)
        except Timeout:
            self.say("another vlora-eval process is preparing the embedded default; waiting for it")
            self.lock.acquire()

    def __exit__(self, *exc) -> None:
        self.lock.release()


# --- the parts ------------------------------------------------------------------------------------
def mini_suite(say: Callable[[str], None] = print, *, training: bool = False) -> Path:
    """The embedded mini-suite's folder, its benchmarks written once; with `training` its training set too (in
    train/; written only when a model is trained: evaluation alone needs seconds, the training set a minute)."""
    from evalsuite.mini import is_written, write_mini_suite

    settings = recipe().mini_suite
    folder = cache_root() / f"mini-suite-{fingerprint(to_data(settings))}"
    if not is_written(folder, training):
        with _Turn(say):
            if not is_written(folder, training):
                what = (f"with its training set (training scale {settings.train_scale or settings.scale})" if training
                        else "its benchmarks")
                say(f"writing the embedded mini-suite (seed {settings.seed}, scale {settings.scale}), {what}, to {folder}")
                # the folder is the cache's own: an interrupted write is replaced whole
                write_mini_suite(folder, seed=settings.seed, scale=settings.scale, force=True, style=settings.style(),
                                 train_scale=settings.train_scale, training=training)
    return folder


def foundations_record() -> dict[str, Any]:
    """What a manifest says about the foundations a model started from."""
    found = foundations()
    return {"folder": str(found.folder), "fingerprint": found.fingerprint, "command": found.manifest.get("command"),
            "shipped": recipe().foundations == "shipped"}


def model_folder(name: str) -> Path:
    current = plan(name)
    made_of = {"version": recipe().version, "mini_suite": to_data(recipe().mini_suite),
               "foundations": foundations().fingerprint, **current.to_dict()}
    return cache_root() / f"{name}-{fingerprint(made_of)}"


def origin_of(model_dir: Path) -> dict[str, Any] | None:
    """What made an embedded model (its foundations, answer style, plan), from its folder's record."""
    import json

    record = Path(model_dir).parent.parent / DONE
    if not record.is_file():
        return None
    made = json.loads(record.read_text(encoding="utf-8"))
    return {key: made.get(key) for key in ("foundations", "answer_style", "tokenizer", "plan", "trained")}


def trained_model(name: str, *, placement: Placement, progress: bool = True,
                  say: Callable[[str], None] = print) -> Path:
    """The embedded tiny model `name`, if it is not cached yet installed from the shipped ones when they were made
    by the current recipe (embedded_build.py), else trained on the mini-suite: the folder of the finished model
    in the project's own layout."""
    from vlora_eval.workflows.embedded_build import install, shipped_record
    from vlora_eval.workflows.train import TrainingSet, train_plan

    folder = model_folder(name)
    current = plan(name)
    final = folder / current.recipes()[-1].stage / "model"
    if (folder / DONE).is_file():
        return final
    suite = mini_suite(say)
    with _Turn(say):
        if not (folder / DONE).is_file():
            record, words = shipped_record(name)  # the shipped files are checked once, here
            if record is not None:
                say(f"no embedded {name} in the cache: installing {words} in {cache_root()} (the paper's two stages, "
                    "from the foundations' LLM and CLIP, on the embedded mini-suite; once)")
                install(name, final)
                tokenizer, trained = _foundations_words(), f"shipped: {words}"
            else:
                say(f"no embedded {name} in the cache: training the embedded tiny {name} (the paper's two stages, "
                    f"from the foundations' LLM and CLIP) on the embedded mini-suite (once, about 15 minutes on a CPU; "
                    f"cached in {cache_root()}): {words}")
                data = TrainingSet.folder(mini_suite(say, training=True) / "train", list(current.stages))
                _, tokenizer = train_plan(current, data, folder, placement=placement, label=f"the embedded {name}",
                                          foundations=foundations(), progress=progress, say=say)
                trained = f"here ({placement.describe()}); {words}"
            write_json_atomic(folder / DONE, {"model": name, "plan": current.to_dict(), "tokenizer": tokenizer,
                                              "foundations": foundations_record(), "mini_suite": str(suite),
                                              "answer_style": to_data(recipe().mini_suite.style()),
                                              "trained": trained})
    return final


def _foundations_words() -> str:
    from vlora_eval.workflows.train import foundations_words

    return foundations_words(foundations())


# --- what the CLI asks: a real checkpoint and real data replace the embedded part they name --------------
def benchmark_tsv(spec, data_dir: Path | None, data: Path | None, say: Callable[[str], None] = print,
                  warn: Callable[[str], None] = print) -> tuple[Path, bool]:
    """The benchmark's TSV and whether it is the embedded mini-suite's stand-in: the user's --data /
    --data-dir / $LMUData (errors if wrong), else ~/LMUData when it holds the file, else the mini-suite."""
    import os

    from evalsuite.data import default_tsv, resolve_tsv

    if data is not None or data_dir is not None or os.environ.get("LMUData"):
        notes: list[str] = []
        path = resolve_tsv(spec, data_dir, data, notes)
        for note in notes:  # which of --data and --data-dir is used
            warn(note)
        return path, False
    real = default_tsv(spec)
    if real is not None:
        return real, False
    if not spec.mini:
        raise ConfigError(f"{spec.name}.tsv is not in ~/LMUData and has no stand-in in the embedded mini-suite")
    say(f"{spec.name}.tsv is not in ~/LMUData and no --data-dir was given: using the embedded mini-suite's "
        f"{spec.mini} (synthetic, not the real benchmark)")
    return mini_suite(say) / f"{spec.mini}.tsv", True


def checkpoint_for(name: str, checkpoint: Path | None, *, placement: Placement, progress: bool,
                   say: Callable[[str], None] = print) -> tuple[Path | None, bool]:
    """The checkpoint to load for model `name` and whether it is the embedded tiny model: the user's
    --checkpoint, else (for the names that need one) the embedded model, trained once if not cached."""
    from evalsuite.registry import model_spec

    if checkpoint is not None or not model_spec(name).needs_checkpoint:
        return checkpoint, False
    return trained_model(name, placement=placement, progress=progress, say=say), True

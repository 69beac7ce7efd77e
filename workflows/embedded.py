"""The embedded default: the mini-suite and tiny trained models, prepared once per machine and cached.

    embedded.yaml --> mini-suite (evalsuite.mini) --> a tokenizer learned from its training texts
                  --> per model name: a TrainingPlan (preset + overrides, the two stages) --> train()

Everything lives under `cache_root()` (the user cache directory, e.g. ~/.cache/vlora-eval/embedded),
in folders named by a fingerprint of what made them, so a changed recipe is a new folder. A process
that is killed while preparing resumes where it stopped (stage checkpoints; a finished stage keeps
its model); two processes preparing at once take turns (a file lock).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from vlora.errors import ConfigError

MODELS_FILE = "embedded.yaml"
DONE = "embedded.json"  # written last in a prepared model folder: what made it


@cache
def recipe() -> dict[str, Any]:
    """embedded.yaml, checked: the mini-suite, tokenizer, models and stages."""
    import yaml

    data = yaml.safe_load(resources.files("workflows").joinpath(MODELS_FILE).read_text(encoding="utf-8"))
    missing = [k for k in ("version", "mini_suite", "tokenizer", "models", "stages") if k not in data]
    if missing:
        raise ConfigError(f"workflows/{MODELS_FILE}: missing {missing}")
    return data


def cache_root() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("vlora-eval")) / "embedded"


def fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def names() -> list[str]:
    """The model names that have an embedded tiny model."""
    return list(recipe()["models"])


def plan(name: str):
    """The TrainingPlan of the embedded model `name`: its preset with the file's overrides, and the
    release's recipe of each stage with the file's changes (all through the one override path)."""
    from vlora.overrides import apply_overrides
    from vlora.presets import preset
    from vlora.training import TrainingPlan, official_recipe

    models = recipe()["models"]
    if name not in models:
        raise ConfigError(f"no embedded model for {name!r}; embedded: {', '.join(models)}")
    entry = models[name]
    config = apply_overrides(preset(entry["preset"]), entry.get("set", {}), source=f"{MODELS_FILE} {name}")
    stages = {stage: official_recipe(stage, **changes) for stage, changes in recipe()["stages"].items()}
    return TrainingPlan(model=config, **stages)


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
def mini_suite(say: Callable[[str], None] = print) -> Path:
    """The embedded mini-suite's folder (written once)."""
    from evalsuite.mini import MARKER, write_mini_suite

    settings = recipe()["mini_suite"]
    folder = cache_root() / f"mini-suite-{fingerprint(settings)}"
    if not (folder / MARKER).is_file():
        with _Turn(say):
            if not (folder / MARKER).is_file():
                say(f"writing the embedded mini-suite (seed {settings['seed']}, scale {settings['scale']}) to {folder}")
                # the folder is the cache's own: an interrupted write is replaced whole
                write_mini_suite(folder, seed=settings["seed"], scale=settings["scale"], force=True)
    return folder


def training_texts(train_dir: Path) -> list[str]:
    """What the tokenizer learns from: the template's system prompt and every turn of the training data
    (train_dir's pretrain.json and finetune.json)."""
    from vlora.prompting import IMAGE_PLACEHOLDER, VICUNA_V1

    texts = [VICUNA_V1.system, "USER: ASSISTANT:"]
    for name in ("pretrain", "finetune"):
        for record in json.loads((train_dir / f"{name}.json").read_text(encoding="utf-8")):
            texts += [turn["value"].replace(IMAGE_PLACEHOLDER, "") for turn in record["conversations"]]
    return texts


def tokenizer(train_dir: Path, say: Callable[[str], None] = print):
    """The tokenizer learned from the training texts in `train_dir` (the mini-suite's, or a sweep's own
    data), saved once under the cache in a folder named by the texts' content."""
    from vlora.tokenizer import load_tokenizer, train_tiny_tokenizer

    size = recipe()["tokenizer"]["vocab_size"]
    content = [hashlib.sha256((train_dir / f"{name}.json").read_bytes()).hexdigest() for name in ("pretrain", "finetune")]
    folder = cache_root() / f"tokenizer-{fingerprint(size, content)}"
    if not (folder / "tokenizer_config.json").is_file():
        with _Turn(say):
            train_tiny_tokenizer(training_texts(train_dir), size).save_pretrained(folder)
    return load_tokenizer(folder)


def train_plan(plan, train_dir: Path, folder: Path, *, label: str, cpu: bool, progress: bool,
               say: Callable[[str], None] = print) -> Path:
    """Train the stages of `plan` on train_dir's <stage>.json under folder/<stage>/, from a model built
    with the tokenizer learned from that data; a finished stage is reloaded, an unfinished one resumes
    from its checkpoint. Returns the last stage's model folder."""
    from vlora.checkpoints import load_model
    from vlora.model import build_model
    from vlora.training import train

    model = None
    for stage in plan.stages():
        done = folder / stage.stage / "model"
        if (done / "vlora_eval.json").is_file():  # a finished stage of an interrupted run
            model = load_model(done)
            continue
        if model is None:
            model = build_model(plan.model, tokenizer=tokenizer(train_dir, say), seed=stage.seed)
        say(f"training {label}: stage {stage.stage}, {stage.max_steps} steps")
        train(model, stage, train_dir / f"{stage.stage}.json", train_dir, folder / stage.stage,
              progress=progress, resume=True, cpu=cpu)
    return folder / plan.stages()[-1].stage / "model"


def model_folder(name: str) -> Path:
    current = plan(name)
    made_of = {"version": recipe()["version"], "mini_suite": recipe()["mini_suite"], "tokenizer": recipe()["tokenizer"],
               "model": current.model.to_dict(), "stages": [r.to_dict() for r in current.stages()]}
    return cache_root() / f"{name}-{fingerprint(made_of)}"


def is_prepared(name: str) -> bool:
    return (model_folder(name) / DONE).is_file()


def trained_model(name: str, *, cpu: bool = True, progress: bool = True, say: Callable[[str], None] = print) -> Path:
    """The embedded tiny model `name`, trained on the mini-suite if it is not cached yet: the folder of
    the finished model in the project's own layout."""
    folder = model_folder(name)
    current = plan(name)
    final = folder / current.stages()[-1].stage / "model"
    if (folder / DONE).is_file():
        return final
    suite = mini_suite(say)
    with _Turn(say):
        if not (folder / DONE).is_file():
            train_plan(current, suite / "train", folder, label=f"the embedded {name}", cpu=cpu, progress=progress,
                       say=say)
            (folder / DONE).write_text(json.dumps({"model": name, "plan": {"model": current.model.to_dict(), "stages": [
                r.to_dict() for r in current.stages()]}, "mini_suite": str(suite)}, indent=2))
    return final


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


def checkpoint_for(name: str, checkpoint: Path | None, *, cpu: bool, progress: bool,
                   say: Callable[[str], None] = print) -> tuple[Path | None, bool]:
    """The checkpoint to load for model `name` and whether it is the embedded tiny model: the user's
    --checkpoint, else (for the names that need one) the embedded model, trained once if not cached."""
    from evalsuite.registry import model_spec

    if checkpoint is not None or not model_spec(name).needs_checkpoint:
        return checkpoint, False
    if not is_prepared(name):
        say(f"no --checkpoint for {name}: training the embedded tiny {name} on the embedded mini-suite (once, a few "
            f"minutes on a CPU; cached in {cache_root()})")
    return trained_model(name, cpu=cpu, progress=progress, say=say), True

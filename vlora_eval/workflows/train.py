"""The one training path: `vlora-eval train`, the embedded default and the sweeps all train through here.

    starting_model(config, training set, init, foundations)   the model a plan starts from, and its tokenizer:
        init given         the checkpoint, with its own tokenizer
        foundations given  the configuration's connector at random on the foundations' LLM and CLIP, with
                           their tokenizer (vlora/foundations.py; the paper's start: Vicuna and CLIP)
        from scratch       a random model of the configuration, with a tokenizer learned from the texts of the
                           data it trains on (deterministic; cached under the user cache by the texts' content)
    run_stage(model, recipe, training set, folder, placement)   vlora.training.train on the placement's device
    train_plan(plan, training set, folder, ...)   the stages in order under folder/<stage>/: a finished stage
                                                  is reloaded, an unfinished one resumes from its checkpoint
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from vlora.errors import ConfigError
from vlora.placement import Placement
from vlora.training import TrainingPlan, TrainingRecipe, TrainResult
from vlora.training.stages import stage_record

Say = Callable[[str], None]


@dataclass(frozen=True)
class TrainingSet:
    """Where each stage's samples are: a LLaVA-format JSON per stage, and the folder image paths are under."""

    files: Mapping[str, Path]  # stage name -> JSON
    images: Path

    @classmethod
    def folder(cls, folder: Path, stages: Sequence[str]) -> TrainingSet:
        """A training folder: <stage>.json for each stage (as the mini-suite writes them), images beside."""
        return cls({stage: folder / stage_record(stage).data_file for stage in stages}, folder)

    def file(self, stage: str) -> Path:
        if stage not in self.files:
            raise ConfigError(f"no training data for the {stage} stage (have: {', '.join(self.files)})")
        return self.files[stage]


@dataclass(frozen=True)
class Start:
    model: object  # vlora.model.MultimodalLM
    tokenizer: str  # which tokenizer, in words (said to the user, recorded in manifests)


# --- the tokenizer rule ----------------------------------------------------------------------------
def training_texts(files: Sequence[Path]) -> list[str]:
    """What a learned tokenizer learns from: the template's system prompt and every turn of the data."""
    from vlora.prompting import IMAGE_PLACEHOLDER, VICUNA_V1
    from vlora.training.data import read_json_records

    texts = [VICUNA_V1.system, "USER: ASSISTANT:"]
    for path in files:
        texts += [turn["value"].replace(IMAGE_PLACEHOLDER, "") for record in read_json_records(Path(path))
                  if isinstance(record, dict) for turn in record.get("conversations") or []
                  if isinstance(turn, dict) and isinstance(turn.get("value"), str)]
    return texts


def tokenizers_root() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("vlora-eval")) / "tokenizers"


@cache
def _lock(root: Path):
    from filelock import FileLock

    return FileLock(root / ".lock")


def learned_tokenizer(files: Sequence[Path], vocab_size: int, say: Say):
    """The tokenizer learned from these files' texts (HF tokenizers' BPE, Llama-shaped), saved once under
    the user cache in a folder named by their content and the vocabulary size."""
    from vlora.tokenizer import has_tokenizer, load_tokenizer, train_tiny_tokenizer

    digest = hashlib.sha256(str(vocab_size).encode())
    for path in files:
        digest.update(Path(path).read_bytes())
    folder = tokenizers_root() / f"learned-{digest.hexdigest()[:16]}"
    if not has_tokenizer(folder):
        folder.parent.mkdir(parents=True, exist_ok=True)
        with _lock(folder.parent):
            if not has_tokenizer(folder):
                say(f"learning a {vocab_size}-token tokenizer from {', '.join(str(p) for p in files)}")
                train_tiny_tokenizer(training_texts(files), vocab_size).save_pretrained(folder)
    return load_tokenizer(folder), folder


def starting_model(config, data: TrainingSet, *, init: Path | None = None, foundations=None, seed: int = 0,
                   say: Say = print, loader: Callable | None = None) -> Start:
    """The model a plan starts from: `init` with its own tokenizer (through `loader`, which checks the
    checkpoint's kind); a random connector on `foundations` (vlora.foundations.Foundations) with their
    tokenizer; or a random one of `config` with the tokenizer learned from the data's texts."""
    if init is not None:
        from vlora.checkpoints import load_model

        model = (loader or load_model)(init)
        return Start(model, f"the checkpoint's own ({init})")
    from vlora.memory import check_fits, config_parameter_bytes
    from vlora.model import build_model

    if foundations is not None:
        check_on_foundations(config, foundations)
        model = build_model(config, tokenizer=foundations.tokenizer(), seed=seed)
        foundations.apply(model)
        return Start(model, foundations_words(foundations))

    check_fits(config_parameter_bytes(config), "cpu", "the model's parameters")  # before learning its tokenizer
    tokenizer, folder = learned_tokenizer(list(data.files.values()), config.llm.vocab_size, say)
    return Start(build_model(config, tokenizer=tokenizer, seed=seed),
                 f"learned from the training data ({len(tokenizer)} tokens, {folder})")


# --- running -------------------------------------------------------------------------------------------
def run_stage(model, recipe: TrainingRecipe, data: TrainingSet, folder: Path, *, placement: Placement, start: str,
              progress: bool = True, resume: bool = True, force: bool = False, say: Say = print) -> TrainResult:
    """One stage of `model` (in place) on its data, on the placement's device; saved under folder/model. The
    folder is claimed for this job (vlora/output_folder.py): resumed, left as finished, or refused."""
    from vlora.training import train

    check_multimodal_stage(recipe.stage)
    return train(model, recipe, data.file(recipe.stage), data.images, folder, progress=progress, resume=resume,
                 force=force, device=placement.device, start=start, say=say)


def check_multimodal_stage(stage: str) -> None:
    """Refuse a stage that does not train a multimodal model (the foundations' language and contrastive)."""
    if stage_record(stage).objective != "lm":
        raise ConfigError(f"the {stage} stage trains a foundation (an LLM alone or a CLIP), not a multimodal model: "
                          "it is run by `vlora-eval foundations build`")


def _stage_identity(plan: TrainingPlan, recipe: TrainingRecipe, data: TrainingSet, start: str, tokenizer) -> dict:
    from vlora.training.resume import job_identity

    return job_identity(plan.model.to_dict(), tokenizer, recipe, data.file(recipe.stage), start)


def train_plan(plan: TrainingPlan, data: TrainingSet, folder: Path, *, placement: Placement, label: str,
               init: Path | None = None, foundations=None, progress: bool = True, force: bool = False,
               say: Say = print) -> tuple[Path, str]:
    """Train the plan's stages in order under folder/<stage>/; a stage whose folder holds this job's finished
    output is reloaded, an unfinished one resumes from its checkpoint, another job's is refused (`force`:
    replaced). Returns the last stage's model folder and which tokenizer the model has."""
    from vlora.output_folder import Job, OutputFolder

    model, tokenizer, words = None, None, None
    recipes = plan.recipes()
    for number, recipe in enumerate(recipes):
        stage_folder = folder / recipe.stage
        start = _start_words(recipe, recipes[number - 1] if number else None, init, foundations)
        if model is None and tokenizer is None:
            tokenizer, words = _plan_tokenizer(plan, data, init, foundations, say)
        identity = _stage_identity(plan, recipe, data, start, tokenizer)
        if model is None and not force and OutputFolder(stage_folder, Job("train", identity)).is_finished():
            continue  # done: the next stage (or the caller) reloads it
        if model is None:
            model = (_reload(stage_folder.parent / recipes[number - 1].stage / "model") if number
                     else starting_model(plan.model, data, init=init, foundations=foundations, seed=recipe.seed,
                                         say=say).model)
            say(f"{label}: tokenizer {words}")
        say(f"training {label}: stage {recipe.stage}, {recipe.max_steps or f'{recipe.epochs} epoch(s) of'} steps")
        run_stage(model, recipe, data, stage_folder, placement=placement, start=start, progress=progress,
                  force=force, say=say)
    return folder / recipes[-1].stage / "model", words


def _start_words(recipe: TrainingRecipe, previous: TrainingRecipe | None, init: Path | None, foundations=None) -> str:
    """Where a stage's model starts, in words (part of its job's identity)."""
    if previous is not None:
        return f"the {previous.stage} stage of this plan"
    if init is not None:
        return f"checkpoint {Path(init).resolve()}"
    if foundations is not None:
        return f"foundations {foundations.fingerprint}, connector at random (seed {recipe.seed})"
    return f"random initialisation (seed {recipe.seed})"


def foundations_words(foundations) -> str:
    return f"the foundations' own (fingerprint {foundations.fingerprint}, {foundations.folder})"


def check_on_foundations(config, foundations) -> None:
    """Refuse a configuration whose LLM or vision tower is not the foundations' (one line, naming the part)."""
    for part, theirs in (("llm", foundations.llm_config), ("vision", foundations.vision_config)):
        if getattr(config, part) != theirs:
            raise ConfigError(f"the model's {part} configuration is not the foundations' ({foundations.folder}); a "
                              f"model on foundations takes their {part} as it is (set only connector.* keys)")


def _plan_tokenizer(plan: TrainingPlan, data: TrainingSet, init: Path | None, foundations, say: Say):
    """The plan's tokenizer and its words, without building a model (the rule of `starting_model`)."""
    if init is not None:
        from vlora.tokenizer import load_tokenizer

        return load_tokenizer(init), f"the checkpoint's own ({init})"
    if foundations is not None:
        return foundations.tokenizer(), foundations_words(foundations)
    tokenizer, folder = learned_tokenizer(list(data.files.values()), plan.model.llm.vocab_size, say)
    return tokenizer, f"learned from the training data ({len(tokenizer)} tokens, {folder})"


def _reload(model_folder: Path):
    from vlora.checkpoints import load_model

    return load_model(model_folder)


# --- `vlora-eval train` -------------------------------------------------------------------------------
def stage_plan(name: str, stage: str, overrides: Sequence[str] = (), config=None) -> TrainingPlan:
    """The plan of one stage for model `name`: its configuration (`config`, e.g. a checkpoint's, or the
    name's preset) and the stage's recipe fitted to it, with `overrides` applied to both."""
    from evalsuite.registry import model_config
    from vlora.overrides import apply_overrides
    from vlora.training import official_recipe

    model = config if config is not None else model_config(name)
    # the stage's defaults, fitted to the model: no sample longer than the LLM's positions (a tiny model has 1024)
    fitted = official_recipe(stage)
    fitted = apply_overrides(fitted, {"max_length": min(fitted.max_length, model.llm.max_position_embeddings)})
    plan = apply_overrides(TrainingPlan(model=model, stages={stage: fitted}), overrides)
    if config is not None and plan.model != config:
        raise ConfigError("--set changes the model's configuration, but --init's checkpoint fixes it; "
                          "set only training keys (learning_rate, max_steps, ...)")
    return plan


def train_stage(name: str, stage: str, data: str | Path, images: str | Path, out: str | Path, *,
                init: str | Path | None = None, overrides: Sequence[str] = (), placement: Placement,
                progress: bool = True, resume: bool = True, force: bool = False, say: Say = print
                ) -> tuple[TrainResult, str]:
    """Train one stage of model `name` from `init` (a checkpoint of that model) or, for the tiny names,
    from a random model of its preset with a tokenizer learned from `data`; saved under out/model."""
    from evalsuite.registry import load_checked, model_spec

    check_multimodal_stage(stage)
    if init is None and model_spec(name).needs_checkpoint:
        raise ConfigError(f"--model {name} trains from a checkpoint (--init PATH): the paper starts from "
                          "Vicuna and CLIP, not from random 7B weights; tiny names (vlora-tiny, ...) start at random")
    training_set = TrainingSet({stage: Path(data)}, Path(images))
    start = None
    if init is not None:
        start = starting_model(None, training_set, init=Path(init), loader=lambda path: load_checked(name, path))
    plan = stage_plan(name, stage, overrides, start.model.config if start is not None else None)
    (recipe,) = plan.recipes()
    if start is None:
        start = starting_model(plan.model, training_set, seed=recipe.seed, say=say)
    say(f"tokenizer: {start.tokenizer}")
    result = run_stage(start.model, recipe, training_set, Path(out), placement=placement, progress=progress,
                       start=_start_words(recipe, None, Path(init) if init is not None else None), resume=resume,
                       force=force, say=say)
    return result, start.tokenizer

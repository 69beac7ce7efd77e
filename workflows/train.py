"""`vlora-eval train`: one stage of the paper's recipe for a model name, from a checkpoint or a preset.

    name (registry) --> ModelConfig (the preset, or the --init checkpoint's) --> TrainingPlan with the
    release's recipe for the stage --> --set overrides (model and recipe keys, one path) --> train()
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from evalsuite.registry import load_checked, model_config, model_spec
from vlora.errors import ConfigError
from vlora.model import build_model
from vlora.overrides import apply_overrides
from vlora.placement import Placement
from vlora.training import TrainingPlan, TrainResult, official_recipe, train


def stage_plan(name: str, stage: str, overrides: Sequence[str] = (), config=None) -> TrainingPlan:
    """The plan of one stage for model `name`: its configuration (`config`, e.g. a checkpoint's, or the
    name's preset) and the release's recipe for `stage`, with `overrides` applied to both."""
    base = TrainingPlan(model=config if config is not None else model_config(name), **{stage: official_recipe(stage)})
    plan = apply_overrides(base, overrides)
    if config is not None and plan.model != config:
        raise ConfigError("--set changes the model's configuration, but --init's checkpoint fixes it; "
                          "set only training keys (learning_rate, max_steps, ...)")
    return plan


def train_stage(name: str, stage: str, data: str | Path, images: str | Path, out: str | Path, *,
                init: str | Path | None = None, overrides: Sequence[str] = (), placement: Placement,
                progress: bool = True, resume: bool = True) -> TrainResult:
    """Train one stage of model `name`, from `init` (a checkpoint of that model) or, for the tiny names,
    from a random model of its preset; the trained model is saved under out/model."""
    if init is None and model_spec(name).needs_checkpoint:
        raise ConfigError(f"--model {name} trains from a checkpoint (--init PATH): the paper starts from "
                          "Vicuna and CLIP, not from random 7B weights; tiny names (vlora-tiny, ...) start at random")
    model = load_checked(name, init) if init is not None else None
    plan = stage_plan(name, stage, overrides, model.config if model is not None else None)
    (recipe,) = plan.stages()
    if model is None:
        model = build_model(plan.model, seed=recipe.seed)
    return train(model, recipe, data, images, out, progress=progress, resume=resume,
                 cpu=placement.device.type == "cpu")

"""The training recipe: every number that decides a run, frozen and checked at construction.

A stage's defaults are data on its record (vlora/training/stages.py): the official VLoRA recipe
(FeipengMa6/VLoRA `scripts/pretrain.sh` / `scripts/finetune.sh`, shared/reference/vlora_official.md
section 3), each value with its source. The release trained on 8 GPUs, so its global batch is 8 x the
per-device batch (768 for pre-training, 128 for fine-tuning); on fewer devices raise
`gradient_accumulation_steps` to keep the global batch. A plan is a model configuration and the
recipes of its stages, in order.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vlora.config import ModelConfig
from vlora.errors import ConfigError
from vlora.schema import from_data, to_data
from vlora.training.stages import PARTS, STAGES, stage_record

DTYPES = ("float32", "bfloat16")
SCHEDULES = ("cosine",)
OFFICIAL_DEVICES = 8  # the release's GPUs: global batch = OFFICIAL_DEVICES x batch_size x accumulation


@dataclass(frozen=True)
class TrainingRecipe:
    """One training stage. `max_steps` (optimizer steps), when set, replaces `epochs`."""

    stage: str  # a registered stage (vlora/training/stages.py): its data template and defaults
    learning_rate: float
    batch_size: int  # samples per device per micro-batch
    gradient_accumulation_steps: int = 1
    epochs: int = 1
    max_steps: int | None = None
    warmup_ratio: float = 0.03  # of all optimizer steps, linear from 0
    weight_decay: float = 0.0  # AdamW, on parameters with 2+ dimensions (not biases, norms)
    max_grad_norm: float = 1.0  # 0 turns clipping off
    lr_schedule: str = "cosine"
    max_length: int = 2048  # LLM input positions per sample (visual tokens included); longer samples are cut
    seed: int = 42  # data order and dropout; the caller's global RNG is left as it was
    dtype: str = "bfloat16"  # "bfloat16": bf16 autocast with fp32 weights (accelerate mixed precision)
    gradient_checkpointing: bool = True
    trains: tuple[str, ...] = ("connector",)  # the model's parts that learn; the others stay frozen
    save_every: int = 1000  # optimizer steps between resumable checkpoints; 0 = none
    log_every: int = 1  # optimizer steps between lines of the JSONL log
    keep_checkpoints: int = 2  # the newest resumable checkpoints kept; older ones are deleted

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check_type(f.name, getattr(self, f.name), typing.get_type_hints(TrainingRecipe)[f.name])
        _choice("stage", self.stage, tuple(STAGES))
        _require(len(self.trains) > 0 and len(set(self.trains)) == len(self.trains) and set(self.trains) <= set(PARTS),
                 f"trains must name some of {', '.join(PARTS)} once each, got {list(self.trains)}")
        _choice("dtype", self.dtype, DTYPES)
        _choice("lr_schedule", self.lr_schedule, SCHEDULES)
        _require(math.isfinite(self.learning_rate) and self.learning_rate > 0,
                 f"learning_rate must be a positive number, got {self.learning_rate}")
        for name in ("batch_size", "gradient_accumulation_steps", "epochs", "max_length", "log_every",
                     "keep_checkpoints"):
            _require(getattr(self, name) >= 1, f"{name} must be at least 1, got {getattr(self, name)}")
        _require(self.max_steps is None or self.max_steps >= 1,
                 f"max_steps must be at least 1 (or None to train for `epochs`), got {self.max_steps}")
        _require(0 <= self.warmup_ratio < 1, f"warmup_ratio must lie in [0, 1), got {self.warmup_ratio}")
        _require(self.weight_decay >= 0, f"weight_decay must not be negative, got {self.weight_decay}")
        _require(self.max_grad_norm >= 0, f"max_grad_norm must not be negative (0 = no clipping), got {self.max_grad_norm}")
        _require(self.seed >= 0, f"seed must not be negative, got {self.seed}")
        _require(self.save_every >= 0, f"save_every must not be negative (0 = no checkpoints), got {self.save_every}")

    def to_dict(self) -> dict[str, Any]:
        return to_data(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingRecipe:
        if "stage" not in data:
            raise ConfigError(f"a training recipe needs a stage ({', '.join(STAGES)})")
        return official_recipe(data["stage"], **{k: v for k, v in data.items() if k != "stage"})


def official_recipe(stage: str, **changes: Any) -> TrainingRecipe:
    """The recipe of `stage` as its record declares it (the release's, for pretrain and finetune), with
    some fields changed (through the one override path, so text values such as "1e-4" are typed)."""
    from vlora.overrides import apply_overrides

    base = TrainingRecipe(stage=stage, **stage_record(stage).default_values())
    return apply_overrides(base, changes, source="training recipe") if changes else base


# --- checks ----------------------------------------------------------------------------------------
def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(f"training recipe: {message}")


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    _require(value in allowed, f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def _check_type(name: str, value: Any, hint: Any) -> None:
    """The field's type, as vlora.schema reads data (bool is not an int; an int is a fine float)."""
    from_data(hint, value, f"training recipe: {name}")


@dataclass(frozen=True)
class TrainingPlan:
    """A model configuration and the recipes of its stages, run in the order given: the one object
    that `--set` and sweep variants override (`connector.rank=16`, `pretrain.learning_rate=1e-3`; a key
    that several stages have must name its stage)."""

    model: ModelConfig
    stages: Mapping[str, TrainingRecipe]

    def __post_init__(self) -> None:
        _require(len(self.stages) > 0, "a plan needs at least one stage")
        for name, recipe in self.stages.items():
            _require(recipe.stage == name, f"the {name} stage holds a {recipe.stage} recipe")

    def recipes(self) -> list[TrainingRecipe]:
        return list(self.stages.values())

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model.to_dict(), "stages": [r.to_dict() for r in self.recipes()]}

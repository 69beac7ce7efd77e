"""The training recipe: every number that decides a run, frozen and checked at construction.

The official VLoRA recipe (FeipengMa6/VLoRA `scripts/pretrain.sh` / `scripts/finetune.sh`, see
shared/reference/vlora_official.md section 3) is data in `OFFICIAL`, one row per field, with the
source of each value. The release trained on 8 GPUs, so its global batch is 8 x the per-device batch
(768 for pre-training, 128 for fine-tuning); on fewer devices raise `gradient_accumulation_steps`
to keep the global batch.
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

STAGES = ("pretrain", "finetune")
DTYPES = ("float32", "bfloat16")
SCHEDULES = ("cosine",)
OFFICIAL_DEVICES = 8  # the release's GPUs: global batch = OFFICIAL_DEVICES x batch_size x accumulation


@dataclass(frozen=True)
class TrainingRecipe:
    """One training stage. `max_steps` (optimizer steps), when set, replaces `epochs`."""

    stage: str  # the data's template: "pretrain" plain captions; "finetune" Vicuna-v1 dialogues
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
    train_llm: bool = False  # the LLM trains beside the connector (the release: in fine-tuning only)
    save_every: int = 1000  # optimizer steps between resumable checkpoints; 0 = none
    log_every: int = 1  # optimizer steps between lines of the JSONL log
    keep_checkpoints: int = 2  # the newest resumable checkpoints kept; older ones are deleted

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check_type(f.name, getattr(self, f.name), typing.get_type_hints(TrainingRecipe)[f.name])
        _choice("stage", self.stage, STAGES)
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
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingRecipe:
        if "stage" not in data:
            raise ConfigError("a training recipe needs a stage ('pretrain' or 'finetune')")
        return official_recipe(data["stage"], **{k: v for k, v in data.items() if k != "stage"})


# --- the official defaults (data) ------------------------------------------------------------------
# field: (pretrain, finetune, source). "official" = the release's scripts; "HF" = a transformers
# TrainingArguments default the scripts leave unset; "ours" = not in the release.
OFFICIAL: dict[str, tuple[Any, Any, str]] = {
    "learning_rate": (5e-5, 2e-5, "official"),
    "batch_size": (96, 16, "official (per device, 8 GPUs: global 768 / 128)"),
    "gradient_accumulation_steps": (1, 1, "official"),
    "epochs": (1, 1, "official"),
    "warmup_ratio": (0.03, 0.03, "official"),
    "weight_decay": (0.0, 0.0, "official"),
    "lr_schedule": ("cosine", "cosine", "official"),
    "max_length": (2048, 2048, "official (model_max_length)"),
    "dtype": ("bfloat16", "bfloat16", "official (bf16 + tf32)"),
    "gradient_checkpointing": (True, True, "official"),
    "train_llm": (False, True, "official (tune_mm_mlp_adapter in pre-training; the full LLM in fine-tuning)"),
    "max_grad_norm": (1.0, 1.0, "HF"),
    "seed": (42, 42, "HF"),
    "save_every": (1000, 1000, "ours"),
    "log_every": (1, 1, "official (logging_steps 1)"),
}


def official_recipe(stage: str, **changes: Any) -> TrainingRecipe:
    """The release's recipe for `stage` ("pretrain" or "finetune"), with some fields changed (through
    the one override path, so text values such as "1e-4" are read as the field's type)."""
    from vlora.overrides import apply_overrides

    _choice("stage", stage, STAGES)
    column = STAGES.index(stage)
    base = TrainingRecipe(stage=stage, **{name: row[column] for name, row in OFFICIAL.items()})
    return apply_overrides(base, changes, source="training recipe") if changes else base


# --- checks ----------------------------------------------------------------------------------------
def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(f"training recipe: {message}")


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    _require(value in allowed, f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def _check_type(name: str, value: Any, hint: Any) -> None:
    """bool is not an int here, an int is a fine float, None only where the field allows it."""
    args = typing.get_args(hint)
    if value is None:
        _require(type(None) in args, f"{name} must not be None")
        return
    kind = next(a for a in args if a is not type(None)) if args else hint
    ok = {bool: isinstance(value, bool), str: isinstance(value, str),
          int: isinstance(value, int) and not isinstance(value, bool),
          float: isinstance(value, (int, float)) and not isinstance(value, bool)}[kind]
    _require(ok, f"{name} must be {kind.__name__}, got {value!r}")


@dataclass(frozen=True)
class TrainingPlan:
    """A model configuration and the recipes of its stages, run in order (pretrain, then finetune):
    the one object that `--set` and sweep variants override (`connector.rank=16`,
    `pretrain.learning_rate=1e-3`; a key that both stages have must name its stage)."""

    model: ModelConfig
    pretrain: TrainingRecipe | None = None
    finetune: TrainingRecipe | None = None

    def __post_init__(self) -> None:
        _require(self.pretrain is not None or self.finetune is not None, "a plan needs at least one stage")
        for name in ("pretrain", "finetune"):
            recipe = getattr(self, name)
            _require(recipe is None or recipe.stage == name, f"the {name} stage holds a {recipe and recipe.stage} recipe")

    def stages(self) -> list[TrainingRecipe]:
        return [r for r in (self.pretrain, self.finetune) if r is not None]

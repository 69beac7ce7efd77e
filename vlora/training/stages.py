"""Training stages as records: each stage is declared once, here, and nothing else names one.

A stage says how its samples are read and what learns:

    name          what plans, checkpoints, logs and `--stage` call it; its data file is `<name>.json`
    template      how a record becomes tokens (vlora/training/data.py TEMPLATES): "plain" (`<image>` +
                  caption + newline, LLaVA's `--version plain`) or "dialogue" (the Vicuna-v1 conversation)
    objective     what the loop minimises: "lm" (the answer tokens' cross-entropy, vlora/training/loop.py, on a
                  MultimodalLM), "text" (the same, on an LLM alone, from a curriculum: vlora/training/language.py)
                  or "contrastive" (CLIP's image-text loss, vlora/training/contrastive.py)
    defaults      the recipe of the stage (vlora/training/recipe.py): every field's value and its source,
                  `trains` (the model's parts that learn; the rest stay frozen) among them
    description   one line for `--help` and the docs

The paper's two stages (Sect. 4.1; shared/reference/vlora_official.md section 3):
    pretrain   captions; the connector learns, the LLM and CLIP are frozen (tune_mm_mlp_adapter)
    finetune   instructions; the connector and the LLM learn, CLIP is frozen
and the foundations' two (what the paper takes ready-made, Vicuna and CLIP; vlora/foundations.py):
    language     text of the world (its questions with the scene written out, and captions); the LLM learns
    contrastive  the world's images and captions; a small CLIP learns (its vision tower is the foundation)
Adding a stage is one `register_stage(Stage(...))` (plus a template, if it reads samples a new way).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vlora.errors import ConfigError

PARTS = ("connector", "llm", "vision", "clip")  # the parts `trains` names: MultimodalLM's, and a whole CLIPModel


@dataclass(frozen=True)
class Stage:
    name: str
    template: str  # "plain" | "dialogue"
    description: str
    defaults: Mapping[str, tuple[Any, str]] = field(default_factory=dict)  # recipe field -> (value, source)
    objective: str = "lm"  # "lm" | "text" | "contrastive"

    @property
    def data_file(self) -> str:
        return f"{self.name}.json"

    def default_values(self) -> dict[str, Any]:
        return {name: value for name, (value, _) in self.defaults.items()}


STAGES: dict[str, Stage] = {}


def register_stage(stage: Stage) -> Stage:
    if stage.name in STAGES:
        raise ConfigError(f"training stage {stage.name!r} is already registered")
    STAGES[stage.name] = stage
    return stage


def unregister_stage(name: str) -> None:
    """Forget a stage (for tests that register one of their own)."""
    STAGES.pop(name, None)


def stage_record(name: str) -> Stage:
    try:
        return STAGES[name]
    except KeyError:
        raise ConfigError(f"unknown training stage {name!r}; known: {', '.join(STAGES)}") from None


# --- the release's two stages ------------------------------------------------------------------------
# What both share: "official" = the release's scripts; "HF" = a transformers TrainingArguments default the
# scripts leave unset; "ours" = not in the release. The release trained on 8 GPUs: its global batch is 8 x
# the per-device batch (768 for pre-training, 128 for fine-tuning).
RELEASE: dict[str, tuple[Any, str]] = {
    "gradient_accumulation_steps": (1, "official"),
    "epochs": (1, "official"),
    "warmup_ratio": (0.03, "official"),
    "weight_decay": (0.0, "official"),
    "lr_schedule": ("cosine", "official"),
    "max_length": (2048, "official (model_max_length)"),
    "dtype": ("bfloat16", "official (bf16 + tf32)"),
    "gradient_checkpointing": (True, "official"),
    "max_grad_norm": (1.0, "HF"),
    "seed": (42, "HF"),
    "save_every": (1000, "ours"),
    "log_every": (1, "official (logging_steps 1)"),
}

PRETRAIN = register_stage(Stage(
    "pretrain", "plain", "captions; the connector learns (LLM and CLIP frozen)",
    {**RELEASE, "learning_rate": (5e-5, "official"),
     "batch_size": (96, "official (per device, 8 GPUs: global 768)"),
     "trains": (("connector",), "official (tune_mm_mlp_adapter: the whole mm_projector)")}))
FINETUNE = register_stage(Stage(
    "finetune", "dialogue", "instructions; the connector and the LLM learn (CLIP frozen)",
    {**RELEASE, "learning_rate": (2e-5, "official"),
     "batch_size": (16, "official (per device, 8 GPUs: global 128)"),
     "trains": (("connector", "llm"), "official (the full LLM and the generator; no PEFT)")}))

# --- the foundations' two stages (ours: the paper starts from Vicuna and CLIP) --------------------------------
TINY: dict[str, tuple[Any, str]] = {
    **RELEASE, "dtype": ("float32", "ours (tiny models on a CPU)"), "gradient_checkpointing": (False, "ours"),
    "max_length": (1024, "ours (the tiny LLM's positions)"), "warmup_ratio": (0.05, "ours"),
    "weight_decay": (0.0, "ours"), "save_every": (500, "ours"), "log_every": (50, "ours"), "epochs": (100, "ours")}
LANGUAGE = register_stage(Stage(
    "language", "dialogue", "text of the world (its question forms with the scene written out); the LLM learns",
    {**TINY, "learning_rate": (1e-3, "ours"), "batch_size": (64, "ours"), "trains": (("llm",), "ours")},
    objective="text"))
CONTRASTIVE = register_stage(Stage(
    "contrastive", "plain", "images and captions of the world; a small CLIP learns (its vision tower is kept)",
    {**TINY, "learning_rate": (2e-3, "ours"), "batch_size": (128, "ours"), "weight_decay": (0.1, "ours"),
     "trains": (("clip",), "ours")}, objective="contrastive"))

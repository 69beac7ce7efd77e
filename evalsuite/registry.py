"""Model names -> factories: `create_model(name, checkpoint=..., overrides=[...])`, as timm / open_clip.

A name says which model it is (its connector kind) and, without a checkpoint, which preset to build
at random. The full-size names need a local checkpoint; the `*-tiny` names build tiny random models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from evalsuite.multimodal import MultimodalAdapter
from vlora.config import ModelConfig
from vlora.errors import ConfigError, InputError
from vlora.overrides import apply_overrides
from vlora.presets import preset

KIND_NAMES = {"vlora": "VLoRA", "llava": "LLaVA-v1.5", "llava-qformer": "LLaVA-v1.5-QFormer"}


@dataclass(frozen=True)
class ModelSpec:
    kind: str  # the connector kind a checkpoint must have
    preset: str  # the configuration built at random when no checkpoint is given
    needs_checkpoint: bool
    description: str


MODELS: dict[str, ModelSpec] = {
    "vlora": ModelSpec("vlora", "vlora-7b", True, "VLoRA (perceptual weights, 0 visual tokens)"),
    "llava-v1.5": ModelSpec("llava", "llava-v1.5-7b", True, "LLaVA-v1.5 (MLP projector, 576 visual tokens)"),
    "llava-v1.5-qformer": ModelSpec("llava-qformer", "llava-v1.5-7b-qformer", True,
                                    "LLaVA-v1.5 with a Q-Former (128 visual tokens)"),
    "vlora-tiny": ModelSpec("vlora", "vlora-tiny", False, "tiny random VLoRA"),
    "llava-tiny": ModelSpec("llava", "llava-tiny", False, "tiny random LLaVA-v1.5"),
    "llava-qformer-tiny": ModelSpec("llava-qformer", "llava-qformer-tiny", False, "tiny random LLaVA-v1.5-QFormer"),
}


def model_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(MODELS)}") from None


def load_checked(name: str, checkpoint: str | Path, vision_tower=None, dtype: torch.dtype | None = None):
    """Load a checkpoint and check it holds the kind of model `name` is."""
    from vlora.checkpoints import load_model

    spec = model_spec(name)
    model = load_model(checkpoint, vision_tower=vision_tower, dtype=dtype)
    if model.config.kind != spec.kind:
        right = next(n for n, s in MODELS.items() if s.kind == model.config.kind and s.needs_checkpoint)
        raise InputError(f"checkpoint {checkpoint} holds a {KIND_NAMES[model.config.kind]} model, not "
                         f"{KIND_NAMES[spec.kind]} (--model {name}); use --model {right}")
    return model


def model_config(name: str, overrides: Sequence[str] | Mapping[str, Any] = ()) -> ModelConfig:
    """The configuration a model name builds without a checkpoint: its preset with `overrides`."""
    return apply_overrides(preset(model_spec(name).preset), overrides)


def create_model(name: str, checkpoint: str | Path | None = None, *, vision_tower: str | Path | None = None,
                 device: torch.device | str = "cpu", dtype: torch.dtype | None = None,
                 overrides: Sequence[str] | Mapping[str, Any] = (), seed: int = 0, batch_size: int = 8,
                 mode: str = "auto", official_positions: bool = False, vision_cache: bool = True) -> MultimodalAdapter:
    """An adapter for model `name` on `device` in `dtype` (None: as stored / float32), from a local
    checkpoint or (tiny names) built at random from its preset with dotted `overrides`."""
    from vlora.model import build_model

    spec = model_spec(name)
    if checkpoint is not None:
        if overrides:
            raise ConfigError(f"--set {list(overrides)} changes a preset; a checkpoint's configuration is fixed")
        model = load_checked(name, checkpoint, vision_tower, dtype).to(device)
    elif spec.needs_checkpoint:
        tiny = ", ".join(n for n, s in MODELS.items() if not s.needs_checkpoint)
        raise ConfigError(f"model {name!r} needs a local checkpoint (--checkpoint PATH); tiny random models: {tiny}")
    else:
        model = build_model(model_config(name, overrides), seed=seed, device=device, dtype=dtype)
    return MultimodalAdapter(model, name, batch_size=batch_size, mode=mode, official_positions=official_positions,
                             vision_cache=vision_cache)

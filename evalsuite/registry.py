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
from vlora.connector_kinds import connector_kind
from vlora.errors import ConfigError, InputError
from vlora.overrides import apply_overrides
from vlora.presets import model_names, preset


@dataclass(frozen=True)
class ModelSpec:
    kind: str  # the connector kind a checkpoint must have
    preset: str  # the configuration built at random when no checkpoint is given
    needs_checkpoint: bool
    description: str


def model_specs() -> dict[str, ModelSpec]:
    """Every `--model` name (vlora.presets.model_names, from the registered connector kinds): per kind its
    full-size model (a local checkpoint) and `<kind>-tiny` (a tiny random model of its tiny preset)."""
    specs = {}
    for name, (preset_name, needs_checkpoint) in model_names().items():
        kind = connector_kind(preset_name.rsplit("-", 1)[0])
        specs[name] = ModelSpec(kind.name, preset_name, needs_checkpoint,
                                kind.description if needs_checkpoint else f"tiny random {kind.display_name}")
    return specs


def model_spec(name: str) -> ModelSpec:
    specs = model_specs()
    try:
        return specs[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(specs)}") from None


def load_checked(name: str, checkpoint: str | Path, vision_tower=None, dtype: torch.dtype | None = None):
    """Load a checkpoint and check it holds the kind of model `name` is."""
    from vlora.checkpoints import load_model

    spec = model_spec(name)
    model = load_model(checkpoint, vision_tower=vision_tower, dtype=dtype)
    if model.config.kind != spec.kind:
        held = connector_kind(model.config.kind)
        raise InputError(f"checkpoint {checkpoint} holds a {held.display_name} model, not "
                         f"{connector_kind(spec.kind).display_name} (--model {name}); use --model {held.model_name}")
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
        tiny = ", ".join(n for n, s in model_specs().items() if not s.needs_checkpoint)
        raise ConfigError(f"model {name!r} needs a local checkpoint (--checkpoint PATH); tiny random models: {tiny}")
    else:
        model = build_model(model_config(name, overrides), seed=seed, device=device, dtype=dtype)
    return MultimodalAdapter(model, name, batch_size=batch_size, mode=mode, official_positions=official_positions,
                             vision_cache=vision_cache)

"""Connector kinds: one registration records all of a connector (timm's `register_model` is the model).

A connector is the only fork of the multimodal model (vlora/model.py). A kind is:

    config          its configuration dataclass (vlora/config.py): the kind's name (`kind`), its space
                    (input: visual tokens; parameter: perceptual weights) and the visual tokens per image
    module          "package.module:Class", built as Class(model_config) (imported only when a model is built)
    display_name    how tables and messages name it ("VLoRA")
    model_name      the `--model` name of its full-size model, which needs a checkpoint ("vlora"); the
                    random tiny one is `<kind>-tiny`
    presets         its connector at each size of vlora/presets.py (7b, small, tiny)

Everything that tells kinds apart reads this table: configs and checkpoints (the kind's name), the
model registry and `vlora-eval models` (names, descriptions), the embedded default (one tiny model per
kind), the FLOPs floor (a formula per kind where one is written, otherwise a count), the report.
Adding a connector is one `register_connector(ConnectorKind(...))` plus its config class and module.
Torch-free: the module is named, not imported.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vlora.config import ConnectorConfig, GeneratorConfig, ProjectorConfig, QFormerConfig
from vlora.errors import ConfigError

SIZES = ("7b", "small", "tiny")  # vlora/presets.py: the LLM and vision tower of each size


@dataclass(frozen=True)
class ConnectorKind:
    config: type[ConnectorConfig]
    module: str  # "vlora.generator:PerceptualWeightsGenerator"
    display_name: str
    model_name: str
    description: str
    presets: Mapping[str, ConnectorConfig] = field(default_factory=dict)  # size -> the connector at that size

    @property
    def name(self) -> str:
        return self.config.kind

    @property
    def tiny_name(self) -> str:
        return f"{self.name}-tiny"

    def build(self, config) -> Any:
        """The connector module for a ModelConfig of this kind (torch is imported here, not before)."""
        path, _, attribute = self.module.partition(":")
        return getattr(importlib.import_module(path), attribute)(config)


KINDS: dict[str, ConnectorKind] = {}


def register_connector(kind: ConnectorKind) -> ConnectorKind:
    """Record a connector kind; a second kind of the same name or `--model` name is refused."""
    clash = next((k for k in KINDS.values() if k.name == kind.name or k.model_name == kind.model_name), None)
    if clash is not None:
        raise ConfigError(f"connector kind {kind.name!r} ({kind.model_name}) is already registered")
    missing = [size for size in SIZES if size not in kind.presets]
    if missing:
        raise ConfigError(f"connector kind {kind.name!r} has no preset for the size(s) {missing}")
    bad = [size for size, preset in kind.presets.items() if not isinstance(preset, kind.config)]
    if bad:
        raise ConfigError(f"connector kind {kind.name!r}: the preset(s) {bad} are not {kind.config.__name__}")
    KINDS[kind.name] = kind
    return kind


def unregister_connector(name: str) -> None:
    """Forget a kind (for tests that register one of their own)."""
    KINDS.pop(name, None)


def connector_kind(name: str) -> ConnectorKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ConfigError(f"unknown connector kind {name!r}; known: {', '.join(KINDS)}") from None


# --- the paper's three connectors ----------------------------------------------------------------------
register_connector(ConnectorKind(
    GeneratorConfig, "vlora.generator:PerceptualWeightsGenerator", "VLoRA", "vlora",
    "VLoRA (perceptual weights, 0 visual tokens)",
    # the paper: N = 8, k = 8 (every 4th of 32 blocks), r = 64, h_p = 512, qkvom
    {"7b": GeneratorConfig(),
     "small": GeneratorConfig(types="qkvom", rank=16, alpha=16.0, blocks=2, hidden=128, heads=4, skip=2),
     "tiny": GeneratorConfig(types="qkvom", rank=4, alpha=8.0, blocks=2, hidden=32, heads=4, skip=2)}))
register_connector(ConnectorKind(
    ProjectorConfig, "vlora.connectors:MLPProjector", "LLaVA-v1.5", "llava-v1.5",
    "LLaVA-v1.5 (MLP projector, one visual token per patch: 576)",
    {"7b": ProjectorConfig(), "small": ProjectorConfig(), "tiny": ProjectorConfig()}))
register_connector(ConnectorKind(
    QFormerConfig, "vlora.connectors:QFormerConnector", "LLaVA-v1.5-QFormer", "llava-v1.5-qformer",
    "LLaVA-v1.5 with a Q-Former (128 visual tokens)",
    # the paper's Table 2 baseline: the generator's blocks and hidden size, 128 queries
    {"7b": QFormerConfig(),
     "small": QFormerConfig(queries=128, blocks=2, hidden=128, heads=4),
     "tiny": QFormerConfig(queries=8, blocks=2, hidden=32, heads=4)}))

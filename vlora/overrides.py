"""The one way to override a configuration: dotted keys (`--set connector.rank=16`, sweep variants).

Every command that builds a model and every sweep file goes through `apply_overrides`; nothing else
changes a `ModelConfig` after it is built.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from vlora.config import ModelConfig, _from_dict
from vlora.errors import ConfigError

SECTIONS = ("llm", "vision", "connector")


def apply_overrides(config: ModelConfig, overrides: Iterable[str] | Mapping[str, Any], source: str = "--set"
                    ) -> ModelConfig:
    """`config` with fields changed by dotted keys: `connector.rank=16`, `llm.num_layers=8`,
    `vision.num_layers=2` (strings, as `--set` gives them) or a mapping of the same keys (as sweep files
    give them). A flat key (`rank=16`) is accepted when exactly one section has that field; a key that
    no section has, or that two have, is an error naming it. Text values are read as YAML scalars and
    checked against the field's type; the result is validated like any config."""
    changes: dict[str, dict[str, Any]] = {}
    for key, value in _pairs(overrides, source):
        section, name = _resolve(config, key, source)
        hint = typing.get_type_hints(type(getattr(config, section)))[name]
        changes.setdefault(section, {})[name] = _typed(value, hint, f"{source} {section}.{name}")
    sections = {section: _from_dict(type(getattr(config, section)),
                                    {**dataclasses.asdict(getattr(config, section)), **fields}, section)
                for section, fields in changes.items()}
    return dataclasses.replace(config, **sections)


def _pairs(overrides: Iterable[str] | Mapping[str, Any], source: str) -> list[tuple[str, Any]]:
    if isinstance(overrides, Mapping):
        return [(str(k), v) for k, v in overrides.items()]
    pairs = []
    for item in overrides:
        key, sep, text = str(item).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{source} {item!r} is not KEY=VALUE (e.g. connector.rank=16)")
        pairs.append((key.strip(), _scalar(text.strip())))
    return pairs


def _scalar(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        return text


def _resolve(config: ModelConfig, key: str, source: str) -> tuple[str, str]:
    """(section, field) of a dotted or flat key; unknown and ambiguous keys are errors."""
    fields = {section: [f.name for f in dataclasses.fields(getattr(config, section))] for section in SECTIONS}
    known = [f"{section}.{name}" for section, names in fields.items() for name in names]
    section, dot, name = key.rpartition(".")
    if dot:
        if section in fields and name in fields[section]:
            return section, name
    else:
        owners = [s for s in SECTIONS if key in fields[s]]
        if len(owners) == 1:
            return owners[0], key
        if owners:
            raise ConfigError(f"{source} key {key!r} is ambiguous: " + " or ".join(f"{s}.{key}" for s in owners))
    import difflib

    close = difflib.get_close_matches(key if dot else f"connector.{key}", known, n=2)
    hint = f"; did you mean {' or '.join(close)}?" if close else f"; known keys: {', '.join(known)}"
    raise ConfigError(f"{source} key {key!r} is not a setting of a {config.kind} model{hint}")


def _typed(value: Any, hint: Any, where: str) -> Any:
    """`value` as the field's type (ints stay exact, tuples from lists), or a ConfigError naming `where`."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (hint,) = [a for a in args if a is not type(None)]
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} expects a list, e.g. [3, 7], got {value!r}")
        item = typing.get_args(hint)[0]
        return tuple(_typed(v, item, where) for v in value)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML reads 1e-5 as text
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, str):
            return value
    name = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"{where} expects {name}, got {value!r}")

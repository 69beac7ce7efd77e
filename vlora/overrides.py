"""The one way to override a configuration: dotted keys (`--set connector.rank=16`, sweep variants).

Every command that builds a model or a training run, and every sweep file, goes through
`apply_overrides`; nothing else changes a configuration after it is built. A configuration is a
frozen dataclass whose fields may themselves be dataclasses (`ModelConfig` has llm / vision /
connector; a training setup has model and stages). A key names a field by its dotted path, or by
the end of that path when only one field ends that way: on a `ModelConfig`, `connector.rank` and
`rank` both name connector.rank, while `hidden_size` is ambiguous (llm or vision) and refused.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from vlora.errors import ConfigError
from vlora.schema import from_data

T = TypeVar("T")
Path = tuple[str, ...]


def apply_overrides(target: T, overrides: Iterable[str] | Mapping[str, Any], source: str = "--set") -> T:
    """`target` with fields changed by dotted keys: strings `KEY=VALUE` (as `--set` gives them) or a
    mapping of keys to values (as sweep files give them). Text values are read as YAML scalars and
    checked against the field's type (vlora.schema, the typed path every data file takes); the result is validated as any configuration is. Unknown or
    ambiguous keys and ill-typed values are one-line ConfigErrors naming the key."""
    paths = leaf_paths(target)
    changes: dict[Path, dict[str, Any]] = {}
    for key, value in _pairs(overrides, source):
        path = _resolve(target, paths, key, source)
        parent = _get(target, path[:-1])
        hint = typing.get_type_hints(type(parent))[path[-1]]
        changes.setdefault(path[:-1], {})[path[-1]] = from_data(hint, value, f"{source} {'.'.join(path)}")
    return _rebuild(target, (), changes) if changes else target


def leaf_paths(target: Any, prefix: Path = ()) -> list[Path]:
    """The dotted paths of every settable field (fields that are dataclasses, or mappings of named
    dataclasses such as a plan's stages, are descended into)."""
    paths = []
    for name, value in _children(target):
        if _is_node(value):
            paths += leaf_paths(value, (*prefix, name))
        else:
            paths.append((*prefix, name))
    return paths


def _is_node(value: Any) -> bool:
    if isinstance(value, Mapping):
        return bool(value) and all(dataclasses.is_dataclass(v) and not isinstance(v, type) for v in value.values())
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _children(target: Any) -> list[tuple[str, Any]]:
    if isinstance(target, Mapping):
        return [(str(k), v) for k, v in target.items()]
    return [(f.name, getattr(target, f.name)) for f in dataclasses.fields(target)]


def _get(target: Any, path: Path) -> Any:
    for name in path:
        target = target[name] if isinstance(target, Mapping) else getattr(target, name)
    return target


def _label(target: Any) -> str:
    kind = getattr(target, "kind", None)
    return f"a {kind} model" if isinstance(kind, str) else f"a {type(target).__name__}"


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


def _resolve(target: Any, paths: list[Path], key: str, source: str) -> Path:
    """The one field path that `key` names (the whole path, or its unique ending)."""
    parts = tuple(key.split("."))
    matches = [p for p in paths if p[-len(parts):] == parts]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ConfigError(f"{source} key {key!r} is ambiguous: " + " or ".join(".".join(p) for p in matches))
    known = [".".join(p) for p in paths]
    guesses = difflib.get_close_matches(key, known, n=2) or difflib.get_close_matches(
        parts[-1], [p[-1] for p in paths], n=1)
    close = [k for k in known if k in guesses or k.split(".")[-1] in guesses][:2]
    hint = f"; did you mean {' or '.join(close)}?" if close else f"; known keys: {', '.join(known)}"
    raise ConfigError(f"{source} key {key!r} is not a setting of {_label(target)}{hint}")


def _rebuild(target: Any, path: Path, changes: dict[Path, dict[str, Any]]) -> Any:
    """`target` with the changes at and below `path` applied, each level validated by its dataclass."""
    fields = {}
    for name, value in _children(target):
        below = (*path, name)
        if any(p[:len(below)] == below for p in changes):
            fields[name] = _rebuild(value, below, changes)
    fields.update(changes.get(path, {}))
    if isinstance(target, Mapping):
        return {**target, **fields}
    try:
        return dataclasses.replace(target, **fields)
    except (TypeError, ZeroDivisionError) as e:
        raise ConfigError(f"bad value for {'.'.join(path) or type(target).__name__}: {e}") from None

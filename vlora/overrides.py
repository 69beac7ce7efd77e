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
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from vlora.errors import ConfigError

T = TypeVar("T")
Path = tuple[str, ...]


def apply_overrides(target: T, overrides: Iterable[str] | Mapping[str, Any], source: str = "--set") -> T:
    """`target` with fields changed by dotted keys: strings `KEY=VALUE` (as `--set` gives them) or a
    mapping of keys to values (as sweep files give them). Text values are read as YAML scalars and
    checked against the field's type; the result is validated as any configuration is. Unknown or
    ambiguous keys and ill-typed values are one-line ConfigErrors naming the key."""
    paths = leaf_paths(target)
    changes: dict[Path, dict[str, Any]] = {}
    for key, value in _pairs(overrides, source):
        path = _resolve(target, paths, key, source)
        parent = _get(target, path[:-1])
        hint = typing.get_type_hints(type(parent))[path[-1]]
        changes.setdefault(path[:-1], {})[path[-1]] = _typed(value, hint, f"{source} {'.'.join(path)}")
    return _rebuild(target, (), changes) if changes else target


def leaf_paths(target: Any, prefix: Path = ()) -> list[Path]:
    """The dotted paths of every settable field (fields that are dataclasses are descended into)."""
    paths = []
    for f in dataclasses.fields(target):
        value = getattr(target, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            paths += leaf_paths(value, (*prefix, f.name))
        else:
            paths.append((*prefix, f.name))
    return paths


def _get(target: Any, path: Path) -> Any:
    for name in path:
        target = getattr(target, name)
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
    for f in dataclasses.fields(target):
        below = (*path, f.name)
        if any(p[:len(below)] == below for p in changes):
            fields[f.name] = _rebuild(getattr(target, f.name), below, changes)
    fields.update(changes.get(path, {}))
    try:
        return dataclasses.replace(target, **fields)
    except (TypeError, ZeroDivisionError) as e:
        raise ConfigError(f"bad value for {'.'.join(path) or type(target).__name__}: {e}") from None


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
    if hint is bool and isinstance(value, bool):
        return value
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML reads 1e-5 as text
            except ValueError:
                pass
    if hint is str and isinstance(value, str):
        return value
    name = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"{where} expects {name}, got {value!r}")

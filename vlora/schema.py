"""Plain data -> typed, frozen dataclasses, strictly: the one typed path for every data file and override.

Every YAML the project reads (benchmarks, the embedded recipe, sweep configs, the measured crossovers,
the paper's tables), every `config.json` section the project writes, and every `--set KEY=VALUE` value
becomes typed data here, by the field types of a dataclass:

    int, float, bool, str      exact (bool is no int; an int is a fine float; "1e-5" is a float: YAML 1.1
                               reads an exponent without a dot as text; "100" is no float), or a ConfigError
                               naming where.key and what was expected
    X | None, Literal[...]     None where allowed; one of the listed values
    tuple[X, ...], list[X]     from lists; tuple[X, Y] of that length
    dict[str, X], Mapping      keys as text, each value typed
    a dataclass                from a mapping: unknown keys refused (with the known ones named), required
                               keys demanded, each field typed; a class with `variant_for(data, where)`
                               picks its subclass from the data first (the connector by its `kind`)
    Any                        as it is

Errors are one line: `<file>: <dotted key>: <problem>`.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from vlora.errors import ConfigError

T = TypeVar("T")
MISSING = dataclasses.MISSING
EXPONENT = re.compile(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+")
ROOT = "\0"  # ends a `where` that is a file's label, so its keys read `file: key`


def read_yaml(source: Any, cls: type[T], label: str | None = None) -> T:
    """A YAML file (a Path, or a package resource from importlib.resources) as `cls`; `label` names it in
    errors (default: the file's path)."""
    import yaml

    label = label or str(source)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{label}: cannot be read ({e.strerror or type(e).__name__})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ConfigError(f"{label}: not valid YAML{where}: {getattr(e, 'problem', None) or e}") from None
    return from_data(cls, {} if data is None else data, label + ROOT)


def from_data(hint: Any, value: Any, where: str) -> Any:
    """`value` (plain data: mappings, lists, scalars) as the type `hint`, checked all the way down."""
    if hint is Any or hint is object:
        return value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return _union(args, value, where)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{_text(where)}: one of {', '.join(map(repr, args))}, not {value!r}")
        return value
    if origin is tuple:
        return _tuple(args, value, where)
    if origin is list:
        return list(_sequence(args[0] if args else Any, value, where))
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        return _mapping(args[1] if args else Any, value, where)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass(hint, value, where)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            raise ConfigError(f"{_text(where)}: one of {', '.join(repr(m.value) for m in hint)}, not {value!r}") from None
    return _scalar(hint, value, where)


def to_data(value: Any) -> Any:
    """A typed value back to plain data (tuples as lists, enums as their values, dataclasses as mappings)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_data(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    return value


# --- the cases ------------------------------------------------------------------------------------
def _scalar(hint: Any, value: Any, where: str) -> Any:
    if hint is bool and isinstance(value, bool):
        return value
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and EXPONENT.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 reads 1e-5 (an exponent without a dot) as text
    if hint is str and isinstance(value, str):
        return value
    if hint is type(None) and value is None:
        return None
    if hint in (bool, int, float, str):
        raise ConfigError(f"{_text(where)}: expects {_name(hint)}, got {value!r}")
    raise TypeError(f"schema: no rule for the type {hint!r} at {where}")  # a bug in a dataclass, not in the data


def _union(args: tuple, value: Any, where: str) -> Any:
    if value is None:
        if type(None) in args:
            return None
        raise ConfigError(f"{_text(where)}: must be set (expects {' or '.join(_name(a) for a in args)})")
    options = [a for a in args if a is not type(None)]
    if len(options) == 1:
        return from_data(options[0], value, where)
    problems = []
    for option in options:
        try:
            return from_data(option, value, where)
        except ConfigError as e:
            problems.append(str(e).removeprefix(f"{_text(where)}: "))
    raise ConfigError(f"{_text(where)}: expects {' or '.join(_name(a) for a in options)}, got {value!r} ({problems[0]})")


def _sequence(item: Any, value: Any, where: str) -> list:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{_text(where)}: expects a list, e.g. [3, 7], got {value!r}")
    return [from_data(item, v, _join(where, f"[{i}]")) for i, v in enumerate(value)]


def _tuple(args: tuple, value: Any, where: str) -> tuple:
    if len(args) == 2 and args[1] is Ellipsis or not args:
        return tuple(_sequence(args[0] if args else Any, value, where))
    if not isinstance(value, (list, tuple)) or len(value) != len(args):
        raise ConfigError(f"{_text(where)}: expects a list of {len(args)} values, got {value!r}")
    return tuple(from_data(a, v, _join(where, f"[{i}]")) for i, (a, v) in enumerate(zip(args, value, strict=True)))


def _mapping(item: Any, value: Any, where: str) -> dict:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{_text(where)}: expects a mapping, got {value!r}")
    return {str(k): from_data(item, v, _join(where, str(k))) for k, v in value.items()}


def _dataclass(cls: type, value: Any, where: str) -> Any:
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(f"{_text(where)}: expects a mapping of {', '.join(field_names(cls))}, got {value!r}")
    variant_for = getattr(cls, "variant_for", None)
    if variant_for is not None:
        cls, value = variant_for(dict(value), where)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in value if k not in fields]
    if unknown:
        key = str(unknown[0])
        close = difflib.get_close_matches(key, list(fields), n=1)
        hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(fields)}"
        raise ConfigError(f"{_join(where, key)}: not a setting here ({hint})")
    missing = [n for n, f in fields.items() if n not in value and f.default is MISSING and f.default_factory is MISSING]
    if missing:
        raise ConfigError(f"{_join(where, missing[0])}: is missing")
    kwargs = {name: from_data(hints[name], item, _join(where, name)) for name, item in value.items()}
    try:
        return cls(**kwargs)
    except ConfigError as e:
        message = str(e)
        raise ConfigError(message if message.startswith(_text(where)) else f"{_text(where)}: {message}") from None
    except (TypeError, ValueError, ZeroDivisionError) as e:
        raise ConfigError(f"{_text(where)}: {e}") from None


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.init]


def _join(where: str, key: str) -> str:
    """where + key: `file: key` below the file's label, `file: a.b` further down (ROOT marks a label)."""
    if where.endswith(ROOT):
        return f"{where.removesuffix(ROOT)}: {key}"
    if not where:
        return key
    return f"{where}{key}" if key.startswith("[") else f"{where}.{key}"


def _text(where: str) -> str:
    return where.removesuffix(ROOT)


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")



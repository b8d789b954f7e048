"""Typed configs: dataclasses built from dicts (YAML, `--set a.b=v`) that reject unknown keys and mistyped values.

Parsing a config has no side effects: no folders, no downloads.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

import yaml

from .errors import ConfigError

T = TypeVar("T")
_KINDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list",
          tuple: "a list", dict: "a mapping"}


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "") -> T:
    """Build dataclass `cls` from `data`, recursively; an unknown key or a value of the wrong type is a ConfigError
    naming its dotted path (`where` prefixes it)."""
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping of settings, got {data!r}")
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names), key=str)
    if unknown:
        shown = ", ".join(f"{where}.{k}" if where else str(k) for k in unknown)
        raise ConfigError(f"unknown {cls.__name__} key(s): {shown}; known: {', '.join(names)}")
    kwargs = {name: _typed(hints.get(name, Any), value, f"{where}.{name}" if where else name)
              for name, value in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:  # a __post_init__ check
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{where or cls.__name__}: {e}") from None


def _typed(hint, value, where: str):
    """`value` checked against the type hint (lists become tuples for tuple fields; ints stand for floats)."""
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return value if isinstance(value, hint) else from_dict(hint, value, where)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _typed(option, value, where)
            except ConfigError as e:
                errors.append(e)
        raise errors[0] if len(options) == 1 else ConfigError(
            f"{where}: expected {' or '.join(_describe(o) for o in options)}{' or null' if type(None) in args else ''}, "
            f"got {value!r}")
    base = origin or hint
    if base not in _KINDS:
        return value  # Any, or a type this checker leaves alone
    if base is float and isinstance(value, str):
        value = _float_text(value, where)
    ok = (isinstance(value, bool) if base is bool else
          isinstance(value, (int, float)) and not isinstance(value, bool) if base is float else
          isinstance(value, int) and not isinstance(value, bool) if base is int else
          isinstance(value, (list, tuple)) if base in (list, tuple) else isinstance(value, base))
    if not ok:
        raise ConfigError(f"{where}: expected {_describe(hint)}, got {value!r}")
    if base in (list, tuple) and args and args[-1] is not Ellipsis and base is tuple:
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected {len(args)} values, got {list(value)!r}")
        return tuple(_typed(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if base is tuple:
        return tuple(value)
    return value


def _float_text(text: str, where: str) -> float:
    """YAML 1.1 reads `1e-2` and `inf` as text: for a float field such text is the number it spells."""
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{where}: expected a number, got {text!r}") from None


def _describe(hint) -> str:
    return _KINDS.get(typing.get_origin(hint) or hint, getattr(hint, "__name__", str(hint)))


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)


def apply_sets(config: T, sets: list[str] | None) -> T:
    """`--set key.path=value` overrides (threestudio's dot overrides): values parse as YAML and are type-checked by
    `from_dict`; a key outside the typed configs is a ConfigError. Keys inside a mapping field (`lambdas.*`,
    `gaussians.*`) are checked by the run's `validate`."""
    if not sets:
        return config
    data = to_dict(config)
    for item in sets:
        key, eq, text = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"--set wants key.path=value, got {item!r}")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError(f"--set {key}: cannot parse the value {text!r}") from None
        *parents, leaf = key.strip().split(".")
        node = data
        for i, part in enumerate(parents):
            if part not in node:
                raise ConfigError(f"--set {key}: unknown key {'.'.join(parents[:i + 1])!r}")
            if not isinstance(node[part], dict):
                raise ConfigError(f"--set {key}: {'.'.join(parents[:i + 1])!r} is not a group of settings")
            node = node[part]
        node[leaf] = value
    return from_dict(type(config), data)


def dump_yaml(obj) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False)

"""Typed configs: dataclasses that reject unknown keys, built from dicts (YAML) and dotted overrides.

Parsing a config has no side effects: no folders, no downloads.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

import yaml

from .errors import UserError

T = TypeVar("T")


def from_dict(cls: type[T], data: dict[str, Any] | None) -> T:
    """Build dataclass `cls` from `data`, recursively; unknown keys are an error."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise UserError(f"unknown {cls.__name__} key(s): {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    kwargs = {}
    for name, value in data.items():
        hint = hints.get(name)
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = from_dict(hint, value)
        kwargs[name] = value
    return cls(**kwargs)


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)


def override(obj: T, **changes) -> T:
    """A copy of `obj` with fields replaced; nested fields by `a__b=value`; None values are ignored."""
    direct = {}
    nested: dict[str, dict] = {}
    for key, value in changes.items():
        if value is None:
            continue
        if "__" in key:
            head, rest = key.split("__", 1)
            nested.setdefault(head, {})[rest] = value
        else:
            direct[key] = value
    names = {f.name for f in dataclasses.fields(obj)}
    for key in list(direct) + list(nested):
        if key not in names:
            raise UserError(f"unknown {type(obj).__name__} key: {key}")
    for head, sub in nested.items():
        direct[head] = override(getattr(obj, head), **sub)
    return dataclasses.replace(obj, **direct)


def dump_yaml(obj) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False)

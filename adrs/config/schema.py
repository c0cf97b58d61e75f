"""Strict conversion of plain YAML data into frozen dataclasses.

Unknown keys, wrong types and missing required fields are errors whose message names the
key path and the fix; nothing is silently replaced by a default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from adrs.errors import UserError

T = TypeVar("T")


def build(cls: type[T], data: object, where: str) -> T:
    """Build dataclass `cls` from `data`; `where` names the source for error messages."""
    if not isinstance(data, Mapping):
        raise UserError(f"{where}: expected a mapping of keys to values, got {_kind(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(str(k) for k in data if k not in fields)
    if unknown:
        raise UserError(f"{where}: unknown key '{unknown[0]}' (known keys: "
                        f"{', '.join(sorted(fields))})")
    values: dict[str, Any] = {}
    for name, field in fields.items():
        if name in data:
            values[name] = convert(hints[name], data[name], f"{where}: '{name}'")
        elif _required(field):
            raise UserError(f"{where}: missing required key '{name}'")
    try:
        return cls(**values)
    except (ValueError, TypeError) as exc:
        raise UserError(f"{where}: {exc}") from None


def convert(hint: Any, value: object, where: str) -> Any:
    """Check `value` against the type `hint`, converting lists to tuples and mappings to
    dataclasses where the hint asks for them."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return _union(hint, value, where)
    if origin is typing.Literal:
        if value not in typing.get_args(hint):
            choices = ", ".join(repr(a) for a in typing.get_args(hint))
            raise UserError(f"{where} must be one of {choices}, got {value!r}")
        return value
    if origin is tuple:
        return _sequence(hint, value, where)
    if origin in (dict, Mapping):
        return _mapping(hint, value, where)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return build(hint, value, where)
    return _scalar(hint, value, where)


def _union(hint: Any, value: object, where: str) -> Any:
    args = typing.get_args(hint)
    if value is None and type(None) in args:
        return None
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return convert(arg, value, where)
        except UserError as exc:
            errors.append(str(exc))
    raise UserError(errors[0] if len(errors) == 1 else
                    f"{where} has the wrong type: got {_kind(value)}")


def _sequence(hint: Any, value: object, where: str) -> tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise UserError(f"{where} must be a list, got {_kind(value)}")
    args = typing.get_args(hint)
    item = args[0] if args else Any
    return tuple(convert(item, v, f"{where}[{i}]") for i, v in enumerate(value))


def _mapping(hint: Any, value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise UserError(f"{where} must be a mapping, got {_kind(value)}")
    args = typing.get_args(hint)
    item = args[1] if len(args) == 2 else Any
    return {str(k): convert(item, v, f"{where}.{k}") for k, v in value.items()}


def _scalar(hint: Any, value: object, where: str) -> Any:
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float) and isinstance(value, bool):
        raise UserError(f"{where} must be a number, got a boolean")
    if isinstance(hint, type) and isinstance(value, hint):
        return value
    name = getattr(hint, "__name__", str(hint))
    raise UserError(f"{where} must be of type {name}, got {_kind(value)} {value!r}")


def _required(field: dataclasses.Field[Any]) -> bool:
    return (field.default is dataclasses.MISSING
            and field.default_factory is dataclasses.MISSING)


def _kind(value: object) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}.get(
        type(value), type(value).__name__)


def to_plain(obj: object) -> Any:
    """Turn a dataclass tree into plain YAML/JSON data (tuples become lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [to_plain(v) for v in obj]
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    return obj


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge two plain mappings; values of `override` win, nested mappings merge."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from adrs.config.schema import build, merge, to_plain
from adrs.errors import UserError


@dataclass(frozen=True)
class Inner:
    bins: int = 10
    lo: float | None = None


@dataclass(frozen=True)
class Outer:
    name: str
    mode: Literal["a", "b"] = "a"
    dims: tuple[Inner, ...] = ()
    inner: Inner = field(default_factory=Inner)


def test_builds_nested_values_and_converts_lists_to_tuples() -> None:
    out = build(Outer, {"name": "x", "dims": [{"bins": 3}], "inner": {"lo": 1}}, "cfg")
    assert out == Outer(name="x", dims=(Inner(bins=3),), inner=Inner(lo=1.0))
    assert isinstance(out.inner.lo, float)


@pytest.mark.parametrize(("data", "message"), [
    ({"name": "x", "nmae": 1}, "unknown key 'nmae'"),
    ({}, "missing required key 'name'"),
    ({"name": 3}, "'name' must be of type str"),
    ({"name": "x", "mode": "c"}, "must be one of 'a', 'b'"),
    ({"name": "x", "inner": {"bins": "many"}}, "'bins' must be of type int"),
    ({"name": "x", "inner": {"bins": True}}, "got a boolean"),
    ({"name": "x", "dims": {"bins": 3}}, "must be a list"),
    ([1, 2], "expected a mapping"),
])
def test_rejects_bad_input_with_the_key_path(data: object, message: str) -> None:
    with pytest.raises(UserError, match=message):
        build(Outer, data, "cfg")


def test_merge_is_deep_and_override_wins() -> None:
    assert merge({"a": {"x": 1, "y": 2}, "b": 1}, {"a": {"y": 3}}) == {
        "a": {"x": 1, "y": 3}, "b": 1}


def test_to_plain_round_trips() -> None:
    value = Outer(name="x", dims=(Inner(3, 0.5),))
    assert build(Outer, to_plain(value), "cfg") == value

"""Validation of a candidate's placement: everything it returned is checked before use.

`check` turns the candidate's raw return value into a `Placement` or raises `InvalidPlacement`
with a message the LLM can act on (which array, which layer, which expert or slot).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Ints = NDArray[np.int64]


class InvalidPlacement(ValueError):
    """The candidate's output breaks the contract; the message says how."""


@dataclass(frozen=True)
class Instance:
    """The deployment a placement is made for."""

    layers: int
    experts: int
    replicas: int = 288
    groups: int = 8
    nodes: int = 4
    gpus: int = 32

    @property
    def max_replicas(self) -> int:
        """Most replicas one expert can have: every other expert keeps exactly one."""
        return self.replicas - self.experts + 1


@dataclass(frozen=True)
class Placement:
    """A validated placement: phy2log [L, R], log2phy [L, E, X], logcnt [L, E] (int64)."""

    phy2log: Ints
    log2phy: Ints
    logcnt: Ints


def check(raw: object, inst: Instance) -> Placement:
    """The validated placement held in `raw`, or InvalidPlacement."""
    if not isinstance(raw, list | tuple) or len(raw) != 3:
        raise InvalidPlacement("rebalance_experts must return a tuple (phy2log, log2phy, "
                               f"logcnt); got {_describe(raw)}")
    phy2log, log2phy, logcnt = (_int_array(value, name) for value, name in
                                zip(raw, ("phy2log", "log2phy", "logcnt"), strict=True))
    _check_shapes(phy2log, log2phy, logcnt, inst)
    _check_counts(phy2log, logcnt, inst)
    _check_log2phy(phy2log, log2phy, logcnt, inst)
    return Placement(phy2log, log2phy, logcnt)


def _describe(value: object) -> str:
    if isinstance(value, list | tuple):
        return f"a {type(value).__name__} of {len(value)} items"
    return type(value).__name__


def _int_array(value: object, name: str) -> Ints:
    if isinstance(value, np.ndarray):
        array = value
    elif isinstance(value, list | tuple):
        try:
            array = np.asarray(value)
        except ValueError as exc:  # ragged nesting
            raise InvalidPlacement(f"{name} is not a rectangular array: {exc}") from None
    else:
        raise InvalidPlacement(f"{name} must be a numpy integer array, got {_describe(value)}")
    if array.dtype.kind not in "iu":
        raise InvalidPlacement(f"{name} must hold integers, got dtype {array.dtype}")
    if array.dtype.kind == "u" and array.dtype.itemsize == 8 and array.size \
            and int(array.max()) > np.iinfo(np.int64).max:
        raise InvalidPlacement(f"{name} holds a value too large for int64")
    return array.astype(np.int64, copy=False)


def _check_shapes(phy2log: Ints, log2phy: Ints, logcnt: Ints, inst: Instance) -> None:
    L, E, R = inst.layers, inst.experts, inst.replicas
    expected = {"phy2log": (phy2log, (L, R)), "logcnt": (logcnt, (L, E))}
    for name, (array, want) in expected.items():
        if array.shape != want:
            raise InvalidPlacement(f"{name} has shape {array.shape}; expected {want} "
                                   "(layers, replicas) for phy2log, (layers, experts) for logcnt")
    if log2phy.ndim != 3 or log2phy.shape[:2] != (L, E) \
            or not 1 <= log2phy.shape[2] <= inst.max_replicas:
        raise InvalidPlacement(f"log2phy has shape {log2phy.shape}; expected ({L}, {E}, X) "
                               f"with 1 <= X <= {inst.max_replicas}")


def _first(mask: NDArray[np.bool_]) -> tuple[int, ...] | None:
    """The index of the first True of `mask`, or None (argwhere only when needed: speed)."""
    if not mask.any():
        return None
    return tuple(int(i) for i in np.argwhere(mask)[0])


def _per_layer_counts(ids: Ints, layer: Ints, size: int, layers: int) -> Ints:
    """How often each id in [0, size) occurs per layer: [layers, size]."""
    return np.bincount((layer * size + ids).ravel(), minlength=layers * size).reshape(
        layers, size)


def _check_counts(phy2log: Ints, logcnt: Ints, inst: Instance) -> None:
    bad = _first((phy2log < 0) | (phy2log >= inst.experts))
    if bad:
        raise InvalidPlacement(f"phy2log[{bad[0]}, {bad[1]}] = {phy2log[bad]} is not an "
                               f"expert id in [0, {inst.experts})")
    bad = _first(logcnt < 1)
    if bad:
        raise InvalidPlacement(f"expert {bad[1]} of layer {bad[0]} has no replica "
                               f"(logcnt = {logcnt[bad]}); every expert needs >= 1")
    sums = logcnt.sum(-1)
    bad = _first(sums != inst.replicas)
    if bad:
        raise InvalidPlacement(f"logcnt of layer {bad[0]} sums to {sums[bad]}; every row must "
                               f"sum to the {inst.replicas} physical slots")
    layer = np.arange(inst.layers)[:, None]
    hosted = _per_layer_counts(phy2log, layer, inst.experts, inst.layers)
    bad = _first(hosted != logcnt)
    if bad:
        raise InvalidPlacement(f"logcnt[{bad[0]}, {bad[1]}] = {logcnt[bad]} but phy2log gives "
                               f"expert {bad[1]} {hosted[bad]} slots")


def _check_log2phy(phy2log: Ints, log2phy: Ints, logcnt: Ints, inst: Instance) -> None:
    used = np.arange(log2phy.shape[2]) < logcnt[..., None]  # the first logcnt entries
    bad = _first(used & ((log2phy < 0) | (log2phy >= inst.replicas)))
    if bad:
        raise InvalidPlacement(f"log2phy[{bad[0]}, {bad[1]}, {bad[2]}] = {log2phy[bad]} "
                               f"is not a slot id in [0, {inst.replicas})")
    bad = _first(~used & (log2phy != -1))
    if bad:
        raise InvalidPlacement(f"log2phy[{bad[0]}, {bad[1]}, {bad[2]}] = {log2phy[bad]} but "
                               f"expert {bad[1]} has {logcnt[bad[:2]]} replicas: entries past "
                               "logcnt must be -1")
    layer = np.broadcast_to(np.arange(inst.layers)[:, None, None], log2phy.shape)
    times = _per_layer_counts(log2phy[used], layer[used], inst.replicas, inst.layers)
    if (times != 1).any():  # a double-booked slot first: it is the cause, not the gap
        twice = _first(times > 1)
        where = twice or _first(times == 0)
        assert where is not None
        what = f"{times[where]} times" if twice else "by no expert"
        raise InvalidPlacement(f"slot {where[1]} of layer {where[0]} is listed in log2phy "
                               f"{what}; each slot must host exactly one replica")
    owner = np.arange(inst.experts)[None, :, None]
    flat = np.where(used, log2phy, 0).reshape(inst.layers, -1)
    hosted = np.take_along_axis(phy2log, flat, axis=-1).reshape(log2phy.shape)
    bad = _first(used & (hosted != owner))
    if bad:
        slot = log2phy[bad]
        raise InvalidPlacement(f"log2phy[{bad[0]}, {bad[1]}, {bad[2]}] = {slot} but "
                               f"phy2log[{bad[0]}, {slot}] = {phy2log[bad[0], slot]}: the two "
                               "must agree")

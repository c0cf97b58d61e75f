"""The makespan of a transaction order under the lock-timing model of the TXN problem.

A transaction is a string of space-separated tokens: `r-<key>` reads the key, `w-<key>`
writes it and `*` is an idle slot; every token takes one time unit, so the token at offset
p (0-based) runs at `start + p`. Transactions are placed one by one in the order given; each
starts at the earliest time >= 1 at which every one of its operations respects the locks
already placed on its key:
- a write, or any operation on a key whose latest lock is a write, runs after that latest
  lock;
- a read on a key whose latest lock is a read runs after the key's latest write (reads share).
Locks already placed never move, and a later transaction may start before earlier ones
(back-filling) when its keys allow it. The makespan is the largest end time.

`Timeline` keeps, per key, only what those rules read: the time and kind of the latest lock
and the time of the latest write. Adding or pricing one transaction therefore costs time
proportional to its number of operations, whatever the length of the prefix already placed.

This module uses the standard library only: it is also loaded, unchanged, inside the
sandbox as the module `harness`, so that candidate programs search with the same model the
trusted evaluator scores with.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Op:
    """One read or write: its key and its offset (0-based) inside the transaction."""

    key: str
    write: bool
    offset: int


@dataclass(frozen=True)
class Txn:
    """A parsed transaction: its operations in order and its length in time units."""

    ops: tuple[Op, ...]
    length: int


def parse_txn(text: str) -> Txn:
    """Parse one transaction; ValueError naming the bad token if it is malformed or empty."""
    tokens = text.split()
    if not tokens:
        raise ValueError("a transaction must hold at least one token")
    ops = []
    for offset, token in enumerate(tokens):
        if token == "*":
            continue
        kind, dash, key = token.partition("-")
        if kind not in ("r", "w") or not dash or not key:
            raise ValueError(f"bad token {token!r}: expected 'r-<key>', 'w-<key>' or '*'")
        ops.append(Op(key=key, write=kind == "w", offset=offset))
    return Txn(ops=tuple(ops), length=len(tokens))


def parse_workload(texts: Iterable[str]) -> list[Txn]:
    """Parse every transaction of a workload (see parse_txn)."""
    return [parse_txn(text) for text in texts]


class Timeline:
    """The locks placed by a prefix of an order, and its makespan. Mutable; see `copy`."""

    def __init__(self) -> None:
        self.makespan = 0
        # key -> (time, is_write) of its latest lock; ties go to the lock placed last.
        self._latest: dict[str, tuple[int, bool]] = {}
        self._latest_write: dict[str, int] = {}

    def copy(self) -> Timeline:
        """An independent copy (to try several continuations of one prefix)."""
        other = Timeline()
        other.makespan = self.makespan
        other._latest = dict(self._latest)
        other._latest_write = dict(self._latest_write)
        return other

    def start_of(self, txn: Txn) -> int:
        """The time at which `txn` would start if it were appended now."""
        start = 1
        for op in txn.ops:
            latest = self._latest.get(op.key)
            if latest is None:
                continue
            time, was_write = latest
            # A read after reads only (reads share) waits for the latest write alone.
            shared = not (op.write or was_write)
            earliest = (self._latest_write.get(op.key, 0) if shared else time) + 1
            start = max(start, earliest - op.offset)
        return start

    def makespan_with(self, txn: Txn) -> int:
        """The makespan after appending `txn`, without appending it."""
        return max(self.makespan, self.start_of(txn) + txn.length - 1)

    def append(self, txn: Txn) -> int:
        """Place `txn` at its earliest start, record its locks; returns the start."""
        start = self.start_of(txn)
        for op in txn.ops:
            time = start + op.offset
            latest = self._latest.get(op.key)
            # A lock goes after every lock at a time <= its own, so it becomes the latest
            # exactly when no existing lock is later (only shared reads can be earlier).
            if latest is None or time >= latest[0]:
                self._latest[op.key] = (time, op.write)
            if op.write:
                self._latest_write[op.key] = max(time, self._latest_write.get(op.key, 0))
        self.makespan = max(self.makespan, start + txn.length - 1)
        return start


def makespan(txns: Sequence[Txn], order: Iterable[int]) -> int:
    """The makespan of placing `txns[i]` for each i of `order` in turn (any prefix too)."""
    timeline = Timeline()
    for index in order:
        timeline.append(txns[index])
    return timeline.makespan


def lower_bound(txns: Sequence[Txn]) -> int:
    """No order finishes before the longest transaction does."""
    return max((txn.length for txn in txns), default=0)

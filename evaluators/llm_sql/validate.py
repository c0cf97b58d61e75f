"""Checking a candidate's reordered table against the input table.

Valid output: as many rows as the input, each row a list of strings that renders a distinct
input row: its cells outside the merge groups, and per merge group one cell holding the
group members' values concatenated in any order, all in any order. So no value is altered,
added or dropped, no row is dropped or duplicated, and merged values stay together.

The member order inside a merged cell is free, like the order of the cells in a row: the
upstream GGR fuses `beer/name` before `beer/beerId` (column-score order) although the merge
group lists `beer/beerId` first, and the published GGR figure depends on it (PROBLEMS.md 4.2).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence

from adrs.evaluators.llm_sql.table import Table

_SHOWN_CHARS = 60

Members = tuple[str, ...]
# A row as the input holds it: its single cells sorted, then each merge group's members.
Key = tuple[tuple[str, ...], tuple[Members, ...]]


class InvalidOutput(Exception):
    """The output breaks the contract; the message says where, for the LLM to read."""


class Expected:
    """The input rows, indexed for matching output rows (built once per table).

    `fusions[g]` maps every string a merged cell of group g may hold (the members'
    values concatenated in some order) to the member tuples that give it.
    """

    def __init__(self, table: Table) -> None:
        position = {name: i for i, name in enumerate(table.columns)}
        groups = [[position[c] for c in group] for group in table.merge_groups]
        fused = {i for group in groups for i in group}
        single = [i for i in range(len(table.columns)) if i not in fused]
        self.width = len(single) + len(groups)
        self.rows = len(table.rows)
        self.keys: Counter[Key] = Counter(
            (tuple(sorted(row[i] for i in single)),
             tuple(tuple(row[i] for i in group) for group in groups))
            for row in table.rows)
        self.fusions: list[dict[str, list[Members]]] = [{} for _ in groups]
        for g, fusion in enumerate(self.fusions):
            for members in {members[g] for _, members in self.keys}:
                for text in {"".join(order) for order in itertools.permutations(members)}:
                    fusion.setdefault(text, []).append(members)

    def readings(self, cells: Sequence[str]) -> list[Key]:
        """The input rows `cells` renders: every way to pick which cell holds which group's
        members (identical cells are interchangeable, so each value is tried once)."""
        distinct = dict.fromkeys(cells)
        options = [[(text, members) for text in distinct if text in fusion
                    for members in fusion[text]] for fusion in self.fusions]
        found: dict[Key, None] = {}
        for choice in itertools.product(*options):
            left = list(cells)
            try:
                for text, _ in choice:
                    left.remove(text)
            except ValueError:  # two groups read from one cell
                continue
            left.sort()
            key = (tuple(left), tuple(members for _, members in choice))
            if key in self.keys:
                found[key] = None
        return list(found)


class _Matching:
    """Output rows matched to input rows, no input row used more often than it occurs.

    A row that renders several input rows (possible only when merged cells of different
    rows read alike) may take one that an earlier row holds, moving that row on along an
    augmenting path (Kuhn's algorithm), so a valid output is never refused."""

    def __init__(self, capacity: Counter[Key]) -> None:
        self.left = capacity.copy()
        self.holds: dict[int, Key] = {}
        self.users: dict[Key, list[int]] = {}
        self.readings: dict[int, list[Key]] = {}

    def add(self, row: int, readings: list[Key]) -> bool:
        self.readings[row] = readings
        via: dict[Key, int] = {}
        stack = [row]
        while stack:
            current = stack.pop()
            for key in self.readings[current]:
                if key in via:
                    continue
                via[key] = current
                if self.left[key] > 0:
                    self._shift(key, via)
                    return True
                stack.extend(r for r in self.users.get(key, ()) if r != current)
        return False

    def _shift(self, key: Key, via: dict[Key, int]) -> None:
        """Give `key` to the row that reached it, that row's key to the row before, ..."""
        self.left[key] -= 1
        while True:
            row = via[key]
            previous = self.holds.get(row)
            self.holds[row] = key
            self.users.setdefault(key, []).append(row)
            if previous is None:
                return
            self.users[previous].remove(row)
            key = previous


def _show(cells: Sequence[str]) -> str:
    text = repr(list(cells))
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "...]"


def check_output(expected: Expected, output: object) -> list[list[str]]:
    """Return `output` as a list of rows of strings, or raise InvalidOutput."""
    if not isinstance(output, list | tuple):
        raise InvalidOutput(f"returned {type(output).__name__}; expected a list of rows, "
                            "each a list of strings")
    if len(output) != expected.rows:
        raise InvalidOutput(f"returned {len(output)} rows; expected {expected.rows}: every "
                            "input row exactly once (rows must not be dropped or duplicated)")
    matching = _Matching(expected.keys)
    result: list[list[str]] = []
    for i, row in enumerate(output):
        cells = _cells(i, row, expected.width)
        readings = expected.readings(cells)
        if not readings:
            raise InvalidOutput(f"output row {i} {_show(cells)} is not a permutation of the "
                                "cells of any input row (a cell was altered, added, dropped "
                                "or moved between rows, or a merged cell is not its group's "
                                "values concatenated)")
        if not matching.add(i, readings):
            raise InvalidOutput(f"output row {i} {_show(cells)} repeats an input row more "
                                "often than the input holds it (a duplicated row)")
        result.append(cells)
    return result


def _cells(i: int, row: object, width: int) -> list[str]:
    if not isinstance(row, list | tuple):
        raise InvalidOutput(f"output row {i} is a {type(row).__name__}; expected a list of "
                            "strings")
    if len(row) != width:
        raise InvalidOutput(f"output row {i} has {len(row)} cells; expected {width} (one per "
                            "column after merging, merge groups fused into one cell)")
    for cell in row:
        if not isinstance(cell, str):
            raise InvalidOutput(f"output row {i} holds a {type(cell).__name__} cell; every "
                                "cell must be one of the input strings")
    return list(row)

"""Checking a candidate's reordered table against the (merged) input table.

Valid output: as many rows as the input, each row a list of strings that is a permutation of
the cells of an input row, every input row used exactly once. So no cell is altered, added
or dropped, and no row is dropped or duplicated.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

_SHOWN_CHARS = 60


class InvalidOutput(Exception):
    """The output breaks the contract; the message says where, for the LLM to read."""


def _key(cells: Sequence[str]) -> tuple[str, ...]:
    return tuple(sorted(cells))


def _show(cells: Sequence[str]) -> str:
    text = repr(list(cells))
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "...]"


def check_output(rows: Sequence[Sequence[str]], output: object) -> list[list[str]]:
    """Return `output` as a list of rows of strings, or raise InvalidOutput."""
    if not isinstance(output, list | tuple):
        raise InvalidOutput(f"returned {type(output).__name__}; expected a list of rows, "
                            "each a list of strings")
    if len(output) != len(rows):
        raise InvalidOutput(f"returned {len(output)} rows; expected {len(rows)}: every input "
                            "row exactly once (rows must not be dropped or duplicated)")
    width = len(rows[0]) if rows else 0
    unused = Counter(_key(row) for row in rows)
    result: list[list[str]] = []
    for i, row in enumerate(output):
        cells = _cells(i, row, width)
        key = _key(cells)
        left = unused.get(key, 0)
        if left == 0:
            if key in unused:
                raise InvalidOutput(f"output row {i} {_show(cells)} repeats an input row "
                                    "more often than the input holds it (a duplicated row)")
            raise InvalidOutput(f"output row {i} {_show(cells)} is not a permutation of the "
                                "cells of any input row (a cell was altered, added, dropped "
                                "or moved between rows)")
        unused[key] = left - 1
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

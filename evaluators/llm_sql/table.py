"""Tables of string cells, column merging, and loading a table from a CSV file."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from adrs.errors import UserError

Row = tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A named table of string cells and the column groups its prompts fuse into one cell.

    Every row has one cell per column; a missing value is the empty string. Each merge
    group names at least two distinct columns, and no column is in two groups.
    """

    name: str
    columns: tuple[str, ...]
    rows: tuple[Row, ...]
    merge_groups: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        width = len(self.columns)
        if len(set(self.columns)) != width:
            raise ValueError(f"table {self.name!r}: duplicate column names")
        for i, row in enumerate(self.rows):
            if len(row) != width:
                raise ValueError(f"table {self.name!r}: row {i} has {len(row)} cells, "
                                 f"expected {width}")
        grouped = [c for group in self.merge_groups for c in group]
        unknown = sorted(set(grouped) - set(self.columns))
        if unknown:
            raise ValueError(f"table {self.name!r}: merge groups name unknown columns "
                             f"{unknown}")
        if len(set(grouped)) != len(grouped) or any(len(g) < 2 for g in self.merge_groups):
            raise ValueError(f"table {self.name!r}: merge groups must hold 2 or more columns "
                             "each, and no column twice")


def merged(table: Table) -> tuple[tuple[str, ...], list[Row]]:
    """The table as its prompts see it: the columns outside every merge group in their
    order, then one cell per merge group holding its members' values concatenated in the
    group's order. This layout is also the "original order" baseline."""
    position = {name: i for i, name in enumerate(table.columns)}
    groups = [[position[c] for c in group] for group in table.merge_groups]
    fused = {i for group in groups for i in group}
    single = [i for i in range(len(table.columns)) if i not in fused]
    names = tuple([table.columns[i] for i in single] +
                  ["+".join(group) for group in table.merge_groups])
    rows = [tuple([row[i] for i in single] + ["".join(row[i] for i in g) for g in groups])
            for row in table.rows]
    return names, rows


def load_csv(path: Path, name: str, merge_groups: Sequence[Sequence[str]]) -> Table:
    """Read a CSV file with a header row into a Table; cells are kept verbatim as text.

    Raises UserError (one line) when the file cannot be read, is empty, has a row of the
    wrong width, or lacks a column a merge group needs.
    """
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            records = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"cannot read table '{path}': {exc}") from None
    if not records:
        raise UserError(f"table '{path}' is empty: it needs a header row")
    header, body = tuple(records[0]), records[1:]
    for line, record in enumerate(body, start=2):
        if len(record) != len(header):
            raise UserError(f"table '{path}' line {line} has {len(record)} fields, the header "
                            f"{len(header)}: fix the file")
    missing = sorted({c for g in merge_groups for c in g} - set(header))
    if missing:
        raise UserError(f"table '{path}' lacks the columns {missing} that the {name!r} "
                        "merge groups need: use the dataset's original CSV")
    try:
        return Table(name, header, tuple(tuple(r) for r in body),
                     tuple(tuple(g) for g in merge_groups))
    except ValueError as exc:
        raise UserError(f"table '{path}': {exc}") from None

"""Metrics in a prompt, compactly: one table for the current program, one line for others.

Evaluators report scalar metrics (`avg_cost`) and per-scenario metrics, written
`family[scenario]` (`cost[us-west-2a_k80_1 T=52h d=0.2h]`). A `name=value` list of a few
hundred such entries per program was most of a prompt (issue 16). Here:

* `table` renders the current program's metrics: the scalars on one line, each followed
  by the best shown program's value where it differs, then one row per scenario and one
  column per family, with the best program's value of the first family beside it;
* `versus` sums up another program (an inspiration, an attempt) against the current one
  in one line: the scalars that differ most with their change, per family on how many
  scenarios it is lower and higher, and the largest changes of the first family.

Numbers keep four significant digits here; exact values are in the run's store.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from adrs.engine.archive import is_measured_time
from adrs.types import MetricValue

_SCENARIO = re.compile(r"^(?P<family>[^\[\]]+)\[(?P<scenario>.+)\]$")
MAX_SCALARS = 6  # scalars named in a `versus` line (the largest relative changes)
MAX_EXAMPLES = 3  # scenarios named per `versus` line


@dataclass(frozen=True)
class Split:
    """Metrics split into scalars and a scenario x family grid (first-seen orders kept)."""

    scalars: dict[str, MetricValue]
    families: tuple[str, ...]
    scenarios: tuple[str, ...]
    grid: dict[tuple[str, str], MetricValue]  # (scenario, family) -> value


def split(metrics: Mapping[str, MetricValue]) -> Split:
    scalars: dict[str, MetricValue] = {}
    families: dict[str, None] = {}
    scenarios: dict[str, None] = {}
    grid: dict[tuple[str, str], MetricValue] = {}
    for key in sorted(metrics):
        match = _SCENARIO.match(key)
        if match is None:
            scalars[key] = metrics[key]
            continue
        families.setdefault(match["family"])
        scenarios.setdefault(match["scenario"])
        grid[(match["scenario"], match["family"])] = metrics[key]
    return Split(scalars, tuple(families), tuple(scenarios), grid)


def number(value: MetricValue | None) -> str:
    """Four significant digits for floats (whole numbers from 1e4); as is otherwise; '-'
    for a missing value."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return _float(value, "")
    return str(value)


def signed(value: float) -> str:
    """A change: with its sign, at most four significant digits, no exponent above 1e4."""
    return _float(value, "+")


def _float(value: float, sign: str) -> str:
    if not math.isfinite(value):
        return str(value)
    if 1e4 <= abs(value) < 1e15:  # whole numbers read better than 4.633e+04
        return f"{value:{sign}.0f}"
    return f"{value:{sign}.4g}"


def table(metrics: Mapping[str, MetricValue], best: Mapping[str, MetricValue] | None,
          best_label: str) -> str:
    """The current program's metrics; `best` (another program's metrics) adds comparisons."""
    this, other = split(metrics), split(best or {})
    if not metrics:
        return ""
    parts = []
    if this.scalars:
        items = []
        for key, value in this.scalars.items():
            theirs = other.scalars.get(key) if best is not None else None
            extra = "" if theirs is None or theirs == value else f" (best {number(theirs)})"
            items.append(f"{key}={number(value)}{extra}")
        note = f" (best: {best_label})" if best is not None else ""
        parts.append(f"Metrics{note}: " + ", ".join(items))
    if this.families:
        parts.append(_grid(this, other if best is not None else None))
    return "\n".join(parts)


def _grid(this: Split, best: Split | None) -> str:
    """One row per scenario; scenarios named `GROUP rest` (a shared first word) are listed
    under a `GROUP:` line with their rows named by the rest."""
    first = this.families[0]
    compare = best is not None and bool(best.grid)
    header = ["scenario", *this.families]
    if compare:
        header.insert(2, f"best_{first}")
    groups = _groups(this.scenarios)
    rows: list[list[str] | str] = [header]
    for group, members in groups:
        if group:
            rows.append(f"{group}:")
        for scenario, label in members:
            row = [label, *(number(this.grid.get((scenario, f))) for f in this.families)]
            if compare and best is not None:
                row.insert(2, number(best.grid.get((scenario, first))))
            rows.append(row)
    cells = [row for row in rows if isinstance(row, list)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [row if isinstance(row, str) else " ".join(
        cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows]
    return f"Per scenario ({len(this.scenarios)}):\n" + "\n".join(lines)


def _groups(scenarios: tuple[str, ...]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Scenarios grouped by their first word when every name has several words and the
    first words repeat; else one unnamed group. Each member is (scenario, row label)."""
    words = [scenario.split(" ", 1) for scenario in scenarios]
    if not scenarios or any(len(w) < 2 for w in words) or len({w[0] for w in words}) == len(
            scenarios):
        return [("", [(scenario, scenario) for scenario in scenarios])]
    groups: dict[str, list[tuple[str, str]]] = {}
    for scenario, (head, rest) in zip(scenarios, words, strict=True):
        groups.setdefault(head, []).append((scenario, rest))
    return list(groups.items())


def versus(metrics: Mapping[str, MetricValue], current: Mapping[str, MetricValue]) -> str:
    """One line: how `metrics` differ from the current program's; empty when they do not."""
    this, base = split(metrics), split(current)
    parts = _scalar_changes(this.scalars, base.scalars)
    counts = [text for family in this.families
              if (text := _family_counts(family, this, base))]
    if counts:
        parts.append(f"scenarios lower/higher of {len(this.scenarios)}: " + ", ".join(counts))
    examples = _examples(this.families[0], this, base) if this.families else ""
    if examples:
        parts.append(f"largest {this.families[0]} changes: {examples}")
    return "vs the current program: " + "; ".join(parts) if parts else ""


def _scalar_changes(this: Mapping[str, MetricValue], base: Mapping[str, MetricValue]) -> list[
        str]:
    changed = []
    for key, value in this.items():
        old = base.get(key)
        if old == value:
            continue
        if _numeric(value) and _numeric(old):
            delta = float(value) - float(old)  # type: ignore[arg-type]
            scale = abs(float(old)) or 1.0  # type: ignore[arg-type]
            changed.append((abs(delta) / scale, f"{key} {number(value)} ({signed(delta)})"))
        else:
            changed.append((math.inf, f"{key} {number(value)} (was {number(old)})"))
    # Largest relative change first, measured times last (they differ on every run of the
    # same program: first, they would crowd out what the program changed, and shift the
    # line from one evaluation to the next). Stable: ties keep the sorted key order.
    changed.sort(key=lambda item: (is_measured_time(item[1].split(" ", 1)[0]), -item[0]))
    shown = [text for _, text in changed[:MAX_SCALARS]]
    if len(changed) > MAX_SCALARS:
        shown.append(f"{len(changed) - MAX_SCALARS} more scalars changed less")
    return shown


def _deltas(family: str, this: Split, base: Split) -> list[tuple[str, float]]:
    found = []
    for scenario in this.scenarios:
        value, old = this.grid.get((scenario, family)), base.grid.get((scenario, family))
        if _numeric(value) and _numeric(old) and value != old:
            found.append((scenario, float(value) - float(old)))  # type: ignore[arg-type]
    return found


def _family_counts(family: str, this: Split, base: Split) -> str:
    deltas = _deltas(family, this, base)
    if not deltas:
        return ""
    lower = sum(1 for _, delta in deltas if delta < 0)
    return f"{family} {lower}/{len(deltas) - lower}"


def _examples(family: str, this: Split, base: Split) -> str:
    deltas = sorted(_deltas(family, this, base), key=lambda item: -abs(item[1]))
    return ", ".join(f"{scenario} {signed(delta)}" for scenario, delta in deltas[:MAX_EXAMPLES])


def _numeric(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(
        float(value))

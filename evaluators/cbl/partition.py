"""Which scenarios may share a sandbox process.

Every policy of one process can reach every other (through the candidate's module-level
state, or by walking the interpreter's objects), so a process may only hold scenarios
that cannot inform one another. All scenarios run in lockstep: at tick k every policy has
seen its traces' ticks 0..k. Two traces on different clocks (traces.Origin) are unrelated
(independent synthetic draws, or recordings of different periods). Two traces on one
clock can inform each other unless:

- they start at the same instant with the same tick, and both scenarios are single-region:
  each policy then sees only its own trace, and a neighbour shows the same instant (the
  very same window, or another environment's window of that instant), never a later one
  nor one before the policy's own window began. (Another environment's present can say a
  little about one's own coming ticks where the two are correlated, as us-west-2a and 2b
  V100 are; that is accepted: keeping environments apart would take four times as many
  processes.)
- or they lie at least `margin_s` apart on the clock (MARGIN_S, 6 h: longer than the mean
  run of availability or unavailability of every environment; a neighbour whose window
  merely abuts would show what comes right after the policy's window, close to the end
  of its 92-hour runs).

A multi-region scenario observes a region of its choice; a neighbour sharing a region's
window would show that region's present without the policy having to move there, so
multi-region scenarios share a process only with scenarios whose windows lie apart.
Traces of unknown origin are kept apart from every other trace of unknown origin that is
not the very same trace.

`partition` returns the groups, as few as it can: one colour per group in a first-fit
colouring in order of window start, which for single-region scenarios (an interval graph
per clock) uses exactly as many groups as the most windows of different starts that
cover one instant, each window stretched by the margin.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from adrs.evaluators.cbl.simulator import Scenario
from adrs.evaluators.cbl.traces import Trace

MARGIN_S = 6 * 3600.0
UNKNOWN_CLOCK = "<unknown origin>"


@dataclass(frozen=True)
class Window:
    """A trace's place on its clock; `ident` equal: the same start and tick (or, for an
    unknown origin, the very same trace)."""

    clock: str
    start_s: float
    end_s: float
    ident: object


def window(trace: Trace) -> Window:
    origin = trace.origin
    if origin is None:
        return Window(UNKNOWN_CLOCK, -math.inf, math.inf, (trace.name, trace.unavailable))
    return Window(origin.clock, origin.start_s, origin.start_s + trace.ticks * trace.gap_s,
                  (origin.start_s, trace.gap_s))


def clash(a: Window, b: Window, single: bool, margin_s: float = MARGIN_S) -> bool:
    """Whether runs on windows `a` and `b` could inform each other in one process;
    `single`: both runs are single-region."""
    if a.clock != b.clock or (single and a.ident == b.ident):
        return False
    return a.start_s < b.end_s + margin_s and b.start_s < a.end_s + margin_s


def conflict(a: Scenario, b: Scenario, margin_s: float = MARGIN_S) -> bool:
    """Whether scenarios `a` and `b` must run in different processes."""
    single = len(a.traces) == 1 and len(b.traces) == 1
    return any(clash(window(s), window(t), single, margin_s)
               for s in a.traces for t in b.traces)


@dataclass
class _Unit:
    """Scenarios that go together: single-region ones with one window identity on one
    clock (their window: the longest), or one multi-region scenario."""

    members: list[int]
    windows: list[Window]
    single: bool


def _units(scenarios: Sequence[Scenario]) -> list[_Unit]:
    units: list[_Unit] = []
    by_key: dict[tuple[str, object], _Unit] = {}
    for i, scenario in enumerate(scenarios):
        spans = [window(t) for t in scenario.traces]
        if len(spans) > 1:
            units.append(_Unit([i], spans, False))
            continue
        key = (spans[0].clock, spans[0].ident)
        unit = by_key.get(key)
        if unit is None:
            unit = by_key[key] = _Unit([i], spans, True)
            units.append(unit)
        else:
            unit.members.append(i)
            if spans[0].end_s > unit.windows[0].end_s:
                unit.windows[0] = spans[0]
    return units


def partition(scenarios: Sequence[Scenario], margin_s: float = MARGIN_S) -> list[list[int]]:
    """Groups of scenario indices (each in increasing order) such that no two scenarios of
    a group conflict; every index in exactly one group."""
    placed: dict[str, list[tuple[Window, bool, int]]] = {}  # clock -> (window, single, group)
    groups: list[list[int]] = []
    units = _units(scenarios)
    for unit in sorted(units, key=lambda u: min(w.start_s for w in u.windows)):
        taken = {group for w in unit.windows for other, single, group in placed.get(w.clock, ())
                 if clash(w, other, unit.single and single, margin_s)}
        group = next(g for g in range(len(groups) + 1) if g not in taken)
        if group == len(groups):
            groups.append([])
        groups[group] += unit.members
        for w in unit.windows:
            placed.setdefault(w.clock, []).append((w, unit.single, group))
    return [sorted(g) for g in groups]

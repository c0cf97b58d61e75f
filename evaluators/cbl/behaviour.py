"""What a policy did, per run and per scenario, and how far its cost is from an oracle's.

Every figure comes from the trusted simulation (simulator.Outcome) and the traces, never
from the candidate. Per run: hours on spot, on demand and idle until the work was done,
restarts (launches that paid the restart overhead, the first included), preemptions (spot
instances lost to unavailability) and, with several regions, region switches.

`oracle_cost` is a lower bound on the cost of any run that finishes by its deadline, even
one that knows the whole trace: the instance must run at least ceil((D + d) / gap) ticks
(the work plus the first launch's overhead), spot can serve at most the ticks before the
deadline at which some region has spot, at the cheapest region's price, and on-demand the
rest. `room` = cost - oracle_cost: what is still to gain on a run (an upper estimate).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from adrs.evaluators.cbl.calibration import ON_DEMAND_PRICE
from adrs.evaluators.cbl.simulator import Outcome, Scenario

HOUR = 3600.0
# The behaviour figures, in the order metrics and feedback give them.
FIELDS = ("spot_h", "od_h", "idle_h", "restarts", "preemptions", "switches", "room")


def oracle_cost(scenario: Scenario) -> float:
    """The lower bound of the module docstring, in dollars."""
    gap, job = scenario.gap_s, scenario.job
    running = math.ceil((job.duration_s + job.overhead_s) / gap - 1e-9)
    window = math.ceil(job.deadline_s / gap - 1e-9)
    spot = np.zeros(window, dtype=bool)
    for trace in scenario.traces:
        bits = np.frombuffer(trace.unavailable[:window], np.uint8) == 0
        spot[:bits.size] |= bits
    on_spot = min(running, int(spot.sum()))
    price = min(t.spot_price for t in scenario.traces)
    return float((on_spot * price + (running - on_spot) * ON_DEMAND_PRICE) * gap / HOUR)


@dataclass(frozen=True)
class Behaviour:
    """One run's figures, or the mean of several runs' (FIELDS, in that order)."""

    spot_h: float
    od_h: float
    idle_h: float
    restarts: float
    preemptions: float
    switches: float
    room: float

    @classmethod
    def of(cls, scenario: Scenario, outcome: Outcome) -> Behaviour:
        hours = scenario.gap_s / HOUR
        return cls(outcome.spot_ticks * hours, outcome.on_demand_ticks * hours,
                   outcome.idle_ticks * hours, outcome.restarts, outcome.preemptions,
                   outcome.switches, outcome.cost - oracle_cost(scenario))

    @classmethod
    def mean(cls, runs: Iterable[Behaviour]) -> Behaviour:
        rows = np.array([[getattr(b, f) for f in FIELDS] for b in runs], dtype=float)
        return cls(*(float(v) for v in rows.mean(axis=0)))

    def metrics(self, label: str = "", regions: bool = False) -> dict[str, float]:
        """`field[label]` (or `field` without a label), rounded; `switches` only when the
        runs had several regions."""
        suffix = f"[{label}]" if label else ""
        return {f"{f}{suffix}": round(getattr(self, f), 2) for f in FIELDS
                if regions or f != "switches"}

    def text(self, regions: bool = False) -> str:
        """`spot 40.1 h, on-demand 9.2 h, idle 2.0 h, 3.1 restarts, 2.0 preemptions`."""
        parts = [f"spot {self.spot_h:.1f} h", f"on-demand {self.od_h:.1f} h",
                 f"idle {self.idle_h:.1f} h", f"{_count(self.restarts)} restarts",
                 f"{_count(self.preemptions)} preemptions"]
        if regions:
            parts.append(f"{_count(self.switches)} region switches")
        return ", ".join(parts)


def _count(value: float) -> str:
    """A count: whole numbers as such, means to one decimal."""
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def by_group(scenarios: Sequence[Scenario], outcomes: Sequence[Outcome],
             label: str = "group") -> dict[str, Behaviour]:
    """Mean behaviour per scenario group (`label` "group"), or per run (`label` "run",
    named `group/index`, the index counting the group's runs from 0), first-seen order."""
    runs: dict[str, list[Behaviour]] = {}
    seen: dict[str, int] = {}
    for scenario, outcome in zip(scenarios, outcomes, strict=True):
        name = scenario.group
        if label == "run":
            index = seen[scenario.group] = seen.get(scenario.group, -1) + 1
            name = f"{scenario.group}/{index}"
        runs.setdefault(name, []).append(Behaviour.of(scenario, outcome))
    return {name: Behaviour.mean(values) for name, values in runs.items()}


def overall(scenarios: Sequence[Scenario], outcomes: Sequence[Outcome]) -> Behaviour:
    """The mean behaviour over every run."""
    return Behaviour.mean(Behaviour.of(s, o) for s, o in zip(scenarios, outcomes, strict=True))


def most_room(behaviours: dict[str, Behaviour], count: int) -> list[tuple[str, Behaviour]]:
    """The `count` entries with the most room, most first."""
    return sorted(behaviours.items(), key=lambda kv: -kv[1].room)[:count]

"""Trusted scoring of a TXN candidate: it orders each workload; the makespan is ours.

The candidate's `get_best_schedule(workload, budget)` receives one workload as a list of
transaction strings and a time budget in seconds, and returns an order: a permutation of
the transaction indices. The program answers every workload twice, in two fresh processes
side by side (passes.py); each workload keeps the worse makespan of the two, so a program
whose answer depends on the clock or on unseeded randomness scores no better than what it
reproduces. Each call is stopped after CALL_LIMIT_S.

Score (0-100, the form of the ADRS leaderboard): with S the total makespan of the
sequential orders, B the total of the lower bounds (longest transactions) and M the
candidate's total, `100 * clip((S - M) / (S - E), 0, 1)` where E = B + 0.1 * (S - B). On
the paper's workloads S = 537, B = 46, E = 95.1.

Feedback ranks the workloads by room: the makespan minus the best known makespan, or minus
the key bound (bounds.py) where none is known or it has been beaten; a workload whose best
known makespan is matched has room 0. A call that ran over its budget is flagged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .passes import Answer, PassError, VoidError, two_passes
from .workloads import Workload

BUDGET_S = 2.0  # what the candidate is told it may spend per workload
CALL_LIMIT_S = 10.0  # when a call is stopped: the budget plus room for a loaded machine
OPTIMUM_SLACK = 0.1  # E sits this fraction of the way from the lower bound to S


@dataclass(frozen=True)
class Outcome:
    """One workload's result: the makespan scored (the worse of the runs), the call's time
    (the first run's), the other run's makespan and whether both returned one order."""

    workload: Workload
    makespan: int
    runtime_s: float
    other_makespan: int | None = None
    same_order: bool = True

    @classmethod
    def of(cls, workload: Workload, first: Answer, second: Answer | None) -> Outcome:
        if second is None:
            return cls(workload, first.makespan, first.runtime_s)
        return cls(workload, max(first.makespan, second.makespan), first.runtime_s,
                   min(first.makespan, second.makespan), first.order == second.order)

    @property
    def spread(self) -> int:
        return 0 if self.other_makespan is None else self.makespan - self.other_makespan

    @property
    def makespans(self) -> str:
        return f"{self.other_makespan} and {self.makespan}"

    @property
    def room(self) -> int:
        """The makespan minus the best known one (0 when it is matched), or minus the key
        bound where none is known or the best known has been beaten."""
        known = self.workload.best_known
        target = known if known is not None and known <= self.makespan else self.workload.bound
        return self.makespan - target


def score(outcomes: Sequence[Outcome]) -> float:
    """The 0-100 score of the module docstring."""
    sequential = sum(o.workload.sequential_makespan for o in outcomes)
    bound = sum(o.workload.lower_bound for o in outcomes)
    effective = bound + OPTIMUM_SLACK * (sequential - bound)
    gained = (sequential - sum(o.makespan for o in outcomes)) / (sequential - effective)
    return 100.0 * min(1.0, max(0.0, gained))


def evaluate_workloads(candidate: Any, workloads: Sequence[Workload],
                       budget_s: float = BUDGET_S,
                       limit_s: float = CALL_LIMIT_S) -> dict[str, Any]:
    """Score `candidate` (a sandbox handle; anything else with `call` is run once) on
    `workloads`, called in the order given."""
    try:
        first, second = two_passes(candidate, workloads, budget_s, limit_s)
    except (PassError, VoidError) as exc:
        return {"valid": False, "error": str(exc)}
    outcomes = [Outcome.of(w, a, None if second is None else second[i])
                for i, (w, a) in enumerate(zip(workloads, first, strict=True))]
    return {"score": score(outcomes), "metrics": metrics(outcomes),
            "feedback": feedback(outcomes)}


def metrics(outcomes: Sequence[Outcome]) -> dict[str, float | int | bool]:
    """Totals, then per workload `field[name]`: the makespan scored, the references, the
    room, the time the call took; whether the two runs agreed."""
    values: dict[str, float | int | bool] = {
        "makespan": sum(o.makespan for o in outcomes),
        "sequential_makespan": sum(o.workload.sequential_makespan for o in outcomes),
        "lower_bound": sum(o.workload.lower_bound for o in outcomes),
        "runtime_s": round(sum(o.runtime_s for o in outcomes), 4),
        "reproducible": all(o.same_order for o in outcomes),
        "makespan_spread": sum(o.spread for o in outcomes),
    }
    for o in outcomes:
        name = o.workload.name
        values[f"makespan[{name}]"] = o.makespan
        values[f"bound[{name}]"] = o.workload.bound
        if o.workload.best_known is not None:
            values[f"best_known[{name}]"] = o.workload.best_known
        values[f"room[{name}]"] = o.room
        values[f"runtime_s[{name}]"] = round(o.runtime_s, 4)
    return values


def feedback(outcomes: Sequence[Outcome]) -> str:
    """A line per workload, the ranking by room, and a warning if the runs disagreed."""
    lines = [_line(o) for o in outcomes]
    ranked = sorted(outcomes, key=lambda o: -o.room)
    lines.append("Room (makespan - best known, or - bound): " + ", ".join(
        f"{o.workload.name} {o.room}" for o in ranked) + f"; most to gain on "
        f"{ranked[0].workload.name}.")
    unstable = [o for o in outcomes if not o.same_order]
    if unstable:
        lines.append("Not reproducible: a second run in a fresh process returned other "
                     "orders (" + ", ".join(f"{o.workload.name}: {o.makespans}"
                                           for o in unstable)
                     + "); each workload scores the worse. Seed random choices and bound "
                     "searches by counts, not by the clock.")
    return "\n".join(lines)


def _line(o: Outcome, budget_s: float = BUDGET_S) -> str:
    w = o.workload
    known = f"best known {w.best_known}; " if w.best_known is not None else ""
    worse = ", worse" if o.makespan > w.sequential_makespan else ""
    over = f", over the {budget_s:g} s budget" if o.runtime_s > budget_s else ""
    return (f"{w.name}: makespan {o.makespan} (given order {w.sequential_makespan}{worse}; "
            f"{known}bound {w.bound}), {o.runtime_s:.2f} s{over}")

"""Trusted scoring of a TXN candidate: it orders each workload; the makespan is ours.

The candidate's `get_best_schedule(workload, budget)` receives one workload as a list of
transaction strings and a time budget in seconds, and returns an order: a permutation of
the transaction indices. Every order is checked and its makespan computed here, with the
trusted copy of the model (model.py); nothing the candidate reports is used. Each call is
timed from this side and stopped after CALL_LIMIT_S.

Score (0-100, the form of the ADRS leaderboard): with S the total makespan of the
sequential orders, B the total of the lower bounds and M the candidate's total,
`100 * clip((S - M) / (S - E), 0, 1)` where E = B + 0.1 * (S - B). On the paper's
workloads S = 537, B = 46, E = 95.1.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from adrs.sandbox.candidate import CandidateFault

from .model import makespan
from .workloads import Workload

ENTRY = "get_best_schedule"
BUDGET_S = 2.0  # what the candidate is told it may spend per workload
CALL_LIMIT_S = 10.0  # when a call is stopped: the budget plus room for a loaded machine
OPTIMUM_SLACK = 0.1  # E sits this fraction of the way from the lower bound to S


class ScheduleError(ValueError):
    """The returned value is not a permutation of the workload's indices."""


@dataclass(frozen=True)
class Outcome:
    """One workload's result: the makespan of the returned order and the call's time."""

    workload: Workload
    makespan: int
    runtime_s: float

    @property
    def ratio(self) -> float:
        """Makespan relative to the sequential order's (below 1 is better than it)."""
        return self.makespan / self.workload.sequential_makespan


def check_schedule(schedule: object, size: int) -> list[int]:
    """`schedule` as a list of ints if it is a permutation of range(size), else
    ScheduleError with a message for the LLM. Accepts a list, a tuple or a 1-D integer
    numpy array (what the sandbox codec returns for one)."""
    tolist = getattr(schedule, "tolist", None)
    if callable(tolist) and getattr(getattr(schedule, "dtype", None), "kind", "") in "iu" \
            and getattr(schedule, "ndim", 0) == 1:
        schedule = tolist()
    if not isinstance(schedule, list | tuple):
        raise ScheduleError(f"returned {type(schedule).__name__}; expected a list of "
                            f"transaction indices, each of 0..{size - 1} exactly once")
    if len(schedule) != size:
        raise ScheduleError(f"returned {len(schedule)} indices for {size} transactions; "
                            f"expected each of 0..{size - 1} exactly once")
    seen: dict[int, int] = {}
    for position, index in enumerate(schedule):
        if isinstance(index, bool) or not isinstance(index, int):
            raise ScheduleError(f"entry {position} is {index!r} ({type(index).__name__}); "
                                "indices must be ints")
        if not 0 <= index < size:
            raise ScheduleError(f"entry {position} is {index}, outside 0..{size - 1}")
        if index in seen:
            raise ScheduleError(f"transaction {index} appears twice (entries {seen[index]} "
                                f"and {position}); each must appear exactly once")
        seen[index] = position
    return list(schedule)


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
    """Score `candidate` (a sandbox handle) on `workloads`, called in the order given."""
    outcomes = []
    for workload in workloads:
        started = time.monotonic()
        try:
            schedule = candidate.call(ENTRY, list(workload.texts), budget_s, timeout_s=limit_s)
        except CandidateFault as fault:
            return {"valid": False, "error": f"on workload {workload.name}: {fault}"}
        runtime = time.monotonic() - started
        try:
            order = check_schedule(schedule, len(workload))
        except ScheduleError as exc:
            return {"valid": False, "error": f"on workload {workload.name}, {ENTRY} {exc}"}
        outcomes.append(Outcome(workload, makespan(workload.txns, order), runtime))
    return {"score": score(outcomes), "metrics": metrics(outcomes),
            "feedback": feedback(outcomes)}


def metrics(outcomes: Sequence[Outcome]) -> dict[str, float | int]:
    """Total and per-workload makespans, the references, and the time the calls took."""
    values: dict[str, float | int] = {
        "makespan": sum(o.makespan for o in outcomes),
        "sequential_makespan": sum(o.workload.sequential_makespan for o in outcomes),
        "lower_bound": sum(o.workload.lower_bound for o in outcomes),
        "runtime_s": round(sum(o.runtime_s for o in outcomes), 4),
    }
    for o in outcomes:
        values[f"makespan_{o.workload.name}"] = o.makespan
        values[f"runtime_s_{o.workload.name}"] = round(o.runtime_s, 4)
    return values


def feedback(outcomes: Sequence[Outcome]) -> str:
    """Per-workload figures, and the workload that gained least on the sequential order."""
    lines = [f"{o.workload.name}: makespan {o.makespan} (sequential order "
             f"{o.workload.sequential_makespan}, lower bound {o.workload.lower_bound}), "
             f"{o.runtime_s:.2f} s" for o in outcomes]
    worst = max(outcomes, key=lambda o: o.ratio)
    note = " (worse than running it in the given order)" if worst.ratio > 1 else ""
    lines.append(f"Worst workload: {worst.workload.name}, at {worst.ratio:.0%} of its "
                 f"sequential order's makespan{note}.")
    return "\n".join(lines)

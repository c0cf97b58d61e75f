"""Trusted evaluator of the toy autoscaling problem: milliseconds per evaluation.

Every series advances one tick at a time in lockstep: at tick t the candidate's
`provision` is called once per series, in series order, with that series' loads before
tick t. With the problem's harness (problems/toy/harness.py, loaded in the sandbox) that
is one round trip per tick for all series, carrying only the loads of the tick before (the
harness keeps the histories); without it (a sandbox without the harness, or
an in-process stand-in with the same `call`), one call per series and tick, in the same
order. Either way the candidate sees the same calls, and never a load of tick t or later.
"""

from __future__ import annotations

import functools
import math
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CAPACITY_PRICE = 1.0
VIOLATION_PRICE = 8.0
SERIES = 3
TICKS = 100
_HARNESS_CALL = "harness.provision_next"


class _Invalid(Exception):
    """The candidate's answer is not a capacity: the message says why."""


def load_series(seed: int, ticks: int = TICKS) -> list[float]:
    """One seeded load series: a daily cycle, multiplicative noise and occasional bursts."""
    rng = random.Random(seed)
    base = rng.uniform(40.0, 80.0)
    loads = []
    for t in range(ticks):
        cycle = 1.0 + 0.5 * math.sin(2.0 * math.pi * t / 48.0 + rng.uniform(-0.1, 0.1))
        burst = rng.uniform(1.5, 2.5) if rng.random() < 0.05 else 1.0
        loads.append(round(base * cycle * burst * rng.lognormvariate(0.0, 0.15), 3))
    return loads


@functools.cache
def _all_series() -> tuple[tuple[float, ...], ...]:
    """The evaluation's series, made once per process (the same for every candidate)."""
    return tuple(tuple(load_series(1000 + s)) for s in range(SERIES))


def tick_cost(capacity: float, load: float) -> float:
    return CAPACITY_PRICE * capacity + VIOLATION_PRICE * max(0.0, load - capacity)


def harness_path() -> Path:
    """problems/toy/harness.py, next to evaluators/ in the repository and the package alike.
    (A function: this source also runs where there is no __file__, e.g. exec'd.)"""
    return Path(__file__).resolve().parent.parent / "problems" / "toy" / "harness.py"


def _has_harness(candidate: Any) -> bool:
    """Whether the sandbox loaded this harness: the file, or a copy of it (a copied problem
    folder, a Ray node's copy of it)."""
    harness = getattr(candidate, "harness", None)
    if not isinstance(harness, str):
        return False
    ours = harness_path()
    if os.path.realpath(harness) == str(ours):
        return True
    try:
        return Path(harness).read_bytes() == ours.read_bytes()
    except OSError:
        return False


def _capacities(candidate: Any, series: Sequence[Sequence[float]], t: int,
                lockstep: bool) -> list[object]:
    """The candidate's capacities for tick `t`, one per series."""
    if not lockstep:
        return [candidate.call("provision", list(loads[:t])) for loads in series]
    from adrs.sandbox.candidate import CandidateFault

    previous = [loads[t - 1] if t else None for loads in series]
    try:
        reply = candidate.call(_HARNESS_CALL, previous)
    except CandidateFault as fault:  # name the candidate's function, not the harness's
        raise CandidateFault(str(fault).replace(f"{_HARNESS_CALL}()", "provision()")) from None
    if not isinstance(reply, list) or len(reply) != len(series):
        raise _Invalid("the harness replied with something other than one capacity per "
                       "series: do not replace harness.provision_next")
    return reply


def _check(capacity: object) -> float:
    if isinstance(capacity, bool) or not isinstance(capacity, int | float):
        raise _Invalid(f"provision returned {type(capacity).__name__}, expected a number")
    if not math.isfinite(capacity) or capacity < 0:
        raise _Invalid(f"provision returned {capacity!r}; it must be a finite number >= 0")
    return float(capacity)


def evaluate(candidate: Any) -> dict[str, Any]:
    """Score `provision` online: it only ever sees the loads before the tick it provisions."""
    series = _all_series()
    lockstep = _has_harness(candidate)
    costs = [0.0] * SERIES
    violations = 0.0
    try:
        for t in range(TICKS):
            answers = _capacities(candidate, series, t, lockstep)
            for s, (loads, answer) in enumerate(zip(series, answers, strict=True)):
                capacity = _check(answer)
                costs[s] += tick_cost(capacity, loads[t])
                violations += loads[t] > capacity
    except _Invalid as exc:
        return {"valid": False, "error": str(exc)}
    oracle = 0.0
    for loads in series:  # series after series: the same float sums as before lockstep
        for load in loads:
            oracle += CAPACITY_PRICE * load
    total = sum(costs)
    ticks = SERIES * TICKS
    cost_s, worst = max((cost, s) for s, cost in enumerate(costs))
    return {
        "score": 100.0 * oracle / total,
        "metrics": {"cost": round(total, 3), "oracle_cost": round(oracle, 3),
                    "violation_rate": violations / ticks},
        "feedback": f"Most expensive series: #{worst} (cost {cost_s:.1f}); "
                    f"SLO violated on {violations / ticks:.0%} of ticks.",
    }

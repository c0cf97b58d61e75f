"""Trusted evaluator of the toy autoscaling problem: milliseconds per evaluation."""

from __future__ import annotations

import math
import random
from typing import Any

CAPACITY_PRICE = 1.0
VIOLATION_PRICE = 8.0
SERIES = 3
TICKS = 100


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


def tick_cost(capacity: float, load: float) -> float:
    return CAPACITY_PRICE * capacity + VIOLATION_PRICE * max(0.0, load - capacity)


def evaluate(candidate: Any) -> dict[str, Any]:
    """Score `provision` online: it only ever sees the loads before the tick it provisions."""
    total = oracle = violations = 0.0
    worst: list[tuple[float, int]] = []
    for s in range(SERIES):
        loads = load_series(1000 + s)
        series_cost = 0.0
        for t, load in enumerate(loads):
            capacity = candidate.call("provision", loads[:t])
            if isinstance(capacity, bool) or not isinstance(capacity, int | float):
                return {"valid": False, "error": f"provision returned {type(capacity).__name__}, "
                        "expected a number"}
            if not math.isfinite(capacity) or capacity < 0:
                return {"valid": False, "error": f"provision returned {capacity!r}; it must be a "
                        "finite number >= 0"}
            series_cost += tick_cost(float(capacity), load)
            violations += load > capacity
            oracle += CAPACITY_PRICE * load
        total += series_cost
        worst.append((series_cost, s))
    ticks = SERIES * TICKS
    cost_s, series = max(worst)
    return {
        "score": 100.0 * oracle / total,
        "metrics": {"cost": round(total, 3), "oracle_cost": round(oracle, 3),
                    "violation_rate": violations / ticks},
        "feedback": f"Most expensive series: #{series} (cost {cost_s:.1f}); "
                    f"SLO violated on {violations / ticks:.0%} of ticks.",
    }

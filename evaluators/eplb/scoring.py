"""The EPLB score (0-100, the ADRS leaderboard's formula).

score = 90 * mean GPU balancedness + 5 * min(0.002 / t, 2) - penalty, where t is the
algorithm's median time per call in seconds and penalty = min(20 t, 20) when t > 10 ms.
So 1 ms or less earns the full 10 speed points, 2 ms earns 5, 10 ms earns 1.
"""

from __future__ import annotations

BALANCE_POINTS = 90.0
SPEED_POINTS = 5.0
SPEED_REFERENCE_S = 0.002
SPEED_CAP = 2.0
SLOW_S = 0.010
PENALTY_PER_S = 20.0
PENALTY_CAP = 20.0


def speed_points(t: float) -> float:
    return SPEED_POINTS * min(SPEED_REFERENCE_S / t, SPEED_CAP)


def penalty(t: float) -> float:
    return min(PENALTY_PER_S * t, PENALTY_CAP) if t > SLOW_S else 0.0


def score(mean_gpu_balancedness: float, t: float) -> float:
    """The score of a placement algorithm; t > 0 in seconds."""
    return BALANCE_POINTS * mean_gpu_balancedness + speed_points(t) - penalty(t)

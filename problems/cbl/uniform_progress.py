"""Spot-instance scheduling under a deadline (Can't Be Late): Uniform Progress (NSDI'24).

Everything outside the EVOLVE-BLOCK is fixed scaffolding; see README.md for the contract.
"""

from __future__ import annotations

import enum
import math
from typing import Any


class ClusterType(enum.IntEnum):
    NONE = 0
    SPOT = 1
    ON_DEMAND = 2


class Strategy:
    """Base class of the policy. One fresh object per simulated run.

    Set by the simulator (seconds throughout), before reset() and before each _step():
    self.task_duration, self.deadline, self.restart_overhead (constant per run);
    self.progress (work done so far), self.task_done_time (work done in each tick so far),
    self.remaining_restart_overhead (overhead still to pay on the running instance);
    self.env.elapsed_seconds, .gap_seconds, .tick, .cluster_type (what runs now),
    .spot_history (has_spot at each past and the present tick), .on_demand_price,
    .spot_prices ($/h per region).
    """

    NAME = "strategy"
    env: Any
    task_duration: float
    deadline: float
    restart_overhead: float
    remaining_restart_overhead: float
    progress: float
    task_done_time: list[float]

    def reset(self) -> None:
        """Called once per run, after the attributes above are set; keep per-run state."""

    def _step(self, last_cluster_type: ClusterType, has_spot: bool) -> ClusterType:
        """Decide what runs during the coming tick."""
        raise NotImplementedError


# EVOLVE-BLOCK-START
class UniformProgress(Strategy):
    """Uniform Progress (Wu et al., NSDI'24): keep progress on the straight line from 0 to
    the task duration at the deadline; use spot whenever it is available, on-demand when
    behind the line, stay on on-demand while within two restart overheads of it."""

    NAME = "uniform_progress"

    def _step(self, last_cluster_type: ClusterType, has_spot: bool) -> ClusterType:
        env = self.env
        c0, t, d = self.task_duration, env.elapsed_seconds, self.restart_overhead
        remaining = c0 - self.progress
        behind = t * c0 / self.deadline - (c0 - remaining)
        hysteresis = (t + 2 * d) * c0 / self.deadline - (c0 - remaining)
        decision = ClusterType.SPOT if has_spot else ClusterType.NONE
        if behind > 0:
            decision = ClusterType.SPOT if has_spot else ClusterType.ON_DEMAND
        if env.cluster_type == ClusterType.ON_DEMAND and hysteresis >= 0:
            decision = ClusterType.ON_DEMAND
        gap = env.gap_seconds
        if math.ceil((remaining + d) / gap) >= math.floor((self.deadline - t) / gap):
            decision = ClusterType.ON_DEMAND
        if has_spot:
            decision = ClusterType.SPOT
        return decision
# EVOLVE-BLOCK-END

"""Spot-instance scheduling under a deadline (Can't Be Late): greedy with two safety lines.

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
class GreedySafety(Strategy):
    """Use spot whenever it is available, wait otherwise, and fall back to on-demand at
    the safety lines: one restart overhead (need1d) or two (need2d) from the deadline."""

    NAME = "greedy_safety"

    def _step(self, last_cluster_type: ClusterType, has_spot: bool) -> ClusterType:
        env = self.env
        work_left = self.task_duration - self.progress
        if work_left <= 1e-9:
            return ClusterType.NONE
        gap = env.gap_seconds
        left_ticks = math.floor((self.deadline - env.elapsed_seconds) / gap)
        need1d = math.ceil((work_left + self.restart_overhead) / gap)
        need2d = math.ceil((work_left + 2 * self.restart_overhead) / gap)
        if need1d >= left_ticks:
            return ClusterType.ON_DEMAND
        if need2d >= left_ticks:
            if env.cluster_type == ClusterType.SPOT and has_spot:
                return ClusterType.SPOT
            return ClusterType.ON_DEMAND
        return ClusterType.SPOT if has_spot else ClusterType.NONE
# EVOLVE-BLOCK-END

"""Can't Be Late, single region: greedy with two safety lines."""

from __future__ import annotations

import enum
import math


class ClusterType(enum.IntEnum):
    NONE = 0
    SPOT = 1
    ON_DEMAND = 2


class Strategy:
    """The policy's base: the simulator sets its attributes, then calls reset() once per run
    and _step() at every tick (the task statement has the contract)."""

    def reset(self) -> None:
        """Per-run set-up, before the first tick."""


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

"""Can't Be Late, multi-region: greedy with safety lines, round robin without spot."""

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
class GreedyRoundRobin(Strategy):
    """Greedy with the single-region safety lines; without spot, wait in the next region."""

    NAME = "greedy_round_robin"

    def _step(self, last_cluster_type: ClusterType, has_spot: bool) -> ClusterType:
        env = self.env
        work_left = self.task_duration - self.progress
        if work_left <= 1e-9:
            return ClusterType.NONE
        gap = env.gap_seconds
        left = math.floor((self.deadline - env.elapsed_seconds) / gap) * gap
        need1d = math.ceil((work_left + self.restart_overhead) / gap) * gap
        need2d = math.ceil((work_left + 2 * self.restart_overhead) / gap) * gap
        on_spot = env.cluster_type == ClusterType.SPOT
        if need1d >= left:
            if on_spot and has_spot and self.remaining_restart_overhead < 1e-3:
                return ClusterType.SPOT
            return ClusterType.ON_DEMAND
        if need2d >= left:
            return ClusterType.SPOT if on_spot and has_spot else ClusterType.ON_DEMAND
        if has_spot:
            return ClusterType.SPOT
        env.switch_region((env.get_current_region() + 1) % env.get_num_regions())
        return ClusterType.NONE
# EVOLVE-BLOCK-END

"""Can't Be Late, multi-region: the ADRS starting policy (progress line, round robin)."""

from __future__ import annotations

import enum


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
# The ADRS starting policy, with its two constants named: the straight progress line runs
# from 0 at the start to SCHEDULE_SLOPE x the task at the deadline (1.0: the linear schedule;
# below 1 the policy waits longer for spot and leaves more to the safety rule), and a region
# without spot sends the job REGION_STEP regions further round the list.
SCHEDULE_SLOPE = 1.0
REGION_STEP = 1


class RoundRobinProgress(Strategy):
    """Stay on the straight progress line: when behind it, run spot if available, else
    on-demand; when ahead, run spot if available, else move to another region and wait."""

    NAME = "round_robin_progress"

    def reset(self) -> None:
        self.last_seen: dict[int, bool] = {}  # region -> spot availability when last there

    def _step(self, last_cluster_type: ClusterType, has_spot: bool) -> ClusterType:
        env = self.env
        region = env.get_current_region()
        self.last_seen[region] = has_spot
        if self.progress >= self.task_duration:
            return ClusterType.NONE
        line = env.elapsed_seconds * self.task_duration / self.deadline
        behind = self.progress < SCHEDULE_SLOPE * line
        if has_spot:
            return ClusterType.SPOT
        if behind:
            return ClusterType.ON_DEMAND
        env.switch_region((region + REGION_STEP) % env.get_num_regions())
        return ClusterType.NONE
# EVOLVE-BLOCK-END

"""Multi-region spot scheduling under a deadline (Can't Be Late): the starting policy.

Everything outside the EVOLVE-BLOCK is fixed scaffolding; see README.md for the contract.
"""

from __future__ import annotations

import enum
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
    .spot_history (has_spot at each past and the present tick), .region_history (the
    region of each of those observations), .on_demand_price, .spot_prices ($/h per region).
    Regions: self.env.get_num_regions(), .get_current_region(), .spot_available() (the
    current region, now) and .switch_region(i): from the next tick on, the job is in
    region i; an instance running now is left at the end of this tick, so the next launch
    there pays the restart overhead.
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

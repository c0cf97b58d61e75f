"""Can't Be Late, single region: Uniform Progress (Wu et al., NSDI'24)."""

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

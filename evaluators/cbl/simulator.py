"""Tick-level accounting of the Can't Be Late simulator, vectorised over many scenarios.

Every scenario of an evaluation advances one tick at a time in lockstep, so that one
message per tick can carry every scenario's observation to the sandboxed policies. The
accounting reproduces the NSDI'24 reference simulator (PROBLEMS.md 2.3): at tick k,
observe availability, bill the type that ran during tick k-1, preempt a spot instance that
lost availability, credit the progress of tick k-1 (the gap minus the pending restart
overhead, never below 0, capped at the work left), ask the policy, apply the safety rule,
turn a spot request without availability into a wait, and reset the pending overhead to d
when a different non-idle type starts. A run ends when its work is done; its cost is
everything billed through that tick. Unlike the reference, a run that finishes after its
deadline is flagged (`Outcome.late`).

Multi-region scenarios have one trace per region; a policy's region switch takes effect
at the next observation. Two accountings: the default bills every tick at the spot price
of the region where the instance ran and treats a region change as leaving the instance
(the next launch pays the restart overhead); `reference_accounting` reproduces the
reference multi-region simulator (the instance moves for free, all spot ticks are
billed at the price of the region current at the end, and the safety rule keeps spot
for one more tick whenever spot ran during the last tick, even if it was just preempted),
under which published figures reproduce.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from adrs.evaluators.cbl.calibration import ON_DEMAND_PRICE
from adrs.evaluators.cbl.traces import Trace

NONE, SPOT, ON_DEMAND = 0, 1, 2
TYPE_NAMES = ("NONE", "SPOT", "ON_DEMAND")
_EPS_OVERHEAD = 1e-3  # the reference snaps a pending overhead below this to 0
_EPS_DONE = 1e-8  # work within this of the task duration counts as done
_EPS_WORK = 1e-3  # the safety rule ignores less work than this
_LATE_SLACK_S = 1e-6

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


class PolicyError(Exception):
    """The policy's decisions cannot be applied; the message is meant for the LLM."""


@dataclass(frozen=True)
class Job:
    """A job in seconds: work to do, deadline from the start, restart overhead."""

    duration_s: float
    deadline_s: float
    overhead_s: float

    def __post_init__(self) -> None:
        if self.duration_s + self.overhead_s > self.deadline_s:
            raise ValueError(f"infeasible job: duration + overhead ({self.duration_s} + "
                             f"{self.overhead_s} s) exceeds the deadline ({self.deadline_s} s)")


@dataclass(frozen=True)
class Scenario:
    """One simulation: a job on one trace per region (region 0 is where it starts)."""

    group: str
    job: Job
    traces: tuple[Trace, ...]

    def __post_init__(self) -> None:
        if not self.traces:
            raise ValueError("a scenario needs at least one trace")
        if len({t.gap_s for t in self.traces}) != 1:
            raise ValueError(f"scenario {self.group}: traces with different gaps")

    @property
    def gap_s(self) -> float:
        return float(self.traces[0].gap_s)


@dataclass(frozen=True)
class Outcome:
    """The result of one simulation. `finish_s` is NaN when the work never completed.
    `ticks`: the ticks billed (spot, on-demand or idle); `restarts`: instance launches that
    paid the restart overhead, the first included; `preemptions`: spot instances lost to
    unavailability; `switches`: region changes the policy made."""

    cost: float
    finish_s: float
    ticks: int
    spot_ticks: int
    on_demand_ticks: int
    restarts: int = 0
    preemptions: int = 0
    switches: int = 0

    @property
    def idle_ticks(self) -> int:
        return self.ticks - self.spot_ticks - self.on_demand_ticks

    @property
    def finished(self) -> bool:
        return not math.isnan(self.finish_s)


@dataclass(frozen=True)
class Observation:
    """What tick k shows: `ids` are the scenarios whose policy is asked (those running at
    the top of the tick, including any that completed in it, whose decision is unused
    except for a region switch under reference accounting). `message` goes to the sandbox."""

    tick: int
    ids: IntArray
    has_spot: BoolArray
    last: NDArray[np.int8]
    message: dict[str, Any]


class Simulation:
    """The state of every scenario of one evaluation; drive it with observe() / decide()."""

    def __init__(self, scenarios: Sequence[Scenario], reference_accounting: bool = False):
        self.scenarios = tuple(scenarios)
        self.reference = reference_accounting
        n = len(self.scenarios)
        regions = max(len(s.traces) for s in self.scenarios)
        length = max(t.ticks for s in self.scenarios for t in s.traces)
        self.gap = np.array([s.gap_s for s in self.scenarios])
        self.duration = np.array([s.job.duration_s for s in self.scenarios])
        self.deadline = np.array([s.job.deadline_s for s in self.scenarios])
        self.overhead = np.array([s.job.overhead_s for s in self.scenarios])
        self.num_regions = np.array([len(s.traces) for s in self.scenarios])
        # Past the end of a trace spot counts as unavailable (the ADRS evaluator's choice).
        self.unavailable = np.ones((n, regions, length + 1), dtype=bool)
        self.spot_price = np.zeros((n, regions))
        for i, s in enumerate(self.scenarios):
            for r, t in enumerate(s.traces):
                self.unavailable[i, r, :t.ticks] = np.frombuffer(t.unavailable, np.uint8) != 0
                self.spot_price[i, r] = t.spot_price
        self.rows = np.arange(n)
        self.region = np.zeros(n, dtype=np.int64)
        self.ran_region = np.zeros(n, dtype=np.int64)
        self.cluster = np.zeros(n, dtype=np.int8)
        self.remaining = np.zeros(n)
        self.progress = np.zeros(n)
        self.cost = np.zeros(n)
        self.spot_ticks = np.zeros(n, dtype=np.int64)
        self.od_ticks = np.zeros(n, dtype=np.int64)
        self.restarts = np.zeros(n, dtype=np.int64)
        self.preemptions = np.zeros(n, dtype=np.int64)
        self.switches = np.zeros(n, dtype=np.int64)
        self.finish = np.full(n, np.nan)
        self.ticks = np.zeros(n, dtype=np.int64)
        self.active = np.ones(n, dtype=bool)
        # No run outlives its deadline by more than the overhead plus a few ticks (the
        # safety rule); past this a run is stopped as unfinished.
        self.max_ticks = int(np.max(np.ceil((self.deadline + self.overhead) / self.gap))) + 4

    def configs(self) -> list[dict[str, Any]]:
        """What each policy knows before the first tick (plain data for the sandbox)."""
        return [{"gap_s": s.gap_s, "task_duration_s": s.job.duration_s,
                 "deadline_s": s.job.deadline_s, "restart_overhead_s": s.job.overhead_s,
                 "num_regions": len(s.traces), "on_demand_price": ON_DEMAND_PRICE,
                 "spot_prices": [t.spot_price for t in s.traces]} for s in self.scenarios]

    @property
    def running(self) -> bool:
        return bool(self.active.any())

    # ------------------------------------------------------------------------------ observe
    def observe(self, k: int) -> Observation:
        """Start tick k: bill and credit tick k-1, preempt, and report what policies see."""
        ids = np.flatnonzero(self.active)
        if k >= self.max_ticks:
            self.active[ids] = False
            ids = ids[:0]
        region = self.region[ids]
        has = ~self.unavailable[ids, region, min(k, self.unavailable.shape[2] - 1)]
        last = self.cluster[ids].copy()
        self._bill(ids, last)
        cluster = last.copy()
        lost = (cluster == SPOT) & ~has
        if not self.reference:  # a spot instance left behind in another region is not lost
            lost &= region == self.ran_region[ids]
        self.preemptions[ids] += lost
        cluster[(cluster == SPOT) & ~has] = NONE
        if not self.reference:  # leaving a region ends the instance that ran there
            cluster[(region != self.ran_region[ids]) & (last != NONE)] = NONE
        self.cluster[ids] = cluster
        done = self._credit(ids, last, k)
        self.ticks[ids] = k
        message = {"tick": k, "ids": ids, "has_spot": has, "last": last, "cluster": cluster,
                   "done": done, "progress": self.progress[ids], "remaining_overhead":
                   self.remaining[ids], "region": region}
        return Observation(k, ids, has, last, message)

    def _bill(self, ids: IntArray, last: NDArray[np.int8]) -> None:
        hours = self.gap[ids] / 3600.0
        spot, od = last == SPOT, last == ON_DEMAND
        self.spot_ticks[ids] += spot
        self.od_ticks[ids] += od
        price = self.spot_price[ids, self.ran_region[ids]]
        self.cost[ids] += np.where(spot, price, np.where(od, ON_DEMAND_PRICE, 0.0)) * hours

    def _credit(self, ids: IntArray, last: NDArray[np.int8], k: int) -> FloatArray:
        """Progress of tick k-1; records the exact completion time of runs that finish."""
        gap, rem = self.gap[ids], self.remaining[ids]
        ran = last != NONE
        useful = np.maximum(gap - rem, 0.0)
        rem = np.where(ran, rem - (gap - useful), rem)
        rem[rem < _EPS_OVERHEAD] = 0.0
        done = np.where(ran, np.minimum(useful, self.duration[ids] - self.progress[ids]), 0.0)
        self.remaining[ids] = rem
        self.progress[ids] += done
        finished = ids[self.progress[ids] >= self.duration[ids] - _EPS_DONE]
        if finished.size:
            self.active[finished] = False
            sel = np.isin(ids, finished)
            self.finish[finished] = (k - 1) * gap[sel] + (gap[sel] - useful[sel]) + done[sel]
        return done

    # ------------------------------------------------------------------------------- decide
    def decide(self, obs: Observation, requests: NDArray[np.int64],
               regions: NDArray[np.int64]) -> None:
        """Apply the policies' requests for tick `obs.tick` (one per id, in order)."""
        ids = obs.ids
        self._check(ids, requests, regions)
        live = self.active[ids]
        if self.reference:  # the final region sets the price of every spot tick
            self.region[ids[~live]] = regions[~live]
        ids, req, has, last = ids[live], requests[live], obs.has_spot[live], obs.last[live]
        req, forced = self._safety(ids, req, obs.tick, last)
        target = regions[live]
        if not self.reference:  # leaving the region would abandon the forced instance
            target = np.where(forced, self.region[ids], target)
        req = np.where((req == SPOT) & ~has, NONE, req)
        current = np.where((last == SPOT) & ~has, NONE, last)
        if not self.reference:
            current = np.where(self.region[ids] != self.ran_region[ids], NONE, current)
        restart = (current != req) & (req != NONE)
        self.remaining[ids] = np.where(restart, self.overhead[ids], self.remaining[ids])
        self.restarts[ids] += restart
        self.switches[ids] += target != self.region[ids]
        self.cluster[ids] = req
        self.ran_region[ids] = self.region[ids]
        self.region[ids] = target

    def _safety(self, ids: IntArray, req: NDArray[np.int64], k: int,
                last: NDArray[np.int8]) -> tuple[NDArray[np.int64], BoolArray]:
        """The rule no policy can disable: on-demand once the deadline is one restart away,
        except that a spot instance with no pending overhead may run one more tick.
        Returns the requests as overridden and where the rule applied."""
        gap = self.gap[ids]
        left = self.duration[ids] - self.progress[ids]
        need = np.ceil((left + self.overhead[ids]) / gap) * gap
        slack = np.floor((self.deadline[ids] - k * gap) / gap) * gap
        force = (left > _EPS_WORK) & (need >= slack)
        # "Running" spot: not preempted at this tick. The reference reads it as "spot ran
        # during the last tick", which after a preemption keeps a spot request that then
        # becomes a wait: a tick lost, and possibly the deadline. Its published
        # multi-region figures depend on that (3_zones_same_region), so reference
        # accounting keeps the reference's reading.
        running = (last == SPOT) if self.reference else (self.cluster[ids] == SPOT)
        keep = force & running & (self.remaining[ids] < _EPS_OVERHEAD)
        return np.where(keep, SPOT, np.where(force, ON_DEMAND, req)), force

    def _check(self, ids: IntArray, requests: NDArray[np.int64],
               regions: NDArray[np.int64]) -> None:
        if requests.shape != ids.shape or regions.shape != ids.shape:
            raise PolicyError(f"expected {ids.size} decisions and regions, got "
                              f"{requests.size} and {regions.size}")
        bad = (requests < NONE) | (requests > ON_DEMAND)
        if bad.any():
            raise PolicyError(f"a decision at tick {self.ticks[ids[bad][0]]} is "
                              f"{int(requests[bad][0])}, not NONE, SPOT or ON_DEMAND")
        wrong = (regions < 0) | (regions >= self.num_regions[ids])
        if wrong.any():
            j = int(np.flatnonzero(wrong)[0])
            raise PolicyError(f"switch_region({int(regions[j])}) with "
                              f"{int(self.num_regions[ids[j]])} regions")

    # ------------------------------------------------------------------------------ results
    def outcomes(self) -> list[Outcome]:
        """Per-scenario results, in scenario order."""
        cost = self.cost
        if self.reference:
            final_price = self.spot_price[self.rows, self.region]
            cost = (self.od_ticks * ON_DEMAND_PRICE + self.spot_ticks * final_price) \
                * self.gap / 3600.0
        return [Outcome(float(cost[i]), float(self.finish[i]), int(self.ticks[i]),
                        int(self.spot_ticks[i]), int(self.od_ticks[i]), int(self.restarts[i]),
                        int(self.preemptions[i]), int(self.switches[i]))
                for i in range(len(self.scenarios))]

    def late(self) -> BoolArray:
        """Runs that finished after their deadline or never finished."""
        late: BoolArray = np.isnan(self.finish) | (self.finish > self.deadline + _LATE_SLACK_S)
        return late


def late_runs(scenarios: Sequence[Scenario], outcomes: Sequence[Outcome]) -> BoolArray:
    """Simulation.late() from the outcomes: runs that finished after their deadline or
    never finished."""
    finish = np.array([o.finish_s for o in outcomes], dtype=float)
    deadline = np.array([s.job.deadline_s for s in scenarios], dtype=float)
    late: BoolArray = np.isnan(finish) | (finish > deadline + _LATE_SLACK_S)
    return late

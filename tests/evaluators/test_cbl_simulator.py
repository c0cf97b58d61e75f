"""Accounting of the Can't Be Late simulator on hand-computed tiny traces.

Ticks are one hour and the spot price $1/h, so a spot tick costs $1 and an on-demand tick
$3.06. Costs, completion times and tick counts below were worked out by hand from the
rules in PROBLEMS.md 2.3.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from adrs.evaluators.cbl.simulator import (
    NONE,
    ON_DEMAND,
    SPOT,
    Job,
    Outcome,
    PolicyError,
    Scenario,
    Simulation,
)
from adrs.evaluators.cbl.traces import Trace

H = 3600.0
Policy = Callable[[int, dict[str, object]], int]


def run(bits: list[int], duration_h: float, deadline_h: float, overhead_h: float,
        policy: Policy, price: float = 1.0) -> tuple[Outcome, Simulation]:
    trace = Trace("tiny", H, bytes(bits), price)
    sim = Simulation([Scenario("g", Job(duration_h * H, deadline_h * H, overhead_h * H),
                               (trace,))])
    k = 0
    while sim.running:
        obs = sim.observe(k)
        if obs.ids.size:
            sim.decide(obs, np.array([policy(k, obs.message)]), np.array([0]))
        k += 1
    return sim.outcomes()[0], sim


def always(kind: int) -> Policy:
    def policy(k: int, message: dict[str, object]) -> int:
        return kind

    return policy


def test_spot_billing_and_restart_overhead() -> None:
    # k0 start spot (overhead 0.5 h); ticks 0-2 run spot: 0.5 + 1 + 0.5 h of work.
    out, sim = run([0] * 10, 2, 10, 0.5, always(SPOT))
    assert out.cost == pytest.approx(3.0)
    assert out.finish_s == pytest.approx(2 * H + 0.5 * H)
    assert (out.spot_ticks, out.on_demand_ticks, out.ticks) == (3, 0, 3)
    assert not sim.late().any()


def test_on_demand_price() -> None:
    out, _ = run([1] * 10, 1, 10, 0.5, always(ON_DEMAND))
    assert out.cost == pytest.approx(2 * 3.06)
    assert out.finish_s == pytest.approx(1.5 * H)


def test_preemption_then_wait_then_restart_pays_the_overhead_again() -> None:
    # Spot ticks 0-1 (0.5 + 1 h of work), preempted at tick 2 (a SPOT request without
    # availability waits), relaunched at tick 3 with a fresh 0.5 h overhead.
    out, _ = run([0, 0, 1, 0, 0, 0, 0, 0], 2, 10, 0.5, always(SPOT))
    assert out.cost == pytest.approx(3.0)
    assert (out.spot_ticks, out.on_demand_ticks) == (3, 0)
    assert out.finish_s == pytest.approx(3 * H + 0.5 * H + 0.5 * H)


def test_safety_rule_forces_on_demand_when_the_policy_waits() -> None:
    # Waiting at tick 0; at tick 1 ceil(2.5 h) = 3 h >= floor(3 h) left: on-demand forced.
    out, sim = run([0] * 10, 2, 4, 0.5, always(NONE))
    assert out.cost == pytest.approx(3 * 3.06)
    assert out.finish_s == pytest.approx(3 * H + 0.5 * H)
    assert not sim.late().any()


def test_safety_rule_keeps_a_running_spot_instance_one_more_tick() -> None:
    # D 2 h, d 0.6 h, T 4 h: from tick 1 on the rule applies, but the spot instance runs
    # with no pending overhead, so it is kept: three spot ticks, no on-demand.
    out, _ = run([0] * 10, 2, 4, 0.6, always(SPOT))
    assert (out.spot_ticks, out.on_demand_ticks) == (3, 0)
    assert out.cost == pytest.approx(3.0)
    assert out.finish_s == pytest.approx(2 * H + 0.6 * H)


def test_safety_rule_forces_on_demand_after_a_preemption_at_the_line() -> None:
    # As above, but spot is lost at tick 2: on-demand restarts at once (0.6 h overhead).
    out, sim = run([0, 0, 1, 1, 1, 1, 1, 1], 2, 4, 0.6, always(SPOT))
    assert (out.spot_ticks, out.on_demand_ticks) == (2, 2)
    assert out.cost == pytest.approx(2 + 2 * 3.06)
    assert out.finish_s == pytest.approx(3 * H + 0.2 * H)
    assert not sim.late().any()


def test_switching_type_resets_the_overhead_and_keeping_it_does_not() -> None:
    # Spot at tick 0, on-demand from tick 1: two overheads of 0.25 h.
    out, _ = run([0] * 10, 1, 10, 0.25, lambda k, m: SPOT if k == 0 else ON_DEMAND)
    # Tick 0 spot: 0.75 h of work; tick 1 on-demand: 0.25 h overhead, 0.25 h of work.
    assert (out.spot_ticks, out.on_demand_ticks) == (1, 1)
    assert out.cost == pytest.approx(1 + 3.06)
    assert out.finish_s == pytest.approx(H + 0.5 * H)


def test_the_policy_sees_progress_and_pending_overhead() -> None:
    seen: list[tuple[float, float, int]] = []

    def spy(k: int, message: dict[str, object]) -> int:
        progress = message["progress"]
        remaining = message["remaining_overhead"]
        cluster = message["cluster"]
        assert isinstance(progress, np.ndarray) and isinstance(remaining, np.ndarray)
        assert isinstance(cluster, np.ndarray)
        seen.append((float(progress[0]), float(remaining[0]), int(cluster[0])))
        return int(SPOT)

    run([0, 1, 0, 0, 0, 0], 1, 10, 0.5, spy)
    # tick 0: nothing yet; tick 1: 0.5 h done, preempted; tick 2: idle, nothing new.
    assert seen[:3] == [(0.0, 0.0, NONE), (0.5 * H, 0.0, NONE), (0.5 * H, 0.0, NONE)]


def test_a_late_finish_is_flagged() -> None:
    _, sim = run([0] * 10, 1, 2, 0.25, always(SPOT))
    assert not sim.late().any()
    sim.finish[0] = sim.deadline[0] + 1.0  # what the reference would let through
    assert sim.late().all()


def test_bad_decisions_are_policy_errors() -> None:
    with pytest.raises(PolicyError, match="not NONE, SPOT or ON_DEMAND"):
        run([0] * 4, 1, 3, 0.1, always(7))


def test_multi_region_switch_leaves_the_instance_and_bills_where_it_ran() -> None:
    dear = Trace("dear", H, bytes([0] * 8), 2.0)
    cheap = Trace("cheap", H, bytes([0] * 8), 1.0)
    scenario = Scenario("g", Job(1 * H, 10 * H, 0.5 * H), (dear, cheap))

    def simulate(reference: bool) -> Outcome:
        sim = Simulation([scenario], reference_accounting=reference)
        k = 0
        while sim.running:
            obs = sim.observe(k)
            if obs.ids.size:  # spot throughout; move to region 1 after tick 0
                sim.decide(obs, np.array([SPOT]), np.array([1]))
            k += 1
        return sim.outcomes()[0]

    # Faithful: tick 0 runs in region 0 ($2, 0.5 h overhead, 0.5 h of work); the move
    # leaves that instance, so tick 1 relaunches in region 1 ($1) and pays 0.5 h again.
    faithful = simulate(False)
    assert faithful.spot_ticks == 2
    assert faithful.cost == pytest.approx(2.0 + 1.0)
    assert faithful.finish_s == pytest.approx(2 * H)
    # Reference: the instance moves for free (no second overhead) and every spot tick is
    # billed at the price of the final region.
    reference = simulate(True)
    assert reference.cost == pytest.approx(2 * 1.0)
    assert reference.finish_s == pytest.approx(1.5 * H)

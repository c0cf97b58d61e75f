"""Behaviour figures of the CBL simulation (hours, restarts, preemptions, switches), the
oracle's lower bound, and the feedback built from them, on hand-computed tiny traces and
on the bundled scenario sets (synthetic traces)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from adrs.evaluators.cbl.behaviour import Behaviour, by_group, oracle_cost
from adrs.evaluators.cbl.evaluate import run_multi, run_single
from adrs.evaluators.cbl.lockstep import LocalPrograms
from adrs.evaluators.cbl.scenarios import multi_region, single_region
from adrs.evaluators.cbl.simulator import NONE, ON_DEMAND, SPOT, Job, Outcome, Scenario, Simulation
from adrs.evaluators.cbl.traces import Trace

H = 3600.0
REPO = Path(__file__).resolve().parents[2]
Decide = Callable[[int], tuple[int, int]]  # tick -> (request, region)


def scenario(bits: list[list[int]], duration_h: float, deadline_h: float,
             overhead_h: float, prices: tuple[float, ...] = (1.0, 1.0)) -> Scenario:
    traces = tuple(Trace(f"r{i}", H, bytes(b), prices[i]) for i, b in enumerate(bits))
    return Scenario("g", Job(duration_h * H, deadline_h * H, overhead_h * H), traces)


def run(s: Scenario, decide: Decide, reference: bool = False) -> Outcome:
    sim = Simulation([s], reference)
    k = 0
    while sim.running:
        obs = sim.observe(k)
        if obs.ids.size:
            request, region = decide(k)
            sim.decide(obs, np.array([request]), np.array([region]))
        k += 1
    return sim.outcomes()[0]


def test_a_preemption_a_wait_and_a_relaunch() -> None:
    # Spot at ticks 0-1, preempted at tick 2 (the request waits), relaunched at tick 3.
    s = scenario([[0, 0, 1, 0, 0, 0, 0, 0]], 2, 10, 0.5)
    out = run(s, lambda k: (SPOT, 0))
    assert (out.restarts, out.preemptions, out.switches) == (2, 1, 0)
    b = Behaviour.of(s, out)
    assert (b.spot_h, b.od_h, b.idle_h) == (3.0, 0.0, 1.0)
    # The oracle: 3 running ticks (2 h of work + 0.5 h overhead), all on spot at $1.
    assert oracle_cost(s) == pytest.approx(3.0) and b.room == pytest.approx(0.0)


def test_switching_types_counts_a_restart_each_time() -> None:
    s = scenario([[0] * 12], 4, 12, 0.5)
    kinds = [SPOT, ON_DEMAND, SPOT, ON_DEMAND, SPOT, SPOT, SPOT, SPOT, SPOT]
    out = run(s, lambda k: (kinds[k], 0))
    assert out.restarts == 5 and out.preemptions == 0
    assert Behaviour.of(s, out).room > 0  # two on-demand ticks an oracle would not buy


def test_the_oracle_pays_on_demand_for_what_spot_cannot_cover() -> None:
    # Spot at ticks 0-1 only; 3 h of work + 0.5 h overhead = 4 running ticks by T = 6 h.
    s = scenario([[0, 0, 1, 1, 1, 1, 1, 1]], 3, 6, 0.5)
    assert oracle_cost(s) == pytest.approx(2 * 1.0 + 2 * 3.06)
    assert run(s, lambda k: (ON_DEMAND, 0)).cost >= oracle_cost(s)


def test_leaving_a_region_is_a_switch_not_a_preemption() -> None:
    # Region 0 loses spot at tick 2; the policy left for region 1 at tick 1 already.
    s = scenario([[0, 0, 1, 1, 1, 1, 1, 1], [0] * 8], 3, 8, 0.5)
    out = run(s, lambda k: (SPOT, 1 if k >= 1 else 0))
    assert (out.switches, out.preemptions) == (1, 0)
    assert out.restarts == 2  # the instance in region 0 is left: a fresh launch in region 1
    stay = run(s, lambda k: (SPOT if k < 2 else NONE, 0))
    assert stay.preemptions == 1 and stay.switches == 0


def test_the_oracle_bounds_every_run_of_the_initial_programs() -> None:
    single = run_single(LocalPrograms(REPO / "problems" / "cbl" / "initial_program.py"), None)
    multi = run_multi(LocalPrograms(REPO / "problems" / "cbl-multi" / "initial_program.py"),
                      None, reference=False)
    for result in (single, multi):
        rooms = [v for k, v in result["metrics"].items() if k.startswith("room[")]
        assert rooms and min(rooms) >= 0.0


def test_metrics_are_per_scenario_and_per_run_and_the_feedback_is_short() -> None:
    single = run_single(LocalPrograms(REPO / "problems" / "cbl" / "initial_program.py"), None)
    m = single["metrics"]
    groups = {s.group for s in single_region()}
    for field in ("cost", "spot_h", "od_h", "idle_h", "restarts", "preemptions", "room"):
        assert {k[len(field) + 1:-1] for k in m if k.startswith(field + "[")} == groups
    hours = [m["spot_h"] + m["od_h"] + m["idle_h"]]
    assert 48 < hours[0] < 92  # 48 h of work plus overheads and waits, within the deadline
    feedback = single["feedback"]
    assert len(feedback) < 2000 and feedback.count("\n") == 2
    assert "Most room, by scenario: " in feedback and " restarts, " in feedback

    multi = run_multi(LocalPrograms(REPO / "problems" / "cbl-multi" / "initial_program.py"),
                      None, reference=True)
    runs = set(by_group(multi_region(), [Outcome(0, 0, 0, 0, 0)] * 34, "run"))
    assert len(runs) == 34 and "2_zones_same_region/7" in runs
    assert {k[9:-1] for k in multi["metrics"] if k.startswith("switches[")} == runs
    assert {k[5:-1] for k in multi["metrics"] if k.startswith("cost[")} >= runs
    assert len(multi["feedback"]) < 2000 and "region switches" in multi["feedback"]
    assert multi["feedback"].startswith("Accounting: reference (a switch moves")

"""Evaluator entry points of `cbl` and `cbl-multi`, and their scores.

`evaluate` (cbl): score = -(mean cost) - 0.25 x (population std of cost) over the 1,080
runs. `evaluate_multi` (cbl-multi): score = -(mean over scenarios of the mean cost).
Both report `lb_score`, the Leaderboard's 0-100 form, per-scenario mean costs and what the
policy did (behaviour.py: hours on spot, on demand and idle, restarts, preemptions, region
switches, and `room`, the cost above an oracle's lower bound): cbl per scenario, cbl-multi
per run (`group/index`), each as `field[name]`. The feedback says in three lines what the
money went on and which scenarios (runs) have the most room. A run that finishes after
its deadline makes the program invalid (costs still reported).
Scenarios whose traces could inform one another run in different sandboxes
(partition.py, lockstep.py): `processes` in the metrics says how many; the program's
output kept with the result is the first sandbox's.
Accounting of cbl-multi: the faithful one by default; the problem option `accounting:
reference` (`--option accounting=reference`, or the entry point `evaluate_multi_reference`)
reproduces the reference simulator, which never checks the deadline: there late runs are
counted (`late_runs`), not rejected. `trace_dir` (both problems) names the unpacked real
trace archive (scenarios.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from adrs.errors import UserError
from adrs.evaluators.cbl.behaviour import Behaviour, by_group, most_room, overall
from adrs.evaluators.cbl.lockstep import Processes, Sandboxes, simulate
from adrs.evaluators.cbl.partition import partition
from adrs.evaluators.cbl.scenarios import (
    multi_region,
    single_region,
    trace_dir,
)
from adrs.evaluators.cbl.simulator import Outcome, PolicyError, Scenario, late_runs

OD_ANCHOR = 146.88  # all on-demand: 3.06 $/h x 48 h
SPOT_ANCHOR = 46.7088  # all spot: 0.9731 $/h x 48 h
STD_WEIGHT = 0.25
ACCOUNTING_OPTION = "accounting"
ACCOUNTINGS = ("faithful", "reference")
WORST_SHOWN = 5
ACCOUNTING_LINES = {  # what a region switch costs, as the task statement describes it
    False: "Accounting: faithful (a switch leaves the running instance; the next launch "
           "pays the restart overhead; late runs are rejected).",
    True: "Accounting: reference (a switch moves the running instance for free; spot "
          "ticks are billed at the final region's price; late runs are only counted)."}


def lb_score(mean_cost: float) -> float:
    """The Leaderboard's 0-100 score: 0 = all on-demand, 100 = all spot."""
    return float(100.0 * np.clip((OD_ANCHOR - mean_cost) / (OD_ANCHOR - SPOT_ANCHOR), 0, 1))


def group_means(scenarios: Sequence[Scenario], outcomes: Sequence[Outcome]) -> dict[str, float]:
    """Mean cost per scenario group, in first-seen order."""
    costs: dict[str, list[float]] = {}
    for scenario, outcome in zip(scenarios, outcomes, strict=True):
        costs.setdefault(scenario.group, []).append(outcome.cost)
    return {group: float(np.mean(values)) for group, values in costs.items()}


def _late_error(scenarios: Sequence[Scenario], outcomes: Sequence[Outcome]) -> str | None:
    late = np.flatnonzero(late_runs(scenarios, outcomes))
    if not late.size:
        return None
    i = int(late[0])
    s, o = scenarios[i], outcomes[i]
    when = f"finished at {o.finish_s / 3600:.3f} h" if o.finished else "never finished"
    return (f"{late.size} of {len(scenarios)} runs missed the deadline; first: "
            f"{s.group}, trace {s.traces[0].name}: {when}, deadline "
            f"{s.job.deadline_s / 3600:g} h. Leave more slack before the deadline (the "
            "restart overhead and a preemption can cost a tick each).")


def _behaviour_line(b: Behaviour, regions: bool = False) -> str:
    return (f"Per run on average: {b.text(regions)}; ${b.room:.2f} above the cost of an "
            "oracle that knows the trace (room).")


def _room_line(what: str, costs: dict[str, float], behaviours: dict[str, Behaviour],
               regions: bool = False) -> str:
    ranked = most_room(behaviours, WORST_SHOWN)
    return (f"Most room, by {what}: " + "; ".join(
        f"{name}: ${costs[name]:.2f}, room ${b.room:.2f} ({b.text(regions)})"
        for name, b in ranked) + ".")


def score_single(scenarios: Sequence[Scenario], outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """The cbl result: combined score, metrics and feedback."""
    costs = np.array([o.cost for o in outcomes])
    mean, std = float(costs.mean()), float(costs.std())
    means = group_means(scenarios, outcomes)
    behaviours = by_group(scenarios, outcomes)
    everything = overall(scenarios, outcomes)
    metrics: dict[str, Any] = {
        "avg_cost": round(mean, 4), "cost_std": round(std, 4),
        "min_cost": round(float(costs.min()), 4), "max_cost": round(float(costs.max()), 4),
        "lb_score": round(lb_score(mean), 3), "runs": len(outcomes)}
    for deadline in sorted({s.job.deadline_s for s in scenarios}):
        sel = [o.cost for s, o in zip(scenarios, outcomes, strict=True)
               if s.job.deadline_s == deadline]
        metrics[f"avg_cost_T{deadline / 3600:g}h"] = round(float(np.mean(sel)), 4)
    metrics.update(everything.metrics())
    metrics.update({f"cost[{g}]": round(m, 4) for g, m in means.items()})
    for g, b in behaviours.items():
        metrics.update(b.metrics(g))
    per_deadline = ", ".join(f"T={k[10:-1]}: ${v:.2f}" for k, v in metrics.items()
                             if k.startswith("avg_cost_T"))
    feedback = "\n".join((
        f"Mean cost ${mean:.2f} (std {std:.2f}) over {len(outcomes)} runs; all on-demand "
        f"costs ${OD_ANCHOR:.2f}. By deadline: {per_deadline}.",
        _behaviour_line(everything), _room_line("scenario", means, behaviours)))
    return _result(-mean - STD_WEIGHT * std, metrics, feedback,
                   _late_error(scenarios, outcomes))


def score_multi(scenarios: Sequence[Scenario], outcomes: Sequence[Outcome],
                reference: bool) -> dict[str, Any]:
    """The cbl-multi result: minus the mean over scenarios of their mean cost."""
    means = group_means(scenarios, outcomes)
    avg = float(np.mean(list(means.values())))
    late = int(late_runs(scenarios, outcomes).sum())
    runs = by_group(scenarios, outcomes, "run")
    run_costs = dict(zip(runs, (o.cost for o in outcomes), strict=True))
    everything = overall(scenarios, outcomes)
    metrics: dict[str, Any] = {"avg_cost": round(avg, 4), "lb_score": round(lb_score(avg), 3),
                               "runs": len(outcomes), "late_runs": late,
                               "reference_accounting": reference}
    metrics.update(everything.metrics(regions=True))
    metrics.update({f"cost[{g}]": round(m, 4) for g, m in means.items()})
    for name, b in runs.items():
        metrics[f"cost[{name}]"] = round(run_costs[name], 4)
        metrics.update(b.metrics(name, regions=True))
    feedback = "\n".join((
        ACCOUNTING_LINES[reference],
        f"Mean over scenarios ${avg:.2f}; per scenario: "
        + "; ".join(f"{g} (${m:.2f})" for g, m in means.items()) + ".",
        _behaviour_line(everything, regions=True),
        _room_line("run (scenario/trace)", run_costs, runs, regions=True)))
    if reference:  # the reference never checks the deadline: report, do not reject
        return _result(-avg, metrics, feedback + f"\n{late} runs finished late.", None)
    return _result(-avg, metrics, feedback, _late_error(scenarios, outcomes))


def _result(score: float, metrics: dict[str, Any], feedback: str,
            error: str | None) -> dict[str, Any]:
    if error is not None:
        return {"valid": False, "error": error, "metrics": metrics, "feedback": feedback}
    return {"score": score, "metrics": metrics, "feedback": feedback}


def run(processes: Processes, scenarios: Sequence[Scenario], reference: bool,
        score: Callable[[list[Outcome]], dict[str, Any]],
        isolate: bool = True) -> dict[str, Any]:
    """Simulate every scenario, each group of scenarios that cannot inform one another in a
    process of its own (`isolate` False: all in one, for tests that show what sharing one
    would allow), and score the outcomes."""
    groups = partition(scenarios) if isolate else [list(range(len(scenarios)))]
    try:
        with processes.open(len(groups)) as ports:
            outcomes = simulate(ports, scenarios, groups, reference, processes.lanes)
    except PolicyError as exc:
        return {"valid": False, "error": str(exc)}
    result = score(outcomes)
    result["metrics"]["processes"] = len(groups)
    cleanup = getattr(processes, "cleanup_error", None)
    if cleanup is not None:  # as the runner treats its own sandbox
        return {"valid": False, "metrics": result["metrics"], "error": "a sandbox could not "
                f"be cleaned up after the program ran ({cleanup}); its result is void"}
    return result


def run_single(processes: Processes, root: str | None, isolate: bool = True) -> dict[str, Any]:
    scenarios = single_region(root)
    return run(processes, scenarios, False, lambda o: score_single(scenarios, o), isolate)


def run_multi(processes: Processes, root: str | None, reference: bool,
              isolate: bool = True) -> dict[str, Any]:
    scenarios = multi_region(root)
    return run(processes, scenarios, reference,
               lambda o: score_multi(scenarios, o, reference), isolate)


def reference_accounting(options: Mapping[str, Any] | None) -> bool:
    """Whether the problem option `accounting` asks for the reference simulator's accounting
    (default faithful); any other value is a UserError."""
    value = str((options or {}).get(ACCOUNTING_OPTION) or "faithful").strip().lower()
    if value not in ACCOUNTINGS:
        raise UserError(f"problem option {ACCOUNTING_OPTION}={value!r}: use "
                        f"--option {ACCOUNTING_OPTION}=faithful or ={ACCOUNTINGS[1]}")
    return value == "reference"


def evaluate(candidate: Any, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """cbl: the single-region scenario set (real traces if option `trace_dir` is set)."""
    return run_single(Sandboxes(candidate), trace_dir(options))


def evaluate_multi(candidate: Any, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """cbl-multi: the multi-region scenario set (real traces if option `trace_dir` is set),
    under the accounting option `accounting` names."""
    return run_multi(Sandboxes(candidate), trace_dir(options), reference_accounting(options))


def evaluate_multi_reference(candidate: Any,
                             options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """cbl-multi under the reference simulator's accounting."""
    return run_multi(Sandboxes(candidate), trace_dir(options), True)

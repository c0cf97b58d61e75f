"""The bundled eplb problem, scored through the real sandbox and the real CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from adrs.cli.main import main
from adrs.code.program import split
from adrs.evaluation.runner import EvalJob, run_job
from adrs.evaluators.eplb.balance import measure
from adrs.evaluators.eplb.placement import Instance, check
from adrs.evaluators.eplb.workload import synthetic_windows
from adrs.problem.spec import load_problem
from adrs.sandbox.candidate import Candidate, Limits
from adrs.types import EvalResult

HERE = Path(__file__).resolve().parent
VECTORIZED = HERE / "eplb_vectorized_program.py"


def _evaluate(source: str) -> EvalResult:
    problem = load_problem("eplb")
    return run_job(EvalJob(problem_root=str(problem.root), evaluator=problem.spec.evaluator,
                           source=source, limits=Limits(timeout_s=120),
                           harness=problem.spec.harness))


FAULTS = """
import resource


def faults_per_call(weight, calls):
    rebalance_experts(weight, 288, 8, 4, 32)  # the evaluator's warm-up
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        rebalance_experts(weight, 288, 8, 4, 32)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls
"""


@pytest.mark.parametrize(("harness", "at_least", "at_most"), [(True, 0, 50), (False, 200, None)])
def test_the_harness_spares_a_numpy_placement_its_page_faults(harness: bool, at_least: int,
                                                               at_most: int | None) -> None:
    # A fresh process gives freed arrays back to the system after every call; the problem's
    # harness keeps them, as a long-running server would, so timing measures the algorithm.
    problem = load_problem("eplb")
    assert problem.spec.harness is not None
    path = str(problem.root / problem.spec.harness) if harness else None
    weight = synthetic_windows(0)[0].copy()
    with Candidate(VECTORIZED.read_text() + FAULTS, Limits(timeout_s=60), path) as candidate:
        faults = candidate.call("faults_per_call", weight, 5)
        assert not harness or candidate.call("harness.heap_steady") is True
    assert isinstance(faults, float) and faults >= at_least
    assert at_most is None or faults <= at_most


def test_the_problem_loads_with_one_evolve_block() -> None:
    problem = load_problem("eplb")
    assert problem.spec.evaluator == "adrs.evaluators.eplb:evaluate"
    assert len(split(problem.initial_code).evolve) == 1
    assert "rebalance_experts" in problem.task and "score = 90" in problem.task


def test_adrs_eval_scores_the_initial_program_at_the_calibrated_balance(
        capsys: pytest.CaptureFixture[str]) -> None:
    problem = load_problem("eplb")
    assert main(["eval", "eplb", str(problem.root / "initial_program.py"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    metrics = result["metrics"]
    assert result["valid"] is True and result["error"] is None
    # Calibrated like the real trace: GPU balancedness about 0.7, slot about 0.3.
    assert 0.68 < metrics["gpu_balancedness"] < 0.76
    assert 0.25 < metrics["slot_balancedness"] < 0.33
    assert metrics["windows"] == 11 and metrics["t_ms"] > 0
    named = set(re.findall(r"`(\w+)`", problem.task))  # every metric is defined there
    assert sorted({re.sub(r"_w\d\d$", "_wNN", k) for k in metrics} - named) == []
    assert result["score"] == pytest.approx(
        90 * metrics["gpu_balancedness"] + metrics["speed_points"] - metrics["penalty"],
        abs=1e-3)


def test_a_vectorized_placement_balances_as_well_and_scores_higher() -> None:
    base = _evaluate(load_problem("eplb").initial_code)
    fast = _evaluate(VECTORIZED.read_text())
    assert base.valid and fast.valid, (base.error, fast.error)
    assert base.score is not None and fast.score is not None
    assert float(fast.metrics["gpu_balancedness"]) >= float(base.metrics["gpu_balancedness"])
    assert fast.score > base.score
    # The ratio: benchmarks/eplb_speed.py.
    assert float(fast.metrics["t_ms"]) < float(base.metrics["t_ms"])


@pytest.mark.parametrize(("edit", "reason"), [
    ("logcnt[:, 0] -= 1", "has no replica"),
    ("phy2log[:, 1] = phy2log[:, 0]\n    log2phy[0, phy2log[0, 0], 1] = 1",
     "logcnt[0, "),
])
def test_the_sandboxed_candidate_cannot_drop_an_expert_or_double_book(edit: str,
                                                                      reason: str) -> None:
    source = load_problem("eplb").initial_code.replace(
        "    return phy2log, log2phy, logcnt\n# EVOLVE-BLOCK-END",
        f"    {edit}\n    return phy2log, log2phy, logcnt\n# EVOLVE-BLOCK-END")
    result = _evaluate(source)
    assert result.valid is False and result.error is not None
    assert result.error.startswith("window 0: ") and reason in result.error


def test_a_double_booked_slot_in_log2phy_is_rejected() -> None:
    source = load_problem("eplb").initial_code.replace(
        "    return phy2log, log2phy, logcnt\n# EVOLVE-BLOCK-END",
        "    log2phy[0, 0, 0] = log2phy[0, 1, 0]\n"
        "    return phy2log, log2phy, logcnt\n# EVOLVE-BLOCK-END")
    result = _evaluate(source)
    assert result.valid is False and result.error is not None
    assert "listed in log2phy 2 times" in result.error


def _initial_module(nodes_per_domain: int) -> dict[str, object]:
    source = load_problem("eplb").initial_code
    assert "\nNODES_PER_DOMAIN = 1\n" in source
    namespace: dict[str, object] = {}
    exec(source.replace("\nNODES_PER_DOMAIN = 1\n", f"\nNODES_PER_DOMAIN = {nodes_per_domain}\n"),
         namespace)
    return namespace


def _next_window_gpu_balance(nodes_per_domain: int, windows: int = 3) -> float:
    loads = synthetic_windows(0)
    inst = Instance(layers=loads.shape[1], experts=loads.shape[2])
    rebalance = _initial_module(nodes_per_domain)["rebalance_experts"]
    assert callable(rebalance)
    balances: list[float] = []
    for k in range(windows):
        placement = check(rebalance(loads[k], 288, 8, 4, 32), inst)
        balances.append(measure(loads[k + 1], placement.phy2log, placement.logcnt, 32).gpu)
    return sum(balances) / windows


def test_the_initial_programs_placement_domains_are_a_real_choice() -> None:
    # 1 is DeepSeek's hierarchical policy (the default); 2 merges node pairs; 3 does not
    # divide 4 nodes, so DeepSeek's global policy applies; 4 is one domain too.
    hierarchical, pairs, fallback, one = (_next_window_gpu_balance(n) for n in (1, 2, 3, 4))
    assert 0.68 < hierarchical < 0.76
    assert pairs > hierarchical + 0.05 and one > pairs
    assert fallback == pytest.approx(one, abs=0.005)  # one domain either way

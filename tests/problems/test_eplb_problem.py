"""The bundled eplb problem, scored through the real sandbox and the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adrs.cli import main
from adrs.evaluation.runner import EvalJob, run_job
from adrs.evaluation.sandbox import Limits
from adrs.problem import load_problem
from adrs.program import split
from adrs.types import EvalResult

HERE = Path(__file__).resolve().parent
VECTORIZED = HERE / "eplb_vectorized_program.py"


def _evaluate(source: str) -> EvalResult:
    problem = load_problem("eplb")
    return run_job(EvalJob(problem_root=str(problem.root), evaluator=problem.spec.evaluator,
                           source=source, limits=Limits(timeout_s=120)))




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
    assert result["score"] == pytest.approx(
        90 * metrics["gpu_balancedness"] + metrics["speed_points"] - metrics["penalty"],
        abs=1e-3)


def test_a_vectorized_placement_balances_as_well_and_scores_higher() -> None:
    base = _evaluate(load_problem("eplb").initial_code)
    fast = _evaluate(VECTORIZED.read_text())
    assert base.valid and fast.valid, (base.error, fast.error)
    assert base.score is not None and fast.score is not None
    assert fast.metrics["gpu_balancedness"] >= base.metrics["gpu_balancedness"]
    assert fast.score > base.score
    assert fast.metrics["t_ms"] < base.metrics["t_ms"]  # the ratio: benchmarks/eplb_speed.py


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

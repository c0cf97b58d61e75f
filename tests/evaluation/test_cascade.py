"""Cascade evaluation: a cheap first stage stops broken and weak candidates early."""

from __future__ import annotations

from pathlib import Path

import pytest

from adrs.errors import UserError
from adrs.evaluation.cascade import CascadeStage
from adrs.evaluation.runner import EvalJob, run_job
from adrs.problem.spec import load_problem
from adrs.sandbox.candidate import Limits

pytestmark = pytest.mark.timeout(60)

LIMITS = Limits(timeout_s=10.0, memory_mb=1024)
# Both stages score how close `guess(n)` gets to n; the full stage asks many more questions.
EVALUATOR = """
def _score(candidate, questions, stage):
    error = sum(abs(candidate.call("guess", n) - n) for n in range(questions)) / questions
    return {"score": 100.0 / (1.0 + error), "metrics": {"stage": stage, "asked": questions},
            "feedback": f"{stage}: mean error {error:.2f}"}

def evaluate_quick(candidate):
    return _score(candidate, 5, "quick")

def evaluate(candidate):
    return _score(candidate, 50, "full")
"""
GOOD = "def guess(n):\n    return n\n"
WEAK = "def guess(n):\n    return 0\n"
BROKEN = "def guess(n):\n    raise ValueError('no idea')\n"
CASCADE = (CascadeStage("evaluator.py:evaluate_quick", threshold=50.0),)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "evaluator.py").write_text(EVALUATOR)
    return tmp_path


def job(root: Path, source: str, cascade: tuple[CascadeStage, ...] = CASCADE) -> EvalJob:
    return EvalJob(str(root), "evaluator.py:evaluate", source, LIMITS, cascade=cascade)


def test_a_candidate_that_passes_gets_the_full_result(root: Path) -> None:
    result = run_job(job(root, GOOD))
    assert result.valid and result.score == 100.0
    assert result.metrics == {"stage": "full", "asked": 50}


def test_a_weak_candidate_stops_at_the_threshold(root: Path) -> None:
    result = run_job(job(root, WEAK))
    assert not result.valid
    assert result.error is not None and result.error.startswith(
        "cascade stage 1 (evaluator.py:evaluate_quick) scored 33.3333, below its threshold "
        "50: the full evaluation was skipped")
    assert result.metrics == {"stage": "quick", "asked": 5}
    assert result.feedback == "quick: mean error 2.00"
    assert run_job(job(root, WEAK, cascade=())).metrics["stage"] == "full"


def test_a_broken_candidate_stops_at_the_first_stage(root: Path) -> None:
    result = run_job(job(root, BROKEN))
    assert not result.valid and result.metrics == {}
    assert (result.error or "").startswith("cascade stage 1 (evaluator.py:evaluate_quick): "
                                           "guess() raised ValueError: no idea")


def test_a_stage_without_threshold_gates_on_validity_only(root: Path) -> None:
    result = run_job(job(root, WEAK, cascade=(CascadeStage("evaluator.py:evaluate_quick"),)))
    assert result.valid and result.metrics["stage"] == "full"


def test_a_missing_stage_evaluator_is_a_user_error(root: Path) -> None:
    with pytest.raises(UserError, match="has no function 'nope'"):
        run_job(job(root, GOOD, cascade=(CascadeStage("evaluator.py:nope", 1.0),)))


def test_problem_yaml_declares_the_cascade(root: Path) -> None:
    (root / "README.md").write_text("Guess n.\n")
    (root / "initial_program.py").write_text(f"# EVOLVE-BLOCK-START\n{GOOD}# EVOLVE-BLOCK-END\n")
    (root / "problem.yaml").write_text(
        "name: guess\ndescription: guess n\nevaluator: evaluator.py:evaluate\n"
        "cascade:\n  - {evaluator: 'evaluator.py:evaluate_quick', threshold: 50}\n")
    assert load_problem(str(root)).spec.cascade == CASCADE
    (root / "problem.yaml").write_text(
        "name: guess\ndescription: guess n\nevaluator: evaluator.py:evaluate\n"
        "cascade:\n  - {evaluator: 'quick', threshold: 50}\n")
    with pytest.raises(UserError, match="must look like"):
        load_problem(str(root))


def test_adrs_eval_applies_the_cascade(root: Path) -> None:
    import json
    import subprocess
    import sys

    (root / "README.md").write_text("Guess n.\n")
    (root / "initial_program.py").write_text(f"# EVOLVE-BLOCK-START\n{GOOD}# EVOLVE-BLOCK-END\n")
    (root / "problem.yaml").write_text(
        "name: guess\ndescription: guess n\nevaluator: evaluator.py:evaluate\n"
        "cascade:\n  - {evaluator: 'evaluator.py:evaluate_quick', threshold: 50}\n")
    (root / "weak.py").write_text(WEAK)
    proc = subprocess.run([sys.executable, "-m", "adrs", "eval", str(root),
                           str(root / "weak.py"), "--json"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["error"].startswith("cascade stage 1")

"""The runner: evaluator loading, normalisation, and faults turned into invalid results."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from adrs.errors import UserError
from adrs.evaluation.runner import EvalJob, load_evaluator, normalise, run_job
from adrs.sandbox.candidate import Limits
from adrs.types import EvalResult

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]
TOY_PROGRAM = (REPO / "problems" / "toy" / "initial_program.py").read_text()
TOY_EVALUATOR = "evaluators/toy.py:evaluate"
LIMITS = Limits(timeout_s=10.0, memory_mb=1024)


def write_evaluator(root: Path, body: str, name: str = "evaluator.py") -> str:
    (root / name).write_text("from adrs.types import EvalResult\n\n" + body)
    return f"{name}:evaluate"


def job(root: Path | str, evaluator: str, source: str, harness: str | None = None) -> EvalJob:
    return EvalJob(problem_root=str(root), evaluator=evaluator, source=source, limits=LIMITS,
                   harness=harness)


def test_toy_evaluator_scores_the_initial_program() -> None:
    result = run_job(job(REPO, TOY_EVALUATOR, TOY_PROGRAM))
    assert result.valid, result.error
    assert result.score == pytest.approx(47.6, abs=0.05)
    assert set(result.metrics) == {"cost", "oracle_cost", "violation_rate"}
    assert "Most expensive series" in result.feedback
    assert 0 < result.duration_s < 10


def test_candidate_returning_nan_is_invalid() -> None:
    source = "def provision(history):\n    return float('nan')\n"
    result = run_job(job(REPO, TOY_EVALUATOR, source))
    assert not result.valid and result.score is None
    assert "finite" in (result.error or "")


def test_non_finite_score_from_the_evaluator_is_invalid(tmp_path: Path) -> None:
    ref = write_evaluator(tmp_path, "def evaluate(candidate):\n"
                          "    return {'score': candidate.call('f')}\n")
    result = run_job(job(tmp_path, ref, "def f():\n    return float('inf')\n"))
    assert not result.valid
    assert result.error == "evaluator returned a non-finite score (inf)"


def test_candidate_fault_becomes_an_invalid_result_with_stderr() -> None:
    source = ("import sys\ndef provision(history):\n"
              "    print('about to fail', file=sys.stderr)\n    raise RuntimeError('no')\n")
    result = run_job(job(REPO, TOY_EVALUATOR, source))
    assert not result.valid
    assert (result.error or "").startswith("provision() raised RuntimeError: no")
    assert "about to fail" in result.stderr
    assert result.duration_s > 0


def test_load_fault_becomes_an_invalid_result() -> None:
    result = run_job(job(REPO, TOY_EVALUATOR, "def provision(:\n"))
    assert not result.valid
    assert "SyntaxError" in (result.error or "") and "line 1" in (result.error or "")


def test_timeout_becomes_an_invalid_result() -> None:
    source = "def provision(history):\n    while True:\n        pass\n"
    limits = Limits(timeout_s=0.5)
    result = run_job(EvalJob(str(REPO), TOY_EVALUATOR, source, limits))
    assert not result.valid and "timed out" in (result.error or "")


def test_evaluator_exception_is_an_invalid_result_with_traceback(tmp_path: Path) -> None:
    ref = write_evaluator(tmp_path, "def evaluate(candidate):\n"
                          "    return {'score': 1 / candidate.call('f')}\n")
    result = run_job(job(tmp_path, ref, "def f():\n    return 0\n"))
    assert not result.valid
    assert result.error == "evaluator error: ZeroDivisionError: division by zero"
    assert "evaluator.py" in result.trace and "line 4" in result.trace
    assert result.feedback == ""  # the trusted side's files and lines never reach a prompt


def test_evaluator_that_swallows_a_fault_and_crashes_blames_the_candidate(
        tmp_path: Path) -> None:
    ref = write_evaluator(tmp_path, "def evaluate(candidate):\n    try:\n"
                          "        candidate.call('f')\n    except Exception:\n"
                          "        raise KeyError('lost')\n")
    result = run_job(job(tmp_path, ref, "import os\ndef f():\n    os._exit(5)\n"))
    assert result.error == "the program exited with code 5 during f()"


def test_evaluator_may_return_an_eval_result(tmp_path: Path) -> None:
    ref = write_evaluator(tmp_path, "def evaluate(candidate):\n"
                          "    return EvalResult(valid=True, score=candidate.call('f'))\n")
    result = run_job(job(tmp_path, ref, "def f():\n    return 3.5\n"))
    assert result.valid and result.score == 3.5 and result.duration_s > 0


def test_harness_runs_next_to_the_candidate(tmp_path: Path) -> None:
    (tmp_path / "harness.py").write_text(
        "import candidate\ndef score():\n    return sum(candidate.f(i) for i in range(4))\n")
    ref = write_evaluator(tmp_path, "def evaluate(candidate):\n"
                          "    return {'score': candidate.call('harness.score')}\n")
    result = run_job(job(tmp_path, ref, "def f(i):\n    return i * 2\n", "harness.py"))
    assert result.valid and result.score == 12.0


def test_missing_harness_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="harness file"):
        run_job(job(REPO, TOY_EVALUATOR, TOY_PROGRAM, str(tmp_path / "absent.py")))


# ---------------------------------------------------------------------------- normalise
@pytest.mark.parametrize(("raw", "error"), [
    ({"score": 1.0, "speed": 2}, "evaluator returned unknown keys ['speed']"),
    ({"score": math.nan}, "evaluator returned a non-finite score (nan)"),
    ({"score": "high"}, "evaluator returned no numeric score (got str)"),
    ({"score": True}, "evaluator returned no numeric score (got bool)"),
    ({}, "evaluator returned no numeric score (got NoneType)"),
    ({"valid": False}, "the evaluator marked the program invalid"),
    ({"valid": False, "error": "too slow"}, "too slow"),
    ({"score": 1.0, "metrics": {"m": [1]}}, "evaluator returned metric 'm' of type list"),
    ({"score": 1.0, "metrics": [1]}, "evaluator returned metrics of type list"),
    (42, "evaluator returned int; expected an EvalResult or a mapping"),
])
def test_malformed_results_are_invalid(raw: object, error: str) -> None:
    result = normalise(raw)
    assert not result.valid
    assert (result.error or "").startswith(error)


def test_mapping_result_is_normalised() -> None:
    import numpy as np

    result = normalise({"score": np.float64(2.0), "metrics": {"n": np.int64(3), "ok": True},
                        "feedback": "fine"})
    assert result == EvalResult(valid=True, score=2.0, metrics={"n": 3, "ok": True},
                                feedback="fine")
    assert type(result.score) is float and type(result.metrics["n"]) is int


# ------------------------------------------------------------------------------ loading
def test_evaluators_are_loaded_once(tmp_path: Path) -> None:
    ref = write_evaluator(tmp_path, "def evaluate(candidate):\n    return {'score': 1}\n")
    assert load_evaluator(str(tmp_path), ref) is load_evaluator(str(tmp_path), ref)


def test_module_form_is_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_scorer_pkg.py").write_text("def evaluate(candidate):\n    return {}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert callable(load_evaluator("/nonexistent", "my_scorer_pkg:evaluate"))


def test_evaluator_may_import_helpers_next_to_it(tmp_path: Path) -> None:
    (tmp_path / "sim_helpers_for_test.py").write_text("BASE = 5\n")
    ref = write_evaluator(tmp_path, "import sim_helpers_for_test\n\n"
                          "def evaluate(candidate):\n"
                          "    return {'score': sim_helpers_for_test.BASE}\n")
    result = run_job(job(tmp_path, ref, "x = 1\n"))
    assert result.score == 5.0


@pytest.mark.parametrize(("ref", "message"), [
    ("no_colon", "must look like"),
    ("evaluator.py:", "must look like"),
    ("absent.py:evaluate", "does not exist"),
    ("evaluator.py:missing", "has no function 'missing'"),
    ("broken.py:evaluate", "failed to import: NameError"),
    ("adrs_no_such_module_xyz:evaluate", "cannot import evaluator module"),
])
def test_bad_evaluator_refs_are_one_line_user_errors(tmp_path: Path, ref: str,
                                                     message: str) -> None:
    write_evaluator(tmp_path, "def evaluate(candidate):\n    return {}\n")
    (tmp_path / "broken.py").write_text("undefined_name\n")
    with pytest.raises(UserError, match=message) as info:
        load_evaluator(str(tmp_path), ref)
    assert "\n" not in str(info.value)


def test_prepare_loads_the_evaluator_and_launches_a_sandbox_without_evaluating(
        tmp_path: Path) -> None:
    from adrs.evaluation import runner
    from adrs.sandbox.standby import STANDBY

    log = tmp_path / "calls.log"
    ref = write_evaluator(tmp_path, f"""import pathlib
LOG = pathlib.Path({str(log)!r})
LOG.write_text("imported\\n")

def evaluate(candidate):
    with LOG.open("a") as out:
        out.write("evaluated\\n")
    return {{"score": 1.0}}
""")
    STANDBY.drain()
    runner.prepare(job(tmp_path, ref, "x = 1\n"))
    assert log.read_text().split() == ["imported"]
    assert (str(tmp_path), ref) in runner._evaluators and STANDBY.idle() == 1
    assert run_job(job(tmp_path, ref, "x = 1\n")).valid
    assert log.read_text().split() == ["imported", "evaluated"]


def test_prepare_raises_the_set_up_faults_a_job_would(tmp_path: Path) -> None:
    from adrs.evaluation import runner

    with pytest.raises(UserError, match="does not exist"):
        runner.prepare(job(tmp_path, "missing.py:evaluate", "x = 1\n"))

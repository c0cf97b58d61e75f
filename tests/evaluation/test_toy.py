"""The toy evaluator: lockstep through its harness, the same calls and score without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from adrs.evaluation.runner import EvalJob, run_job
from adrs.evaluators import toy
from adrs.sandbox.candidate import Limits

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]
PROBLEM = REPO / "problems" / "toy"
INITIAL = (PROBLEM / "initial_program.py").read_text()
LIMITS = Limits(timeout_s=10.0, memory_mb=1024)
# Fails unless it is called tick by tick, series after series within a tick, and only ever
# sees the loads before the tick; its answers depend on every call before (state kept).
STRICT = """
CALLS = []
def provision(history):
    tick, series = divmod(len(CALLS), 3)
    assert len(history) == tick, (len(history), tick)
    CALLS.append(sum(history))
    history.append(1e9)  # its own copy: the next series' history must not change
    return 50.0 + (len(CALLS) % 7) + series
"""


def run(source: str, harness: bool) -> dict[str, object]:
    result = run_job(EvalJob(str(PROBLEM), "adrs.evaluators.toy:evaluate", source, LIMITS,
                             harness="harness.py" if harness else None))
    return {"valid": result.valid, "score": result.score, "error": result.error,
            "metrics": result.metrics, "feedback": result.feedback}


@pytest.mark.parametrize("source", [INITIAL, STRICT])
def test_the_harness_gives_the_same_result_as_a_call_per_series_and_tick(source: str) -> None:
    with_harness, without = run(source, True), run(source, False)
    assert with_harness["valid"], with_harness["error"]
    assert with_harness == without


def test_the_initial_program_keeps_its_score() -> None:
    assert run(INITIAL, True)["score"] == 47.61198708576161


def test_the_problem_loads_the_harness_the_evaluator_knows() -> None:
    assert (PROBLEM / "harness.py").resolve() == toy.harness_path()


def test_a_copy_of_the_harness_is_used_and_another_file_is_not(tmp_path: Path) -> None:
    copy, other = tmp_path / "harness.py", tmp_path / "other.py"
    copy.write_bytes(toy.harness_path().read_bytes())
    other.write_text("def provision_next(histories):\n    return [1.0] * len(histories)\n")
    calls = []

    class Recorder:
        def __init__(self, harness: Path) -> None:
            self.harness = str(harness)

        def call(self, name: str, *args: object) -> object:
            calls.append(name)
            return [1.0] * toy.SERIES if name.startswith("harness.") else 1.0

    toy.evaluate(Recorder(copy))
    assert set(calls) == {"harness.provision_next"} and len(calls) == toy.TICKS
    calls.clear()
    toy.evaluate(Recorder(other))
    assert set(calls) == {"provision"} and len(calls) == toy.TICKS * toy.SERIES


@pytest.mark.parametrize(("body", "expected"), [
    ("return 1 / 0", "provision() raised ZeroDivisionError"),
    ("return 'lots'", "provision returned str, expected a number"),
    ("return float('nan')", "provision returned nan; it must be a finite number >= 0"),
    ("import harness\n    harness.provision_next = lambda h: [1.0]\n    return 1.0",
     "do not replace harness.provision_next"),
    # The histories the harness keeps are the candidate's to spoil, not to extend.
    ("import harness\n    harness._histories.clear()\n    return 1.0",
     "provision() raised ValueError"),
])
def test_faults_name_provision(body: str, expected: str) -> None:
    result = run(f"def provision(history):\n    {body}\n", True)
    assert not result["valid"]
    assert expected in str(result["error"])
    assert "harness.provision_next()" not in str(result["error"])

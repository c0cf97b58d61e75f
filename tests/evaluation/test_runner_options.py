"""Problem options reach the evaluator and cascade stages; an evaluator's UserError stops."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from adrs.errors import UserError
from adrs.evaluation.backends import LocalBackend
from adrs.evaluation.cascade import CascadeStage
from adrs.evaluation.runner import EvalJob, run_job, takes_options
from adrs.sandbox.candidate import Limits

SOURCE = "def f():\n    return 2.0\n"
EVALUATORS = '''
from adrs.errors import UserError

def scaled(candidate, options):
    return {"score": candidate.call("f") * options["factor"]}

def plain(candidate):
    return {"score": candidate.call("f")}

def gate(candidate, options):
    return {"score": options["factor"], "metrics": {"gate_factor": options["factor"]}}

def needs_file(candidate, options):
    raise UserError(f"no such file {options['path']!r}: fix --option path=")
'''


def job(root: Path, evaluator: str, **options: object) -> EvalJob:
    (root / "evaluator.py").write_text(EVALUATORS, encoding="utf-8")
    return EvalJob(str(root), f"evaluator.py:{evaluator}", SOURCE, Limits(timeout_s=20),
                   options=options)


def test_an_evaluator_with_two_parameters_gets_the_options(tmp_path: Path) -> None:
    result = run_job(job(tmp_path, "scaled", factor=3))
    assert result.valid and result.score == 6.0


def test_an_evaluator_with_one_parameter_is_called_without(tmp_path: Path) -> None:
    result = run_job(job(tmp_path, "plain", factor=3))
    assert result.valid and result.score == 2.0


def test_cascade_stages_get_the_same_options(tmp_path: Path) -> None:
    base = job(tmp_path, "scaled", factor=3)
    stopped = run_job(EvalJob(base.problem_root, base.evaluator, SOURCE, base.limits,
                              cascade=(CascadeStage("evaluator.py:gate", 5.0),),
                              options={"factor": 3}))
    assert not stopped.valid and "below its threshold" in (stopped.error or "")
    assert stopped.metrics == {"gate_factor": 3}
    passed = run_job(EvalJob(base.problem_root, base.evaluator, SOURCE, base.limits,
                             cascade=(CascadeStage("evaluator.py:gate", 5.0),),
                             options={"factor": 7}))
    assert passed.valid and passed.score == 14.0


def test_a_user_error_of_the_evaluator_propagates(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file '/nope'"):
        run_job(job(tmp_path, "needs_file", path="/nope"))


def test_options_cross_a_process_pool(tmp_path: Path) -> None:
    scaled = job(tmp_path, "scaled", factor=4)
    assert pickle.loads(pickle.dumps(scaled)) == scaled
    backend = LocalBackend(1)
    try:
        assert backend.submit(scaled).result(timeout=60).score == 8.0
        with pytest.raises(UserError, match="no such file"):
            backend.submit(job(tmp_path, "needs_file", path="/nope")).result(timeout=60)
    finally:
        backend.close()


def test_takes_options() -> None:
    def one(candidate: object) -> None: ...
    def two(candidate: object, options: object) -> None: ...
    def star(*args: object) -> None: ...
    def keyword_only(candidate: object, *, options: object = None) -> None: ...
    assert not takes_options(one) and takes_options(two) and takes_options(star)
    assert not takes_options(keyword_only)

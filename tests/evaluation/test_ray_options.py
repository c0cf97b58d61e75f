"""Problem options travel inside the job to Ray workers; an evaluator's UserError (a bad
option) comes back as that UserError, not as Ray's wrapper or an invalid result."""

from __future__ import annotations

from pathlib import Path

import pytest

from adrs.errors import UserError
from adrs.evaluation.ray_backend import RayBackend
from adrs.evaluation.runner import EvalJob
from adrs.sandbox.candidate import Limits

pytestmark = [pytest.mark.timeout(180), pytest.mark.usefixtures("ray_cluster")]

EVALUATOR = """from adrs.errors import UserError

def evaluate(candidate, options):
    if options["path"] is not None:
        raise UserError(f"cannot read '{options['path']}': fix --option path=")
    return {"score": candidate.call("f") * options["factor"]}
"""


def test_options_reach_a_ray_worker_and_user_errors_come_back(tmp_path: Path) -> None:
    (tmp_path / "opt.py").write_text(EVALUATOR, encoding="utf-8")
    source = "def f():\n    return 2.0\n"
    backend = RayBackend(1)
    try:
        good = EvalJob(str(tmp_path), "opt.py:evaluate", source, Limits(timeout_s=20),
                       options={"factor": 5, "path": None})
        assert backend.submit(good).result(timeout=60).score == 10.0
        bad = EvalJob(str(tmp_path), "opt.py:evaluate", source, Limits(timeout_s=20),
                      options={"factor": 5, "path": "/nope"})
        with pytest.raises(UserError, match="cannot read '/nope'"):
            backend.submit(bad).result(timeout=60)
    finally:
        backend.close()

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


def test_shipped_paths_land_in_the_nodes_copies_and_option_paths_stay(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a cluster node sees (ray_shipping.py): the problem folder is its working
    directory, the bundled harness is in the shipped adrs, an option path is unchanged."""
    import adrs
    from adrs.evaluation.ray_shipping import Packer, ShippedPath

    repo = Path(__file__).resolve().parents[2]
    root = repo / "problems" / "cbl"
    job = EvalJob(str(root), "adrs.evaluators.cbl.evaluate:evaluate", "x = 1\n",
                  harness=str(root / "../../evaluators/cbl/harness.py"),
                  options={"trace_dir": str(tmp_path)})
    packer = Packer(str(root))
    staged = Path(packer.runtime_env()["py_modules"][0])
    try:
        assert packer.runtime_env()["working_dir"] == str(root.resolve())
        for name in ("evaluators/cbl/harness.py", "problems/toy/problem.yaml",
                     "prompts/rewrite.txt", "evaluation/runner.py"):
            assert (staged / name).is_file(), name
        shipped = packer.pack(job)
        assert shipped.problem_root == ShippedPath("problem", "")
        assert shipped.harness == ShippedPath("adrs", "evaluators/cbl/harness.py")
        node = tmp_path / "node-copy"
        node.mkdir()
        monkeypatch.chdir(node)  # Ray runs a node's worker in its copy of the folder
        local = shipped.localise()
    finally:
        packer.close()
    assert local.problem_root == str(node)
    assert local.harness == str(Path(adrs.__file__).parent / "evaluators/cbl/harness.py")
    assert local.options == {"trace_dir": str(tmp_path)}  # needed on every node as it is
    assert not staged.exists()
    outside = Packer(str(root))
    try:
        assert outside.pack(EvalJob("/elsewhere", "e.py:f", "")).problem_root is None
    finally:
        outside.close()

"""`adrs show` and `adrs best` report a re-evaluated best by the mean of its evaluations,
with their count, spread and the first score (adrs/engine/reevaluation.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adrs.cli.main import main
from adrs.code.program import code_hash
from adrs.store.database import CandidateRecord, RunStore
from adrs.store.side_tables import Evaluation
from adrs.types import EvalResult

CODE = "def solve():\n    return 1\n"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run whose candidate #1 first scored 238 (a lucky draw), then 242 and 241.5; #2 once."""
    run = tmp_path / "run"
    store = RunStore.create(run, "{}\n", {"problem": "txn"})
    try:
        for cid, score, code in ((0, 200.0, "x = 0\n"), (1, 240.5, CODE),
                                 (2, 239.0, "y = 2\n")):
            store.add(CandidateRecord(
                id=cid, status="evaluated", island=0, generation=cid, edit_kind="diff",
                parent_ids=() if cid == 0 else (0,), created=0.0, code=code,
                code_hash=code_hash(code), result=EvalResult(valid=True, score=score)))
        for n, score in enumerate((238.0, 242.0, 241.5)):
            store.tables.add_evaluation(Evaluation(1, code_hash(CODE), n, True, score))
        store.tables.add_evaluation(Evaluation(1, "code proposed before a resume", 1, True, 1.0))
        store.record_ending("iterations")
    finally:
        store.close()
    return run


def test_show_gives_the_mean_spread_and_first_score(run_dir: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(run_dir), "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "best 240.5 (#1; mean of 3, spread 4; first 238)" in out
    assert main(["show", str(run_dir), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["best_id"] == 1 and data["best_score"] == 240.5
    assert data["reevaluated"] == {"1": {"evaluations": 3, "failed": 0, "mean": 240.5,
                                         "scores": [238.0, 242.0, 241.5], "spread": 4.0}}


def test_best_says_how_its_score_was_measured(run_dir: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["best", str(run_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = lines.index("# Candidate #1, score 240.5.")
    assert lines[at + 1] == "# Re-evaluated: mean of 3, spread 4; first 238."
    out = tmp_path / "best.py"
    assert main(["best", str(run_dir), "-o", str(out)]) == 0
    assert "(score 240.5, mean of 3, spread 4; first 238)" in capsys.readouterr().out
    assert "# Re-evaluated: mean of 3" in out.read_text()

"""Problem authoring: a scaffolded problem checks, scores and improves; defects are named."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from adrs.cli.authoring import check_problem, scaffold
from adrs.errors import UserError
from adrs.store.database import DB_NAME


def adrs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "adrs", *args], capture_output=True,
                          text=True, timeout=180)


def test_scaffolded_problem_checks_and_improves_in_20_offline_candidates(tmp_path: Path) -> None:
    made = adrs("problems", "new", "flush", "--dir", str(tmp_path))
    assert made.returncode == 0, made.stderr
    root = tmp_path / "flush"
    checked = adrs("problems", "check", str(root))
    assert checked.returncode == 0, checked.stderr
    assert "initial program: valid, score" in checked.stdout
    config = tmp_path / "local.yaml"
    config.write_text("evaluation: {backend: local}\n")
    run = adrs("run", str(root), "-c", str(config), "--iterations", "20", "--run-dir",
               str(tmp_path / "r"))
    assert run.returncode == 0, run.stderr
    rows = sqlite3.connect(tmp_path / "r" / DB_NAME).execute(
        "SELECT id, score FROM candidates WHERE valid = 1 ORDER BY id").fetchall()
    assert rows[0][0] == 0 and max(score for _, score in rows) > rows[0][1] * 1.1


def test_check_reports_the_initial_score(tmp_path: Path) -> None:
    report = check_problem(str(scaffold("flush", tmp_path)))
    assert report.result.valid and report.result.score is not None
    assert 100 < report.result.score < 200 and len(report.steps) == 5


@pytest.mark.parametrize(("file", "old", "new", "needle"), [
    ("initial_program.py", "FLUSH_AT = 2", "FLUSH_AT = = 2", "line 4: invalid syntax"),
    ("initial_program.py", "# EVOLVE-BLOCK-END\n", "", "EVOLVE-BLOCK-END"),
    ("evaluator.py", "def evaluate(", "def score(", "has no function 'evaluate'"),
    ("problem.yaml", "name: mean_batch", "name: mean_size",
     "feature 'mean_size' is neither a built-in feature nor a metric"),
    ("initial_program.py", "MAX_AGE = 10", "MAX_AGE = 40", "the evaluator rejects the "
     "initial program (series 1: a request waited 12 ticks"),
    ("problem.yaml", "defaults:", "default:", "unknown key 'default'"),
])
def test_check_names_each_defect(tmp_path: Path, file: str, old: str, new: str,
                                 needle: str) -> None:
    root = scaffold("flush", tmp_path)
    path = root / file
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))
    with pytest.raises(UserError) as info:
        check_problem(str(root))
    assert needle in str(info.value)


def test_scaffold_refuses_bad_names_and_existing_folders(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not valid"):
        scaffold("My Problem", tmp_path)
    scaffold("flush", tmp_path)
    with pytest.raises(UserError, match="already exists"):
        scaffold("flush", tmp_path)
    proc = adrs("problems", "check", str(tmp_path / "missing"))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1

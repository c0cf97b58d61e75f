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
    assert 100 < report.result.score < 200 and len(report.steps) == 6
    assert "TASK.md: the task statement the LLM sees; README.md: for users" in report.steps


def test_the_scaffold_separates_the_task_statement_from_the_readme(tmp_path: Path) -> None:
    root = scaffold("flush", tmp_path)
    problem = check_problem(str(root)).problem
    assert problem.spec.task == "TASK.md" and problem.task_path == root / "TASK.md"
    assert "should_flush(queued, oldest_wait)" in problem.task
    readme = (root / "README.md").read_text()
    assert "adrs run flush" in readme and "--option" in readme
    assert "adrs run" not in problem.task and "--option" not in problem.task


@pytest.mark.parametrize(("text", "needle"), [
    ("Run it with `adrs run flush --iterations 5`.", "line 3: the task statement mentions "
     "'adrs run', which only users need"),
    ("A real trace: `--option trace=/data/arrivals.csv`.", "mentions '--option'"),
])
def test_check_keeps_user_only_text_out_of_the_task_statement(
        tmp_path: Path, text: str, needle: str) -> None:
    root = scaffold("flush", tmp_path)
    task = root / "TASK.md"
    task.write_text(task.read_text().replace("\n\n", f"\n\n{text}\n", 1))
    with pytest.raises(UserError) as info:
        check_problem(str(root))
    assert needle in str(info.value) and "move it to README.md" in str(info.value)


def test_check_accepts_a_readme_that_is_also_the_task_statement(tmp_path: Path) -> None:
    # A folder written before TASK.md existed: README.md is the task statement.
    root = scaffold("flush", tmp_path)
    (root / "TASK.md").replace(root / "README.md")
    yaml = root / "problem.yaml"
    yaml.write_text(yaml.read_text().replace("task: TASK.md\n", ""))
    steps = check_problem(str(root)).steps
    assert any(step.startswith("README.md: the task statement, and also the user "
                               "documentation") for step in steps)
    (root / "README.md").write_text((root / "README.md").read_text() + "\nadrs run flush\n")
    with pytest.raises(UserError, match=r"put the task statement in TASK\.md"):
        check_problem(str(root))


def test_check_shows_where_the_evaluator_raised(tmp_path: Path) -> None:
    # Before: only "evaluator error: ZeroDivisionError: division by zero", no file or line.
    root = scaffold("flush", tmp_path)
    evaluator = root / "evaluator.py"
    source = evaluator.read_text()
    assert '"score": 100.0 * reference / total,' in source
    evaluator.write_text(source.replace('"score": 100.0 * reference / total,',
                                        '"score": 100.0 * reference / (total - total),'))
    line = 1 + evaluator.read_text().splitlines().index(
        '        "score": 100.0 * reference / (total - total),')
    with pytest.raises(UserError) as info:
        check_problem(str(root))
    message = str(info.value)
    assert message.splitlines()[0] == ("the evaluator 'evaluator.py:evaluate' raised on the "
                                       "initial program (ZeroDivisionError: float division by "
                                       "zero): fix the evaluator; its traceback:")
    assert f'{evaluator}", line {line}, in evaluate' in message
    proc = adrs("problems", "check", str(root))
    assert proc.returncode == 2 and f'{evaluator}", line {line}' in proc.stderr


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

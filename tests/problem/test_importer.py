"""`adrs problems import`: OpenEvolve- and ShinkaEvolve-shaped folders become adrs problems
that check, run offline and improve, with the peer evaluator contained in the sandbox."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from peer_examples import (
    OPENEVOLVE_EVALUATOR,
    openevolve_example,
    shinka_example,
)

from adrs.cli.authoring import check_problem
from adrs.config.run_config import RunConfig
from adrs.errors import UserError
from adrs.evaluation.runner import run_job
from adrs.problem.importer import detect, import_peer
from adrs.problem.spec import Problem, eval_job, load_problem
from adrs.run.session import config_layers, start_run
from adrs.sandbox.isolation import protection_report
from adrs.store.database import DB_NAME

SECRET = "ADRS_TEST_PEER_SECRET"


def offline(problem: Problem, iterations: int) -> RunConfig:
    return config_layers(problem, None, {
        "llm": {"mode": "offline"}, "stop": {"iterations": iterations},
        "evaluation": {"backend": "thread", "workers": 2}})


def improves(problem: Problem, run_dir: Path) -> tuple[float, float]:
    summary = start_run(str(problem.root), offline(problem, 16), run_dir, [])
    assert summary.valid > 1, summary.reason
    rows = sqlite3.connect(run_dir / DB_NAME).execute(
        "SELECT id, score FROM candidates WHERE valid = 1 ORDER BY id").fetchall()
    assert rows[0][0] == 0
    return rows[0][1], max(score for _, score in rows)


def test_openevolve_folder_imports_checks_and_improves_offline(tmp_path: Path) -> None:
    source = openevolve_example(tmp_path / "peer")
    assert detect(source) == "openevolve"
    report = import_peer(source, None, tmp_path / "problems")
    problem = report.problem
    assert problem.self_scored and problem.spec.trust == "self-scored"
    assert problem.initial_code == (source / "initial_program.py").read_text()
    assert "f(x, y) = (x - 1)^2 + (y + 2)^2" in problem.task  # the system message
    defaults = problem.spec.defaults
    assert defaults["stop"] == {"iterations": 50} and defaults["seed"] == 42
    assert defaults["archive"] == {"islands": 3, "migration_interval": 20}
    assert defaults["evaluation"] == {"limits": {"timeout_s": 30.0}, "workers": 2}
    assert defaults["llm"]["diff_probability"] == pytest.approx(0.9)
    assert defaults["llm"]["timeout_s"] == 60.0
    models = defaults["llm"]["models"]
    assert [(m["name"], m["weight"], m["temperature"]) for m in models] == [
        ("openai/gpt-4o-mini", 0.8, 0.7), ("openai/o3-mini", 0.2, 0.7)]
    assert [(s.evaluator, s.threshold) for s in problem.spec.cascade] == [
        ("evaluator.py:evaluate_stage1", 0.5)]
    ignored = dict(report.ignored)
    assert ignored["database.migration_rate"].startswith("adrs migrates a count")
    assert "log_level" in ignored and "prompt.num_top_programs" in ignored
    readme = problem.readme_path.read_text()
    assert "`database.population_size`" in readme and "self-scored" in readme
    assert report.missing_imports == ()

    checked = check_problem(str(problem.root))
    assert checked.result.score == pytest.approx(2 / 3)
    assert checked.result.metrics["value"] == pytest.approx(0.5)
    first, best = improves(problem, tmp_path / "run")
    assert first == pytest.approx(2 / 3) and best > first


def test_shinka_folder_imports_checks_and_improves_offline(tmp_path: Path) -> None:
    source = shinka_example(tmp_path / "peer")
    report = import_peer(source, None, tmp_path / "problems")
    assert report.kind == "shinka"
    problem = report.problem
    assert problem.self_scored and "close to the minimum" in problem.task
    llm = problem.spec.defaults["llm"]
    assert llm["diff_probability"] == pytest.approx(0.6)
    assert llm["crossover_probability"] == pytest.approx(0.1)
    assert [m["name"] for m in llm["models"]] == ["gpt-4.1-mini", "o4-mini"]
    assert llm["models"][0]["temperature"] == pytest.approx(0.5)
    assert problem.spec.defaults["stop"] == {"iterations": 30}
    assert problem.spec.defaults["archive"] == {"islands": 2, "migration_interval": 10}
    assert dict(report.ignored)["db_config.archive_size"]

    checked = check_problem(str(problem.root))
    assert checked.result.score == pytest.approx(2 / 3)
    assert checked.result.metrics["public.value"] == pytest.approx(0.5)
    assert "private.x" not in checked.result.metrics  # Shinka's private metrics stay out
    first, best = improves(problem, tmp_path / "run")
    assert first == pytest.approx(2 / 3) and best > first


def test_a_shinka_incorrect_program_is_invalid_with_the_peer_error(tmp_path: Path) -> None:
    problem = import_peer(shinka_example(tmp_path / "peer"), "shinka", tmp_path / "p").problem
    broken = problem.initial_code.replace("return X0 * SCALE", "return 1 / 0 + X0 * SCALE")
    result = run_job(eval_job(problem, offline(problem, 2), broken))
    assert not result.valid and "division by zero" in (result.error or "")


HOSTILE = '''def evaluate(program_path):
    import os
    secret = os.environ.get("{secret}")
    try:
        with open({target!r}, "w") as handle:
            handle.write("escaped")
        wrote = "wrote"
    except OSError as exc:
        wrote = "failed: " + type(exc).__name__
    return {{**_evaluate(program_path), "saw_key": secret is not None, "write": wrote}}


def _evaluate(program_path):'''


def hostile(target: Path) -> str:
    """The example's evaluator, which also reads the host's key and writes to `target`."""
    return OPENEVOLVE_EVALUATOR.replace("def evaluate(program_path):",
                                        HOSTILE.format(secret=SECRET, target=str(target)))


def test_an_imported_evaluator_is_contained(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET, "sk-test-not-for-the-sandbox")
    target = tmp_path / "outside" / "escaped.txt"
    target.parent.mkdir()
    source = openevolve_example(tmp_path / "peer", hostile(target))
    problem = import_peer(source, None, tmp_path / "problems").problem
    result = run_job(eval_job(problem, offline(problem, 2), problem.initial_code))
    assert result.valid and result.score == pytest.approx(2 / 3)  # still produced
    assert result.metrics["saw_key"] is False  # the host's API key is not visible
    locked = {p.name: p.active for p in protection_report()}
    if not locked.get("read_only_filesystem"):
        pytest.skip("this host cannot lock the sandbox's filesystem down")
    assert str(result.metrics["write"]).startswith("failed: ")
    assert not target.exists()


def test_show_and_the_run_header_say_self_scored(tmp_path: Path) -> None:
    problem = import_peer(openevolve_example(tmp_path / "peer"), None, tmp_path / "p").problem
    shown = subprocess.run([sys.executable, "-m", "adrs", "problems", "show",
                            str(problem.root)], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and "trust: self-scored" in shown.stdout
    run = subprocess.run([sys.executable, "-m", "adrs", "run", str(problem.root),
                          "--iterations", "3", "--backend", "local", "--run-dir",
                          str(tmp_path / "r")], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    first = run.stdout.splitlines()[0]
    assert "offline mutator" in first and "self-scored problem" in first
    assert "trust: trusted" in subprocess.run(
        [sys.executable, "-m", "adrs", "problems", "show", "eplb"], capture_output=True,
        text=True, timeout=120).stdout


def test_import_refuses_what_is_not_a_peer_problem(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not an OpenEvolve or ShinkaEvolve problem folder"):
        import_peer(tmp_path)
    source = openevolve_example(tmp_path / "peer")
    import_peer(source, None, tmp_path / "p")
    with pytest.raises(UserError, match="already exists"):
        import_peer(source, None, tmp_path / "p")
    with pytest.raises(UserError, match=r"no initial\.py"):
        import_peer(source, "shinka", tmp_path / "q")


def test_missing_peer_imports_are_listed(tmp_path: Path) -> None:
    source = shinka_example(tmp_path / "peer")
    evaluate = source / "evaluate.py"
    evaluate.write_text("from shinka.core import run_shinka_eval\nimport numpy\n"
                        + evaluate.read_text())
    report = import_peer(source, None, tmp_path / "p")
    assert report.missing_imports == ("shinka",)
    assert "shinka" in report.problem.readme_path.read_text()
    assert load_problem(str(report.problem.root)).self_scored


def test_an_evaluator_returning_openevolves_evaluation_result_runs_without_openevolve(
        tmp_path: Path) -> None:
    """OpenEvolve evaluators often return `openevolve.evaluation_result.EvaluationResult`;
    without openevolve installed, the harness stands in for that one class."""
    wrapped = OPENEVOLVE_EVALUATOR.replace(
        "import importlib.util\n",
        "import importlib.util\nfrom openevolve.evaluation_result import EvaluationResult\n",
        1).replace(
        'return {"combined_score": 1.0 / (1.0 + value), "value": value, "validity": 1.0}',
        'return EvaluationResult(metrics={"combined_score": 1.0 / (1.0 + value), '
        '"validity": 1.0}, artifacts={"note": "ok"})')
    source = openevolve_example(tmp_path / "peer", evaluator=wrapped)
    report = import_peer(source, None, tmp_path / "problems")
    assert "openevolve" not in report.missing_imports
    result = run_job(eval_job(report.problem, RunConfig(), report.problem.initial_code))
    # the guess (1.5, -1.5) is off by 0.5 in each coordinate: f = 0.5, score 1 / 1.5
    assert result.valid and result.score == pytest.approx(1.0 / 1.5)
    assert result.metrics["validity"] == 1.0

"""The command line, run as a user runs it: a subprocess, exit codes, stdout and stderr."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from adrs import __version__
from adrs.config.run_config import load_resolved
from adrs.store.database import DB_NAME, RunEnding, RunStore, run_ending

REPO = Path(__file__).resolve().parents[2]


def adrs(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    if args[:1] == ("run",):  # the process pool: an embedded Ray costs seconds per run
        args = (*args, "--backend", "local")
    return subprocess.run([sys.executable, "-m", "adrs", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout, env=env)


def one_line_error(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0] and "Traceback" not in proc.stderr


def test_run_offline_improves_and_says_so_first(tmp_path: Path) -> None:
    proc = adrs("run", "toy", "--iterations", "40", "--run-dir", str(tmp_path / "r"),
                "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert "offline mutator" in first
    assert "best score" in proc.stdout
    db = sqlite3.connect(tmp_path / "r" / DB_NAME)
    scores = db.execute("SELECT score FROM candidates WHERE valid = 1 ORDER BY id").fetchall()
    assert len(db.execute("SELECT id FROM candidates").fetchall()) == 40
    assert max(s for (s,) in scores) > scores[0][0]
    assert (tmp_path / "r" / "config.yaml").is_file()
    assert (tmp_path / "r" / "events.jsonl").read_text().count("RunStopped") == 1


def test_resume_extends_a_finished_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    assert adrs("run", "toy", "--iterations", "10", "--run-dir", str(run_dir)).returncode == 0
    proc = adrs("resume", str(run_dir), "--iterations", "16")
    assert proc.returncode == 0, proc.stderr
    ids = [i for (i,) in sqlite3.connect(run_dir / DB_NAME).execute(
        "SELECT id FROM candidates ORDER BY id")]
    assert ids == list(range(16))


def test_eval_json(tmp_path: Path) -> None:
    proc = adrs("eval", "toy", str(REPO / "problems" / "toy" / "initial_program.py"), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["valid"] is True and data["error"] is None
    assert 40 < data["score"] < 55 and "cost" in data["metrics"]
    bad = tmp_path / "bad.py"
    bad.write_text("def provision(history):\n    return float('nan')\n")
    proc = adrs("eval", "toy", str(bad), "--json")
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert data["valid"] is False and data["score"] is None and data["error"]


def test_problems_list_and_show() -> None:
    listed = adrs("problems", "list")
    assert listed.returncode == 0 and "toy" in listed.stdout
    shown = adrs("problems", "show", "toy")
    assert shown.returncode == 0 and "provision(history" in shown.stdout


def test_bad_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("stop:\n  iteratons: 5\n")
    proc = adrs("run", "toy", "-c", str(config), "--run-dir", str(tmp_path / "r"))
    one_line_error(proc, "unknown key 'iteratons'")
    config.write_text("evaluation:\n  workers: many\n")
    one_line_error(adrs("run", "toy", "-c", str(config)), "'workers' must be of type int")
    one_line_error(adrs("run", "toy", "-c", str(tmp_path / "missing.yaml")), "does not exist")
    assert not (tmp_path / "r").exists()


def test_bad_problem_folder_is_one_line_and_exit_2(tmp_path: Path) -> None:
    one_line_error(adrs("run", "no-such-problem"), "no problem named 'no-such-problem'")
    folder = tmp_path / "p"
    shutil.copytree(REPO / "problems" / "toy", folder)
    (folder / "problem.yaml").write_text("name: p\nevaluator: x.py:evaluate\n")
    one_line_error(adrs("run", str(folder)), "missing required key 'description'")
    shutil.copy(REPO / "problems" / "toy" / "problem.yaml", folder / "problem.yaml")
    code = (folder / "initial_program.py").read_text()
    (folder / "initial_program.py").write_text(code.replace("# EVOLVE-BLOCK-START\n", ""))
    one_line_error(adrs("run", str(folder)), "EVOLVE-BLOCK")


def test_usage_errors_exit_2() -> None:
    proc = adrs("run")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    one_line_error(adrs("run", "toy", "--llm", "gpt"), "invalid choice")


def test_resume_of_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    one_line_error(adrs("resume", str(tmp_path)), "not an adrs run folder")


def test_a_run_that_evaluates_nothing_exits_1(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    shutil.copytree(REPO / "problems" / "toy", folder)
    code = (folder / "initial_program.py").read_text()
    (folder / "initial_program.py").write_text(code.replace("return level", "return -level"))
    proc = adrs("run", str(folder), "--iterations", "5", "--run-dir", str(tmp_path / "r"))
    assert proc.returncode == 1
    assert "initial program invalid" in proc.stderr


LOGGING_EVALUATOR = '''
import os
from adrs.evaluators.toy import evaluate as toy_evaluate
from adrs.code.program import code_hash

def evaluate(candidate):
    result = toy_evaluate(candidate)
    digest = code_hash(candidate.source)
    with open(os.environ["EVAL_LOG"], "a") as log:
        log.write(digest + "\\n")
    return result
'''


def test_sigkill_then_resume_loses_nothing_evaluated(tmp_path: Path) -> None:
    """SIGKILL mid-run: every stored candidate survives, none is evaluated again."""
    folder = tmp_path / "p"
    shutil.copytree(REPO / "problems" / "toy", folder)
    (folder / "evaluator.py").write_text(LOGGING_EVALUATOR)
    spec = (folder / "problem.yaml").read_text()
    (folder / "problem.yaml").write_text(spec.replace("adrs.evaluators.toy:evaluate",
                                                      "evaluator.py:evaluate"))
    run_dir, log = tmp_path / "r", tmp_path / "evals.log"
    env = {**os.environ, "EVAL_LOG": str(log)}
    proc = subprocess.Popen([sys.executable, "-m", "adrs", "run", str(folder), "--iterations",
                             "400", "--run-dir", str(run_dir), "--backend", "local"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while _count(run_dir) < 25 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _rows(run_dir)
    assert 25 <= len(before) < 400
    resumed = adrs("resume", str(run_dir), "--iterations", str(len(before) + 30), env=env)
    assert resumed.returncode == 0, resumed.stderr
    after = _rows(run_dir)
    assert {k: v for k, v in after.items() if k in before} == before
    evaluated = log.read_text().split()
    stored = [h for (status, h) in before.values() if status == "evaluated"]
    # Each candidate evaluated and stored before the kill was evaluated exactly once, or,
    # if it was a new best, once per evaluation its stored re-evaluations list.
    store = RunStore.open(run_dir, readonly=True)
    try:
        runs = Counter(e.code_hash for e in store.tables.evaluations())
    finally:
        store.close()
    assert runs, "no new best was re-evaluated: the check below would miss re-runs of them"
    assert all(evaluated.count(h) == max(1, runs[h]) for h in stored)
    assert len(after) >= len(before) + 25


def _count(run_dir: Path) -> int:
    try:
        return len(_rows(run_dir))
    except sqlite3.Error:
        return 0


def _rows(run_dir: Path) -> dict[int, tuple[str, str]]:
    if not (run_dir / DB_NAME).exists():
        return {}
    db = sqlite3.connect(run_dir / DB_NAME)
    try:
        return {i: (s, h) for i, s, h in db.execute(
            "SELECT id, status, code_hash FROM candidates")}
    finally:
        db.close()


@pytest.mark.skipif(not hasattr(signal, "SIGINT"), reason="needs POSIX signals")
def test_ctrl_c_stops_cleanly_and_resumes(tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-m", "adrs", "run", "toy", "--iterations", "400",
                             "--run-dir", str(run_dir), "--backend", "local"],
                            stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while _count(run_dir) < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in out and "Traceback" not in err
    count = _count(run_dir)
    assert adrs("resume", str(run_dir), "--iterations", str(count + 5)).returncode == 0
    assert _count(run_dir) >= count + 5


def test_version() -> None:
    proc = adrs("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"adrs {__version__}"


def _progress(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("candidates ")]


def test_resume_shows_the_stored_progress_and_refuses_fewer_iterations(tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    first = adrs("run", "toy", "--iterations", "10", "--run-dir", str(run_dir))
    assert first.returncode == 0, first.stderr
    final = _progress(first.stdout)[-1]
    assert final.startswith("candidates 10/10  best ") and "best -" not in final
    best = final.split("  ")[1]  # "best 50.6926 (#2)"
    # A finished run resumed shows what it holds, not "0/10  best -".
    again = adrs("resume", str(run_dir), "--backend", "local")
    assert again.returncode == 0, again.stderr
    assert _progress(again.stdout)[0].startswith(f"candidates 10/10  {best}")
    # A resumed run counts the stored candidates: it ends at 16/16, not 6/16.
    more = adrs("resume", str(run_dir), "--iterations", "16", "--backend", "local")
    assert more.returncode == 0, more.stderr
    lines = _progress(more.stdout)
    assert lines[0].startswith("candidates 10/16") and lines[-1].startswith("candidates 16/16")
    # Fewer iterations than stored: one line naming the fix, and the run is left as it was.
    one_line_error(adrs("resume", str(run_dir), "--iterations", "10"),
                   "already has 16 candidates")
    proc = adrs("resume", str(run_dir), "--iterations", "16")
    one_line_error(proc, "pass a larger --iterations")
    assert run_ending(run_dir) == RunEnding("finished", "iterations")


def test_resume_takes_backend_flags_for_one_session(tmp_path: Path) -> None:
    """--backend, --workers and --ray-address on resume: validated as on run, used for
    that session only (the stored configuration keeps the run's own)."""
    run_dir = tmp_path / "r"
    assert adrs("run", "toy", "--iterations", "3", "--run-dir", str(run_dir)).returncode == 0
    # A run that joined a cluster: "use --backend local" must be usable to resume it.
    stored = (run_dir / "config.yaml").read_text()
    joined = stored.replace("backend: local", "backend: ray").replace(
        "ray_address: null", "ray_address: 127.0.0.1:1")
    (run_dir / "config.yaml").write_text(joined)
    assert load_resolved(run_dir / "config.yaml").evaluation.ray_address == "127.0.0.1:1"
    proc = adrs("resume", str(run_dir), "--iterations", "5", "--backend", "local",
                "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    assert (run_dir / "config.yaml").read_text() == joined
    one_line_error(adrs("resume", str(run_dir), "--iterations", "6", "--workers", "0"),
                   "'workers' must be at least 1")
    one_line_error(adrs("resume", str(run_dir), "--iterations", "6", "--backend", "thread",
                        "--ray-address", "auto"), "'ray_address' needs backend 'ray'")
    proc = adrs("resume", str(run_dir), "--iterations", "6", "--backend", "gpu")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
    assert run_ending(run_dir) == RunEnding("finished", "iterations")

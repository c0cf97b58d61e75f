"""`--option KEY=VALUE` on the command line: reaches the evaluator, is stored with the run,
and every mistake (unknown name, bad path, bad value) is one line and exit code 2."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from adrs.config.run_config import load_resolved
from adrs.store.database import DB_NAME

REPO = Path(__file__).resolve().parents[2]
TOY_PROGRAM = REPO / "problems" / "toy" / "initial_program.py"

PROBLEM_YAML = """name: scaled
description: a score scaled by a problem option
evaluator: evaluator.py:evaluate
options: {factor: 1, data: null}
defaults:
  evaluation: {limits: {timeout_s: 20}}
"""
EVALUATOR = """from pathlib import Path

from adrs.errors import UserError


def evaluate(candidate, options):
    if options["data"] is not None and not Path(options["data"]).is_file():
        raise UserError(f"data file '{options['data']}' does not exist: fix --option data=")
    return {"score": float(candidate.call("value")) * options["factor"]}
"""
PROGRAM = """# EVOLVE-BLOCK-START
def value():
    return 2.0
# EVOLVE-BLOCK-END
"""


def adrs(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "adrs", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


def one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert all(needle in lines[0] for needle in needles), lines[0]


def scaled_problem(tmp_path: Path) -> Path:
    root = tmp_path / "scaled"
    root.mkdir()
    (root / "problem.yaml").write_text(PROBLEM_YAML, encoding="utf-8")
    (root / "evaluator.py").write_text(EVALUATOR, encoding="utf-8")
    (root / "initial_program.py").write_text(PROGRAM, encoding="utf-8")
    (root / "README.md").write_text("Return a value.\n", encoding="utf-8")
    return root


def test_eval_uses_the_default_and_the_override(tmp_path: Path) -> None:
    root = scaled_problem(tmp_path)
    program = str(root / "initial_program.py")
    assert '"score": 2.0' in adrs("eval", str(root), program, "--json").stdout
    proc = adrs("eval", str(root), program, "--json", "--option", "factor=5")
    assert proc.returncode == 0 and '"score": 10.0' in proc.stdout, proc.stderr


def test_options_reach_the_evaluator_through_the_local_backend(tmp_path: Path) -> None:
    root = scaled_problem(tmp_path)
    run_dir = tmp_path / "run"
    data = tmp_path / "data.txt"
    data.write_text("x", encoding="utf-8")
    proc = adrs("run", str(root), "--iterations", "3", "--backend", "local", "--run-dir",
                str(run_dir), "--option", "factor=3", "--option", "data=data.txt", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    with sqlite3.connect(run_dir / DB_NAME) as db:
        initial = db.execute("SELECT score FROM candidates WHERE id = 0").fetchone()[0]
    assert initial == 6.0
    # Stored as resolved, the relative path made absolute: resume evaluates alike.
    options = load_resolved(run_dir / "config.yaml").problem_options
    assert options == {"factor": 3, "data": str(data)}


def test_an_unknown_option_is_one_line_and_exit_2(tmp_path: Path) -> None:
    root = scaled_problem(tmp_path)
    proc = adrs("eval", str(root), str(root / "initial_program.py"), "--option", "fctor=2")
    one_line_error(proc, "no option 'fctor'", "data, factor")
    proc = adrs("run", str(root), "--backend", "local", "--run-dir", str(tmp_path / "r"),
                "--option", "fctor=2")
    one_line_error(proc, "no option 'fctor'")
    assert not (tmp_path / "r").exists()
    one_line_error(adrs("eval", "toy", str(TOY_PROGRAM), "--option", "trace=x"),
                   "its options: none")
    one_line_error(adrs("eval", "toy", str(TOY_PROGRAM), "--option", "trace"), "KEY=VALUE")


def test_a_bad_path_stops_eval_and_run_with_one_line(tmp_path: Path) -> None:
    root = scaled_problem(tmp_path)
    proc = adrs("eval", str(root), str(root / "initial_program.py"), "--option",
                "data=./missing.txt", cwd=tmp_path)
    one_line_error(proc, f"data file '{tmp_path / 'missing.txt'}' does not exist")
    proc = adrs("run", str(root), "--iterations", "3", "--backend", "local", "--run-dir",
                str(tmp_path / "r"), "--option", "data=./missing.txt", cwd=tmp_path)
    one_line_error(proc, "does not exist")


def test_bundled_evaluators_reject_a_bad_trace_folder(tmp_path: Path) -> None:
    program = str(REPO / "problems" / "cbl" / "initial_program.py")
    one_line_error(adrs("eval", "cbl", program, "--option", f"trace_dir={tmp_path}/nope"),
                   "is not a folder")
    multi = str(REPO / "problems" / "cbl-multi" / "initial_program.py")
    one_line_error(adrs("eval", "cbl-multi", multi, "--option", "accounting=bogus"),
                   "accounting='bogus'")
    one_line_error(adrs("eval", "eplb", str(REPO / "problems" / "eplb" / "initial_program.py"),
                        "--option", f"trace={tmp_path}/nope.json"), "cannot read the EPLB trace")


def test_problems_check_takes_options(tmp_path: Path) -> None:
    root = scaled_problem(tmp_path)
    proc = adrs("problems", "check", str(root), "--option", "factor=4")
    assert proc.returncode == 0, proc.stderr
    assert "score 8" in proc.stdout
    one_line_error(adrs("problems", "check", str(root), "--option", "data=/nope/x"),
                   "does not exist")


def test_a_bad_trace_folder_on_run_creates_nothing_and_starts_no_ray(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Checked before the run folder exists and before any backend (Ray, the default)."""
    from adrs.cli.main import main
    from adrs.run import session

    def no_backend(config: object, forked: object = None) -> None:
        raise AssertionError("a backend was started before the options were checked")

    monkeypatch.setattr(session, "make_backend", no_backend)
    run_dir = tmp_path / "r"
    code = main(["run", "cbl", "--option", f"trace_dir={tmp_path}/nonexistent", "--run-dir",
                 str(run_dir)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "is not a folder" in err[0], err
    assert not run_dir.exists()


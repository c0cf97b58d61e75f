"""`adrs runs | show | best | dashboard | eval | resume` tell the truth about a run and fail
in one line: endings through `run_ending`, one source for every count, unreadable runs
listed, ids never cut, bad paths and bad values refused without a traceback.

Stores are written record by record (no run is started), and the commands run in-process
through `adrs.cli.main.main`, except `eval`, which runs as a user runs it.
"""

from __future__ import annotations

import ast
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from adrs.cli.main import main
from adrs.config.archive import ArchiveConfig
from adrs.config.run_config import RunConfig, dump
from adrs.engine import archive_view as view
from adrs.store.database import DB_NAME, CandidateRecord, RunStore, hold_lock, run_ending
from adrs.types import EvalResult

REPO = Path(__file__).resolve().parents[2]


def record(cid: int, *, score: float | None = 1.0, status: str = "evaluated",
           code: str | None = None, metrics: dict[str, float] | None = None,
           island: int = 0) -> CandidateRecord:
    """A stored candidate: valid with `score`, invalid when `score` is None."""
    result = None
    if status == "evaluated":
        result = EvalResult(valid=True, score=score, metrics=metrics or {}) if score is not None \
            else EvalResult.invalid("it broke", metrics=metrics)
    return CandidateRecord(
        id=cid, status=status, island=island, generation=0 if cid == 0 else 1,  # type: ignore[arg-type]
        parent_ids=() if cid == 0 else (0,), edit_kind="initial" if cid == 0 else "diff",
        created=1.0 + cid, code=code or f"X = {cid}\n" if status != "proposal_failed" else None,
        result=result, error="no edit" if status == "proposal_failed" else None,
        duplicate_of=0 if status == "duplicate" else None)


def make_run(path: Path, records: list[CandidateRecord], ending: str | None = "iterations",
             *, islands: int = 4, problem: str = "toy", root: Path | None = None) -> Path:
    """A run folder holding `records`, whose session ended for `ending` (None: the process
    recorded "running" and then died)."""
    config = RunConfig(archive=ArchiveConfig(islands=islands))
    store = RunStore.create(path, dump(config), {
        "problem": problem, "problem_root": str(root or REPO / "problems" / problem)})
    try:
        for rec in records:
            store.add(rec)
        store.record_ending(ending)
    finally:
        store.close()
    return path


def four_endings(base: Path) -> dict[str, Path]:
    """Runs that finished, were interrupted, failed and were killed."""
    records = [record(0, score=2.0), record(1, score=3.0), record(2, score=None),
               record(3, status="duplicate"), record(4, status="proposal_failed")]
    return {"finished": make_run(base / "toy-1-finished", records, "iterations"),
            "stopped": make_run(base / "toy-2-stopped", records, "interrupted"),
            "failed": make_run(base / "toy-3-failed", records, "error: RuntimeError: boom"),
            "killed": make_run(base / "toy-4-killed", records, None)}


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str, needle: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err, err


# ------------------------------------------------------------------------- item 1: endings
def test_runs_and_show_read_every_ending_through_run_ending(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = four_endings(tmp_path)
    expected = {"finished": "finished: iterations", "stopped": "stopped: interrupted",
                "failed": "failed: RuntimeError: boom", "killed": "killed"}
    code, out, _ = cli(capsys, "runs", "--dir", str(tmp_path), "--json")
    assert code == 0
    listed = {Path(r["run_dir"]).name: r for r in json.loads(out)}
    for kind, path in runs.items():
        shown = listed[path.name]
        assert shown["ending"] == expected[kind] == run_ending(path).text, kind
        assert shown["status"] == kind
    code, out, _ = cli(capsys, "runs", "--dir", str(tmp_path))
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    for kind, path in runs.items():
        assert expected[kind] in " ".join(lines[path.name].split()), (kind, out)
    for kind, path in runs.items():
        code, out, _ = cli(capsys, "show", str(path))
        assert code == 0 and out.splitlines()[0].endswith(f", {expected[kind]}"), (kind, out)
    assert "resume with: adrs resume" in cli(capsys, "show", str(runs["killed"]))[1]
    # A run whose process holds the lock is running, whatever its metadata says.
    with hold_lock(runs["killed"]):
        code, out, _ = cli(capsys, "show", str(runs["killed"]), "--json")
        assert json.loads(out)["ending"] == "running"


# -------------------------------------------------------------------------- item 3: counts
def test_runs_show_and_the_dashboard_count_alike(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from adrs.dashboard.data import RunData
    from adrs.dashboard.views import stats_line

    records = [record(0, score=2.0), *(record(i, score=float(i), island=i % 4)
                                       for i in range(1, 8)),
               record(8, score=None), record(9, status="duplicate"),
               record(10, status="proposal_failed")]
    path = make_run(tmp_path / "toy-1", records, islands=4)
    _, out, _ = cli(capsys, "show", str(path), "--json")
    shown = json.loads(out)
    _, out, _ = cli(capsys, "runs", "--dir", str(tmp_path), "--json")
    listed = json.loads(out)[0]
    expected = {"candidates": 11, "valid": 8, "failures": 2, "duplicates": 1, "best_id": 7}
    for key, value in expected.items():
        assert shown[key] == listed[key] == value, key
    data = RunData(path)
    try:  # the initial program sits on all 4 islands, and counts once
        assert data.counts == view.counts(records)
        assert str(stats_line(data)).startswith("valid 8  failed 2  dup 1  ")
    finally:
        data.close()


# --------------------------------------------------------------- item 4: runs, best, poll
def test_runs_lists_an_unreadable_run_with_its_reason(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    make_run(tmp_path / "toy-1-good", [record(0)])
    (tmp_path / "toy-2-garbage").mkdir()
    (tmp_path / "toy-2-garbage" / DB_NAME).write_bytes(b"not a database" * 100)
    bad_row = make_run(tmp_path / "toy-3-bad-row", [record(0)])
    db = sqlite3.connect(bad_row / DB_NAME)
    db.execute("UPDATE candidates SET result = '{not json'")
    db.commit()
    db.close()
    (tmp_path / "toy-4-empty").mkdir()
    (tmp_path / "toy-4-empty" / DB_NAME).write_bytes(b"")
    (tmp_path / "notes").mkdir()  # not a run: not listed
    code, out, _ = cli(capsys, "runs", "--dir", str(tmp_path), "--json")
    listed = {Path(r["run_dir"]).name: r for r in json.loads(out)}
    assert code == 0 and sorted(listed) == ["toy-1-good", "toy-2-garbage", "toy-3-bad-row",
                                            "toy-4-empty"]
    assert listed["toy-1-good"]["status"] == "finished"
    assert "not a readable run database" in listed["toy-2-garbage"]["error"]
    assert "JSONDecodeError" in listed["toy-3-bad-row"]["error"]
    assert "not an adrs run store" in listed["toy-4-empty"]["error"]
    assert listed["toy-3-bad-row"]["problem"] == "toy"
    assert all(listed[n]["status"] == "unreadable" and listed[n]["candidates"] is None
               for n in ("toy-2-garbage", "toy-3-bad-row", "toy-4-empty"))
    code, out, _ = cli(capsys, "runs", "--dir", str(tmp_path))
    assert code == 0 and out.count("unreadable:") == 3
    assert (tmp_path / "toy-4-empty" / DB_NAME).read_bytes() == b""  # left as it was


def test_runs_never_cuts_the_run_id_at_80_columns(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    names = ["cbl-multi-20250101-120000-12", "toy-with-a-long-experiment-name-20250101-1200"]
    make_run(tmp_path / names[0], [record(0, score=-12345.678901)],
             "initial program invalid: the simulator raised ValueError: no trace us-west-2a",
             problem="cbl-multi")
    make_run(tmp_path / names[1], [record(0, score=51.123456)], problem="toy")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / DB_NAME).write_bytes(b"x" * 1000)
    code, out, _ = cli(capsys, "runs", "--dir", str(tmp_path))
    assert code == 0
    assert all(len(line) <= 80 for line in out.splitlines()), out
    words = out.split()
    for name in [*names, "broken"]:
        assert name in words, (name, out)  # whole, on one line: copy it and paste it
    assert "failed: initial program invalid" in " ".join(words)


def test_best_output_that_is_a_folder_is_one_line(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = make_run(tmp_path / "run", [record(0, score=2.0)])
    code, _, err = cli(capsys, "best", str(path), "-o", str(tmp_path))
    one_line_error(code, err, "is a folder: pass a file name")
    (tmp_path / "file").write_text("")
    code, _, err = cli(capsys, "best", str(path), "-o", str(tmp_path / "file" / "best.py"))
    one_line_error(code, err, "cannot write")


def test_best_of_a_harness_problem_runs_without_adrs(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A txn program imports `harness` (the sandbox provides it): the file inlines it."""
    txn = REPO / "problems" / "txn"
    code = (txn / "initial_program.py").read_text()
    path = make_run(tmp_path / "txn-run", [record(0, score=-1234.0, code=code)], problem="txn",
                    root=txn)
    out = tmp_path / "best.py"
    assert cli(capsys, "best", str(path), "-o", str(out))[0] == 0
    text = out.read_text()
    assert "Standalone" in text and "inlined" in text
    script = ("import runpy, sys\n"
              "ns = runpy.run_path(sys.argv[1])\n"
              "order = ns['get_best_schedule'](['r-1 w-2', 'w-1 r-3 *', 'r-2 w-3', 'w-4'], 5.0)\n"
              "print(sorted(order))\n")
    ran = subprocess.run([sys.executable, "-I", "-c", script, str(out)], capture_output=True,
                         text=True, env={"PATH": os.environ["PATH"]}, cwd=tmp_path, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "[0, 1, 2, 3]"
    ast.parse(text)  # still one valid Python file
    # Where the harness cannot be found, the file says it is not standalone and why.
    moved = make_run(tmp_path / "txn-moved", [record(0, score=-1.0, code=code)],
                     problem="txn", root=tmp_path / "gone")
    code_, stdout, _ = cli(capsys, "best", str(moved))
    header = stdout.split("\n\"\"\"", 1)[0]
    assert code_ == 0 and "Not standalone" in header and "harness.py" in header


def test_best_wraps_many_metrics_in_short_comment_lines(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    metrics = {f"cost[scenario-{i:02d}-us-west-2a]": 123.456789 + i for i in range(36)}
    metrics["cost"] = 4567.0
    hostile = {"x\nimport os  # injected": 1.0}  # a newline must not end the comment
    path = make_run(tmp_path / "cbl-run", [record(0, score=-4567.0,
                                                  metrics={**metrics, **hostile})],
                    problem="cbl")
    code, out, _ = cli(capsys, "best", str(path))
    assert code == 0
    header = out.split("X = 0\n")[0].splitlines()
    assert header and all(line.startswith("#") for line in header), header
    assert max(map(len, header)) <= view.HEADER_WIDTH, max(header, key=len)
    assert len(header) <= view.HEADER_METRIC_LINES + 4
    assert "cost[scenario-00-us-west-2a]=123.457" in out
    compiled = ast.parse(out)
    assert not any(isinstance(node, ast.Import) for node in compiled.body)


def test_dashboard_refuses_a_poll_that_is_not_positive(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    path = make_run(tmp_path / "run", [record(0)])
    for poll in ("0", "-1", "nan", "inf"):
        code, _, err = cli(capsys, "dashboard", str(path), "--poll", poll)
        one_line_error(code, err, "--poll must be a positive number of seconds")


def test_resume_of_an_empty_database_file_leaves_it_untouched(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / DB_NAME).write_bytes(b"")
    for command in ("resume", "show", "best"):
        code, _, err = cli(capsys, command, str(run))
        one_line_error(code, err, "is not an adrs run store")
        assert "another adrs version" not in err
    assert (run / DB_NAME).read_bytes() == b"" and sorted(os.listdir(run)) == [DB_NAME]


# ---------------------------------------------------------------------------- item 4: eval
def adrs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "adrs", *args], capture_output=True,
                          text=True, timeout=120)


def test_eval_of_a_folder_or_a_binary_file_is_one_line(tmp_path: Path) -> None:
    proc = adrs("eval", "toy", str(tmp_path))
    assert proc.returncode == 2 and "is a directory" in proc.stderr
    assert "expected" in proc.stderr or ".py" in proc.stderr
    assert "does not exist" not in proc.stderr and len(proc.stderr.splitlines()) == 1
    binary = tmp_path / "prog.py"
    binary.write_bytes(bytes(range(256)) * 4)
    proc = adrs("eval", "toy", str(binary))
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "not UTF-8 text" in proc.stderr and "Traceback" not in proc.stderr

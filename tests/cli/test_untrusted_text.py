"""Text that evaluators, candidates and LLMs wrote is printed as it is: never read as Rich
markup (a `[/bold]` crashed `adrs eval`; `cost[us-west-2a]` printed as `cost`), and never
passed to the terminal as control characters (ANSI escapes read as `\\x1b[31m`).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from adrs.cli.display import ProgressDisplay
from adrs.cli.main import _report, main
from adrs.config.archive import ArchiveConfig
from adrs.config.run_config import RunConfig, dump
from adrs.engine.controller_state import RunSummary
from adrs.errors import RunFailed
from adrs.store.database import CandidateRecord, RunStore
from adrs.store.events import NewBest, RunStarted, RunStopped
from adrs.types import EvalResult, LLMUsage, Program

LONG = "y" * 5000
# Each must be printed exactly as written (after control characters are escaped).
HOSTILE = ["[/bold]", "[red]x[/red]", "[link=file:///etc/passwd]x[/link]", "cost[us-west-2a]",
           ":warning:"]
ESC = "\x1b[31m"  # printed as the four characters \x1b, then [31m
SHOWN_ESC = "\\x1b[31m"

EVALUATOR = '''
HOSTILE = {hostile!r}
ESC = {esc!r}
LONG = {long!r}


def evaluate(candidate):
    value = candidate.call("value")
    metrics = {{"cost[us-west-2a]": 1.5, "[red]x[/red]": "[/bold]", "esc" + ESC: ESC + "red",
               "[link=file:///etc/passwd]x[/link]": 2}}
    if value < 0:
        return {{"valid": False, "error": " ".join(HOSTILE) + ESC + " boom " + LONG,
                "metrics": metrics, "feedback": "[red]x[/red] " + ESC}}
    return {{"score": float(value), "metrics": metrics, "feedback": "[/bold] " + ESC}}
'''


@pytest.fixture(scope="module")
def hostile_problem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile") / "hostile"
    root.mkdir()
    (root / "problem.yaml").write_text(
        "name: hostile\ndescription: an evaluator that echoes hostile text\n"
        "evaluator: evaluator.py:evaluate\nfeatures: [{name: code_length, bins: 4}]\n"
        "defaults: {evaluation: {limits: {timeout_s: 20}}}\n")
    (root / "evaluator.py").write_text(EVALUATOR.format(hostile=HOSTILE, esc=ESC, long=LONG))
    (root / "initial_program.py").write_text(
        "# EVOLVE-BLOCK-START\ndef value():\n    return 1.0\n# EVOLVE-BLOCK-END\n")
    (root / "README.md").write_text("Echo hostile text.\n")
    return root


def adrs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "adrs", *args], capture_output=True,
                          text=True, timeout=120)


def assert_safe(out: str) -> None:
    assert "\x1b" not in out and "Traceback" not in out


def test_eval_prints_metrics_errors_and_feedback_as_written(hostile_problem: Path,
                                                            tmp_path: Path) -> None:
    good = adrs("eval", str(hostile_problem), str(hostile_problem / "initial_program.py"))
    assert good.returncode == 0, good.stderr
    assert "  cost[us-west-2a]: 1.5" in good.stdout
    assert "  [red]x[/red]: [/bold]" in good.stdout
    assert "  [link=file:///etc/passwd]x[/link]: 2" in good.stdout
    assert f"  esc{SHOWN_ESC}: {SHOWN_ESC}red" in good.stdout
    assert f"feedback: [/bold] {SHOWN_ESC}" in good.stdout
    assert_safe(good.stdout + good.stderr)
    bad = tmp_path / "bad.py"
    bad.write_text("# EVOLVE-BLOCK-START\ndef value():\n    return -1.0\n# EVOLVE-BLOCK-END\n")
    proc = adrs("eval", str(hostile_problem), str(bad))
    assert proc.returncode == 1 and proc.stderr == "", proc.stderr[-2000:]
    error = next(line for line in proc.stdout.splitlines() if line.startswith("error: "))
    assert error == f"error: {' '.join(HOSTILE)}{SHOWN_ESC} boom {LONG}"
    assert_safe(proc.stdout)
    data = json.loads(adrs("eval", str(hostile_problem), str(bad), "--json").stdout)
    assert data["error"].startswith("[/bold] [red]x[/red]")  # JSON carries the raw text


def hostile_run(base: Path) -> Path:
    """A run whose names and texts are hostile: id, problem, metrics, errors, model."""
    path = base / "[bold]x[link=file:]-run"  # a folder name cannot hold a closing tag's /
    store = RunStore.create(path, dump(RunConfig(archive=ArchiveConfig(islands=2))), {
        "problem": "[/bold]prob" + ESC, "problem_root": str(base / "gone")})
    metrics = {"cost[us-west-2a]": 1.5, "[red]x[/red]": "[/bold]", "e" + ESC: ESC}
    usage = LLMUsage(model="[link=file:///etc/passwd]m[/link]" + ESC, calls=1)
    common = {"island": 0, "generation": 0, "created": 1.0, "usage": usage}
    try:
        store.add(CandidateRecord(id=0, status="evaluated", parent_ids=(), edit_kind="initial",
                                  code="X = '[/bold]'\n",
                                  result=EvalResult(True, 2.0, metrics, feedback="[/bold]"),
                                  **common))  # type: ignore[arg-type]
        store.add(CandidateRecord(id=1, status="evaluated", parent_ids=(0,), edit_kind="diff",
                                  code="X = 1\n", result=EvalResult.invalid(
                                      "[/bold] " + ESC + LONG, metrics=metrics),
                                  **common))  # type: ignore[arg-type]
        store.record_ending("error: [/bold] " + ESC)
    finally:
        store.close()
    return path


def test_show_runs_and_best_print_stored_text_as_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    path = hostile_run(tmp_path)
    assert main(["show", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == (f"run {path} — problem [/bold]prob{SHOWN_ESC}, "
                                   f"failed: [/bold] {SHOWN_ESC}")
    assert f"[red]x[/red]=[/bold] cost[us-west-2a]=1.5 e{SHOWN_ESC}={SHOWN_ESC}" in out
    assert_safe(out)
    assert main(["runs", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "[bold]x[link=file:]-run" in out and f"[/bold]prob{SHOWN_ESC}" in out
    assert f"failed: [/bold] {SHOWN_ESC}" in out
    assert_safe(out)
    assert main(["best", str(path)]) == 0
    out = capsys.readouterr().out
    header = [line for line in out.splitlines() if line.startswith("#")]
    assert f"problem '[/bold]prob{SHOWN_ESC}'" in " ".join(header)
    assert "cost[us-west-2a]=1.5" in " ".join(header)
    assert_safe(out)
    assert main(["best", str(path), "-o", str(tmp_path / "best.py")]) == 0
    assert_safe(capsys.readouterr().out)


def test_progress_and_the_final_report_print_names_as_written(tmp_path: Path) -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=300)
    display = ProgressDisplay(console)
    display(RunStarted(run_id="r", run_dir="runs/[red]x[/red]", problem="[/bold]",
                       proposer="LLM ensemble: [link=file:///etc/passwd]m[/link]" + ESC,
                       seed=1, resumed=False, iterations=3))
    display(NewBest(id=0, score=1.0))
    display(RunStopped(reason="iterations", candidates=1, best_id=0, best_score=1.0,
                       cost_usd=0.0))
    program = Program(id=0, code="X = 1\n", result=EvalResult(True, 1.0))
    run_dir = hostile_run(tmp_path)  # its model's name is hostile too
    with pytest.raises(RunFailed, match="run failed"):
        _report(RunSummary(reason="initial program invalid: [/bold] " + ESC, candidates=1,
                           valid=1, best=program, cost_usd=0.0), run_dir, console)
    text = out.getvalue()
    assert f"adrs: LLM ensemble: [link=file:///etc/passwd]m[/link]{SHOWN_ESC}" in text
    assert "run folder: runs/[red]x[/red] (problem [/bold], seed 1)" in text
    assert f"stopped: initial program invalid: [/bold] {SHOWN_ESC};" in text
    assert "adrs resume " + str(run_dir) in text
    assert f"[link=file:///etc/passwd]m[/link]{SHOWN_ESC}" in text.split("adrs resume")[1]
    assert_safe(text)

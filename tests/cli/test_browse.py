"""`adrs runs | show | best | dashboard` and problems from an installed package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from adrs.cli.authoring import scaffold


def adrs(*args: str, env: dict[str, str] | None = None,
         cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "adrs", *args], capture_output=True,
                          text=True, timeout=180, env=env, cwd=cwd)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("browse")
    problem = scaffold("flush", base / "problems")
    config = base / "local.yaml"
    config.write_text("evaluation: {backend: local}\n")
    for name, n in (("a", 12), ("b", 20)):
        proc = adrs("run", str(problem), "-c", str(config), "--iterations", str(n),
                    "--run-dir", str(base / "runs" / name))
        assert proc.returncode == 0, proc.stderr
    (base / "runs" / "not-a-run").mkdir()
    return base / "runs"


def test_runs_lists_each_run(runs: Path) -> None:
    proc = adrs("runs", "--dir", str(runs), "--json")
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)
    assert [(r["problem"], r["candidates"], r["status"]) for r in listed] == [
        ("flush", 12, "finished"), ("flush", 20, "finished")]
    assert all(r["best_score"] > 100 for r in listed)
    text = adrs("runs", cwd=runs.parent)  # default folder: ./runs
    assert text.returncode == 0 and "flush" in text.stdout and "finished" in text.stdout


def test_show_top_k(runs: Path) -> None:
    proc = adrs("show", str(runs / "b"), "--top", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    scores = [row["score"] for row in data["top"]]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    assert data["top"][0]["id"] == data["best_id"] and data["candidates"] == 20
    assert data["valid"] + data["failures"] + data["duplicates"] == 20
    text = adrs("show", str(runs / "b"), "--top", "2")
    assert text.returncode == 0 and f"#{data['best_id']}" in text.stdout


def test_best_writes_a_standalone_program_with_the_stored_score(runs: Path,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "best.py"
    assert adrs("best", str(runs / "b"), "-o", str(out)).returncode == 0
    clean_env = {"PATH": os.environ["PATH"]}  # no adrs on the path: it must run alone
    ran = subprocess.run([sys.executable, "-I", str(out)], capture_output=True, text=True,
                         env=clean_env, cwd=tmp_path, timeout=30)
    assert ran.returncode == 0 and ran.stdout.strip() in ("True", "False")
    shown = json.loads(adrs("show", str(runs / "b"), "--json").stdout)
    scored = json.loads(adrs("eval", str(runs.parent / "problems" / "flush"), str(out),
                             "--json").stdout)
    assert scored["score"] == pytest.approx(shown["best_score"])


def test_bad_run_folders_are_one_line_errors(runs: Path, tmp_path: Path) -> None:
    for args in (("show", str(runs / "not-a-run")), ("best", str(tmp_path / "nope")),
                 ("dashboard", str(tmp_path)), ("show", str(runs / "a"), "--top", "0")):
        proc = adrs(*args)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, args
        assert "Traceback" not in proc.stderr


def test_problem_from_an_installed_package(tmp_path: Path) -> None:
    """A package on sys.path with an installed distribution's metadata (what pip writes)
    registers a problem in the `adrs.problems` entry-point group."""
    site = tmp_path / "site"
    pkg = site / "flushpkg"
    pkg.mkdir(parents=True)
    scaffold("flush_plugin", pkg)
    (pkg / "__init__.py").write_text(
        "from pathlib import Path\n\n\ndef problem_root() -> Path:\n"
        "    return Path(__file__).parent / 'flush_plugin'\n")
    info = site / "flushpkg-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: flushpkg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[adrs.problems]\nflush_plugin = flushpkg:problem_root\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    listed = adrs("problems", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "flush_plugin" in listed.stdout and "toy" in listed.stdout
    checked = adrs("problems", "check", "flush_plugin", env=env)
    assert checked.returncode == 0, checked.stderr
    assert "initial program: valid" in checked.stdout
    assert "flush_plugin" not in adrs("problems", "list").stdout  # gone without the package

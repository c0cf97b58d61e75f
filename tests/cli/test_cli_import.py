"""`adrs problems import` on the command line: exit 0 with what was mapped and ignored, and
2 with one line for a folder that is not a peer problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "problem"))
from peer_examples import openevolve_example


def adrs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "adrs", *args], capture_output=True,
                          text=True, timeout=180)


def test_problems_import_writes_a_checkable_problem(tmp_path: Path) -> None:
    source = openevolve_example(tmp_path / "peer")
    made = adrs("problems", "import", str(source), "--dir", str(tmp_path / "out"))
    assert made.returncode == 0, made.stderr
    root = tmp_path / "out" / "function_minimization"
    assert "imported openevolve problem" in made.stdout and "self-scored" in made.stdout
    assert "mapped   max_iterations -> stop.iterations = 50" in made.stdout
    assert "ignored  database.migration_rate: adrs migrates a count" in made.stdout
    checked = adrs("problems", "check", str(root))
    assert checked.returncode == 0, checked.stderr
    assert "initial program: valid, score 0.666667" in checked.stdout


def test_problems_import_with_from_shinka_on_an_openevolve_folder_fails(tmp_path: Path) -> None:
    source = openevolve_example(tmp_path / "peer")
    proc = adrs("problems", "import", str(source), "--from", "shinka", "--dir", str(tmp_path))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "no initial.py" in proc.stderr


def test_problems_import_of_a_plain_folder_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    proc = adrs("problems", "import", str(tmp_path), "--dir", str(tmp_path / "out"))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1
    assert "is not an OpenEvolve or ShinkaEvolve problem folder" in proc.stderr
    assert not (tmp_path / "out").exists()

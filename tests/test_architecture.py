"""The layering of docs/architecture.md, as import-linter contracts (pyproject.toml), and the
import rules of what runs inside the sandbox (problem programs and harnesses)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")
needs_lint = pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed "
                                "(pip install -e '.[dev]')")


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT), str(root / "pyproject.toml")], cwd=root,
                          env=env, capture_output=True, text=True, timeout=120)


@needs_lint
def test_the_contracts_hold() -> None:
    proc = lint(REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


@needs_lint
def test_a_deliberate_violation_breaks_a_contract(tmp_path: Path) -> None:
    """The engine importing the command line is caught (on a copy of the package)."""
    for name in ("adrs", "evaluators"):
        shutil.copytree(REPO / name, tmp_path / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    mutator = tmp_path / "adrs" / "engine" / "mutator.py"
    mutator.write_text(mutator.read_text() + "\nimport adrs.cli.main  # a deliberate violation\n")
    proc = lint(tmp_path)
    assert proc.returncode != 0
    assert "adrs.engine is not allowed to import adrs.cli" in proc.stdout, proc.stdout


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def sandboxed_files() -> list[Path]:
    """Every file a problem runs in the sandbox: its programs and its harness."""
    files = sorted((REPO / "problems").glob("*/*.py"))
    for spec in sorted((REPO / "problems").glob("*/problem.yaml")):
        harness = yaml.safe_load(spec.read_text()).get("harness")
        if harness:
            files.append((spec.parent / harness).resolve())
    return files


@pytest.mark.parametrize("path", sandboxed_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_what_runs_in_the_sandbox_imports_nothing_from_adrs(path: Path) -> None:
    """adrs is not importable in the sandbox: a program or harness that needed it would
    fail there (and would reach for the trusted side's code)."""
    assert not {m for m in imported_modules(path) if m == "adrs" or m.startswith("adrs.")}


def test_no_class_has_more_than_15_methods() -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from sizes import class_sizes
    finally:
        sys.path.remove(str(REPO / "scripts"))
    assert [name for methods, name in class_sizes() if methods > 15] == []

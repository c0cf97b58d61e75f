"""`adrs problems check --adversarial PATH`: output lines and exit codes (0 all held, 1 a
probe leaked, 2 bad input), on small problems written here and evaluated for real."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from adrs.sandbox.candidate import protections

# Without lockdown the sandbox sees the host's files and /tmp: the trusted-data and
# persistent-state probes then rightly leak on every problem.
LOCKED = protections()["private_filesystem"] and protections()["ipc_namespace"]
needs_lockdown = pytest.mark.skipif(not LOCKED, reason="the sandbox is not locked down here")

PROGRAM = '''"""Estimate the mean of a list of numbers."""

# EVOLVE-BLOCK-START
def solve(values):
    return {"estimate": sorted(values)[len(values) // 2]}
# EVOLVE-BLOCK-END
'''

# Scores the program's estimate itself; with TRUST_CLAIMS, takes a `score` it reports.
EVALUATOR = '''
import random

TRUST_CLAIMS = {trust}


def evaluate(candidate):
    rng = random.Random(3)
    total = 0.0
    for _ in range(10):
        values = [rng.uniform(0.0, 10.0) for _ in range(40)]
        reply = candidate.call("solve", values)
        if not isinstance(reply, dict):
            return {{"valid": False, "error": "solve must return a dict"}}
        if TRUST_CLAIMS and "score" in reply:
            total += float(reply["score"])
        else:
            total -= abs(float(reply["estimate"]) - sum(values) / len(values))
    return {{"score": total / 10}}
'''


def write_problem(parent: Path, name: str, trust: bool) -> Path:
    root = parent / name
    root.mkdir()
    (root / "initial_program.py").write_text(PROGRAM)
    (root / "evaluator.py").write_text(EVALUATOR.format(trust=trust))
    (root / "README.md").write_text("# median\n\nEstimate the mean.\n")
    (root / "problem.yaml").write_text(f"name: {name}\ndescription: test\nevaluator: "
                                       "evaluator.py:evaluate\n")
    return root


def adrs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "adrs", *args], capture_output=True,
                          text=True, timeout=300)


@needs_lockdown
def test_all_held_exits_0_with_one_line_per_probe(tmp_path: Path) -> None:
    proc = adrs("problems", "check", "--adversarial", str(write_problem(tmp_path, "fair",
                                                                          False)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("ok  problem.yaml: name 'fair'")
    probes = [line for line in lines if line.startswith(("held ", "LEAKED ", "inconclusive "))]
    assert [line.split(":")[0] for line in probes] == [
        "held     input replay", "held     memoize", "held     series overlap",
        "held     trusted data", "held     persistent state", "held     timing games",
        "held     self-score"]
    assert "no input reached a process twice (10 calls in 1 process" in probes[0]
    assert lines[-1].startswith("7 probes: 7 held, 0 leaked, 0 inconclusive (")
    assert lines[-2].startswith("adversarial check of 'fair': baseline score ")


@needs_lockdown
def test_a_leak_exits_1_and_names_it(tmp_path: Path) -> None:
    proc = adrs("problems", "check", str(write_problem(tmp_path, "trusting", True)),
                "--adversarial")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    leaked = [line for line in proc.stdout.splitlines() if line.startswith("LEAKED")]
    assert len(leaked) == 1 and leaked[0].startswith(
        "LEAKED   self-score: a score claimed in every reply; score 1e+09 vs baseline")
    assert "7 probes: 6 held, 1 leaked, 0 inconclusive" in proc.stdout


def test_bad_input_exits_2_with_one_line(tmp_path: Path) -> None:
    missing = adrs("problems", "check", "--adversarial", str(tmp_path / "missing"))
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    root = write_problem(tmp_path, "fair", False)
    option = adrs("problems", "check", "--adversarial", str(root), "--option", "depth=3")
    assert option.returncode == 2 and "has no option 'depth'" in option.stderr
    (root / "initial_program.py").write_text(PROGRAM.replace('{"estimate": sorted(values)'
                                                             '[len(values) // 2]}', "None"))
    broken = adrs("problems", "check", "--adversarial", str(root))
    assert broken.returncode == 2 and "the evaluator rejects the initial program" in \
        broken.stderr and "LEAKED" not in broken.stdout

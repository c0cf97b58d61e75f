"""Record then replay a run whose evaluator reports measured times (issue 15): the prompts
differ in those figures only, the replay answers from the recording, gives the same
archive and says how many prompts drifted; a prompt that differs otherwise still stops the
replay with one line (exit 2). Through the loopback OpenAI-compatible server."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from openai_server import FakeOpenAI, Reply, Script, good_diff, parent_code

from adrs.cli.main import main
from adrs.store.database import RunStore

TIMED = '''"""The toy evaluator plus the wall-clock time of the evaluation, as txn reports it."""
import time

from adrs.evaluators.toy import evaluate as toy


def evaluate(candidate):
    start = time.perf_counter()
    result = toy(candidate)
    spent = time.perf_counter() - start
    result["metrics"]["runtime_s"] = round(spent, 6)
    result["metrics"]["runtime_s[W1]"] = round(spent / 3, 6)
    result["feedback"] += f" Evaluated in {spent:.4f} s."
    return result
'''


@pytest.fixture(autouse=True)
def key_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ADRS_TEST_KEY", "sk-test-5e1c")
    yield


def timed_problem(tmp_path: Path) -> Path:
    root = tmp_path / "timed"
    toy = Path(__file__).resolve().parents[2] / "problems" / "toy"
    shutil.copytree(toy, root, ignore=shutil.ignore_patterns("README.md"))
    spec = yaml.safe_load((toy / "problem.yaml").read_text())
    spec.update(name="timed", evaluator="timed.py:evaluate")
    (root / "problem.yaml").write_text(yaml.safe_dump(spec))
    (root / "timed.py").write_text(TIMED)
    return root


def view(run_dir: Path) -> list[tuple[Any, ...]]:
    store = RunStore.open(run_dir, readonly=True)
    try:
        return [(r.id, r.status, r.code_hash, r.parent_ids, r.result and r.result.score,
                 r.notes) for r in store.records()]
    finally:
        store.close()


def replay(problem: Path | str, recording: Path, run_dir: Path, iterations: int = 10) -> int:
    return main(["run", str(problem), "--replay", str(recording), "--iterations",
                 str(iterations), "--backend", "thread", "--run-dir", str(run_dir)])


def record(problem: Path | str, script: Script, tmp_path: Path, iterations: int = 10) -> Path:
    """A live run through the loopback server, recorded; returns the recording."""
    recording, config = tmp_path / "exchanges.jsonl", tmp_path / "live.yaml"
    server = FakeOpenAI(script)
    with server.running():
        config.write_text(yaml.safe_dump({"llm": {"timeout_s": 5.0, "models": [{
            "name": "openai/model-a", "api_base": server.url,
            "api_key_env": "ADRS_TEST_KEY"}]}}))
        assert main(["run", str(problem), "-c", str(config), "--llm", "litellm",
                     "--iterations", str(iterations), "--backend", "thread", "--record",
                     str(recording), "--run-dir", str(tmp_path / "live")]) == 0
    return recording


def test_a_replay_with_other_measured_times_gives_the_same_archive(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    problem = timed_problem(tmp_path)
    recording = record(problem, lambda body, number: Reply(text=good_diff(body)), tmp_path)
    capsys.readouterr()
    assert replay(problem, recording, tmp_path / "replayed") == 0
    err = capsys.readouterr().err
    assert "prompts differed from the recording in figures only" in err, err
    assert view(tmp_path / "live") == view(tmp_path / "replayed")
    assert len(view(tmp_path / "live")) == 10

    task = problem / "TASK.md"  # another task statement: the run diverged
    task.write_text(task.read_text() + "\nPrefer a small WINDOW.\n")
    assert replay(problem, recording, tmp_path / "diverged") == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "asks another prompt than the one recorded" in lines[0], lines


def txn_edit(body: dict[str, Any], number: int) -> Reply:
    """An edit of the txn program's SEED and SAMPLE_SIZE lines."""
    code, blocks = parent_code(body), []
    for name, value in (("SEED", 7 + number * 13 % 97), ("SAMPLE_SIZE", 4 + number % 9)):
        match = re.search(rf"^{name} = .*$", code, re.M)
        if match:
            blocks.append(f"<<<<<<< SEARCH\n{match.group(0)}\n=======\n{name} = {value}\n"
                          ">>>>>>> REPLACE\n")
    return Reply(text="Try another sample.\n\n" + "".join(blocks))


def test_a_txn_run_replays(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """txn's prompts show runtimes in its metrics, its per-workload table, its feedback and
    its comparison line (ordered by the size of each change)."""
    recording = record("txn", txn_edit, tmp_path, iterations=12)
    capsys.readouterr()
    assert replay("txn", recording, tmp_path / "replayed", iterations=12) == 0
    assert "prompts differed from the recording in figures only" in capsys.readouterr().err
    live = view(tmp_path / "live")
    assert live == view(tmp_path / "replayed")
    assert len({row[2] for row in live}) > 6  # the edits made other programs

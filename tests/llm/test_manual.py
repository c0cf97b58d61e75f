"""Manual mode: a thread plays the LLM by answering prompt files in the run folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from openai_server import good_rewrite

from adrs.cli.main import main
from adrs.store.database import RunEnding, RunStore, run_ending


def answer_prompts(folder: Path, stop: threading.Event, answered: list[str]) -> None:
    while not stop.is_set():
        for prompt in sorted(folder.glob("*.prompt.md")) if folder.is_dir() else []:
            response = prompt.with_name(prompt.name.replace(".prompt.md", ".response.md"))
            if not response.exists():
                text = prompt.read_text(encoding="utf-8")
                body = {"messages": [{"role": "user", "content": text}]}
                response.write_text(good_rewrite(body), encoding="utf-8")
                answered.append(prompt.name)
        time.sleep(0.02)


def test_a_run_in_manual_mode_reads_the_response_files(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    config = tmp_path / "manual.yaml"
    config.write_text(yaml.safe_dump({"llm": {"manual_poll_s": 0.02}}))
    stop, answered = threading.Event(), []
    helper = threading.Thread(target=answer_prompts, args=(run_dir / "manual", stop, answered))
    helper.start()
    try:
        code = main(["run", "toy", "--llm", "manual", "-c", str(config), "--iterations", "6",
                     "--backend", "thread", "--run-dir", str(run_dir)])
    finally:
        stop.set()
        helper.join()
    assert code == 0
    assert sorted(answered) == sorted(p.name for p in (run_dir / "manual").glob("*.prompt.md"))
    store = RunStore.open(run_dir, readonly=True)
    records = list(store.records())
    store.close()
    assert len(records) == 6
    for r in records[1:]:
        assert r.usage.model == "manual" and r.usage.calls == r.attempts
        assert r.response == (run_dir / "manual" / f"{r.id}-0.response.md").read_text()
    prompt = (run_dir / "manual" / "1-0.prompt.md").read_text()
    assert "## system" in prompt and "## user" in prompt and "1-0.response.md" in prompt


@pytest.mark.timeout(180)
@pytest.mark.skipif(not hasattr(signal, "SIGINT"), reason="needs POSIX signals")
def test_ctrl_c_while_waiting_for_answers_exits_130_and_resumes(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) while the last
    prompts wait for answers: exit code 130, the run stopped and resumable, not finished."""
    run_dir = tmp_path / "run"
    config = tmp_path / "manual.yaml"
    config.write_text(yaml.safe_dump({"llm": {"manual_poll_s": 0.02}}))
    proc = subprocess.Popen([sys.executable, "-m", "adrs", "run", "toy", "--llm", "manual",
                             "-c", str(config), "--iterations", "4", "--backend", "local",
                             "--run-dir", str(run_dir)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    manual = run_dir / "manual"
    deadline = time.monotonic() + 90
    while not (manual / "3-0.prompt.md").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    # Answer candidate 1 only (evaluated by a pool worker), then Ctrl-C while 2 and 3 wait.
    prompt = (manual / "1-0.prompt.md").read_text(encoding="utf-8")
    (manual / "1-0.response.md").write_text(
        good_rewrite({"messages": [{"role": "user", "content": prompt}]}), encoding="utf-8")
    while _stored(run_dir) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "stopped: interrupted; 2 candidates" in out, out
    assert err == ""  # no traceback, from this process or its workers
    assert run_ending(run_dir) == RunEnding("stopped", "interrupted")
    stop, answered = threading.Event(), list[str]()
    helper = threading.Thread(target=answer_prompts, args=(run_dir / "manual", stop, answered))
    helper.start()
    try:
        code = main(["resume", str(run_dir), "--backend", "thread"])
    finally:
        stop.set()
        helper.join()
    assert code == 0
    store = RunStore.open(run_dir, readonly=True)
    assert [r.id for r in store.records()] == [0, 1, 2, 3]
    store.close()
    assert run_ending(run_dir) == RunEnding("finished", "iterations")


def _stored(run_dir: Path) -> int:
    try:
        store = RunStore.open(run_dir, readonly=True)
    except Exception:
        return 0
    try:
        return store.count()
    finally:
        store.close()

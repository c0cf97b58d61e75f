"""Releasing a finished sandbox in the background: after the verdict, never lost, bounded."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pytest
from sandbox_procs import processes_in

from adrs.sandbox import process as process_module
from adrs.sandbox import sweeper as sweeper_module
from adrs.sandbox.candidate import Candidate, Limits
from adrs.sandbox.sweeper import MAX_PENDING, SWEEPER, Sweeper

pytestmark = pytest.mark.timeout(60)

FAST = Limits(timeout_s=10.0, memory_mb=1024)
HARNESS = Path(__file__).resolve().parents[2] / "problems" / "toy" / "harness.py"
ECHO = "def f(x):\n    return x\n"


def test_release_later_leaves_the_end_and_the_clean_up_to_the_sweeper(
        monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()
    real = process_module.remove_tree

    def slow_remove(path: str) -> str | None:
        gate.wait(10)
        return real(path)

    monkeypatch.setattr(process_module, "remove_tree", slow_remove)
    with Candidate(ECHO, FAST, release_later=True) as candidate:
        assert candidate.call("f", 2) == 2
        proc = candidate.process.proc
    workdir = candidate.workdir
    assert workdir is not None and os.path.isdir(workdir)  # still there: the sweeper waits
    assert candidate.process.req == candidate.process.rep == -1  # pipes closed, kill sent
    assert candidate.cleanup_error is None
    gate.set()
    assert SWEEPER.flush()
    assert proc is not None and proc.returncode is not None  # reaped by the sweeper
    assert not os.path.exists(workdir)


def test_without_release_later_close_frees_everything_before_returning() -> None:
    with Candidate(ECHO, FAST) as candidate:
        assert candidate.call("f", 1) == 1
    assert candidate.workdir is not None and not os.path.exists(candidate.workdir)


def test_output_tails_are_kept_before_close_returns() -> None:
    source = "import sys\ndef f():\n    print('to stderr', file=sys.stderr)\n"
    with Candidate(source, FAST, release_later=True) as candidate:
        candidate.call("f")
    assert "to stderr" in candidate.stderr_tail()
    assert SWEEPER.flush()


def test_a_release_that_fails_is_logged_not_raised(monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(process_module, "remove_tree", lambda path: "PermissionError: no")
    failures = SWEEPER.failures
    with caplog.at_level(logging.WARNING, logger=sweeper_module.__name__), \
            Candidate(ECHO, FAST, release_later=True) as candidate:
        candidate.call("f", 0)
    assert SWEEPER.flush()
    assert SWEEPER.failures == failures + 1
    assert "could not be fully cleaned up" in caplog.text and "PermissionError" in caplog.text
    monkeypatch.undo()
    assert candidate.workdir is not None
    assert process_module.remove_tree(candidate.workdir) is None


def test_a_raising_release_counts_as_a_failure() -> None:
    sweeper = Sweeper()

    def broken() -> str | None:
        raise RuntimeError("bug")

    sweeper.submit(broken)
    assert sweeper.flush()
    assert sweeper.failures == 1


def test_past_max_pending_the_caller_runs_the_release_itself() -> None:
    sweeper = Sweeper()
    gate, ran_by = threading.Event(), []

    def blocked() -> str | None:
        gate.wait(10)
        return None

    def record() -> str | None:
        ran_by.append(threading.current_thread().name)
        return None

    for _ in range(MAX_PENDING):
        sweeper.submit(blocked)
    sweeper.submit(record)  # the queue is full: runs here, at once
    assert ran_by == [threading.current_thread().name]
    gate.set()
    assert sweeper.flush()


def test_flush_times_out_while_a_release_is_stuck() -> None:
    sweeper, gate = Sweeper(), threading.Event()
    sweeper.submit(lambda: gate.wait(10) and None)
    assert not sweeper.flush(timeout_s=0.05)
    gate.set()
    assert sweeper.flush()


def test_a_forked_child_starts_with_an_empty_sweeper() -> None:
    sweeper, gate = Sweeper(), threading.Event()
    sweeper.submit(lambda: gate.wait(10) and None)  # busy in the parent at the fork
    pid = os.fork()
    if pid == 0:  # the parent's lock and pending work must not block the child
        ok = sweeper.flush(timeout_s=1.0)
        sweeper.submit(lambda: None)
        os._exit(0 if ok and sweeper.flush(timeout_s=5.0) else 1)
    gate.set()
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert sweeper.flush()


def test_a_fault_of_the_kill_is_the_verdicts_not_the_sweepers(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A kill that faults voids the result (cleanup_error, at once); the release that
    follows went through, so the sweeper neither counts nor logs a failure for it."""
    real_kill = process_module.SandboxProcess._signal  # the kill sent before the verdict

    def faulty_kill(self: process_module.SandboxProcess) -> None:
        real_kill(self)
        raise OSError("the kill faulted")

    monkeypatch.setattr(process_module.SandboxProcess, "_signal", faulty_kill)
    failures = SWEEPER.failures
    with caplog.at_level(logging.WARNING, logger=sweeper_module.__name__), \
            Candidate(ECHO, FAST, release_later=True) as candidate:
        candidate.call("f", 0)
    assert candidate.cleanup_error == "OSError: the kill faulted"
    assert SWEEPER.flush()
    assert SWEEPER.failures == failures and "could not be fully" not in caplog.text
    assert candidate.workdir is not None and not os.path.exists(candidate.workdir)


def test_a_candidate_still_busy_when_close_returns_is_ended_by_the_sweeper() -> None:
    """close no longer waits for the sandbox's end (release_later): a candidate that keeps
    a thread writing, and a setsid() child sleeping, after its last call still ends, is
    reaped and removed; what it wrote before close is in the tail."""
    source = ("import os, sys, threading, time\n"
              "def spam():\n    while True:\n        print('busy', file=sys.stderr)\n"
              "        time.sleep(0.001)\n"
              "def f():\n    threading.Thread(target=spam, daemon=True).start()\n"
              "    time.sleep(0.05)\n"
              "    if os.fork() == 0:\n        os.setsid()\n        time.sleep(60)\n"
              "    return 1\n")
    with Candidate(source, FAST, release_later=True) as candidate:
        assert candidate.call("f") == 1
        proc, workdir = candidate.process.proc, candidate.workdir
        assert workdir is not None and len(processes_in(workdir)) >= 2
    assert "busy" in candidate.stderr_tail()
    assert SWEEPER.flush()
    assert proc is not None and proc.returncode is not None
    assert not os.path.exists(workdir)
    assert processes_in(workdir) == []

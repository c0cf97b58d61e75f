"""ForkedBackend: evaluation workers forked from the run's process.

Each scenario runs in a fresh interpreter (tests/evaluation/forked_scenarios.py): a fork
is safe only in a process without other threads, which pytest's is not.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from adrs.evaluation import forked

SCENARIOS = Path(__file__).with_name("forked_scenarios.py")


def scenario(name: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, str(SCENARIOS), name], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    answer: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return answer


def test_jobs_run_two_at_a_time_in_forked_workers() -> None:
    seen = scenario("jobs")
    workers, me = seen["workers"], seen["me"]
    assert isinstance(workers, list) and len(set(workers)) == 2
    assert set(seen["pids"]) == set(workers)  # type: ignore[arg-type]
    assert seen["ppids"] == [me] * 4  # children of the run's process
    assert 0.55 < seen["wall"] < 1.15  # type: ignore[operator]  # 2 x 0.3 s, not 4 x 0.3 s
    assert seen["reaped"] is True


def test_a_user_error_of_a_job_reaches_the_caller() -> None:
    assert scenario("errors") == {
        "message": "the option 'trace' names no file: give an existing one"}


def test_a_worker_that_dies_fails_its_job_and_the_later_ones() -> None:
    messages = scenario("death")["messages"]
    assert isinstance(messages, list) and len(messages) == 2
    assert "evaluation worker 0" in messages[0] and "died with exit status 3" in messages[0]
    assert messages[1] == messages[0]


def test_close_finishes_the_running_job_and_cancels_the_waiting_ones() -> None:
    assert scenario("close") == {"done": [True, False, False],
                                 "cancelled": [False, True, True],
                                 "refused": True, "reaped": True}


def test_an_interrupt_stops_a_running_job_at_once() -> None:
    assert scenario("interrupted") == {"failed": True, "fast": True, "reaped": True,
                                       "sandboxes": 0}


def test_a_refused_fork_leaves_no_worker_behind() -> None:
    assert scenario("refused") == {"error": "Resource temporarily unavailable",
                                   "children_left": False}


def test_workers_die_with_the_process_that_forked_them() -> None:
    proc = subprocess.Popen([sys.executable, str(SCENARIOS), "orphans"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    workers = json.loads(proc.stdout.readline())["workers"]
    proc.wait(timeout=60)
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in workers):
        assert time.monotonic() < deadline, f"workers {workers} outlived their parent"
        time.sleep(0.05)


def test_real_evaluations_in_workers_that_share_the_warmed_up_zygote() -> None:
    assert scenario("real") == {"safe": True, "valid": [True, True],
                                "parent_holds_zygote": False, "zygotes": 1, "reaped": True}


def test_no_fork_while_another_thread_runs() -> None:
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    other.start()
    try:
        assert not forked.fork_safe()
    finally:
        stop.set()
        other.join()


def test_workers_must_be_at_least_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        forked.ForkedBackend(0)

"""The deferred backend: jobs run at once on the interim backend while the real one starts
in the background, move to it once it is up, and a short run never starts it; the fast
exit kills what the process started and keeps what it printed."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path

import pytest

from adrs.errors import UserError
from adrs.evaluation.backends import EvalBackend, ThreadBackend
from adrs.evaluation.deferred import DeferredBackend, wait_closed
from adrs.evaluation.runner import EvalJob
from adrs.types import EvalResult

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]
JOB = EvalJob(str(REPO), "evaluators/toy.py:evaluate",
              (REPO / "problems" / "toy" / "initial_program.py").read_text())


class Counted:
    """A real thread backend that counts the jobs handed to it, and its closes."""

    def __init__(self) -> None:
        self.backend, self.jobs, self.closed = ThreadBackend(2), 0, 0

    @property
    def workers(self) -> int:
        return 2

    def submit(self, job: EvalJob) -> Future[EvalResult]:
        self.jobs += 1
        return self.backend.submit(job)

    def close(self) -> None:
        self.closed += 1
        self.backend.close()


def test_jobs_run_on_the_interim_backend_until_the_real_one_is_up() -> None:
    interim, real, may_start = Counted(), Counted(), threading.Event()

    def start() -> EvalBackend:
        may_start.wait(30)
        return real

    backend = DeferredBackend(start, interim)
    assert backend.submit(JOB).result(60).valid  # the real one is still starting
    assert (interim.jobs, real.jobs, backend.started) == (1, 0, False)
    may_start.set()
    deadline = time.monotonic() + 30
    while not backend.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert backend.submit(JOB).result(60).valid
    assert (interim.jobs, real.jobs) == (1, 1)
    backend.close()
    wait_closed()
    assert (interim.closed, real.closed) == (1, 1)


def test_a_run_shorter_than_the_delay_never_starts_the_real_backend() -> None:
    interim, calls = Counted(), []

    def start() -> EvalBackend:
        calls.append(1)
        return Counted()

    backend = DeferredBackend(start, interim, delay_s=30.0)
    assert backend.submit(JOB).result(60).valid
    started = time.monotonic()
    backend.close()
    wait_closed()
    assert time.monotonic() - started < 5.0 and not calls and interim.closed == 1
    with pytest.raises(RuntimeError, match="after close"):
        backend.submit(JOB)


def test_close_does_not_wait_for_a_slow_start_and_the_closer_closes_it() -> None:
    real, may_start = Counted(), threading.Event()

    def start() -> EvalBackend:
        may_start.wait(30)
        return real

    backend = DeferredBackend(start, Counted())
    backend.submit(JOB).result(60)
    started = time.monotonic()
    backend.close()
    assert time.monotonic() - started < 5.0 and real.closed == 0
    may_start.set()
    wait_closed()
    assert real.closed == 1


class Preparing(Counted):
    """A real backend that must be prepared: `prepare` records its job and waits for
    `ready` (or the stop event)."""

    def __init__(self) -> None:
        super().__init__()
        self.prepared: list[EvalJob] = []
        self.ready = threading.Event()

    def prepare(self, job: EvalJob, stop: threading.Event) -> None:
        self.prepared.append(job)
        while not (self.ready.is_set() or stop.is_set()):
            time.sleep(0.005)


def wait_until(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_jobs_move_to_the_real_backend_only_once_it_is_prepared_for_the_first_job(
        ) -> None:
    interim, real = Counted(), Preparing()
    backend = DeferredBackend(lambda: real, interim)
    first = replace(JOB, source=JOB.source + "\n# first\n")
    assert backend.submit(first).result(60).valid
    wait_until(lambda: bool(real.prepared))
    assert backend.submit(JOB).result(60).valid  # still preparing: the interim's
    assert (real.prepared, interim.jobs, real.jobs, backend.started) == ([first], 2, 0,
                                                                         False)
    real.ready.set()
    wait_until(lambda: backend.started)
    assert backend.submit(JOB).result(60).valid
    assert (interim.jobs, real.jobs) == (2, 1)
    backend.close()
    wait_closed()
    assert real.closed == 1


def test_close_stops_the_preparation_and_closes_the_real_backend() -> None:
    real = Preparing()
    backend = DeferredBackend(lambda: real, Counted())
    backend.submit(JOB).result(60)
    wait_until(lambda: bool(real.prepared))
    started = time.monotonic()
    backend.close()
    wait_closed()
    assert time.monotonic() - started < 5.0 and real.closed == 1 and real.jobs == 0


def test_a_real_backend_that_cannot_start_fails_the_later_jobs() -> None:
    def start() -> EvalBackend:
        raise UserError("could not start an embedded Ray: boom")

    backend = DeferredBackend(start, Counted())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        future = backend.submit(JOB)
        if future.exception(60) is not None:
            break
    with pytest.raises(UserError, match="boom"):
        future.result()
    backend.close()


def test_the_session_s_stderr_shows_while_the_real_backend_starts(tmp_path: Path) -> None:
    code = (
        "import os, sys, time\n"
        "from adrs.evaluation.deferred import DeferredBackend, wait_closed\n"
        "from adrs.evaluation.backends import ThreadBackend\n"
        "from adrs.evaluation.runner import EvalJob\n"
        "def start():  # like an embedded Ray: descriptor 2 to /dev/null meanwhile\n"
        "    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)\n"
        "    os.dup2(null, 2)\n"
        "    time.sleep(1.5)\n"
        "    os.dup2(saved, 2)\n"
        "    return ThreadBackend(1)\n"
        "backend = DeferredBackend(start, ThreadBackend(1))\n"
        f"backend.submit(EvalJob({str(REPO)!r}, 'evaluators/toy.py:evaluate', 'x = 1'))\n"
        "time.sleep(0.5)\n"
        "print('adrs: error: still seen', file=sys.stderr, flush=True)\n"
        "backend.close(); wait_closed()\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert "adrs: error: still seen" in out.stderr, out


def test_the_fast_exit_keeps_output_runs_atexit_and_kills_descendants(
        tmp_path: Path) -> None:
    marker = tmp_path / "atexit-ran"
    code = (
        "import atexit, subprocess, sys\n"
        "from adrs.evaluation.reaper import exit_now\n"
        f"atexit.register(lambda: open({str(marker)!r}, 'w').close())\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import subprocess, sys, time; "
        "subprocess.Popen([sys.executable, \"-c\", \"import time; time.sleep(60)\"]); "
        "time.sleep(60)'])\n"
        "import time; time.sleep(1.0)\n"
        "from adrs.evaluation.reaper import descendants\n"
        "import os; print(*descendants(os.getpid()), end='')\n"
        "exit_now(3)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    pids = [int(p) for p in out.stdout.split()]
    assert out.returncode == 3 and len(pids) == 2 and marker.exists(), out
    time.sleep(0.2)
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid), pid


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] == "Z"

"""Backends run jobs concurrently, and their futures fail only for system faults."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from adrs.errors import UserError
from adrs.evaluation.backends import EvalBackend, LocalBackend, ThreadBackend
from adrs.evaluation.ray_backend import RayBackend
from adrs.evaluation.runner import EvalJob
from adrs.sandbox.candidate import Limits

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]
TOY_PROGRAM = (REPO / "problems" / "toy" / "initial_program.py").read_text()
LIMITS = Limits(timeout_s=20.0, memory_mb=1024)
# The candidate sleeps; the evaluator reports when it ran, so overlap proves concurrency.
WINDOW_EVALUATOR = """import time

def evaluate(candidate):
    start = time.time()
    candidate.call("nap", 0.4)
    return {"score": 1.0, "metrics": {"start": start, "end": time.time()}}
"""
NAP = "import time\ndef nap(seconds):\n    time.sleep(seconds)\n"


@pytest.fixture(params=[LocalBackend, ThreadBackend, RayBackend])
def make_backend(request: pytest.FixtureRequest) -> Iterator[Callable[[int], EvalBackend]]:
    made: list[EvalBackend] = []
    if request.param is RayBackend:
        request.getfixturevalue("ray_cluster")

    def make(workers: int) -> EvalBackend:
        backend: EvalBackend = request.param(workers)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


def test_jobs_run_concurrently(make_backend: Callable[[int], EvalBackend],
                               tmp_path: Path) -> None:
    (tmp_path / "window.py").write_text(WINDOW_EVALUATOR)
    backend = make_backend(3)
    assert backend.workers == 3
    job = EvalJob(str(tmp_path), "window.py:evaluate", NAP, LIMITS)
    results = [future.result(timeout=60) for future in [backend.submit(job) for _ in range(3)]]
    assert all(result.valid for result in results), [r.error for r in results]
    starts = [float(result.metrics["start"]) for result in results]
    ends = [float(result.metrics["end"]) for result in results]
    assert max(starts) < min(ends)  # all three were running at the same moment


def test_results_of_real_evaluations(make_backend: Callable[[int], EvalBackend]) -> None:
    backend = make_backend(2)
    good = EvalJob(str(REPO), "evaluators/toy.py:evaluate", TOY_PROGRAM, LIMITS)
    bad = EvalJob(str(REPO), "evaluators/toy.py:evaluate", "import os\nos._exit(1)\n", LIMITS)
    futures = [backend.submit(job) for job in (good, bad, good)]
    results = [future.result(timeout=60) for future in futures]
    assert [result.valid for result in results] == [True, False, True]
    assert results[0].score == pytest.approx(47.6, abs=0.05)
    assert "exited with code 1" in (results[1].error or "")


def test_future_fails_only_for_system_faults(
        make_backend: Callable[[int], EvalBackend]) -> None:
    backend = make_backend(1)
    future = backend.submit(EvalJob(str(REPO), "evaluators/absent.py:evaluate", "x = 1\n"))
    with pytest.raises(UserError, match="does not exist"):
        future.result(timeout=60)


def test_submit_after_close_is_refused(make_backend: Callable[[int], EvalBackend]) -> None:
    backend = make_backend(1)
    backend.close()
    with pytest.raises(RuntimeError):
        backend.submit(EvalJob(str(REPO), "evaluators/toy.py:evaluate", TOY_PROGRAM))


@pytest.mark.parametrize("backend_class", [LocalBackend, ThreadBackend, RayBackend])
def test_workers_must_be_positive(backend_class: type[ThreadBackend]) -> None:
    with pytest.raises(ValueError):
        backend_class(0)


CTRL_C_WHILE_WORKERS_START = """
import os, signal, sys
from concurrent.futures import ProcessPoolExecutor
import multiprocessing
from adrs.evaluation import backends

signal.signal(signal.SIGINT, lambda *_: None)  # this process decides what Ctrl-C means
quiet = sys.argv[1] == "quiet"
context = backends._QuietSpawnContext() if quiet else multiprocessing.get_context("spawn")
with ProcessPoolExecutor(2, mp_context=context, initializer=backends._init_worker,
                         initargs=(os.getpid(),)) as pool:
    futures = [pool.submit(os.getpid) for _ in range(2)]
    os.killpg(0, signal.SIGINT)  # as a terminal does, while the workers still import
    print(len({f.result(timeout=60) for f in futures}) >= 1)
"""


@pytest.mark.parametrize("quiet", [True, False])
def test_ctrl_c_while_pool_workers_start_prints_no_traceback(quiet: bool) -> None:
    """A Ctrl-C that reaches a worker before its initializer ignores SIGINT: with plain
    spawn it dies (a KeyboardInterrupt traceback, or a broken pool: the control), with the
    backend's spawn context it stays quiet and serves its job."""
    proc = subprocess.run([sys.executable, "-c", CTRL_C_WHILE_WORKERS_START,
                           "quiet" if quiet else "plain"], capture_output=True, text=True,
                          timeout=120, start_new_session=True)
    if quiet:
        assert proc.returncode == 0 and proc.stdout.strip() == "True", proc.stderr
        assert proc.stderr == ""
    else:  # a traceback: the worker's KeyboardInterrupt, or the pool it broke
        assert "Traceback" in proc.stderr

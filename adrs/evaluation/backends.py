"""Evaluation backends: where `run_job` runs, and how many at once.

The controller talks to an `EvalBackend` only. `LocalBackend` runs jobs in worker processes
(the trusted evaluator then runs in parallel, even when it is pure Python), `ThreadBackend`
in threads of this process (enough when the evaluator is cheap: the candidate runs in its
own sandboxed process either way).

Seam for a distributed backend (Ray, later): jobs and results are picklable frozen values
and `run_job` is a plain function, so such a backend runs `run_job` remotely and returns a
concurrent.futures.Future for the remote result; nothing else in adrs changes.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from types import TracebackType
from typing import Protocol, runtime_checkable

from adrs.evaluation.runner import EvalJob, run_job
from adrs.types import EvalResult

PARENT_CHECK_S = 1.0


class EvalBackend(Protocol):
    """Runs evaluation jobs, up to `workers` at once.

    Contract: a future returned by `submit` never fails because of the candidate (its
    faults are invalid results); it fails only for faults of the system or of the problem
    set-up (an evaluator that cannot be found, a worker process that died, ...). `close`
    cancels the jobs not yet started, waits for the running ones and frees the workers;
    `submit` after `close` raises RuntimeError.
    """

    @property
    def workers(self) -> int: ...

    def submit(self, job: EvalJob) -> Future[EvalResult]: ...

    def close(self) -> None: ...


@runtime_checkable
class Preparable(Protocol):
    """A backend whose workers start cold (a new Ray's): `prepare` readies every worker
    for `job`'s evaluations (runner.prepare) and returns once they are ready, at the
    latest soon after `stop` is set. A worker that fails to prepare is left to the first
    job it runs, which reports the fault."""

    def prepare(self, job: EvalJob, stop: threading.Event) -> None: ...


class _ExecutorBackend:
    """A backend on a concurrent.futures executor."""

    def __init__(self, workers: int, executor: Executor) -> None:
        self._workers = workers
        self._executor = executor

    @property
    def workers(self) -> int:
        return self._workers

    def submit(self, job: EvalJob) -> Future[EvalResult]:
        return self._executor.submit(run_job, job)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> _ExecutorBackend:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def machine_cpus() -> int:
    """The CPUs this process may use (`--workers auto` off a cluster)."""
    return len(os.sched_getaffinity(0)) or 1


def _check_workers(workers: int) -> int:
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    return workers


class LocalBackend(_ExecutorBackend):
    """Jobs in `workers` processes of this machine.

    Workers are started with "spawn", never "fork": forking a process that runs an asyncio
    loop and threads can deadlock the child. Each worker caches loaded evaluators, ignores
    Ctrl-C (a terminal sends SIGINT to the whole process group: this process decides what
    it means, and closes the backend), and exits if this process dies without closing the
    backend.
    """

    def __init__(self, workers: int) -> None:
        super().__init__(_check_workers(workers), ProcessPoolExecutor(
            max_workers=workers, mp_context=_QuietSpawnContext(), initializer=_init_worker,
            initargs=(os.getpid(),)))


class _QuietSpawnProcess(multiprocessing.context.SpawnProcess):
    """A spawned worker that starts with SIGINT blocked: a Ctrl-C that reaches the process
    group while it is still importing (before its initializer ignores SIGINT) stays pending,
    and is discarded once the initializer ignores it, instead of printing a traceback."""

    def start(self) -> None:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            super().start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


class _QuietSpawnContext(multiprocessing.context.SpawnContext):
    Process = _QuietSpawnProcess


def _init_worker(parent: int) -> None:
    """Worker initializer: ignore SIGINT (discarding one that came during start-up), and
    exit once `parent` is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    _exit_with_parent(parent)


def _exit_with_parent(parent: int) -> None:
    """A watcher thread ends this worker once `parent` is gone.

    A pool worker whose parent was killed can otherwise wait forever on a queue lock that
    the dead parent's other worker held; its sandboxes then die with it.
    """
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(1)

    threading.Thread(target=watch, name="adrs-parent-watch", daemon=True).start()


class ThreadBackend(_ExecutorBackend):
    """Jobs in `workers` threads of this process (the evaluator shares the GIL)."""

    def __init__(self, workers: int) -> None:
        super().__init__(_check_workers(workers), ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="adrs-eval"))

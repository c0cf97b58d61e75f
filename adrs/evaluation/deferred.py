"""A backend that evaluates at once while a slow one (an embedded Ray) comes up.

`DeferredBackend` hands jobs to an interim backend (threads of this process: the
candidate runs in its own sandboxed process either way, so isolation is the same) and
starts the real backend on a background thread `delay_s` after the first job (by then the
first LLM requests are out: importing Ray and starting its processes takes CPU from them).
Once the real backend is up, new jobs go to it; jobs already on the interim one finish
there. A run that ends within `delay_s` of its first job never starts the real backend, and
a longer run never waits for it.

While it starts, Python's sys.stderr writes to a copy of file descriptor 2 (Ray points
descriptor 2 itself at /dev/null while it starts), so the session's lines still show.

If the real backend cannot start, the jobs submitted from then on fail with its error (a
fault of the system: the run stops and says why, as it did when Ray failed at the start).

`close` closes the interim backend (cancelling what has not started, waiting for what
runs), cancels a start still in its delay, and hands the real backend to a closer thread,
which waits for its start to end and closes it (an embedded Ray's shutdown takes
seconds): the session does not wait for it.
The closers are joined before a new DeferredBackend starts its backend and at interpreter
exit (`atexit`), so a process that exits normally leaves no Ray behind; adrs/cli's fast
exit ends them with adrs/evaluation/reaper.py instead.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future

from adrs.evaluation.backends import EvalBackend
from adrs.evaluation.runner import EvalJob
from adrs.types import EvalResult

_closers: list[threading.Thread] = []
_closers_lock = threading.Lock()


class DeferredBackend:
    """Jobs on `interim` until `start()` has returned the real backend (module docstring)."""

    def __init__(self, start: Callable[[], EvalBackend], interim: EvalBackend, *,
                 delay_s: float = 0.0) -> None:
        self._interim, self._start_real, self._delay_s = interim, start, delay_s
        self._real: Future[EvalBackend] = Future()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._starter: threading.Thread | None = None

    @property
    def workers(self) -> int:
        return self._interim.workers

    @property
    def started(self) -> bool:
        """Whether the real backend is up (new jobs go to it)."""
        return self._real.done() and self._real.exception() is None

    def submit(self, job: EvalJob) -> Future[EvalResult]:
        with self._lock:
            if self._closing.is_set():
                raise RuntimeError("submit after close: the backend is closed")
            if self._starter is None:
                self._starter = threading.Thread(target=self._start, daemon=True,
                                                 name="adrs-backend-start")
                self._starter.start()
            if not self._real.done():
                return self._interim.submit(job)
        error = self._real.exception()
        if error is not None:
            failed: Future[EvalResult] = Future()
            failed.set_exception(error)
            return failed
        return self._real.result().submit(job)

    def close(self) -> None:
        with self._lock:
            if self._closing.is_set():
                return
            self._closing.set()
            if self._starter is None:
                self._real.cancel()  # never started: nothing to close
        self._interim.close()
        closer = threading.Thread(target=_close_when_started, args=(self._real,),
                                  name="adrs-backend-close", daemon=True)
        with _closers_lock:
            _closers.append(closer)
        closer.start()

    def _start(self) -> None:
        if self._closing.wait(self._delay_s):  # the run ended first: never started
            self._real.cancel()
            return
        wait_closed()  # an earlier session's backend is shut down before this one starts
        try:
            with _python_stderr_kept():
                backend = self._start_real()
        except BaseException as exc:  # handed to the jobs that need it
            self._real.set_exception(exc)
            return
        self._real.set_result(backend)


@contextlib.contextmanager
def _python_stderr_kept() -> Iterator[None]:
    """Python's sys.stderr writes to a copy of file descriptor 2 for the block.

    An embedded Ray's start points descriptor 2 at /dev/null while it runs (its native
    lines; adrs/evaluation/ray_backend.py): here it runs beside the session, whose lines
    and errors (`adrs: error: ...`) must still reach the terminal. Only when sys.stderr is
    descriptor 2 itself (not a test's capture)."""
    stream = sys.stderr
    try:
        real = stream is not None and stream.fileno() == 2
    except (AttributeError, OSError, ValueError):
        real = False
    if not real:
        yield
        return
    stream.flush()
    copy = os.fdopen(os.dup(2), "w", buffering=1, encoding=stream.encoding,
                     errors=stream.errors)
    sys.stderr = copy
    try:
        yield
    finally:
        if sys.stderr is copy:
            sys.stderr = stream
        copy.close()


def _close_when_started(real: Future[EvalBackend]) -> None:
    try:
        backend = real.result()
    except BaseException:  # it never started: nothing to close
        return
    backend.close()


def wait_closed() -> None:
    """Wait until every closed DeferredBackend's real backend is shut down."""
    with _closers_lock:
        pending = [t for t in _closers if t is not threading.current_thread()]
        _closers[:] = [t for t in _closers if t.is_alive()]
    for thread in pending:
        thread.join()


atexit.register(wait_closed)

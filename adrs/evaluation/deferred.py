"""A backend that evaluates at once while a slow one (an embedded Ray) comes up.

`DeferredBackend` hands jobs to an interim backend (workers forked from this process,
forked.py, or its threads: the candidate runs in its own sandboxed process either way, so
isolation is the same) and
starts the real backend on a background thread `delay_s` after the first job (by then the
first LLM requests are out: importing Ray and starting its processes takes CPU from them).
A real backend whose workers start cold (`Preparable`: an embedded Ray) is then prepared
for jobs like the first one, while the interim backend still takes them. Once the real
backend is up and prepared, new jobs go to it; jobs already on the interim one finish
there. A run that ends within `delay_s` of its first job never starts the real backend, and
a longer run never waits for it.

While it starts, Python's sys.stderr sends the other threads' writes to a copy of file
descriptor 2 (Ray points descriptor 2 itself at /dev/null while it starts, to hide its
own lines), so the session's lines and errors still show.

If the real backend cannot start, the jobs submitted from then on fail with its error (a
fault of the system: the run stops and says why, as it did when Ray failed at the start).

The thread that starts the real backend lives as long as it: Ray's GCS server and raylet
get the parent-death signal when the *thread* that started them ends. `close` closes the
interim backend (cancelling what has not started, waiting for what runs), cancels a start
still in its delay, and wakes that thread, which closes the real backend once its start
has ended (an embedded Ray's shutdown takes seconds): the session does not wait for it.
`wait_closed` joins the threads of closed backends; it runs before a new DeferredBackend
starts its backend and at interpreter exit (`atexit`), so a process that exits normally
leaves no Ray behind; the CLI's fast exit kills it instead (adrs/evaluation/reaper.py).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any, TextIO, cast

from adrs.evaluation.backends import EvalBackend, Preparable
from adrs.evaluation.runner import EvalJob
from adrs.types import EvalResult

_starters: list[tuple[threading.Thread, threading.Event]] = []  # (thread, closing)
_starters_lock = threading.Lock()


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
                self._launch(job)
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
            self._closing.set()  # wakes the starter: it closes the real backend
        self._interim.close()

    def _launch(self, first: EvalJob) -> None:
        self._starter = threading.Thread(target=self._own, args=(first,),
                                         name="adrs-backend-start", daemon=True)
        with _starters_lock:
            _starters.append((self._starter, self._closing))
        self._starter.start()

    def _own(self, first: EvalJob) -> None:
        """The starter thread: start the real backend, ready its workers for jobs like
        `first`, hold it until close, close it."""
        if self._closing.wait(self._delay_s):  # the run ended first: never started
            self._real.cancel()
            return
        wait_closed()  # an earlier session's backend is shut down before this one starts
        try:
            with _stderr_routed():
                backend = self._start_real()
        except BaseException as exc:  # handed to the jobs that need it
            self._real.set_exception(exc)
            return
        if isinstance(backend, Preparable):
            with contextlib.suppress(Exception):  # its first job reports a fault
                backend.prepare(first, self._closing)
        self._real.set_result(backend)
        self._closing.wait()
        backend.close()


class _ByThread:
    """sys.stderr while a backend starts: the starter thread's writes go to the original
    stream (descriptor 2, /dev/null meanwhile), every other thread's to `copy`."""

    def __init__(self, original: TextIO, copy: TextIO) -> None:
        self._original, self._copy = original, copy
        self._starter = threading.current_thread()

    def _target(self) -> TextIO:
        return self._original if threading.current_thread() is self._starter else self._copy

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target(), name)


@contextlib.contextmanager
def _stderr_routed() -> Iterator[None]:
    """sys.stderr as `_ByThread` for the block, when it is descriptor 2 itself (not a
    test's capture)."""
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
    routed = cast(TextIO, _ByThread(stream, copy))
    sys.stderr = routed
    try:
        yield
    finally:
        if sys.stderr is routed:
            sys.stderr = stream
        copy.close()


def wait_closed() -> None:
    """Wait until the real backend of every closed DeferredBackend is shut down."""
    with _starters_lock:
        closed = [(t, c) for t, c in _starters
                  if c.is_set() and t is not threading.current_thread()]
        _starters[:] = [(t, c) for t, c in _starters if t.is_alive()]
    for thread, _ in closed:
        thread.join()


atexit.register(wait_closed)

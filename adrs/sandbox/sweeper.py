"""Freeing a finished sandbox's cgroup and working directory off the evaluation's path.

Once an evaluation has its verdict, its sandbox is sent the kill and its output tails are
kept at once (process.py); what is left is waiting until the sandbox has ended, removing
its cgroup, which on cgroup v1 waits for the kernel, and its working directory.
An evaluation that asks for it (`Candidate(..., release_later=True)`, as the runner does)
hands those steps to this process's sweeper thread and returns; the next evaluation does
not wait for them. The steps run in order: the end, then the cgroup (removing the group
waits until every process in it has gone), then the working directory.

What they cannot change is the verdict: its calls were answered, its pipes are closed and
its output read before the evaluation returns, and the kill is sent (a killed process
runs no user code once it lands).
A step that fails is logged as a warning (the cgroup's own clean-up
at exit and the next run's sweep of stale groups still remove what they can) instead of
voiding a result already given. At most MAX_PENDING sandboxes wait; past that, `submit`
runs the work itself, so a slow kernel slows evaluations instead of piling up groups.
`flush` waits until nothing is pending: at exit (atexit, and multiprocessing's finalizers
in a pool worker, which ends without atexit), and in tests that count what is left. The
thread belongs to one process; a forked child starts its own.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from collections import deque
from collections.abc import Callable

MAX_PENDING = 8
EXIT_WAIT_S = 10.0

_log = logging.getLogger(__name__)
Release = Callable[[], str | None]  # frees what it can; returns the first fault, or None


class Sweeper:
    """This process's background releases. Thread-safe."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._work: deque[Release] = deque()
        self._busy = False  # the thread is running one
        self._thread: threading.Thread | None = None
        self.failures = 0
        os.register_at_fork(after_in_child=self._forget)

    def submit(self, release: Release) -> None:
        """Run `release` in the background, or now when MAX_PENDING are waiting."""
        with self._cond:
            if len(self._work) + self._busy < MAX_PENDING:
                self._work.append(release)
                self._start()
                self._cond.notify_all()
                return
        self._run(release)

    def flush(self, timeout_s: float = EXIT_WAIT_S) -> bool:
        """Wait until every submitted release has run; False if `timeout_s` passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._work and not self._busy, timeout_s)

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="adrs-sweeper",
                                            daemon=True)
            self._thread.start()
            if "multiprocessing" in sys.modules:  # a pool worker ends without atexit
                from multiprocessing import util

                util.Finalize(None, self.flush, exitpriority=10)

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._work))
                release = self._work.popleft()
                self._busy = True
            try:
                self._run(release)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _run(self, release: Release) -> None:
        try:
            error = release()
        except Exception as exc:  # a release must not raise; if one does, say so
            error = f"{type(exc).__name__}: {exc}"
        if error is not None:
            with self._cond:
                self.failures += 1
            _log.warning("a finished sandbox could not be fully cleaned up: %s", error)

    def _forget(self) -> None:
        """In a forked child, the parent's thread, queue and lock are not ours (the lock may
        have been held by that thread at the fork): start afresh."""
        self._cond = threading.Condition()
        self._work, self._busy, self._thread = deque(), False, None


SWEEPER = Sweeper()
atexit.register(SWEEPER.flush)

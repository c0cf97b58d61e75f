"""Sandboxes started ahead of need: the next evaluation's sandbox is set up while one runs.

Starting a sandbox (the zygote's fork, fresh namespaces, a cgroup, the read-only root,
the seccomp filter) takes 5-15 ms on the evaluation's critical path, most of it spent in
the kernel and the zygote, not in this process; after an idle spell the first write to a
cgroup v1 `cgroup.procs` alone waits ~12 ms. None of it depends on the program, which the
child receives over its request pipe once it is set up (child.py). So `take` hands out a
launched sandbox (an idle standby that fits, else one launched there and then) and asks a
background thread to launch its replacement while the evaluation runs.

A standby fits a request when it was launched for the same harness and the same limits
but the time budget, and its CPU-time limit is at least the request's: a sandbox from
`sibling` (what is left of an evaluation's budget) may take one launched for the full
budget. Its RLIMIT_CPU is then the larger one; the wall-clock budget, which the trusted
side enforces, is the request's own. Replacements are launched with the largest budget
asked for so far, so that every later request fits.

Idle standbys are bounded (MAX_IDLE per process, oldest dropped first); they hold no
program and no data of the trusted side, and die with this process (their request pipe
closes; child.py then exits) or at exit (`close`, registered with atexit). The pool
belongs to one process: a forked or spawned worker starts its own.
"""

from __future__ import annotations

import atexit
import os
import queue
import threading
from dataclasses import replace

from adrs.sandbox.isolation import Limits
from adrs.sandbox.process import SandboxProcess
from adrs.sandbox.zygote import ZYGOTE_CLIENT

MAX_IDLE = 4
CLOSE_WAIT_S = 5.0  # at exit, for a launch under way (~10 ms), so it leaves nothing behind

_Key = tuple[Limits, str | None, bool]


def _key(limits: Limits, harness: str | None) -> _Key:
    """What a standby must share with a request (see the module docstring); and whether
    the zygote was in use (benchmarks and tests switch it off)."""
    return replace(limits, timeout_s=1.0, cpu_s=None), harness, ZYGOTE_CLIENT.enabled


class StandbyPool:
    """This process's standby sandboxes. Thread-safe. `enabled = False` makes `take`
    launch every sandbox on demand (benchmarks compare the two)."""

    def __init__(self) -> None:
        self.enabled = True
        self._cond = threading.Condition()
        self._idle: list[tuple[_Key, Limits, SandboxProcess]] = []
        self._widest: dict[_Key, Limits] = {}
        self._requests: queue.SimpleQueue[tuple[int, _Key, Limits] | None] = \
            queue.SimpleQueue()
        self._pending = 0  # requests queued or being launched
        self._generation = 0  # bumped by drain: older requests are not kept
        self._worker: threading.Thread | None = None
        self._owner = os.getpid()
        self._closed = False

    def take(self, limits: Limits, harness: str | None) -> SandboxProcess:
        """A launched sandbox for `limits` and `harness`, waiting for its program."""
        key = _key(limits, harness)
        found = self._pop(key, limits)
        if found is None:
            found = SandboxProcess(limits, harness).launch()
        if self.enabled:
            self._request(key, limits)
        return found

    def prepare(self, limits: Limits, harness: str | None, wait_s: float = 10.0) -> None:
        """Launch a standby for `limits` and `harness` before any take, and wait for it (at
        most `wait_s`): a process about to evaluate then finds its first sandbox set up."""
        if not self.enabled:
            return
        with self._cond:
            self._adopt_after_fork()
        self._request(_key(limits, harness), limits)
        with self._cond:
            self._cond.wait_for(lambda: self._pending == 0, wait_s)

    def idle(self) -> int:
        """How many standbys are waiting now."""
        with self._cond:
            return len(self._idle)

    def drain(self, timeout_s: float = 10.0) -> None:
        """Close every idle standby, once the launches under way have ended (within
        `timeout_s`); later takes start afresh. For callers that change how sandboxes are
        launched, or check that none is left (tests)."""
        with self._cond:
            self._generation += 1
            self._cond.wait_for(lambda: self._pending == 0, timeout_s)
            idle, self._idle = self._idle, []
        for _, _, process in idle:
            process.close()

    def close(self) -> None:
        """Stop launching replacements and close every idle standby (at exit)."""
        with self._cond:
            if self._owner != os.getpid():
                return
            self._closed = True
            if self._worker is not None:
                self._requests.put(None)
        self.drain(timeout_s=CLOSE_WAIT_S)

    # ------------------------------------------------------------------------ internals
    def _pop(self, key: _Key, limits: Limits) -> SandboxProcess | None:
        with self._cond:
            self._adopt_after_fork()
            fits = [index for index, (other, launched, _) in enumerate(self._idle)
                    if other == key and launched.cpu_seconds >= limits.cpu_seconds]
            if not fits:
                return None
            process = self._idle.pop(fits[0])[2]
        if process.alive():
            return process
        process.close()  # died while idle (its zygote was killed ...): launch anew
        return None

    def _request(self, key: _Key, limits: Limits) -> None:
        with self._cond:
            widest = self._widest.get(key)
            if widest is None or widest.cpu_seconds < limits.cpu_seconds:
                widest = self._widest[key] = limits
            if self._closed:
                return
            if self._worker is None:
                self._worker = threading.Thread(target=self._fill, name="adrs-standby",
                                                daemon=True)
                self._worker.start()
            self._pending += 1
            self._requests.put((self._generation, key, widest))

    def _fill(self) -> None:
        while (request := self._requests.get()) is not None:
            generation, key, limits = request
            process: SandboxProcess | None = None
            try:
                if key[2] == ZYGOTE_CLIENT.enabled:  # else asked for under other settings
                    process = SandboxProcess(limits, key[1]).launch()
            except Exception:  # the next take launches on demand, and reports the fault
                pass
            self._keep(generation, key, limits, process)

    def _keep(self, generation: int, key: _Key, limits: Limits,
              process: SandboxProcess | None) -> None:
        dropped = []
        with self._cond:
            if process is not None and (self._closed or generation != self._generation):
                dropped.append(process)
            elif process is not None:
                self._idle.append((key, limits, process))
                while len(self._idle) > MAX_IDLE:
                    dropped.append(self._idle.pop(0)[2])
        for old in dropped:
            old.close()
        with self._cond:  # after the closes: drain waits for them
            self._pending -= 1
            self._cond.notify_all()

    def _adopt_after_fork(self) -> None:
        """In a forked child, the parent's standbys and thread are not ours: forget them."""
        if self._owner != os.getpid():
            self._owner, self._idle, self._widest = os.getpid(), [], {}
            self._worker, self._requests = None, queue.SimpleQueue()
            self._pending, self._closed = 0, False


STANDBY = StandbyPool()
atexit.register(STANDBY.close)

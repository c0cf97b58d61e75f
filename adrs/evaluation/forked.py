"""Evaluation workers forked from this process: the trusted evaluator out of the engine's
process, started in milliseconds.

Threads of this process (ThreadBackend) run each evaluation's trusted side under the
engine's GIL: a lockstep evaluator (a call into the sandbox per simulated tick) hands the
GIL back and forth with the other evaluations and the engine at every call, and each
sandbox waits for its trusted side meanwhile. Processes do not share it; but a spawned
worker (LocalBackend) starts a fresh interpreter, imports adrs, probes the machine and
starts a zygote before its first evaluation, which a short run on few cores loses rather
than gains. A fork is a copy of this process as it is: its modules imported, the
machine's probes known (isolation.py's caches). So `ForkedBackend` forks its workers, and
they share this process's zygote (started by the warm-up while adrs imported its modules):
the first takes it over, each other reaches it through a control socket of its own, and
this process forgets it. The sandboxes are the same.

A fork is safe only while this process runs no other thread: a thread holding a lock (an
import's, a logging handler's, one of adrs's) at the moment of the fork leaves it held for
good in the child. `fork_safe()` says whether that is so, after waiting for the sandbox's
warm-up thread (isolation.wait_warm); the caller uses threads otherwise, and forks before
it starts any thread of its own (adrs/run/session.py).

A worker ignores SIGINT (the terminal's Ctrl-C reaches the whole process group: this
process decides what it means, and closes the backend; SIGTERM, `interrupt`, stops its
job and ends it), dies with this process
(PR_SET_PDEATHSIG, and it exits at end of file on its socket), runs one job at a time
(pickled EvalJob in, ("ok", EvalResult) or ("error", exception) out) and, at end of file,
closes its standbys, waits for its sandboxes' clean-up (sweeper.py) and its zygote, and
leaves with os._exit: the atexit handlers it inherited are this process's. A worker that
dies fails its job and every later one with a RuntimeError (a fault of the system: the
run stops and says why).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import queue
import signal
import socket
import threading
import time
from concurrent.futures import Future
from multiprocessing.connection import Connection
from typing import NoReturn

from adrs.evaluation.runner import EvalJob, run_job
from adrs.sandbox import isolation
from adrs.sandbox.standby import STANDBY
from adrs.sandbox.sweeper import SWEEPER
from adrs.sandbox.zygote import ZYGOTE_CLIENT
from adrs.types import EvalResult

_PR_SET_PDEATHSIG = 1
_EXIT_WAIT_S = 10.0  # for a worker to clean up and exit after end of file
_Item = tuple[EvalJob, "Future[EvalResult]"] | None


def fork_safe() -> bool:
    """Whether this process may fork its workers now: it runs no other thread, once the
    sandbox's warm-up has ended (see the module docstring)."""
    if not hasattr(os, "fork"):
        return False
    isolation.wait_warm()
    return threading.active_count() == 1


class ForkedBackend:
    """Jobs in `workers` processes forked from this one (module docstring). Create it only
    when `fork_safe()`; it starts one thread per worker, which hands it its jobs."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self._jobs: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._broken: str | None = None
        self._pids: list[int] = []
        self._pidfds: list[int] = []  # signals never reach a recycled pid
        self._conns: list[Connection] = []
        links = [None, *(ZYGOTE_CLIENT.connect_child() for _ in range(workers - 1))]
        try:
            for n in range(workers):
                self._fork(n, links)
        except BaseException:  # a fork refused (no memory, a process limit): none is left
            self._end_workers()
            raise
        finally:
            for link in links:
                if link is not None:
                    link.close()
        ZYGOTE_CLIENT.release()
        self._threads = [threading.Thread(target=self._hand, args=(n,),
                                          name=f"adrs-eval-worker-{n}", daemon=True)
                         for n in range(workers)]
        for thread in self._threads:
            thread.start()

    def _fork(self, n: int, links: list[socket.socket | None]) -> None:
        """Fork worker n, which never returns here."""
        parent = os.getpid()  # not the child's getppid(): this process may die first
        ours, theirs = socket.socketpair()
        try:
            pid = os.fork()
        except BaseException:
            ours.close()
            theirs.close()
            raise
        if pid == 0:
            ours.close()
            for other in self._conns:
                other.close()
            for fd in self._pidfds:
                os.close(fd)
            _take_zygote(n, links)
            _work(Connection(theirs.detach()), parent)
        theirs.close()
        self._pids.append(pid)
        self._conns.append(Connection(ours.detach()))
        self._pidfds.append(os.pidfd_open(pid))  # OSError before Linux 5.3: threads then

    def _end_workers(self) -> None:
        """End of file to every worker; each is reaped, killed if it lingers."""
        for conn in self._conns:
            conn.close()  # end of file: the worker cleans up and exits
        deadline = time.monotonic() + _EXIT_WAIT_S
        for pid in self._pids:
            with contextlib.suppress(ChildProcessError):  # reaped already (_exit_status)
                if _wait_exit(pid, deadline) is None:  # lingers: killed, then reaped
                    self._signal(signal.SIGKILL)
                    os.waitpid(pid, 0)
        pidfds, self._pidfds = self._pidfds, []
        for fd in pidfds:
            os.close(fd)

    def _signal(self, signum: int) -> None:
        """Send `signum` to every worker not yet ended (by pidfd: none that was reaped)."""
        for fd in self._pidfds:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(fd, signum)

    @property
    def workers(self) -> int:
        return len(self._pids)

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(self._pids)

    def submit(self, job: EvalJob) -> Future[EvalResult]:
        future: Future[EvalResult] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("submit after close: the backend is closed")
            if self._broken is not None:
                future.set_exception(RuntimeError(self._broken))
                return future
            self._jobs.put((job, future))
        return future

    def interrupt(self) -> None:
        """Stop the running jobs now (the run was interrupted before its session began:
        Ctrl-C during the preflight): SIGTERM makes each worker close its sandbox and exit;
        their jobs fail. `close` then returns at once."""
        self._signal(signal.SIGTERM)

    def close(self) -> None:
        """Cancel the jobs not started, wait for the running ones, end the workers."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for _, future in self._take_waiting():
                future.cancel()
            for _ in self._threads:
                self._jobs.put(None)
        for thread in self._threads:
            thread.join()
        self._end_workers()

    def _take_waiting(self) -> list[tuple[EvalJob, Future[EvalResult]]]:
        """The jobs not handed to a worker yet, out of the queue (close's end markers stay
        in it, for the other workers' threads)."""
        waiting, ends = [], 0
        while True:
            try:
                item = self._jobs.get_nowait()
            except queue.Empty:
                break
            if item is None:
                ends += 1
            else:
                waiting.append(item)
        for _ in range(ends):
            self._jobs.put(None)
        return waiting

    def _hand(self, n: int) -> None:
        """Worker n's thread: hand it one job at a time, and its answer to the future."""
        conn = self._conns[n]
        while (item := self._jobs.get()) is not None:
            job, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                conn.send(job)
                kind, value = conn.recv()
            except (EOFError, OSError) as exc:
                self._break(n, exc, future)
                return
            if kind == "ok":
                future.set_result(value)
            else:
                future.set_exception(value)

    def _break(self, n: int, exc: BaseException, future: Future[EvalResult]) -> None:
        """Worker n died: fail its job, every waiting one, and every later one."""
        status = _exit_status(self._pids[n])
        message = (f"evaluation worker {n} (pid {self._pids[n]}) died{status} "
                   f"({type(exc).__name__}): the run cannot evaluate any further")
        future.set_exception(RuntimeError(message))
        with self._lock:
            self._broken = message
            for _, waiting in self._take_waiting():
                if waiting.set_running_or_notify_cancel():
                    waiting.set_exception(RuntimeError(message))


def _exit_status(pid: int) -> str:
    """How the dead worker `pid` ended, in words (reaping it), once it has (a moment after
    its socket closed); "" if it has not within a second, or was reaped already."""
    with contextlib.suppress(ChildProcessError):
        code = _wait_exit(pid, time.monotonic() + 1.0)
        if code is not None:
            return f" with exit status {code}" if code >= 0 else f" of signal {-code}"
    return ""


def _wait_exit(pid: int, deadline: float) -> int | None:
    """Worker `pid`'s exit code once it has exited and is reaped here, waiting until
    `deadline`; None if it still runs then. ChildProcessError if it was reaped already."""
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.005)


# ------------------------------------------------------------------------ in the worker
def _take_zygote(n: int, links: list[socket.socket | None]) -> None:
    """Worker n's zygote: the first takes its parent's over, the others reach it through a
    socket of their own (`links`); one that has none starts its own."""
    for k, link in enumerate(links):
        if link is not None and k != n:
            link.close()
    link = links[n]
    if n == 0:
        ZYGOTE_CLIENT.keep_after_fork()
    elif link is not None:
        ZYGOTE_CLIENT.adopt(link)


def _work(conn: Connection, parent: int) -> NoReturn:
    """A worker's life (module docstring); never returns, whatever is raised in it (an
    exception that escaped would run the code that forked it, in the child)."""
    code = 1
    try:
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, _interrupted)
            _die_with(parent)
            gc.freeze()  # what the fork copied is never collected: its pages stay shared
            isolation.warm()  # the probes are known; the zygote is its parent's, or its own
            _serve(conn)
            code = 0
        except BaseException:  # a worker reports by its exit status
            pass
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one: the clean-up ends
        _clean_up()
    finally:
        os._exit(code)


def _interrupted(signum: int, frame: object) -> NoReturn:
    """SIGTERM in a worker (ForkedBackend.interrupt): unwind the job, closing its sandbox."""
    raise KeyboardInterrupt


def _die_with(parent: int) -> None:
    """SIGKILL this process when its parent dies; exit now if it already has."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _serve(conn: Connection) -> None:
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        try:
            answer: tuple[str, object] = ("ok", run_job(job))
        except Exception as exc:  # a fault of the system or of the set-up: the caller's
            answer = ("error", exc)
        try:
            conn.send(answer)
        except Exception as exc:  # the exception does not pickle: its text does
            conn.send(("error", RuntimeError(f"{type(exc).__name__}: {answer[1]}")))


def _clean_up() -> None:
    """The worker's sandboxes: idle standbys closed, clean-ups done, its zygote ended."""
    for step in (STANDBY.close, SWEEPER.flush, ZYGOTE_CLIENT.close):
        with contextlib.suppress(Exception):
            step()

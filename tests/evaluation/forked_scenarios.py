"""Test helper: ForkedBackend scenarios, each run in a fresh single-threaded interpreter
(a fork is safe only there; pytest's own process runs threads) and printing JSON.

Usage: python forked_scenarios.py SCENARIO
"""

from __future__ import annotations

import errno
import json
import os
import sys
import threading
import time
from pathlib import Path

from adrs.errors import UserError
from adrs.evaluation import forked
from adrs.evaluation.runner import EvalJob
from adrs.sandbox.candidate import Limits
from adrs.sandbox.isolation import warm_up
from adrs.sandbox.zygote import ZYGOTE_CLIENT
from adrs.types import EvalResult

TOY = Path(__file__).resolve().parents[2] / "problems" / "toy"


def job(source: str = "") -> EvalJob:
    return EvalJob(str(TOY), "adrs.evaluators.toy:evaluate", source, Limits(timeout_s=20.0),
                   harness="harness.py")


def fake_run_job(job: EvalJob) -> EvalResult:
    """`source` says what to do: "sleep S", "user-error", "exit N", else answer at once."""
    what, _, arg = job.source.partition(" ")
    if what == "sleep":
        time.sleep(float(arg))
    elif what == "user-error":
        raise UserError("the option 'trace' names no file: give an existing one")
    elif what == "exit":
        os._exit(int(arg))
    return EvalResult(True, 1.0, {"pid": os.getpid(), "ppid": os.getppid(),
                                  "threads": threading.active_count()})


def jobs() -> dict[str, object]:
    """Four sleeping jobs on two workers: their pids, parents and the wall time."""
    forked.run_job = fake_run_job
    backend = forked.ForkedBackend(2)
    started = time.monotonic()
    futures = [backend.submit(job("sleep 0.3")) for _ in range(4)]
    results = [f.result(timeout=30) for f in futures]
    wall = time.monotonic() - started
    backend.close()
    return {"pids": [r.metrics["pid"] for r in results],
            "ppids": [r.metrics["ppid"] for r in results], "workers": list(backend.pids),
            "wall": wall, "me": os.getpid(), "reaped": _reaped(backend.pids)}


def errors() -> dict[str, object]:
    """A UserError of a job reaches the caller as itself."""
    forked.run_job = fake_run_job
    backend = forked.ForkedBackend(1)
    try:
        backend.submit(job("user-error")).result(timeout=30)
    except UserError as exc:
        message = str(exc)
    finally:
        backend.close()
    return {"message": message}


def death() -> dict[str, object]:
    """A worker that dies fails its job, and every later one."""
    forked.run_job = fake_run_job
    backend = forked.ForkedBackend(1)
    messages = []
    for source in ("exit 3", "answer"):
        try:
            backend.submit(job(source)).result(timeout=30)
        except RuntimeError as exc:
            messages.append(str(exc))
    backend.close()
    return {"messages": messages}


def close() -> dict[str, object]:
    """close() waits for the running job, cancels the waiting ones, ends the worker."""
    forked.run_job = fake_run_job
    backend = forked.ForkedBackend(1)
    futures = [backend.submit(job("sleep 0.3")) for _ in range(3)]
    time.sleep(0.1)
    backend.close()
    backend.interrupt()  # after close: its workers are reaped, and nothing is signalled
    try:
        backend.submit(job())
        refused = False
    except RuntimeError:
        refused = True
    return {"done": [f.done() and not f.cancelled() for f in futures],
            "cancelled": [f.cancelled() for f in futures], "refused": refused,
            "reaped": _reaped(backend.pids)}


def interrupted() -> dict[str, object]:
    """interrupt() during a long job: the job fails at once, close() does not wait for it,
    and the worker closed its sandbox on its way out."""
    warm_up()
    forked.fork_safe()
    backend = forked.ForkedBackend(1)
    slow = "import time\ndef provision(history):\n    time.sleep(30)\n    return 1.0\n"
    future = backend.submit(job(slow))
    time.sleep(1.0)  # the sandbox is up, the candidate asleep in its first call
    started = time.monotonic()
    backend.interrupt()
    try:
        future.result(timeout=30)
        failed = False
    except RuntimeError:
        failed = True
    backend.close()
    return {"failed": failed, "fast": time.monotonic() - started < 5.0,
            "reaped": _reaped(backend.pids), "sandboxes": _sandboxes()}


def _sandboxes() -> int:
    """Sandbox processes (a candidate's cwd is its sandbox's working directory) that
    descend from this process (the zygote it warmed up is its child)."""
    count = 0
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            count += ("adrs-sandbox-" in os.readlink(f"/proc/{entry}/cwd")
                      and _descends(int(entry)))
        except OSError:
            continue
    return count


def _descends(pid: int) -> bool:
    """Whether process `pid` descends from this one."""
    while pid > 1:
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        if pid == os.getpid():
            return True
    return False


def orphans() -> dict[str, object]:
    """The workers of a process that dies without closing its backend: printed, then
    this process exits at once (the test watches them die)."""
    forked.run_job = fake_run_job
    backend = forked.ForkedBackend(2)
    backend.submit(job()).result(timeout=30)
    print(json.dumps({"workers": list(backend.pids)}), flush=True)
    os._exit(0)


def refused() -> dict[str, object]:
    """The second fork is refused: the backend is not made, and the first worker ends."""
    forked.run_job = fake_run_job
    real_fork, forks = os.fork, []

    def fork() -> int:
        forks.append(1)
        if len(forks) > 1:
            raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
        return real_fork()

    os.fork = fork
    try:
        forked.ForkedBackend(2)
        error = ""
    except OSError as exc:
        error = exc.strerror or ""
    finally:
        os.fork = real_fork
    try:
        os.waitpid(-1, os.WNOHANG)
        children_left = True
    except ChildProcessError:
        children_left = False
    return {"error": error, "children_left": children_left}


def real() -> dict[str, object]:
    """A real toy evaluation in each of two workers, both with the zygote this process
    warmed up (the only one), which this process then no longer holds."""
    warm_up()
    safe = forked.fork_safe()  # waits for the warm-up thread
    backend = forked.ForkedBackend(2)
    source = (TOY / "initial_program.py").read_text()
    results = [backend.submit(job(source)) for _ in range(2)]
    valid = [f.result(timeout=60).valid for f in results]
    held = ZYGOTE_CLIENT._zygote is not None
    zygotes = _zygotes({os.getpid(), *backend.pids})
    backend.close()
    return {"safe": safe, "valid": valid, "parent_holds_zygote": held, "zygotes": zygotes,
            "reaped": _reaped(backend.pids)}


def _zygotes(parents: set[int]) -> int:
    """How many zygotes (forkserver.py processes) the processes `parents` started."""
    count = 0
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            started = b"forkserver.py" in Path(f"/proc/{entry}/cmdline").read_bytes()
            parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        count += started and parent in parents
    return count


def _reaped(pids: tuple[int, ...]) -> bool:
    """Whether none of `pids` is a process any more (they were reaped by close())."""
    return not any(Path(f"/proc/{pid}").exists() for pid in pids)


if __name__ == "__main__":
    print(json.dumps(globals()[sys.argv[1]]()))

"""Ending this process quickly once a run is stored: `exit_now`.

Python takes about a second to exit once litellm is loaded (tearing down its modules),
and an embedded Ray's orderly shutdown takes seconds more. `exit_now` skips both, after
everything that matters is done: the caller has closed the store and the event log; this
flushes stdout and stderr, kills the processes this one started that are still alive (an
embedded Ray's, the sandbox's idle fork server), removes the working directories that
the killed processes' standby sandboxes leave (and those of any earlier process that died:
adrs/sandbox/workdirs.py), runs the atexit handlers (the sandbox's cgroup clean-up among
them) except Ray's orderly shutdown, and leaves with os._exit.

Why kill them: Ray's GCS server and raylet die with their parent (Ray sets their
parent-death signal), but the agents the raylet starts (the dashboard agent, the runtime
environment agent) were measured to outlive it and hang, orphaned, trying to reach the dead
GCS. Every descendant is found through /proc before any is killed (killing a parent
reparents its children) and sent SIGKILL; repeated, a millisecond apart, until none is
left running (50 rounds at most), in case one was being started (an embedded Ray still
coming up), and so that the folders of the killed can be swept. Linux only: elsewhere it exits with
`sys.exit` as usual.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from adrs.evaluation.deferred import wait_closed
from adrs.sandbox import procs, workdirs

ROUNDS = 50
ROUND_PAUSE_S = 0.001


def exit_now(code: int) -> None:
    """Flush, kill what this process started, run the atexit handlers but Ray's, exit."""
    if not Path("/proc/self/stat").exists():
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    _skip_ray_shutdown()
    kill_descendants()
    with contextlib.suppress(OSError):  # the standbys' folders of the Ray workers killed
        workdirs.sweep()
    atexit._run_exitfuncs()  # Ray's own handler then finds its processes dead: no wait
    os._exit(code)


def _skip_ray_shutdown() -> None:
    """Ray's shutdown, and the wait for the closers of deferred backends (which shut an
    embedded Ray down), are replaced by the kill."""
    atexit.unregister(wait_closed)
    ray = sys.modules.get("ray")
    if ray is not None:
        atexit.unregister(ray.shutdown)


def kill_descendants() -> int:
    """SIGKILL every process descended from this one, and wait (bounded) until none of
    them runs, those reparented meanwhile included (a Ray worker whose raylet died
    first); the number of processes killed."""
    killed: set[int] = set()
    for _ in range(ROUNDS):
        pids = descendants(os.getpid())
        if not pids and not any(procs.running(pid) for pid in killed):
            break
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
        time.sleep(ROUND_PAUSE_S)  # a killed process takes a moment to end
    return len(killed)


def descendants(root: int) -> list[int]:
    """The living descendants of `root`, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        parent = _parent(int(entry.name))
        if parent is not None:
            children.setdefault(parent, []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _parent(pid: int) -> int | None:
    """`pid`'s parent; None when it has ended (a zombie is already dead) or is gone."""
    try:
        fields = procs.stat_fields(pid)
    except OSError:
        return None
    if len(fields) < 2 or fields[0] == "Z":
        return None
    return int(fields[1])

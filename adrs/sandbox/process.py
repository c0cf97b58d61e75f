"""The processes and resources of one sandbox: start, kill, clean up, describe the end.

`SandboxProcess` owns everything a sandbox holds on the trusted side: its host working
directory (where the child writes candidate.py), its output capture (capture.py), its
cgroup (cgroups.py), the two pipes to the child, and the child itself, forked by the
zygote or started with Popen (isolation.py's launch plan). `launch` starts the child
before the program is known (standby.py); the program is the first message `Candidate`
sends it (candidate.py). Talking over the pipes is channel.py's concern, the
calls are candidate.py's.

`close` kills every process of the sandbox, reaps it and frees every resource; it never
raises and never blocks past a bound: a failing step is kept in `cleanup_error` (which
makes the evaluation invalid, see runner.py) and the others still run. With
`release_later`, `close` only sends the kill and keeps the output tails; waiting for the
sandbox to end, removing its cgroup and its working directory are left to the sweeper
thread (sweeper.py), which logs a failure instead. The tails then hold what the candidate
wrote until the kill: a write in flight when it lands may be cut, and nothing written
after the caller's last call was answered is part of any verdict anyway.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import signal
import subprocess
import sys
from collections.abc import Callable

from adrs.sandbox import workdirs
from adrs.sandbox.capture import STREAMS, Capture
from adrs.sandbox.cgroups import SandboxCgroup
from adrs.sandbox.cleanup import remove_tree
from adrs.sandbox.isolation import CHILD_SCRIPT, PYTHON_FLAGS, Limits, environment, launch_plan
from adrs.sandbox.sweeper import SWEEPER
from adrs.sandbox.zygote import ZYGOTE_CLIENT, ForkedSandbox

PROGRAM_FILE = "candidate.py"  # in the working directory, written by the child
_TAIL_CACHE_CHARS = 16_000
_KILL_WAIT_S = 10.0  # a killed sandbox is reaped within this, or left to the zygote


def describe_exit(code: int, via_init: bool, limits: Limits) -> str:
    """Exit status as words. Through our namespace init, 128 + n means signal n."""
    signum = -code if code < 0 else code - 128 if via_init and code > 128 else 0
    if not signum:
        return f"exited with code {code}"
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    hints = {int(signal.SIGXCPU): f" (its CPU time limit is {limits.cpu_seconds} s)",
             int(signal.SIGKILL): f" (the CPU time limit of {limits.cpu_seconds} s, or memory)",
             int(signal.SIGXFSZ): f" (its output limit is {limits.output_bytes} bytes)"}
    return f"was killed by {name}{hints.get(signum, '')}"


class SandboxProcess:
    """One sandbox on the trusted side. `start` once, `close` once (idempotent)."""

    def __init__(self, limits: Limits, harness: str | None) -> None:
        self.limits, self.harness = limits, harness
        self.workdir: str | None = None
        self.proc: subprocess.Popen[bytes] | ForkedSandbox | None = None
        self.req = self.rep = -1  # our ends of the request and reply pipes
        self.via_init = False  # the child runs under its own namespace init
        self.cleanup_error: str | None = None
        self._capture: Capture | None = None
        self._cgroup: SandboxCgroup | None = None
        self._closed = False
        self._tails: dict[str, str] = {}

    def launch(self) -> SandboxProcess:
        """Start the child in a fresh working directory; it sets itself up and waits for the
        program (child.py), which the caller sends over the request pipe. A launch that
        fails frees what it had made (`close`) and raises."""
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        self.workdir = workdirs.make()
        path = os.path.join(self.workdir, PROGRAM_FILE)
        self._capture = Capture()
        self._cgroup = SandboxCgroup.create(self.limits.memory_mb + self.limits.disk_mb,
                                            self.limits.max_processes)
        req_r, self.req = os.pipe()
        self.rep, rep_w = os.pipe()
        for fd in (self.req, self.rep):  # fewer, larger reads and writes of big data
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 1 << 20)
        try:
            self._launch(path, req_r, rep_w)
        finally:
            os.close(req_r)
            os.close(rep_w)

    def _launch(self, candidate_path: str, req_r: int, rep_w: int) -> None:
        assert self.workdir is not None and self._capture is not None
        limits = self.limits
        argv = [sys.executable, *PYTHON_FLAGS, CHILD_SCRIPT, str(req_r), str(rep_w),
                candidate_path, *([self.harness] if self.harness else [])]
        plan = launch_plan(limits, argv)
        self.via_init = plan.namespaced
        env = environment(self.workdir, plan.lockdown, limits.max_processes, limits.disk_mb)
        out, err = (self._capture.fds[stream] for stream in STREAMS)
        cgroup = list(self._cgroup.procs_files) if self._cgroup else []
        if plan.fork_rlimits is not None:  # the fast path, where it is available
            self.proc = ZYGOTE_CLIENT.spawn(environment("/"), {
                "env": env, "cwd": self.workdir, "candidate": candidate_path,
                "harness": self.harness, "network": limits.network, "cgroup": cgroup,
                "rlimits": [list(pair) for pair in plan.fork_rlimits]},
                [out, err, req_r, rep_w])
        if self.proc is None:
            self.proc = subprocess.Popen(
                plan.command, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                pass_fds=(req_r, rep_w), cwd=self.workdir, env=env,
                start_new_session=True, preexec_fn=_preexec(plan.preexec, self._cgroup))

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """Close our pipe ends, kill every process of the sandbox and reap it (bounded)."""
        self._signal()
        _wait_for_end(self.proc)

    def _signal(self) -> None:
        """Close our pipe ends and send the kill to every process of the sandbox."""
        for fd in (self.req, self.rep):
            if fd >= 0:
                os.close(fd)
        self.req = self.rep = -1
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        if isinstance(proc, ForkedSandbox):
            proc.kill()  # by pidfd; its init, and with it the pid namespace, dies too
        else:  # the group holds the sandbox's processes; the pid in case it left it
            for kill, target in ((os.killpg, proc.pid), (os.kill, proc.pid)):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    kill(target, signal.SIGKILL)

    def close(self, release_later: bool = False) -> None:
        """Kill, keep the output tails, free the cgroup, remove the working directory
        (with `release_later`: send the kill, keep the tails, and leave the wait for the
        end and the rest to the sweeper's thread)."""
        if self._closed:
            return
        self._closed = True
        if release_later:
            self._steps(self._signal, self._keep_tails)
            SWEEPER.submit(self._release)
        else:
            self._steps(self.kill, self._keep_tails)
            self._release()

    def _release(self) -> str | None:
        """Wait for the end, free the cgroup, then remove the working directory: the first
        fault, or None."""
        return self._steps(functools.partial(_wait_for_end, self.proc), self._drop_cgroup,
                           self._remove_workdir)

    def _steps(self, *steps: Callable[[], None]) -> str | None:
        """Run every step; return the first fault of these steps (None when they all
        went through) and keep the first fault of all in `cleanup_error`."""
        first: str | None = None
        for step in steps:
            try:
                step()
            except Exception as exc:
                first = first or f"{type(exc).__name__}: {exc}"
        self.cleanup_error = self.cleanup_error or first
        return first

    def _keep_tails(self) -> None:
        if self._capture is not None:
            for stream in STREAMS:
                self._tails[stream] = self._capture.tail(stream, _TAIL_CACHE_CHARS)
            self._capture.close()

    def _drop_cgroup(self) -> None:
        if self._cgroup is not None and not self._cgroup.destroy():
            raise OSError("the sandbox's cgroup could not be removed")

    def _remove_workdir(self) -> None:
        if self.workdir is not None:
            error = remove_tree(self.workdir)
            if error is not None:
                raise OSError(f"the working directory could not be removed: {error}")

    def tail(self, stream: str, n_chars: int) -> str:
        """The last `n_chars` characters the candidate wrote to `stream`."""
        if self._closed or self._capture is None:
            return self._tails.get(stream, "")[-n_chars:]
        return self._capture.tail(stream, n_chars)

    def exit_text(self) -> str:
        """How the child ended, in words for the LLM (after its pipe closed)."""
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "stopped answering (its reply pipe closed)"
        text = describe_exit(code, self.via_init, self.limits)
        if self._cgroup is not None and self._cgroup.memory_exceeded():
            return (f"{text}: it exceeded the sandbox's memory limit ({self.limits.memory_mb} "
                    f"MB, plus {self.limits.disk_mb} MB of files and shared memory)")
        return text


def _wait_for_end(proc: subprocess.Popen[bytes] | ForkedSandbox | None) -> None:
    """Wait (bounded) until a killed sandbox has ended."""
    if proc is not None and proc.returncode is None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=_KILL_WAIT_S)


def _preexec(rlimits: Callable[[], None] | None,
             cgroup: SandboxCgroup | None) -> Callable[[], None] | None:
    """The Popen path's pre-exec function: join the cgroup, then set rlimits if needed."""
    if cgroup is None:
        return rlimits

    def join_then_limit() -> None:
        cgroup.join()
        if rlimits is not None:
            rlimits()

    return join_then_limit

"""A handle on one candidate program running in a sandboxed child process.

The trusted side (the evaluator) holds a `Candidate` and calls the candidate's top-level
functions with `call`; arguments and results cross the boundary through the codec, so the
trusted side only ever receives plain data. Every fault of the candidate (exception at load
or call time, timeout, crash, memory or output limit, bad return value) raises
`CandidateFault` with a message written for an LLM; after a fault the handle is dead.
Time is measured on the trusted side only. See isolation.py for the protections; without
a pid namespace the process group is killed on close, but a grandchild that called
setsid() escapes it.

The trusted side touches nothing the candidate controls: output is captured through
descriptors made before the child starts (capture.py), replies are bounded in size, items
and decode time (codec.py), and `close` never raises and never blocks: a fault in cleanup
is kept in `cleanup_error`, which makes the evaluation invalid (runner.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from adrs.sandbox import codec
from adrs.sandbox.capture import Capture
from adrs.sandbox.cgroups import SandboxCgroup
from adrs.sandbox.cleanup import remove_tree
from adrs.sandbox.isolation import (
    CHILD_SCRIPT,
    PYTHON_FLAGS,
    Limits,
    environment,
    launch_plan,
    protections,
)
from adrs.sandbox.zygote import ZYGOTE_CLIENT, ForkedSandbox

__all__ = ["Candidate", "CandidateFault", "Limits", "protections"]

_NAME_RE = re.compile(r"(?:harness\.)?[A-Za-z_][A-Za-z0-9_]*")
_POLL_SLICE_S = 0.1  # how often a silent child is checked for being alive
_TAIL_CACHE_CHARS = 16_000
_KILL_WAIT_S = 10.0  # a killed sandbox is reaped within this, or left to the zygote


class CandidateFault(Exception):
    """A fault of the candidate program. The message is meant for the LLM to read."""


# ------------------------------------------------------------------------------ messages
def _describe_exit(code: int, via_init: bool, limits: Limits) -> str:
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


def _error_message(error: dict[str, Any], what: str, limits: Limits) -> str:
    kind, exc_type = error["kind"], error["type"]
    text = f"{exc_type}: {error['message']}" if exc_type else error["message"]
    tail = f"\n{error['traceback']}" if error["traceback"] else ""
    if kind == "memory" or exc_type == "MemoryError":
        return f"{what} exceeded the memory limit ({limits.memory_mb} MB): {text}{tail}"
    if kind == "output":
        return (f"{what} exceeded the output limit ({limits.output_bytes} bytes for stdout, "
                f"stderr and each file): {text}{tail}")
    if kind == "load":
        return f"the program failed to load: {text}{tail}"
    if kind == "exception":
        return f"{what} raised {text}{tail}"
    if kind == "unencodable":
        return f"{what} {text}"
    return text


def _valid_error(error: object) -> dict[str, Any] | None:
    keys = ("kind", "type", "message", "traceback")
    if isinstance(error, dict) and all(isinstance(error.get(k), str) for k in keys):
        return error
    return None


class _Timeout(Exception):
    pass


class _Gone(Exception):
    pass


# ----------------------------------------------------------------------------- the handle
class Candidate:
    """A running candidate program. Use as a context manager; calls are not thread-safe.

    `__enter__` starts the child and waits (within the time budget) for the program to
    load; it raises CandidateFault if the program fails to load. `close` kills every
    process of the sandbox, reaps it and removes its temporary directory.
    """

    def __init__(self, source: str, limits: Limits | None = None,
                 harness: str | None = None) -> None:
        self.source = source
        self.limits = limits or Limits()
        self.harness = None if harness is None else os.path.abspath(harness)
        self.fault: CandidateFault | None = None
        self.workdir: str | None = None
        self._proc: subprocess.Popen[bytes] | ForkedSandbox | None = None
        self._req = self._rep = -1
        self._req_poll, self._rep_poll = select.poll(), select.poll()
        self._deadline = math.inf
        self._via_init = False
        self._closed = False
        self._tails: dict[str, str] = {}
        self._capture: Capture | None = None
        self._cgroup: SandboxCgroup | None = None
        self.cleanup_error: str | None = None  # a fault of the trusted side in close()

    # -------------------------------------------------------------------------- lifecycle
    def __enter__(self) -> Candidate:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def start(self) -> None:
        """Start the child and wait for the load report (see the class docstring)."""
        if self.harness is not None and not os.path.isfile(self.harness):
            raise FileNotFoundError(f"harness file '{self.harness}' does not exist")
        self._deadline = time.monotonic() + self.limits.timeout_s
        try:
            self.workdir = tempfile.mkdtemp(prefix="adrs-sandbox-")
            path = os.path.join(self.workdir, "candidate.py")
            Path(path).write_text(self.source, encoding="utf-8")
            self._spawn(path)
            self._check_load(self._receive("loading the program", None))
        except BaseException:
            self.close()
            raise

    def _spawn(self, candidate_path: str) -> None:
        assert self.workdir is not None
        self._capture = Capture()
        limits = self.limits
        self._cgroup = SandboxCgroup.create(limits.memory_mb + limits.disk_mb,
                                            limits.max_processes)
        req_r, self._req = os.pipe()
        self._rep, rep_w = os.pipe()
        argv = [sys.executable, *PYTHON_FLAGS, CHILD_SCRIPT, str(req_r), str(rep_w),
                candidate_path, *([self.harness] if self.harness else [])]
        plan = launch_plan(limits, argv)
        self._via_init = plan.namespaced  # the child then runs under its own init
        for fd in (self._req, self._rep):  # fewer, larger reads and writes of big data
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 1 << 20)
        env = environment(self.workdir, plan.lockdown, limits.max_processes, limits.disk_mb)
        out, err = self._capture.fds["stdout"], self._capture.fds["stderr"]
        cgroup = list(self._cgroup.procs_files) if self._cgroup else []
        try:
            if plan.fork_rlimits is not None:  # the fast path, where it is available
                self._proc = ZYGOTE_CLIENT.spawn(environment("/"), {
                    "env": env, "cwd": self.workdir, "candidate": candidate_path,
                    "harness": self.harness, "network": limits.network, "cgroup": cgroup,
                    "rlimits": [list(pair) for pair in plan.fork_rlimits]},
                    [out, err, req_r, rep_w])
            if self._proc is None:
                self._proc = subprocess.Popen(
                    plan.command, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                    pass_fds=(req_r, rep_w), cwd=self.workdir, env=env,
                    start_new_session=True, preexec_fn=_preexec(plan.preexec, cgroup))
        finally:
            os.close(req_r)
            os.close(rep_w)
        os.set_blocking(self._req, False)
        self._req_poll.register(self._req, select.POLLOUT)
        self._rep_poll.register(self._rep, select.POLLIN)

    def _check_load(self, report: object) -> None:
        if report == {"loaded": True}:
            return
        error = _valid_error(report.get("error") if isinstance(report, dict) else None)
        if error is None or error["kind"] != "load":
            raise self._fail("the program sent a malformed load report")
        raise self._fail(_error_message(error, "loading the program", self.limits))

    def close(self) -> None:
        """Kill every process of the sandbox, reap it, remove its directory. Idempotent;
        never raises: a failing step is kept in `cleanup_error` and the others still run."""
        if self._closed:
            return
        self._closed = True
        for step in (self._kill, self._keep_tails, self._drop_cgroup, self._remove_workdir):
            try:
                step()
            except Exception as exc:
                self.cleanup_error = self.cleanup_error or f"{type(exc).__name__}: {exc}"

    def _keep_tails(self) -> None:
        if self._capture is not None:
            for stream in ("stdout", "stderr"):
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

    def _kill(self) -> None:
        for fd in (self._req, self._rep):
            if fd >= 0:
                os.close(fd)
        self._req = self._rep = -1
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        if isinstance(proc, ForkedSandbox):
            proc.kill()  # by pidfd; its init, and with it the pid namespace, dies too
        else:  # the group holds the sandbox's processes; the pid in case it left it
            for kill, target in ((os.killpg, proc.pid), (os.kill, proc.pid)):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    kill(target, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=_KILL_WAIT_S)

    # ------------------------------------------------------------------------------ calls
    def call(self, name: str, *args: object, timeout_s: float | None = None) -> object:
        """Call the candidate's top-level function `name` (or `harness.name`) with `args`.

        Waits at most `timeout_s` and never past the evaluation's budget. Returns plain
        data; raises CandidateFault for any fault of the candidate. A ValueError or
        CodecError here is a bug of the caller (bad name, arguments that are not plain
        data) and leaves the handle alive.
        """
        if not _NAME_RE.fullmatch(name):
            raise ValueError(f"not a function name: {name!r}")
        if self.fault is not None:
            raise CandidateFault(str(self.fault))
        if self._closed or self._proc is None:
            raise RuntimeError("the candidate is not running: use it inside a with block")
        request = codec.encode({"fn": name, "args": list(args)})
        if len(request) > codec.MAX_REQUEST_BYTES:
            raise codec.CodecError(f"the arguments of {name}() exceed "
                                   f"{codec.MAX_REQUEST_BYTES} bytes once encoded")
        what = f"{name}()"
        self._send(request, what, timeout_s)
        reply = self._receive(what, timeout_s)
        if isinstance(reply, dict) and len(reply) == 1 and "ok" in reply:
            return reply["ok"]
        error = _valid_error(reply.get("error") if isinstance(reply, dict) else None)
        if error is None:
            raise self._fail(f"{what} sent a malformed reply")
        raise self._fail(_error_message(error, what, self.limits))

    def _fail(self, message: str) -> CandidateFault:
        """Record the fault, kill the child, return the exception to raise."""
        self.fault = CandidateFault(message)
        self._kill()
        return self.fault

    def _call_deadline(self, timeout_s: float | None) -> tuple[float, str]:
        now = time.monotonic()
        if timeout_s is not None and now + timeout_s < self._deadline:
            return now + timeout_s, f"timed out after {timeout_s:.1f} s"
        return self._deadline, ("timed out: the evaluation used up its time limit of "
                                f"{self.limits.timeout_s:.1f} s")

    def _send(self, request: bytes, what: str, timeout_s: float | None) -> None:
        deadline, timeout_text = self._call_deadline(timeout_s)
        try:
            self._write(codec.frame_header(len(request)) + request, deadline)
        except _Timeout:
            raise self._fail(f"{what} {timeout_text}") from None
        except _Gone:
            raise self._fail(f"the program {self._exit_text()} during {what}") from None

    def _receive(self, what: str, timeout_s: float | None) -> object:
        deadline, timeout_text = self._call_deadline(timeout_s)
        try:
            size = codec.frame_length(self._read(codec.FRAME_HEADER.size, deadline),
                                      self.limits.reply_mb << 20)
            return codec.decode(self._read(size, deadline), deadline=deadline)
        except _Timeout:
            raise self._fail(f"{what} {timeout_text}") from None
        except _Gone:
            raise self._fail(f"the program {self._exit_text()} during {what}") from None
        except codec.CodecError as exc:
            raise self._fail(f"{what} sent a reply that cannot be decoded: {exc}") from None

    # ------------------------------------------------------------------------------- pipes
    def _wait_ready(self, poller: select.poll, deadline: float) -> None:
        """Wait until the polled pipe is ready; _Timeout past the deadline, _Gone if dead."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Timeout
            if poller.poll(min(left, _POLL_SLICE_S) * 1000):
                return
            # Silence: a grandchild may hold the pipe open after the child died.
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise _Gone

    def _read(self, n: int, deadline: float) -> bytes:
        chunks: list[bytes] = []
        left = n
        while left:
            self._wait_ready(self._rep_poll, deadline)
            chunk = os.read(self._rep, min(left, 1 << 20))
            if not chunk:
                raise _Gone
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _write(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            try:  # the pipe is non-blocking: write first, wait only when it is full
                view = view[os.write(self._req, view[:1 << 20]):]
            except BlockingIOError:
                self._wait_ready(self._req_poll, deadline)
            except BrokenPipeError:
                raise _Gone from None

    def _exit_text(self) -> str:
        assert self._proc is not None
        try:
            code = self._proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "stopped answering (its reply pipe closed)"
        if self.memory_exceeded():
            return (f"{_describe_exit(code, self._via_init, self.limits)}: it exceeded the "
                    f"sandbox's memory limit ({self.limits.memory_mb} MB, plus "
                    f"{self.limits.disk_mb} MB of files and shared memory)")
        return _describe_exit(code, self._via_init, self.limits)

    # ------------------------------------------------------------------------------ output
    def stderr_tail(self, n_chars: int = 2000) -> str:
        """The last `n_chars` characters the candidate wrote to stderr."""
        return self._tail("stderr", n_chars)

    def stdout_tail(self, n_chars: int = 2000) -> str:
        """The last `n_chars` characters the candidate wrote to stdout."""
        return self._tail("stdout", n_chars)

    def memory_exceeded(self) -> bool:
        """Whether the sandbox hit its cgroup's memory limit (False without a cgroup)."""
        return self._cgroup is not None and self._cgroup.memory_exceeded()

    def _tail(self, stream: str, n_chars: int) -> str:
        if self._closed or self._capture is None:
            return self._tails.get(stream, "")[-n_chars:]
        return self._capture.tail(stream, n_chars)


def _preexec(rlimits: Callable[[], None] | None,
             cgroup: list[str]) -> Callable[[], None] | None:
    """The Popen path's pre-exec function: join the cgroup, then set rlimits if needed."""
    if not cgroup:
        return rlimits

    def join_then_limit() -> None:
        for procs in cgroup:
            fd = os.open(procs, os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
        if rlimits is not None:
            rlimits()

    return join_then_limit

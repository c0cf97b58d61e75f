"""A handle on one candidate program running in a sandboxed child process.

The trusted side (the evaluator) holds a `Candidate` and calls the candidate's top-level
functions with `call`; arguments and results cross the boundary through the codec, so the
trusted side only ever receives plain data. Every fault of the candidate (exception at load
or call time, timeout, crash, memory or output limit, bad return value) raises
`CandidateFault` with a message written for an LLM; after a fault the handle is dead.

Protections, each used when this machine allows it (see `protections()`):
- resource limits (address space, CPU time, file size, no core dumps) set before exec, by
  `prlimit` when installed, else in the forked child before exec;
- a fresh user, pid, mount and network namespace (`unshare`): no network, a private /proc
  (the parent's environment is not readable), rlimits the candidate cannot raise, and every
  process the candidate starts dies with the sandbox, even after setsid();
- a whitelisted environment (no API keys), a private temporary working directory, stdin
  from /dev/null, stdout and stderr captured in size-capped files.
Without namespaces the whole process group is killed on close, but a grandchild that called
setsid() escapes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import math
import os
import re
import resource
import select
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from adrs.evaluation import codec

CHILD_SCRIPT = str(Path(__file__).with_name("child.py"))
# -S: no site module, whose .pth imports (editable installs ...) cost more than the rest of
# the start-up; the child adds site-packages itself. -P: the script's directory is not
# importable. Not -E/-I: the environment is a whitelist we build, and PYTHONHASHSEED in it
# must be honoured.
PYTHON_FLAGS = ("-S", "-P")
SITE_DIRS_VAR = "ADRS_SITE_DIRS"
_NAME_RE = re.compile(r"(?:harness\.)?[A-Za-z_][A-Za-z0-9_]*")
_POLL_SLICE_S = 0.1  # how often a silent child is checked for being alive
_TAIL_CACHE_BYTES = 64_000
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "NUMEXPR_NUM_THREADS")
_NS_FLAGS = ("--pid", "--fork", "--kill-child", "--mount-proc")


@dataclass(frozen=True)
class Limits:
    """Resource limits of one evaluation.

    timeout_s is the wall-clock budget of the whole evaluation, load included; cpu_s
    defaults to ceil(timeout_s) + 1; output_bytes caps each of stdout, stderr and any file
    the candidate writes; max_processes applies inside a user namespace only (elsewhere
    the kernel counts all of the user's processes); network=False means no network.
    """

    timeout_s: float = 30.0
    memory_mb: int = 4096
    cpu_s: int | None = None
    output_bytes: int = 1_000_000
    max_processes: int = 64
    network: bool = False

    def __post_init__(self) -> None:
        if not (self.timeout_s > 0 and math.isfinite(self.timeout_s)):
            raise ValueError(f"timeout_s must be a positive number, got {self.timeout_s!r}")
        for name in ("memory_mb", "output_bytes", "max_processes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        if self.cpu_s is not None and self.cpu_s < 1:
            raise ValueError(f"cpu_s must be at least 1, got {self.cpu_s!r}")

    @property
    def cpu_seconds(self) -> int:
        return self.cpu_s if self.cpu_s is not None else math.ceil(self.timeout_s) + 1


class CandidateFault(Exception):
    """A fault of the candidate program. The message is meant for the LLM to read."""


# ------------------------------------------------------------------------ the command line
@functools.cache
def _namespace_prefix(unshare: str | None, network: bool) -> tuple[str, ...]:
    """The `unshare` prefix that works on this machine, probed once; () if none does."""
    if unshare is None:
        return ()
    variants = [("--user", "--map-root-user")]
    if os.geteuid() == 0:
        variants.append(())  # root without user namespaces (some container runtimes)
    for extra in variants:
        prefix = (unshare, *extra, *(() if network else ("--net",)), *_NS_FLAGS)
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            probe = subprocess.run([*prefix, sys.executable, "-S", "-c", ""], timeout=10,
                                   stdin=subprocess.DEVNULL, capture_output=True, env={})
            if probe.returncode == 0:
                return prefix
    return ()


def _rlimits(limits: Limits, inside_namespace: bool) -> dict[int, int]:
    values = {resource.RLIMIT_AS: limits.memory_mb << 20,
              resource.RLIMIT_CPU: limits.cpu_seconds,
              resource.RLIMIT_FSIZE: limits.output_bytes,
              resource.RLIMIT_CORE: 0}
    if inside_namespace and os.geteuid() != 0:  # root is exempt from RLIMIT_NPROC anyway
        values[resource.RLIMIT_NPROC] = limits.max_processes
    return values


_PRLIMIT_NAMES = {resource.RLIMIT_AS: "as", resource.RLIMIT_CPU: "cpu",
                  resource.RLIMIT_FSIZE: "fsize", resource.RLIMIT_CORE: "core",
                  resource.RLIMIT_NPROC: "nproc"}


def _command(limits: Limits, argv: list[str]) -> tuple[list[str], Callable[[], None] | None]:
    """The full command line, and the pre-exec function when prlimit is not installed.

    prlimit runs inside the namespaces so that the process count is the sandbox's own.
    A pre-exec function is the fallback only: it is not safe in a threaded parent.
    """
    prefix = list(_namespace_prefix(shutil.which("unshare"), limits.network))
    prlimit = shutil.which("prlimit")
    values = _rlimits(limits, bool(prefix) and prlimit is not None)
    if prlimit is None:
        return prefix + argv, functools.partial(_set_rlimits, values)
    flags = [f"--{_PRLIMIT_NAMES[key]}={value}" for key, value in values.items()]
    return [*prefix, prlimit, *flags, "--", *argv], None


def _set_rlimits(values: dict[int, int]) -> None:
    for key, value in values.items():
        resource.setrlimit(key, (value, value))


@functools.cache
def _site_dirs() -> str:
    """This interpreter's site-packages (not the user's): what candidates may import."""
    return os.pathsep.join(site.getsitepackages())


def _environment(workdir: str) -> dict[str, str]:
    """A whitelist: nothing of the parent's environment (API keys ...) leaks in."""
    env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": workdir, "TMPDIR": workdir,
           "LANG": os.environ.get("LANG", "C.UTF-8"), "PYTHONHASHSEED": "0",
           "PYTHONDONTWRITEBYTECODE": "1", SITE_DIRS_VAR: _site_dirs()}
    if "LC_ALL" in os.environ:
        env["LC_ALL"] = os.environ["LC_ALL"]
    env.update(dict.fromkeys(_THREAD_VARS, "1"))
    return env


def protections(network: bool = False) -> dict[str, bool]:
    """Which protections a sandbox started now would have, for `adrs doctor`."""
    prefix = _namespace_prefix(shutil.which("unshare"), network)
    return {
        "rlimits": True,
        "rlimits_set_by_prlimit": shutil.which("prlimit") is not None,
        "environment_whitelist": True,
        "user_namespace": "--user" in prefix,
        "pid_namespace": bool(prefix),
        "private_proc": bool(prefix),
        "network_namespace": bool(prefix) and not network,
        "process_count_limit": bool(prefix) and os.geteuid() != 0,
        "runs_as_non_root": os.geteuid() != 0,
    }


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
    return f"{what}: {text}"


def _valid_error(error: object) -> dict[str, Any] | None:
    keys = ("kind", "type", "message", "traceback")
    if isinstance(error, dict) and all(isinstance(error.get(k), str) for k in keys):
        return error
    return None


def _read_tail(path: str, n_chars: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 4 * n_chars))
            data = f.read()
    except OSError:
        return ""
    return data.decode("utf-8", "replace")[-n_chars:]


def _remove_tree(path: str) -> None:
    """Remove a directory even if the candidate made parts of it read-only."""
    def make_writable(func: Callable[..., object], target: str, _exc: object) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(target), 0o700)
            os.chmod(target, 0o700)
            func(target)

    shutil.rmtree(path, onerror=make_writable)
    shutil.rmtree(path, ignore_errors=True)


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
        self._proc: subprocess.Popen[bytes] | None = None
        self._req = self._rep = -1
        self._deadline = math.inf
        self._via_init = False
        self._closed = False
        self._tails: dict[str, str] = {}

    # -------------------------------------------------------------------------- lifecycle
    def __enter__(self) -> Candidate:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def start(self) -> None:
        """Start the child and wait for the load report (see the class docstring)."""
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
        req_r, self._req = os.pipe()
        self._rep, rep_w = os.pipe()
        argv = [sys.executable, *PYTHON_FLAGS, CHILD_SCRIPT, str(req_r), str(rep_w),
                candidate_path, *([self.harness] if self.harness else [])]
        command, preexec = _command(self.limits, argv)
        self._via_init = "--pid" in command  # then the child runs under its own init
        for fd in (self._req, self._rep):  # fewer, larger reads and writes of big data
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 1 << 20)
        try:
            with open(self._stream_path("stdout"), "wb") as out, \
                    open(self._stream_path("stderr"), "wb") as err:
                self._proc = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                    pass_fds=(req_r, rep_w), cwd=self.workdir, env=_environment(self.workdir),
                    start_new_session=True, preexec_fn=preexec)
        finally:
            os.close(req_r)
            os.close(rep_w)
        os.set_blocking(self._req, False)

    def _check_load(self, report: object) -> None:
        if report == {"loaded": True}:
            return
        error = _valid_error(report.get("error") if isinstance(report, dict) else None)
        if error is None or error["kind"] != "load":
            raise self._fail("the program sent a malformed load report")
        raise self._fail(_error_message(error, "loading the program", self.limits))

    def close(self) -> None:
        """Kill every process of the sandbox, reap it, remove its directory. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._kill()
        for stream in ("stdout", "stderr"):
            self._tails[stream] = self._tail_from_file(stream, _TAIL_CACHE_BYTES)
        if self.workdir is not None:
            _remove_tree(self.workdir)

    def _kill(self) -> None:
        for fd in (self._req, self._rep):
            if fd >= 0:
                os.close(fd)
        self._req = self._rep = -1
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        # The group holds the sandbox's processes; the pid itself in case it left it.
        for kill, target in ((os.killpg, proc.pid), (os.kill, proc.pid)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                kill(target, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)

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
            self._write(codec.frame_header(len(request)), deadline)
            self._write(request, deadline)
        except _Timeout:
            raise self._fail(f"{what} {timeout_text}") from None
        except _Gone:
            raise self._fail(f"the program {self._exit_text()} during {what}") from None

    def _receive(self, what: str, timeout_s: float | None) -> object:
        deadline, timeout_text = self._call_deadline(timeout_s)
        try:
            size = codec.frame_length(self._read(codec.FRAME_HEADER.size, deadline))
            return codec.decode(self._read(size, deadline))
        except _Timeout:
            raise self._fail(f"{what} {timeout_text}") from None
        except _Gone:
            raise self._fail(f"the program {self._exit_text()} during {what}") from None
        except codec.CodecError as exc:
            raise self._fail(f"{what} sent a reply that cannot be decoded: {exc}") from None

    # ------------------------------------------------------------------------------- pipes
    def _wait_ready(self, fd: int, event: int, deadline: float) -> None:
        """Wait until `fd` is ready; _Timeout past the deadline, _Gone if the child died."""
        poller = select.poll()
        poller.register(fd, event)
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
            self._wait_ready(self._rep, select.POLLIN, deadline)
            chunk = os.read(self._rep, min(left, 1 << 20))
            if not chunk:
                raise _Gone
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _write(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            self._wait_ready(self._req, select.POLLOUT, deadline)
            try:
                view = view[os.write(self._req, view[:1 << 20]):]
            except BlockingIOError:
                continue
            except BrokenPipeError:
                raise _Gone from None

    def _exit_text(self) -> str:
        assert self._proc is not None
        try:
            code = self._proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "stopped answering (its reply pipe closed)"
        return _describe_exit(code, self._via_init, self.limits)

    # ------------------------------------------------------------------------------ output
    def _stream_path(self, stream: str) -> str:
        assert self.workdir is not None
        return os.path.join(self.workdir, f"{stream}.txt")

    def _tail_from_file(self, stream: str, n_chars: int) -> str:
        return _read_tail(self._stream_path(stream), n_chars) if self.workdir else ""

    def stderr_tail(self, n_chars: int = 2000) -> str:
        """The last `n_chars` characters the candidate wrote to stderr."""
        return self._tail("stderr", n_chars)

    def stdout_tail(self, n_chars: int = 2000) -> str:
        """The last `n_chars` characters the candidate wrote to stdout."""
        return self._tail("stdout", n_chars)

    def _tail(self, stream: str, n_chars: int) -> str:
        if self._closed:
            return self._tails.get(stream, "")[-n_chars:]
        return self._tail_from_file(stream, n_chars)

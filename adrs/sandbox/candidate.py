"""A handle on one candidate program running in a sandboxed child process.

The trusted side (the evaluator) holds a `Candidate` and calls the candidate's top-level
functions with `call`; arguments and results cross the boundary through the codec, so the
trusted side only ever receives plain data. Every fault of the candidate (exception at load
or call time, timeout, crash, memory or output limit, bad return value) raises
`CandidateFault` with a message written for an LLM; after a fault the handle is dead.
Time is measured on the trusted side only. The sandbox is launched before the program is
known (standby.py) and the program is its first message. See isolation.py for the
protections; without a pid namespace the process group is killed on close, but a
grandchild that called setsid() escapes it.

The trusted side touches nothing the candidate controls: output is captured through
descriptors made before the child starts (capture.py), replies are bounded in size, items
and decode time (codec.py), and `close` never raises and never blocks: a fault in cleanup
is kept in `cleanup_error`, which makes the evaluation invalid (runner.py); with
`release_later` the kill is sent and the output tails kept before `close` returns, and
the wait for the sandbox's end, its cgroup and working directory are left to the
background (sweeper.py): only sending the kill can fault. The sandbox's
processes and resources are process.py's concern, the pipes channel.py's; this module is
the calls.
"""

from __future__ import annotations
import __future__

import functools
import marshal
import math
import os
import re
import time
from dataclasses import replace
from types import TracebackType
from typing import Any

from adrs.sandbox import codec
from adrs.sandbox.channel import Channel, Gone, Timeout
from adrs.sandbox.isolation import Limits, protections
from adrs.sandbox.process import SandboxProcess
from adrs.sandbox.standby import STANDBY

__all__ = ["Candidate", "CandidateFault", "Limits", "protections", "sibling"]

_ANNOTATIONS = __future__.annotations.compiler_flag
_NAME_RE = re.compile(r"(?:harness\.)?[A-Za-z_][A-Za-z0-9_]*")
_CHECKED_NAMES: set[str] = set()  # names that matched _NAME_RE (a lockstep evaluator
_MAX_CHECKED_NAMES = 1024  # calls the same few thousands of times)
_LOADING = "loading the program"


def _what(name: str) -> str:
    """What a message was about, in words: "f()", or "loading the program"."""
    return name if name == _LOADING else f"{name}()"


class CandidateFault(Exception):
    """A fault of the candidate program. The message is meant for the LLM to read."""


# ------------------------------------------------------------------------------ program
@functools.lru_cache(maxsize=16)
def compiled(source: str) -> bytes | None:
    """The program's code as the sandbox would compile it (file name candidate.py, the
    `annotations` future of child.py, no -O), as marshal data; None when it does not
    compile, and the sandbox compiles it to report why. Compiling here spares each sandbox
    the compiler's first use in a fresh fork (1-2 ms of copied pages); the same program
    (a re-evaluation, a sibling) is compiled once."""
    try:
        code = compile(source, "candidate.py", "exec", flags=_ANNOTATIONS,
                       dont_inherit=True, optimize=0)
    except Exception:  # the sandbox compiles it again, and reports why
        return None
    return marshal.dumps(code)


# ------------------------------------------------------------------------------ messages
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


def _timeout_text(what: str, timeout_s: float | None, call_limit: bool,
                  limits: Limits) -> str:
    """The fault of a call that waited until its deadline: the call's own `timeout_s`
    (`call_limit`) or the evaluation's budget. Made only on a timeout."""
    if call_limit and timeout_s is not None:
        return f"{what} timed out after {timeout_s:.1f} s"
    return f"{what} timed out: the evaluation used up its time limit of {limits.timeout_s:.1f} s"


def _valid_error(error: object) -> dict[str, Any] | None:
    keys = ("kind", "type", "message", "traceback")
    if isinstance(error, dict) and all(isinstance(error.get(k), str) for k in keys):
        return error
    return None


# ----------------------------------------------------------------------------- the handle
class Candidate:
    """A running candidate program. Use as a context manager; calls are not thread-safe.

    `__enter__` starts the child and waits (within the time budget) for the program to
    load; it raises CandidateFault if the program fails to load. `close` kills every
    process of the sandbox, reaps it and removes its temporary directory (the reaping and
    the removal after it returns, with `release_later`: for callers that need the
    verdict, not the clean-up, at once).
    """

    def __init__(self, source: str, limits: Limits | None = None,
                 harness: str | None = None, release_later: bool = False) -> None:
        self.source = source
        self.release_later = release_later
        self.limits = limits or Limits()
        self.harness = None if harness is None else os.path.abspath(harness)
        self.fault: CandidateFault | None = None
        self.process = SandboxProcess(self.limits, self.harness)
        self._channel: Channel | None = None
        self._deadline = math.inf

    @property
    def workdir(self) -> str | None:
        return self.process.workdir

    @property
    def cleanup_error(self) -> str | None:
        """A fault of the trusted side while closing (see process.py), or None."""
        return self.process.cleanup_error

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
            program = {"source": self.source, "code": compiled(self.source)}
            self.process = STANDBY.take(self.limits, self.harness)
            self._channel = Channel(self.process.req, self.process.rep, self.process.alive)
            self._send(codec.encode(program), _LOADING, None)
            self._check_load(self._receive(_LOADING, None))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Kill every process of the sandbox and free its resources. Idempotent; never
        raises (a fault is kept in `cleanup_error`)."""
        self._channel = None
        self.process.close(self.release_later)

    def _check_load(self, report: object) -> None:
        if report == {"loaded": True}:
            return
        error = _valid_error(report.get("error") if isinstance(report, dict) else None)
        if error is None or error["kind"] != "load":
            raise self._fail("the program sent a malformed load report")
        raise self._fail(_error_message(error, "loading the program", self.limits))

    # ------------------------------------------------------------------------------ calls
    def call(self, name: str, *args: object, timeout_s: float | None = None) -> object:
        """Call the candidate's top-level function `name` (or `harness.name`) with `args`.

        Waits at most `timeout_s` and never past the evaluation's budget. Returns plain
        data; raises CandidateFault for any fault of the candidate. A ValueError or
        CodecError here is a bug of the caller (bad name, arguments that are not plain
        data) and leaves the handle alive.
        """
        if name not in _CHECKED_NAMES:
            if not _NAME_RE.fullmatch(name):
                raise ValueError(f"not a function name: {name!r}")
            if len(_CHECKED_NAMES) < _MAX_CHECKED_NAMES:
                _CHECKED_NAMES.add(name)
        if self.fault is not None:
            raise CandidateFault(str(self.fault))
        if self._channel is None:
            raise RuntimeError("the candidate is not running: use it inside a with block")
        request = codec.encode_call(name, list(args))
        if len(request) > codec.MAX_REQUEST_BYTES:
            raise codec.CodecError(f"the arguments of {name}() exceed "
                                   f"{codec.MAX_REQUEST_BYTES} bytes once encoded")
        self._send(request, name, timeout_s)
        reply = self._receive(name, timeout_s)
        if type(reply) is dict and len(reply) == 1 and "ok" in reply:
            return reply["ok"]
        what = f"{name}()"
        error = _valid_error(reply.get("error") if isinstance(reply, dict) else None)
        if error is None:
            raise self._fail(f"{what} sent a malformed reply")
        raise self._fail(_error_message(error, what, self.limits))

    def _fail(self, message: str) -> CandidateFault:
        """Record the fault, kill the child, return the exception to raise."""
        self.fault = CandidateFault(message)
        self._channel = None
        self.process.kill()
        return self.fault

    def _call_deadline(self, timeout_s: float | None) -> float:
        if timeout_s is None:
            return self._deadline
        return min(time.monotonic() + timeout_s, self._deadline)

    def _send(self, request: bytes, name: str, timeout_s: float | None) -> None:
        """Send a request (`name` is what it calls: "loading the program" for the program);
        a timeout or a dead child is the candidate's fault."""
        deadline = self._call_deadline(timeout_s)
        assert self._channel is not None
        try:
            self._channel.send(request, deadline)
        except Timeout:
            raise self._fail(_timeout_text(_what(name), timeout_s, deadline < self._deadline,
                                             self.limits)) from None
        except Gone:
            raise self._fail(f"the program {self.process.exit_text()} during "
                             f"{_what(name)}") from None

    def _receive(self, name: str, timeout_s: float | None) -> object:
        deadline = self._call_deadline(timeout_s)
        assert self._channel is not None
        try:
            return self._channel.receive(deadline, self.limits.reply_mb << 20)
        except Timeout:
            raise self._fail(_timeout_text(_what(name), timeout_s, deadline < self._deadline,
                                             self.limits)) from None
        except Gone:
            raise self._fail(f"the program {self.process.exit_text()} during "
                             f"{_what(name)}") from None
        except codec.CodecError as exc:
            raise self._fail(f"{_what(name)} sent a reply that cannot be decoded: "
                             f"{exc}") from None

    # ------------------------------------------------------------------------------ output
    def stderr_tail(self, n_chars: int = 2000) -> str:
        """The last `n_chars` characters the candidate wrote to stderr."""
        return self.process.tail("stderr", n_chars)

    def stdout_tail(self, n_chars: int = 2000) -> str:
        """The last `n_chars` characters the candidate wrote to stdout."""
        return self.process.tail("stdout", n_chars)


def sibling(candidate: Candidate) -> Candidate:
    """A new, unstarted sandbox of `candidate`'s program and harness, with its limits but
    only what is left of its evaluation's time budget: for evaluators that need fresh
    processes (a pass, a group of scenarios). CandidateFault when nothing is left."""
    left = min(candidate.limits.timeout_s, candidate._deadline - time.monotonic())
    if left <= 0:
        raise CandidateFault("timed out: the evaluation used up its time limit of "
                             f"{candidate.limits.timeout_s:.1f} s")
    return Candidate(candidate.source, replace(candidate.limits, timeout_s=left),
                     candidate.harness)

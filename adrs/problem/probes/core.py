"""The probe's core: names shared by every probe module, the output channel (findings and
the status line on stderr) and `Probe`, the state of the hook on the sandbox server's
`handle` (installed by entry.install).

Reports travel on stderr only, never through files. A finding is one line,
`ADRS-PROBE <process> find <probe> <text>`, written once with os.write (no buffer), at most
MAX_FINDINGS per probe (more are counted). The status line `ADRS-PROBE <process> stat k=v
...` is padded to a fixed width and rewritten in place at the end of stderr (the sandbox's
stderr is a file, capture.py), so the tail the trusted side reads (EvalResult.stderr, its
last 2,000 characters) ends with the latest counts; where stderr cannot be rewritten in
place, the status line is appended at the calls 1, 2, 4, 8, ...
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

PREFIX = "ADRS-PROBE"
CHILD_MODULE = "_adrs_sandbox_child"
MODULE = "_adrs_probe"
SOURCE_NAME = "_adrs_probe.py"  # the file name this module's code runs under
PROGRAM_FILE = "candidate.py"  # child.py compiles the program under this name
STAT_WIDTH = 240
MAX_FINDINGS = 3
NUMBER = (int, float, bool)


def power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def loaded_numpy() -> Any:
    return sys.modules.get("numpy")  # never imported here: used only where already loaded


def request_parts(request: Any) -> tuple[str, Any]:
    """The function a request of the trusted side names, and its arguments."""
    if isinstance(request, dict):
        return str(request.get("fn")), request.get("args")
    return "?", None


# ------------------------------------------------------------------------------ reporting
class Out:
    """Finding lines and the status line on stderr (see the module docstring)."""

    def __init__(self, render: Callable[[], str]) -> None:
        self.process = os.urandom(4).hex()
        self.render = render
        self.found: Counter[str] = Counter()
        self._stat_at = -1
        self._stat_len = 0
        self._in_place = _rewritable(2)

    def finding(self, probe: str, text: str | Callable[[], str]) -> None:
        """Count a finding; write it if it is one of the probe's first MAX_FINDINGS (`text`
        may be a function, called only then)."""
        self.found[probe] += 1
        if self.found[probe] <= MAX_FINDINGS:
            self.line(f"find {probe} {text() if callable(text) else text}")

    def line(self, text: str) -> None:
        self._write(f"{PREFIX} {self.process} {text[:420]}\n".encode("utf-8", "replace"))

    def status(self, calls: int) -> None:
        if self._in_place or power_of_two(calls):
            self._write(b"")

    def _stat(self) -> bytes:
        text = f"{PREFIX} {self.process} stat {self.render()}"[:STAT_WIDTH]
        if self._in_place:  # a fixed width, so that the next one overwrites it exactly
            text = text.ljust(STAT_WIDTH)
        return (text + "\n").encode("utf-8", "replace")

    def _write(self, data: bytes) -> None:
        _flush_std()
        stat = self._stat()
        if self._in_place:
            try:
                end = os.lseek(2, 0, os.SEEK_END)
                # Over the last status line if nothing was written after it, else at the end.
                ours = self._stat_at >= 0 and self._stat_at + self._stat_len == end
                at = self._stat_at if ours else end
                os.pwrite(2, data + stat, at)
                self._stat_at, self._stat_len = at + len(data), len(stat)
                os.lseek(2, 0, os.SEEK_END)
                return
            except OSError:
                self._in_place = False
        _write_all(2, data + stat)


def _rewritable(fd: int) -> bool:
    try:
        import fcntl

        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND:
            return False
        os.lseek(fd, 0, os.SEEK_END)
    except (ImportError, OSError):
        return False
    return True


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
    except OSError:
        pass


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 (contextlib costs start-up time in the sandbox)
            stream.flush()
        except Exception:
            pass


# ------------------------------------------------------------------------- the probe core
class Probe:
    """One sandbox process's probe: the hook on `handle`, its budget and its report."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.mode: str = config["mode"]
        self.budget_s = float(config.get("budget_s", 5.0))
        self.own_s = 0.0
        self.calls = 0
        self.error = ""
        self.game: Any = None
        self.out = Out(self.render)

    @property
    def active(self) -> bool:
        return not self.error and self.own_s < self.budget_s

    def render(self) -> str:
        fields = {"mode": self.mode, "calls": self.calls,
                  "own_ms": round(self.own_s * 1e3), **self.out.found}
        if self.game is not None:
            fields.update(self.game.stats())
        if self.own_s >= self.budget_s:
            fields["budget"] = "spent"
        if self.error:
            fields["error"] = self.error.replace(" ", "_")[:60]
        return " ".join(f"{k}={v}" for k, v in fields.items())

    def fail(self, exc: BaseException) -> None:
        self.error = f"{type(exc).__name__}:{exc}"[:120]
        self.out.line(f"error {self.error}")

    def on_request(self, request: Any, original: Callable[[Any], Any]) -> Any:
        self.calls += 1
        n = self.calls
        reply = None
        start = time.perf_counter()
        if self.active:
            try:
                reply = self.game.before(n, request)
            except Exception as exc:
                self.fail(exc)
        self.own_s += time.perf_counter() - start
        if reply is None:
            reply = original(request)
        start = time.perf_counter()
        if not self.error:
            try:
                reply = self.game.after(n, request, reply)
            except Exception as exc:
                self.fail(exc)
        self.out.status(n)
        self.own_s += time.perf_counter() - start
        return reply

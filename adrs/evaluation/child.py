"""The sandboxed side: runs one candidate program and answers calls from the trusted side.

Started as a script, never imported by the trusted side for its behaviour:

    python -s -P child.py REQ_FD REP_FD CANDIDATE_PATH [HARNESS_PATH]

It does not rely on the `adrs` package being importable (it loads codec.py next to it by
path), and it sets no limits itself: the parent has applied them before exec.

Protocol on the two inherited pipe descriptors (stdout and stderr belong to the candidate):
length-prefixed codec frames. First the child sends one load report, {"loaded": True} or
{"error": {...}}; then for each request {"fn": "name" | "harness.name", "args": [...]} it
sends {"ok": value} or {"error": {"kind", "type", "message", "traceback"}}. It exits when
the request pipe reaches end of file.
"""

from __future__ import annotations

import errno
import importlib.util
import linecache
import os
import select
import sys
import threading
import traceback
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adrs.evaluation import codec
else:
    def _load_codec() -> types.ModuleType:
        path = Path(__file__).with_name("codec.py")
        spec = importlib.util.spec_from_file_location("_adrs_sandbox_codec", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclass-free, but keep the import system happy
        spec.loader.exec_module(module)
        return module

    codec = _load_codec()

TRACEBACK_LINES = 20
LINE_CHARS = 300
MESSAGE_CHARS = 2000
PLAIN_DATA = ("None, bool, int, float, str, bytes, list, tuple, dict with str keys, "
              "numeric numpy arrays")
_PARENT_GONE = 70  # exit status when the trusted side disappeared mid-call


# ------------------------------------------------------------------------------ framing
def read_frame(fd: int) -> object | None:
    """One request, or None at end of file (the trusted side closed the pipe)."""
    header = _read_exact(fd, codec.FRAME_HEADER.size)
    if header is None:
        return None
    body = _read_exact(fd, codec.frame_length(header))
    if body is None:
        return None
    return codec.decode(body)


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks: list[bytes] = []
    left = n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def write_frame(fd: int, body: bytes) -> None:
    for part in (codec.frame_header(len(body)), body):  # two writes: no copy of big bodies
        view = memoryview(part)
        while view:
            view = view[os.write(fd, view):]


# ---------------------------------------------------------------------------- reporting
def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more chars]"


def describe_exception(exc: BaseException, kind: str = "exception") -> dict[str, str]:
    """Type, message and the traceback tail, without this file's frames."""
    try:
        message = _clip(str(exc), MESSAGE_CHARS)
    except Exception:
        message = "<the exception could not be converted to text>"
    try:
        summary = traceback.TracebackException.from_exception(exc)
        summary.stack = traceback.StackSummary.from_list(
            [f for f in summary.stack if f.filename != __file__])
        lines = "".join(summary.format()).splitlines()[-TRACEBACK_LINES:]
        tail = "\n".join(_clip(line, LINE_CHARS) for line in lines)
    except Exception:  # a MemoryError while formatting, a hostile __str__ ...
        tail = ""
    if kind == "exception" and isinstance(exc, MemoryError):
        kind = "memory"
    elif kind == "exception" and isinstance(exc, OSError) and exc.errno == errno.EFBIG:
        kind = "output"
    return {"kind": kind, "type": type(exc).__name__, "message": message, "traceback": tail}


# ------------------------------------------------------------------------------ loading
def load_module(name: str, path: str) -> types.ModuleType:
    """Execute a source file as module `name`; tracebacks show `name.py` with its lines."""
    source = Path(path).read_text(encoding="utf-8")
    filename = f"{name}.py"
    # Register the text so tracebacks show the candidate's lines whatever its cwd does.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType(name)
    module.__file__ = path
    sys.modules[name] = module
    exec(compile(source, filename, "exec"), module.__dict__)
    return module


def load(candidate_path: str, harness_path: str | None) -> dict[str, object]:
    try:
        load_module("candidate", candidate_path)
        if harness_path is not None:
            load_module("harness", harness_path)
    except BaseException as exc:
        return {"error": describe_exception(exc, "load")}
    return {"loaded": True}


# ------------------------------------------------------------------------------ calling
def _missing(name: str) -> dict[str, object]:
    return {"error": {"kind": "missing", "type": "", "traceback": "",
                      "message": f"the program defines no function {name!r}"}}


def _lookup(name: str) -> Any:
    module_name, _, attr = name.rpartition(".")
    module = sys.modules.get(module_name or "candidate")
    if module_name not in ("", "harness") or module is None or attr.startswith("__"):
        return None
    target = module.__dict__.get(attr)
    return target if callable(target) else None


def handle(request: object) -> dict[str, object]:
    """Run one request; every outcome, including a bad return value, is a reply."""
    if not isinstance(request, dict) or not isinstance(request.get("fn"), str) \
            or not isinstance(request.get("args"), list | tuple):
        return {"error": {"kind": "protocol", "type": "", "traceback": "",
                          "message": "malformed request"}}
    name: str = request["fn"]
    target = _lookup(name)
    if target is None:
        return _missing(name)
    try:
        value = target(*request["args"])
    except BaseException as exc:
        return {"error": describe_exception(exc)}
    finally:
        _flush_output()
    return {"ok": value}


def encode_reply(reply: dict[str, object]) -> bytes:
    try:
        return codec.encode(reply)
    except codec.CodecError as exc:
        detail = f"returned a value that is not plain data ({exc}); expected {PLAIN_DATA}"
        return codec.encode({"error": {"kind": "unencodable", "type": "", "traceback": "",
                                       "message": detail}})


def _flush_output() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass


# ------------------------------------------------------------------------------ process
def _watch_parent(req_fd: int) -> None:
    """Exit when the trusted side is gone, even while the candidate is busy in a call."""
    poller = select.poll()
    poller.register(req_fd, 0)  # no events asked for: only hang-up and errors are reported
    while True:
        if any(event & (select.POLLHUP | select.POLLERR | select.POLLNVAL)
               for _, event in poller.poll()):
            os._exit(_PARENT_GONE)


def _become_init(req_fd: int, rep_fd: int) -> None:
    """As pid 1 of a fresh pid namespace, fork the real worker and stay as a plain init.

    An init process ignores signals it has no handler for and must reap orphans; keeping
    the candidate out of that role gives it ordinary signal semantics. The init exits with
    the worker's status (128 + signal number when it was killed), which ends the namespace
    and with it every process the candidate left behind.
    """
    worker = os.fork()
    if worker == 0:
        return
    os.close(req_fd)
    os.close(rep_fd)
    while True:
        pid, status = os.wait()
        if pid == worker:
            code = os.waitstatus_to_exitcode(status)
            os._exit(128 - code if code < 0 else code)


def serve(req_fd: int, rep_fd: int) -> None:
    while True:
        request = read_frame(req_fd)
        if request is None:
            return
        write_frame(rep_fd, encode_reply(handle(request)))


def main(argv: list[str]) -> int:
    req_fd, rep_fd, candidate_path = int(argv[1]), int(argv[2]), argv[3]
    harness_path = argv[4] if len(argv) > 4 else None
    if os.getpid() == 1:
        _become_init(req_fd, rep_fd)
    sys.argv = [candidate_path]
    try:  # line buffering, so the stdout tail is useful even after a kill
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    except (AttributeError, ValueError):
        pass
    threading.Thread(target=_watch_parent, args=(req_fd,), daemon=True).start()
    report = load(candidate_path, harness_path)
    _flush_output()
    write_frame(rep_fd, encode_reply(report))
    if "loaded" in report:
        serve(req_fd, rep_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

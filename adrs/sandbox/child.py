"""The sandboxed side: runs one candidate program and answers calls from the trusted side.

Started as a script by sandbox.py, never imported by the trusted side for its behaviour:

    python -S -P child.py REQ_FD REP_FD CANDIDATE_PATH [HARNESS_PATH]

with the interpreter's site-packages directories in ADRS_SITE_DIRS. It does not need the
`adrs` package to be importable (it loads codec.py next to it by path), and it sets no
limits itself: the parent has applied them before exec. It imports as little as possible,
because its start-up time is paid on every evaluation.

Protocol on the two inherited pipe descriptors (stdout and stderr belong to the candidate):
length-prefixed codec frames. The child sets itself up (lockdown, site directories) before
it knows the program, so that a sandbox can be started ahead of need (standby.py); then
the trusted side sends the program, {"source": str}, which the child writes to
CANDIDATE_PATH (best effort: a program larger than the output limit is loaded all the
same, only its file is missing) and loads. It sends one load report, {"loaded": True} or
{"error": {...}}; then for each request {"fn": "name" | "harness.name", "args": [...]} it
sends {"ok": value} or {"error": {"kind", "type", "message", "traceback"}}. It exits when
the request pipe reaches end of file, the first request included (an unused standby).

Where the sandbox has a pid namespace, this process is its pid 1 and runs the candidate
itself: it dies with the namespace, and every process the candidate left behind dies with
it. No separate init is forked (that cost a process per evaluation, about 1 ms of CPU,
benchmarks/sandbox_cpu.py), and no unlocked process is left in the sandbox (an init
keeps its capabilities and the old root). What the candidate sees of being pid 1: its
pid is 1, its orphaned grandchildren become its children (one that exits stays a zombie,
counted in the task limit, until the candidate waits for it), and a signal it sends itself
whose action is the default one is ignored (the kernel protects a namespace's init from
its own namespace). Faults (SIGSEGV, SIGBUS, SIGFPE), the rlimits (SIGKILL at the CPU
limit; Python ignores SIGXFSZ, so the output limit is an EFBIG error) and the trusted
side's kill end it as ever.
"""

from __future__ import annotations

import _thread
import errno
import marshal
import os
import select
import sys
import time

TYPE_CHECKING = False  # not imported from typing, which costs milliseconds at start-up
if TYPE_CHECKING:
    from types import CodeType, ModuleType
_CODE_TYPE = type((lambda: 0).__code__)  # types.CodeType, without importing types


def _load_sibling(name: str) -> ModuleType:
    """A module next to this file, loaded by path (adrs need not be importable)."""
    from importlib.machinery import SourceFileLoader

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")
    loader = SourceFileLoader(f"_adrs_sandbox_{name}", path)
    module = type(sys)(loader.name)
    module.__file__ = path
    sys.modules[loader.name] = module
    loader.exec_module(module)
    return module


if TYPE_CHECKING:
    from adrs.sandbox import codec
else:
    codec = _load_sibling("codec")

TRACEBACK_LINES = 20
LINE_CHARS = 300
MESSAGE_CHARS = 2000
SITE_DIRS_VAR = "ADRS_SITE_DIRS"
LOCKDOWN_VAR = "ADRS_LOCKDOWN"  # "1": make the filesystem read-only, drop capabilities
MAX_TASKS_VAR = "ADRS_MAX_TASKS"  # processes and threads the sandbox may have
DISK_MB_VAR = "ADRS_DISK_MB"  # size of the sandbox's tmpfs (working directory, /dev/shm)
LOCKDOWN_PROBE = "--lockdown-probe"
PLAIN_DATA = ("None, bool, int, float, str, bytes, list, tuple, dict with str keys, "
              "numeric numpy arrays")
_PARENT_GONE = 70  # exit status when the trusted side disappeared mid-call
_SOURCES: dict[str, str] = {}  # file name shown in tracebacks -> source text
# harness path -> (its file's mtime and size, source, code): see precompile
_PRECOMPILED: dict[str, tuple[tuple[int, int], str, CodeType]] = {}
_SITE_PATHS: dict[str, list[str]] = {}  # site_paths(value), once per value
_REAL_PATHS: dict[str, str] = {}  # real_path: the harness's, once per process


# ------------------------------------------------------------------------------ framing
def read_frame(fd: int) -> object | None:
    """One request, or None at end of file (the trusted side closed the pipe)."""
    header = _read_exact(fd, codec.FRAME_HEADER.size)
    if header is None:
        return None
    body = _read_exact(fd, codec.frame_length(header, codec.MAX_REQUEST_BYTES))
    if body is None:
        return None
    return codec.decode_call(body, max_items=sys.maxsize)  # from the trusted side


_pending = [b""]  # read from the request pipe, not yet taken
# How long a read of the request pipe polls (giving the CPU to anything else runnable
# between tries) before it sleeps. An evaluator in lockstep with the program (a tick of a
# simulation per call) sends its next request within tens of microseconds; catching it
# awake saves waking this process from another CPU, which is slow on a VM (a trivial
# call's round trip in benchmarks/sandbox.py fell from ~90 us to ~20 us). 50 us gives the
# same round trip and toy evaluation as 200 us did.
SPIN_S = 50e-6
_MAX_MISSES = 4
_pollers: dict[int, select.poll] = {}


class Backoff:
    """Whether the next read spins first. A spin that ends without a request (the trusted
    side is slow: busy cores, its own process's other work) was CPU taken from everything
    else for nothing; after one, the next 2 reads sleep at once, after another miss in a
    row 4, then 8, at most 16, until a spin catches a request again (a loaded run, two
    evaluations on two cores, spends less of its CPU spinning); while spins catch their
    requests, every read spins as before."""

    __slots__ = ("misses", "skips")

    def __init__(self) -> None:
        self.misses = self.skips = 0

    def spin_now(self) -> bool:
        if self.skips:
            self.skips -= 1
            return False
        return True

    def caught(self) -> None:
        self.misses = 0

    def missed(self) -> None:
        self.misses = min(self.misses + 1, _MAX_MISSES)
        self.skips = 1 << self.misses


_BACKOFF = Backoff()


def _read_exact(fd: int, n: int) -> bytes | None:
    """The next `n` bytes; a read asks for at least 64 KiB, so that a small request, header
    and body, takes one system call (the trusted side sends one request at a time)."""
    pending = _pending[0]
    chunks = [pending] if pending else []
    have = len(pending)
    while have < n:
        chunk = _read_some(fd, max(min(n - have, 1 << 20), 1 << 16))
        if not chunk:
            return None
        chunks.append(chunk)
        have += len(chunk)
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    _pending[0] = data[n:]
    return data[:n]


def _read_some(fd: int, size: int) -> bytes:
    """At most `size` bytes from the non-blocking `fd`, polling for SPIN_S (when the
    backoff says so), then waiting.
    Readiness is asked with poll(0), not a read: a failed read raises BlockingIOError, and
    building that exception (its message decoded from the C library) costs more than the
    poll."""
    poller = _pollers.get(fd)
    if poller is None:
        poller = _pollers[fd] = select.poll()
        poller.register(fd, select.POLLIN)
    if _BACKOFF.spin_now() and _spin(poller):
        _BACKOFF.caught()
    else:
        poller.poll()
    while True:
        try:
            return os.read(fd, size)
        except BlockingIOError:  # woken for nothing
            poller.poll()


def _spin(poller: select.poll) -> bool:
    """Poll for SPIN_S, yielding the CPU between tries: whether the pipe became readable
    (a miss is told to the backoff)."""
    end = time.perf_counter() + SPIN_S
    while not poller.poll(0):
        if time.perf_counter() > end:
            _BACKOFF.missed()
            return False
        os.sched_yield()
    return True


def write_frame(fd: int, body: bytes) -> None:
    header = codec.frame_header(len(body))
    # One write for small replies (one wake-up of the reader); no copy of big ones.
    parts = (header + body,) if len(body) < 1 << 16 else (header, body)
    for part in parts:
        view = memoryview(part)
        while view:
            view = view[os.write(fd, view):]


# ---------------------------------------------------------------------------- reporting
def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more chars]"


def _format_traceback(exc: BaseException) -> str:
    """The traceback tail, without this file's frames, with the candidate's own lines."""
    import linecache  # imported on the error path only: start-up time matters
    import traceback

    for filename, source in _SOURCES.items():
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    summary = traceback.TracebackException.from_exception(exc)
    summary.stack = traceback.StackSummary.from_list(
        [frame for frame in summary.stack if frame.filename != __file__])
    lines = "".join(summary.format()).splitlines()[-TRACEBACK_LINES:]
    return "\n".join(_clip(line, LINE_CHARS) for line in lines)


def describe_exception(exc: BaseException, kind: str = "exception") -> dict[str, str]:
    """Kind, type, message and traceback tail of an exception raised by the candidate."""
    try:
        message = _clip(str(exc), MESSAGE_CHARS)
    except Exception:
        message = "<the exception could not be converted to text>"
    try:
        tail = _format_traceback(exc)
    except Exception:  # a MemoryError while formatting, a hostile __str__ ...
        tail = ""
    if kind == "exception" and isinstance(exc, MemoryError):
        kind = "memory"
    elif kind == "exception" and isinstance(exc, OSError) and exc.errno == errno.EFBIG:
        kind = "output"
    return {"kind": kind, "type": type(exc).__name__, "message": message, "traceback": tail}


def _plain_error(kind: str, message: str) -> dict[str, object]:
    return {"error": {"kind": kind, "type": "", "traceback": "", "message": message}}


# ------------------------------------------------------------------------------ loading
def install_exit_builtins() -> None:
    """exit() and quit(), which the site module would have added (we run without it)."""
    import builtins

    def exit(code: object = None) -> None:
        raise SystemExit(code)

    builtins.exit = builtins.quit = exit  # type: ignore[assignment]


def _site_dirs(value: str) -> list[str]:
    return [site_dir for site_dir in value.split(os.pathsep) if site_dir]


def add_site_dirs(value: str) -> None:
    """Make installed packages importable without running site (and its .pth imports).

    Plain directory lines of .pth files are honoured; `import` lines are not executed. Only
    directories that exist here count (after the lockdown: those left visible)."""
    for path in site_paths(value):
        if path not in sys.path and os.path.isdir(path):
            sys.path.append(path)


def site_paths(value: str) -> list[str]:
    """The directories `add_site_dirs` adds for `value`: each site directory, then the
    directories its .pth files name. Found once per process and value: the zygote finds
    them before it forks (listing site-packages and reading its .pth files cost each
    sandbox about 0.3 ms)."""
    paths = _SITE_PATHS.get(value)
    if paths is None:
        paths = _SITE_PATHS[value] = []
        for site_dir in filter(None, value.split(os.pathsep)):
            if site_dir in sys.path or site_dir in paths or not os.path.isdir(site_dir):
                continue
            paths.append(site_dir)
            for name in sorted(os.listdir(site_dir)):
                if name.endswith(".pth"):
                    _add_pth_dirs(os.path.join(site_dir, name), site_dir, paths)
    return paths


def _add_pth_dirs(pth: str, site_dir: str, paths: list[str]) -> None:
    try:
        with open(pth, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return
    for line in lines:
        line = line.strip()
        if not line or line.startswith(("#", "import ", "import\t")):
            continue
        path = os.path.join(site_dir, line)
        if os.path.isdir(path) and path not in sys.path and path not in paths:
            paths.append(path)


def load_module(name: str, path: str, source: str | None = None,
                code: CodeType | None = None) -> ModuleType:
    """Execute a source file (or `source`, as if read from `path`; or `code`, compiled from
    `source`) as module `name`; tracebacks show `name.py` with its lines."""
    if source is None:
        with open(path, encoding="utf-8") as f:
            source = f.read()
    filename = f"{name}.py"
    _SOURCES[filename] = source
    module = type(sys)(name)
    module.__file__ = path
    sys.modules[name] = module
    exec(code or compile(source, filename, "exec"), module.__dict__)
    return module


def precompile(harness_path: str) -> None:
    """Compile the harness once per version of its file (kept for `load`). The zygote does
    it before it forks, so a sandbox inherits the code and never compiles: the first
    `compile` in a fresh fork costs 1-2 ms of copied pages (benchmarks/sandbox_cpu.py).
    Elsewhere the sandbox does it while it waits for its program. A harness that cannot
    be read or compiled is left for `load` to report."""
    try:
        stat = os.stat(harness_path)
        version = (stat.st_mtime_ns, stat.st_size)
        if harness_path in _PRECOMPILED and _PRECOMPILED[harness_path][0] == version:
            return
        with open(harness_path, encoding="utf-8") as f:
            source = f.read()
        _PRECOMPILED[harness_path] = (version, source, compile(source, "harness.py", "exec"))
    except BaseException:  # load reads and compiles it again, and says why
        _PRECOMPILED.pop(harness_path, None)


def receive_program(req_fd: int, candidate_path: str) -> tuple[str, object] | None:
    """The program the trusted side sends first, written to `candidate_path` for programs
    that read their own file, with its code compiled by the trusted side (marshal data,
    or None when it did not compile there); None at end of file (an unused standby)."""
    request = read_frame(req_fd)
    if not isinstance(request, dict) or not isinstance(request.get("source"), str):
        return None
    source: str = request["source"]
    try:
        with open(candidate_path, "w", encoding="utf-8") as f:
            f.write(source)
    except OSError:  # larger than the output limit (RLIMIT_FSIZE): loaded from memory
        pass
    return source, request.get("code")


def _code_of(marshalled: object) -> CodeType | None:
    """The candidate's code as the trusted side compiled it (the same interpreter, flags
    and file name as `load_module` would use), or None: `load_module` compiles it then."""
    if not isinstance(marshalled, bytes):
        return None
    try:
        code = marshal.loads(marshalled)
    except (EOFError, ValueError, TypeError):
        return None
    return code if isinstance(code, _CODE_TYPE) else None


def load(candidate_path: str, harness_path: str | None, source: str,
         marshalled: object = None) -> dict[str, object]:
    try:
        load_module("candidate", candidate_path, source, _code_of(marshalled))
        if harness_path is not None:
            precompile(harness_path)  # a stat; compiles only if the file changed meanwhile
            pre = _PRECOMPILED.get(harness_path)
            load_module("harness", harness_path, *(pre[1:] if pre else ()))
    except BaseException as exc:
        return {"error": describe_exception(exc, "load")}
    return {"loaded": True}


# ------------------------------------------------------------------------------ calling
def _lookup(name: str) -> object:
    module_name, _, attr = name.rpartition(".")
    module = sys.modules.get(module_name or "candidate")
    if module_name not in ("", "harness") or module is None or attr.startswith("__"):
        return None
    target = module.__dict__.get(attr)
    return target if callable(target) else None


def handle(request: object) -> dict[str, object]:
    """Run one request; every outcome, including an exception, is a reply."""
    if not isinstance(request, dict) or not isinstance(request.get("fn"), str) \
            or not isinstance(request.get("args"), list):
        return _plain_error("protocol", "sent a malformed request")
    name: str = request["fn"]
    target = _lookup(name)
    if not callable(target):
        return _plain_error("missing", f"the program defines no function {name!r}")
    try:
        value = target(*request["args"])
    except BaseException as exc:
        return {"error": describe_exception(exc)}
    finally:
        _flush_output()
    return {"ok": value}


def encode_reply(reply: dict[str, object]) -> bytes:
    """The encoded reply; a return value that is not plain data becomes an error reply."""
    try:
        return codec.encode_ok(reply["ok"]) if "ok" in reply else codec.encode(reply)
    except codec.CodecError as exc:
        return codec.encode(_plain_error(
            "unencodable", f"returned a value that is not plain data ({exc}); "
            f"expected {PLAIN_DATA}"))


def _flush_output() -> None:
    for stream in (sys.stdout, sys.stderr):
        # Not contextlib.suppress: importing contextlib costs start-up time.
        try:  # noqa: SIM105
            stream.flush()
        except BaseException:  # the output limit, a closed stream: nothing to report
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


def serve(req_fd: int, rep_fd: int) -> None:
    while True:
        request = read_frame(req_fd)
        if request is None:
            return
        write_frame(rep_fd, encode_reply(handle(request)))


def lockdown_visible(harness_path: str | None) -> list[str]:
    """What stays visible in a locked-down sandbox: the interpreter's prefixes, its
    site-packages, and the harness (its real path)."""
    return [sys.base_prefix, sys.prefix, *_site_dirs(os.environ.get(SITE_DIRS_VAR, "")),
            *([harness_path] if harness_path else [])]


def prepare_lockdown(harness_path: str | None) -> None:
    """In the zygote, before it clones: what the lockdown finds the same for every
    sandbox of this harness (its real path, the binds of the new root), found once and
    inherited (lockdown.plan_binds). Anything it cannot find is left for the sandbox."""
    lockdown = sys.modules.get("_adrs_sandbox_lockdown")
    if lockdown is None:
        return
    try:  # noqa: SIM105 (contextlib costs start-up time)
        lockdown.plan_binds(lockdown_visible(harness_path and real_path(harness_path)))
    except OSError:
        pass


def real_path(path: str) -> str:
    """os.path.realpath, once per path and process (see prepare_lockdown)."""
    real = _REAL_PATHS.get(path)
    if real is None:
        real = _REAL_PATHS[path] = os.path.realpath(path)
    return real


def _lock_down(workdir: str, harness_path: str | None, max_tasks: int,
               disk_mb: int) -> dict[str, object]:
    """Apply lockdown.py: its report of what took effect, or the error reply if it failed
    (the sandbox must not run then).

    What stays visible: the interpreter's prefixes, its site-packages, and the harness.
    """
    visible = lockdown_visible(harness_path)
    try:
        # Preloaded in a zygote's forks (forkserver.py); loaded here on the Popen path.
        lockdown = sys.modules.get("_adrs_sandbox_lockdown") or _load_sibling("lockdown")
        seccomp = sys.modules.get("_adrs_sandbox_seccomp") or _load_sibling("seccomp")
        return {"report": lockdown.lock_down(workdir, visible, max_tasks, disk_mb,
                                             seccomp.install)}
    except Exception as exc:
        return _plain_error("load", f"the sandbox could not be locked down ({exc}); "
                            "this is a fault of the machine, not of the program")


def _probe(workdir: str) -> int:
    """--lockdown-probe: lock down in `workdir`; print what took effect as `name=0|1`."""
    outcome = _lock_down(workdir, None, 64, 1)
    report = outcome.get("report")
    if not isinstance(report, dict):
        return 1
    os.write(1, " ".join(f"{k}={int(bool(v))}" for k, v in report.items()).encode())
    return 0


def main(argv: list[str], watch_parent: bool = True) -> int:
    """Run child.py (see the module docstring). `watch_parent`: a thread ends this process
    once the trusted side is gone; a zygote's sandbox needs none (forkserver.py)."""
    if argv[1:2] == [LOCKDOWN_PROBE]:  # the trusted side asks whether lock_down works here
        return _probe(argv[2])
    req_fd, rep_fd, candidate_path = int(argv[1]), int(argv[2]), argv[3]
    harness_path = argv[4] if len(argv) > 4 else None
    if os.environ.get(LOCKDOWN_VAR) == "1":
        # Symlinks on the way (a TMPDIR that is one) do not exist in the new root.
        candidate_path = os.path.realpath(candidate_path)
        harness_path = harness_path and real_path(harness_path)
        outcome = _lock_down(os.path.dirname(candidate_path), harness_path,
                             int(os.environ.get(MAX_TASKS_VAR, "0")),
                             int(os.environ.get(DISK_MB_VAR, "64")))
        if "error" in outcome:
            write_frame(rep_fd, encode_reply(outcome))
            return 1
    add_site_dirs(os.environ.get(SITE_DIRS_VAR, ""))
    install_exit_builtins()
    sys.argv = [candidate_path]
    try:  # noqa: SIM105 (line buffering: the stdout tail stays useful after a kill)
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    except (AttributeError, ValueError):
        pass
    if watch_parent:
        _thread.start_new_thread(_watch_parent, (req_fd,))
    os.set_blocking(req_fd, False)  # _read_some polls it before it waits
    if harness_path is not None:
        precompile(harness_path)
    program = receive_program(req_fd, candidate_path)
    if program is None:
        return 0
    report = load(candidate_path, harness_path, *program)
    _flush_output()
    write_frame(rep_fd, encode_reply(report))
    if "loaded" in report:
        serve(req_fd, rep_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""The sandbox: calls, every kind of candidate fault, limits, isolation and clean-up."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from adrs.sandbox.candidate import Candidate, CandidateFault, Limits, compiled, protections, sibling

pytestmark = pytest.mark.timeout(60)

TOY = Path(__file__).resolve().parents[2] / "problems" / "toy" / "initial_program.py"
FAST = Limits(timeout_s=10.0, memory_mb=1024)
PROTECTIONS = protections()
needs_pid_namespace = pytest.mark.skipif(
    not PROTECTIONS["pid_namespace"], reason="no pid namespace here: unshare is unavailable")


def run(source: str, name: str, *args: object, limits: Limits = FAST,
        timeout_s: float | None = None) -> object:
    with Candidate(source, limits) as candidate:
        return candidate.call(name, *args, timeout_s=timeout_s)


def fault_of(source: str, name: str = "f", *args: object, limits: Limits = FAST,
             timeout_s: float | None = None) -> str:
    with pytest.raises(CandidateFault) as info:
        run(source, name, *args, limits=limits, timeout_s=timeout_s)
    return str(info.value)


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line or working directory contains `text` (zombies
    have neither). Sandboxes forked by the zygote have its command line: their working
    directory (the workdir, or the same path inside the sandbox's root) gives them away."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path("/proc", entry, "cmdline").read_bytes()
                cwd = os.readlink(Path("/proc", entry, "cwd")) if cmdline else ""
            except OSError:
                continue
            if text.encode() in cmdline or text in cwd:
                found.append(int(entry))
    return found


def wait_until_gone(text: str, timeout_s: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while (left := processes_mentioning(text)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


# ---------------------------------------------------------------------------------- calls
def test_calls_a_function_and_returns_plain_data() -> None:
    with Candidate(TOY.read_text(), FAST) as candidate:
        assert candidate.call("provision", []) == 10.0
        assert candidate.call("provision", [4.0, 6.0]) == 6.0
        assert candidate.call("provision", [2.0], timeout_s=5.0) == 2.0


def test_numpy_arrays_cross_the_boundary() -> None:
    source = "import numpy as np\ndef double(a):\n    return a * 2, np.float32(1.5)\n"
    result = run(source, "double", np.arange(6, dtype=np.int32).reshape(2, 3))
    assert isinstance(result, tuple)
    array, scalar = result
    assert isinstance(array, np.ndarray) and array.dtype == np.int32
    assert array.tolist() == [[0, 2, 4], [6, 8, 10]]
    assert scalar == 1.5 and type(scalar) is float


def test_child_does_not_import_numpy_unless_the_candidate_does() -> None:
    source = "import sys\ndef f():\n    return 'numpy' in sys.modules\n"
    assert run(source, "f") is False


def test_harness_module_can_call_the_candidate(tmp_path: Path) -> None:
    harness = tmp_path / "harness.py"
    harness.write_text("import candidate\ndef total(n):\n"
                       "    return sum(candidate.square(i) for i in range(n))\n")
    with Candidate("def square(x):\n    return x * x\n", FAST, str(harness)) as candidate:
        assert candidate.call("harness.total", 4) == 14


def test_a_harness_compiled_ahead_still_runs_after_the_candidate(tmp_path: Path) -> None:
    """The standby compiles the harness before the program arrives; it is executed only
    after the candidate loaded, with its own file name in tracebacks."""
    harness = tmp_path / "harness.py"
    harness.write_text("import candidate\nSEEN = candidate.MARK\ndef seen():\n    return SEEN\n"
                       "def boom():\n    raise KeyError('in the harness')\n")
    with Candidate("MARK = 'loaded first'\n", FAST, str(harness)) as candidate:
        assert candidate.call("harness.seen") == "loaded first"
        with pytest.raises(CandidateFault, match=r"(?s)KeyError.*harness\.py"):
            candidate.call("harness.boom")


def test_a_harness_that_does_not_compile_fails_the_load(tmp_path: Path) -> None:
    harness = tmp_path / "harness.py"
    harness.write_text("def broken(:\n")
    with pytest.raises(CandidateFault, match="failed to load: SyntaxError"), \
            Candidate("def f():\n    return 1\n", FAST, str(harness)):
        pass


def test_a_program_compiled_by_the_trusted_side_runs_as_if_compiled_in_the_sandbox() -> None:
    """Same file name and lines in tracebacks, annotations left unevaluated (child.py's
    `annotations` future), asserts kept (no -O)."""
    source = ("def f(x: NotDefinedAnywhere) -> int:\n    assert x > 0, 'positive'\n"
              "    return x\n")
    assert compiled(source) is not None
    with Candidate(source, FAST) as candidate:
        assert candidate.call("f", 2) == 2
        with pytest.raises(CandidateFault, match=r'(?s)AssertionError: positive.*'
                                                 r'File "candidate.py", line 2'):
            candidate.call("f", -1)


def test_a_program_that_does_not_compile_is_reported_by_the_sandbox() -> None:
    source = "def f(:\n    return 1\n"
    assert compiled(source) is None
    with pytest.raises(CandidateFault, match=r"failed to load: SyntaxError.*line 1"), \
            Candidate(source, FAST):
        pass


def test_the_harness_is_compiled_again_when_its_file_changes(tmp_path: Path) -> None:
    harness = tmp_path / "harness.py"
    harness.write_text("def version():\n    return 1\n")
    with Candidate("X = 0\n", FAST, str(harness)) as candidate:
        assert candidate.call("harness.version") == 1
    harness.write_text("def version():\n    return 22\n")  # another size: a new version
    with Candidate("X = 0\n", FAST, str(harness)) as candidate:
        assert candidate.call("harness.version") == 22


def test_missing_function_is_a_fault() -> None:
    assert "defines no function 'g'" in fault_of("def f():\n    return 1\n", "g")


def test_bad_function_name_is_the_callers_error() -> None:
    with Candidate("def f():\n    return 1\n", FAST) as candidate:
        with pytest.raises(ValueError):
            candidate.call("os.system")
        assert candidate.call("f") == 1


# --------------------------------------------------------------------------------- faults
def test_exception_reports_type_message_and_candidate_line() -> None:
    source = "def helper(x):\n    return 1 / x\n\ndef f(x):\n    return helper(x)\n"
    message = fault_of(source, "f", 0)
    assert message.startswith("f() raised ZeroDivisionError: division by zero")
    assert 'File "candidate.py", line 2, in helper' in message
    assert 'line 5, in f' in message
    assert "child.py" not in message


def test_syntax_error_fails_at_load_with_line_number() -> None:
    with pytest.raises(CandidateFault) as info:
        Candidate("x = 1\ndef f(:\n    pass\n", FAST).__enter__()
    assert "failed to load: SyntaxError" in str(info.value)
    assert "line 2" in str(info.value)


def test_exception_at_import_time_is_a_load_fault() -> None:
    with pytest.raises(CandidateFault, match=r"failed to load: KeyError: 'boom'"), \
            Candidate("{}['boom']\n", FAST):
        pass


def test_infinite_loop_times_out_per_call() -> None:
    started = time.monotonic()
    message = fault_of("def f():\n    while True:\n        pass\n", timeout_s=0.5)
    assert message == "f() timed out after 0.5 s"
    assert time.monotonic() - started < 5


def test_whole_evaluation_budget_bounds_every_call() -> None:
    limits = Limits(timeout_s=1.0)
    with Candidate("import time\ndef f():\n    time.sleep(0.4)\n", limits) as candidate:
        candidate.call("f")
        candidate.call("f")
        with pytest.raises(CandidateFault, match=r"time limit of 1\.0 s"):
            candidate.call("f", timeout_s=30)


def test_exit_code_is_reported() -> None:
    assert fault_of("import os\ndef f():\n    os._exit(3)\n") == \
        "the program exited with code 3 during f()"


def test_segfault_is_reported_by_signal_name() -> None:
    message = fault_of("import ctypes\ndef f():\n    ctypes.string_at(0)\n")
    assert "killed by SIGSEGV during f()" in message


def test_memory_bomb_hits_the_memory_limit() -> None:
    source = ("def f():\n    chunks = []\n    for _ in range(300):\n"
              "        chunks.append(bytes(100 * 2**20))\n")
    message = fault_of(source, limits=Limits(timeout_s=10.0, memory_mb=400))
    assert message.startswith("f() exceeded the memory limit (400 MB): MemoryError")


def test_huge_output_is_capped() -> None:
    limits = Limits(timeout_s=10.0, output_bytes=100_000)
    source = "def f():\n    print('x' * 100_000_000)\n"
    with Candidate(source, limits) as candidate:
        with pytest.raises(CandidateFault, match=r"exceeded the output limit \(100000 bytes"):
            candidate.call("f")
        assert len(candidate.stdout_tail(1_000_000)) <= 100_000
        assert candidate.stdout_tail(10) == "x" * 10


def test_unencodable_return_value_is_a_fault() -> None:
    message = fault_of("def f():\n    return {'ok': [1, {2, 3}]}\n")
    assert message.startswith("f() returned a value that is not plain data")
    assert "'set'" in message


def test_hostile_reply_is_refused() -> None:
    source = """import os
def f():
    for fd in range(3, 64):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:"):
                os.write(fd, b"\\xff" * 8)
        except OSError:
            pass
    return 1
"""
    assert "cannot be decoded" in fault_of(source)


def test_handle_is_dead_after_a_fault() -> None:
    with Candidate("def f(x):\n    return 1 / x\n", FAST) as candidate:
        with pytest.raises(CandidateFault):
            candidate.call("f", 0)
        started = time.monotonic()
        with pytest.raises(CandidateFault, match="ZeroDivisionError"):
            candidate.call("f", 1)
        assert time.monotonic() - started < 0.1
        assert candidate.fault is not None


# ------------------------------------------------------------------------------ isolation
def test_parent_environment_does_not_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "secret-0123456789")
    source = """import os
def f():
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/environ", "rb") as env:
                if b"secret-0123456789" in env.read():
                    found.append(pid)
        except OSError:
            pass
    return os.environ.get("OPENAI_API_KEY"), found, os.environ["HOME"] == os.getcwd()
"""
    result = run(source, "f")
    assert isinstance(result, tuple)
    key, readable_elsewhere, home_is_workdir = result
    assert key is None and home_is_workdir
    if PROTECTIONS["private_proc"]:
        assert readable_elsewhere == []


@pytest.mark.skipif(not PROTECTIONS["network_namespace"], reason="no network namespace here")
def test_no_network_unless_allowed() -> None:
    source = """import socket
def f(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return "connected"
    except OSError as exc:
        return type(exc).__name__
"""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert run(source, "f", port) != "connected"
        assert run(source, "f", port, limits=Limits(timeout_s=10.0, network=True)) == \
            "connected"


def test_temp_dir_is_removed_after_close() -> None:
    source = """import os
def f():
    os.makedirs("locked/inner")
    open("locked/inner/data.txt", "w").write("x")
    os.chmod("locked/inner", 0)
    os.chmod("locked", 0o500)
    return os.getcwd()
"""
    with Candidate(source, FAST) as candidate:
        workdir = candidate.call("f")
        assert workdir == candidate.workdir and os.path.isdir(str(workdir))
    assert not os.path.exists(str(workdir))


def test_temp_dir_is_removed_after_a_load_fault() -> None:
    candidate = Candidate("raise SystemExit(4)\n", FAST)
    with pytest.raises(CandidateFault):
        candidate.start()
    assert candidate.workdir is not None and not os.path.exists(candidate.workdir)


def test_stderr_tail_survives_close() -> None:
    source = "import sys\ndef f():\n    print('warning: odd input', file=sys.stderr)\n"
    with Candidate(source, FAST) as candidate:
        candidate.call("f")
        assert "warning: odd input" in candidate.stderr_tail()
    assert candidate.stderr_tail().strip() == "warning: odd input"


def test_forked_processes_are_contained_and_cleaned_up() -> None:
    source = """import os, time
def f(n):
    for _ in range(n):
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
    return n
"""
    with Candidate(source, FAST) as candidate:
        assert candidate.workdir is not None
        marker = candidate.workdir
        try:
            assert candidate.call("f", 200) == 200
            assert processes_mentioning(marker)
        except CandidateFault as fault:  # the process-count limit, where it applies
            assert PROTECTIONS["process_count_limit"], str(fault)
    assert wait_until_gone(marker) == []


@needs_pid_namespace
def test_setsid_grandchild_dies_with_the_sandbox() -> None:
    source = """import os, time
def f():
    child = os.fork()
    if child == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(60)
        os._exit(0)
    os.waitpid(child, 0)
    return True
"""
    with Candidate(source, FAST) as candidate:
        assert candidate.workdir is not None
        marker = candidate.workdir
        assert candidate.call("f") is True
        assert len(processes_mentioning(marker)) >= 2
    assert wait_until_gone(marker) == []


def test_timed_out_child_is_killed() -> None:
    with Candidate("def f():\n    while True:\n        pass\n", FAST) as candidate:
        assert candidate.workdir is not None
        marker = candidate.workdir
        with pytest.raises(CandidateFault):
            candidate.call("f", timeout_s=0.3)
        assert wait_until_gone(marker) == []


def test_protections_report_booleans() -> None:
    assert PROTECTIONS["rlimits"] is True
    assert all(isinstance(value, bool) for value in PROTECTIONS.values())


def test_limits_are_validated() -> None:
    assert Limits(timeout_s=2.5).cpu_seconds == 4
    assert Limits(cpu_s=7).cpu_seconds == 7
    with pytest.raises(ValueError):
        Limits(timeout_s=0)
    with pytest.raises(ValueError):
        Limits(memory_mb=0)


@pytest.fixture
def no_util_linux(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """A PATH without prlimit and unshare: the pre-exec fallback sets the limits."""
    monkeypatch.setenv("PATH", str(tmp_path))
    yield


def test_limits_apply_without_prlimit(no_util_linux: None) -> None:
    source = ("import resource\ndef f():\n"
              "    return resource.getrlimit(resource.RLIMIT_AS)[0] >> 20\n")
    assert run(source, "f", limits=Limits(timeout_s=10.0, memory_mb=700)) == 700


def test_a_sibling_runs_the_same_program_within_what_is_left_of_the_budget(
        monkeypatch: pytest.MonkeyPatch) -> None:
    source = "def f():\n    return 7\n"
    unstarted = Candidate(source, Limits(timeout_s=30))
    assert sibling(unstarted).limits.timeout_s == 30
    with Candidate(source, Limits(timeout_s=30, memory_mb=700)) as candidate:
        time.sleep(0.2)
        fresh = sibling(candidate)
        assert fresh.source == source and fresh.harness == candidate.harness
        assert fresh.limits.memory_mb == 700 and fresh.limits.timeout_s <= 29.8
        with fresh:
            assert fresh.call("f") == 7
        later = time.monotonic() + 31
        monkeypatch.setattr(time, "monotonic", lambda: later)
        with pytest.raises(CandidateFault, match=r"used up its time limit of 30\.0 s"):
            sibling(candidate)

"""`protections()` tells the truth: each protection it reports is observed from inside."""

from __future__ import annotations

import importlib.util
import os
import py_compile
import threading
import time
from pathlib import Path

import pytest

from adrs.sandbox import isolation
from adrs.sandbox.candidate import Candidate, Limits
from adrs.sandbox.isolation import environment, protections

pytestmark = pytest.mark.timeout(60)

PROTECTIONS = protections()
# What the candidate sees of its own process; every line is plain data.
PROBE = """import os, resource, socket

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return line.split()[1]

def observe():
    try:
        open("/etc/adrs-probe-write-test", "w").close()
        os.remove("/etc/adrs-probe-write-test")
        writable = True
    except OSError:
        writable = False
    interfaces = [name for _, name in socket.if_nameindex()]
    return {"pid": os.getpid(), "uid_map": open("/proc/self/uid_map").read().split(),
            "cap_eff": int(status("CapEff"), 16), "root_writable": writable,
            "interfaces": interfaces, "as_limit": resource.getrlimit(resource.RLIMIT_AS)[0],
            "env": sorted(os.environ), "procs": sum(p.isdigit() for p in os.listdir("/proc"))}
"""


@pytest.fixture(scope="module")
def seen() -> dict[str, object]:
    with Candidate(PROBE, Limits(timeout_s=10.0, memory_mb=700)) as candidate:
        value = candidate.call("observe")
    assert isinstance(value, dict)
    return value


def test_rlimits_and_environment_whitelist(seen: dict[str, object]) -> None:
    assert PROTECTIONS["rlimits"] and seen["as_limit"] == 700 << 20
    assert PROTECTIONS["environment_whitelist"]
    assert seen["env"] == sorted(environment("/x", PROTECTIONS["read_only_filesystem"], 64))


def test_namespaces_are_as_reported(seen: dict[str, object]) -> None:
    # The candidate is pid 1 of its own namespace and sees only itself.
    assert (seen["pid"] == 1) == PROTECTIONS["pid_namespace"]
    assert (seen["procs"] == 1) == PROTECTIONS["private_proc"]
    assert (seen["uid_map"] != ["0", "0", "4294967295"]) == PROTECTIONS["user_namespace"]
    if PROTECTIONS["network_namespace"]:  # a fresh one: loopback only (and it is down)
        assert seen["interfaces"] == ["lo"]


def test_lockdown_is_as_reported(seen: dict[str, object]) -> None:
    if not PROTECTIONS["read_only_filesystem"]:
        pytest.skip("this machine cannot lock the sandbox down (no user namespace or "
                    "mount_setattr)")
    assert seen["root_writable"] is False
    assert PROTECTIONS["no_capabilities"] and seen["cap_eff"] == 0


def test_every_protection_is_a_boolean() -> None:
    assert set(PROTECTIONS) >= {"rlimits", "environment_whitelist", "user_namespace",
                                "pid_namespace", "network_namespace", "read_only_filesystem"}
    assert all(isinstance(value, bool) for value in PROTECTIONS.values())


def test_a_probe_runs_once_and_other_callers_wait_for_its_answer() -> None:
    """What warm_up relies on: the machine's probes, asked from two threads at once, run
    once; the second caller waits instead of probing again."""
    runs: list[int] = []

    @isolation._probed_once
    def slow_probe(x: int) -> int:
        runs.append(x)
        time.sleep(0.2)
        return x * 2

    answers: list[int] = []
    threads = [threading.Thread(target=lambda: answers.append(slow_probe(21)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert answers == [42, 42] and runs == [21]


def test_warm_up_probes_on_a_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    done = threading.Event()
    monkeypatch.setattr(isolation, "protection_report", lambda: done.set() or [])
    isolation.warm_up()
    assert done.wait(10)


def test_bytecode_is_current_until_its_source_changes(tmp_path: Path) -> None:
    source = tmp_path / "module.py"
    source.write_text("X = 1\n")
    assert not isolation.bytecode_current(str(source))  # nothing cached yet
    py_compile.compile(str(source), doraise=True)
    assert isolation.bytecode_current(str(source))
    source.write_text("X = 22\n")  # another size
    assert not isolation.bytecode_current(str(source))
    py_compile.compile(str(source), doraise=True)
    stat = source.stat()
    os.utime(source, (stat.st_atime, stat.st_mtime + 5))  # same size, another time
    assert not isolation.bytecode_current(str(source))
    cached = Path(importlib.util.cache_from_source(str(source)))
    py_compile.compile(str(source), doraise=True)
    cached.write_bytes(b"\0\0\0\0" + cached.read_bytes()[4:])  # another interpreter's
    assert not isolation.bytecode_current(str(source))


def test_precompile_writes_only_stale_bytecode(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[str] = []
    monkeypatch.setattr(py_compile, "compile", lambda path, **_: compiled.append(path))
    stale = {"codec.py"}
    monkeypatch.setattr(isolation, "bytecode_current",
                        lambda path: Path(path).name not in stale)
    isolation._precompile.__wrapped__()  # type: ignore[attr-defined]
    assert [Path(path).name for path in compiled] == ["codec.py"]

"""Per-sandbox cgroups (adrs/sandbox/cgroups.py), on this host's real cgroups: no mocks.

Tests that need a usable cgroup skip, saying what the host lacks, where support() is not
active (no cgroup v2 with memory+pids delegated to us, and no writable cgroup v1 memory
and pids hierarchies).
"""

from __future__ import annotations

import os
import select
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from adrs.sandbox import cgroups
from adrs.sandbox.cgroups import PIDS_HEADROOM, SandboxCgroup, Support

MB = 1 << 20
LIMIT_MB = 64
Make = Callable[..., SandboxCgroup]

ANONYMOUS = """
b = bytearray(200 << 20)
for i in range(0, len(b), 4096):
    b[i] = 1
print("survived")
"""

SHARED = """
import os, sys
fd = os.memfd_create("fill") if sys.argv[1] == "memfd" else os.open(
    sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)
chunk = b"x" * (1 << 20)
try:
    for _ in range(200):
        os.write(fd, chunk)
except OSError as error:
    print(error.errno)
    sys.exit(3)
print("survived")
"""

FORKS = """
import os
r, w = os.pipe()
n = 0
for _ in range(100):
    try:
        pid = os.fork()
    except BlockingIOError:
        break
    if pid == 0:
        os.close(w)
        os.read(r, 1)
        os._exit(0)
    n += 1
os.close(w)
print(n, flush=True)
for _ in range(n):
    os.wait()
"""

HOPPERS = """
import os, time
if os.fork():
    os._exit(0)
os.fork()
while True:
    try:
        if os.fork():
            os._exit(0)
    except BlockingIOError:
        time.sleep(0.001)
"""

LEAVE_GRANDCHILD = """
import subprocess
print(subprocess.Popen(["sleep", "60"], start_new_session=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid)
"""


def _skip_unless_active() -> Support:
    found = cgroups.support()
    if not found.active:
        pytest.skip("this host offers no usable cgroup (needs cgroup v2 with memory and pids "
                    "delegated to our group, or writable cgroup v1 memory and pids "
                    f"hierarchies): {found.reason}")
    return found


def _gone(group: SandboxCgroup) -> bool:
    return not any(os.path.exists(path) for path in group.dirs)


@pytest.fixture
def make_group() -> Iterator[Make]:
    _skip_unless_active()
    made: list[SandboxCgroup] = []

    def make(memory_mb: int = LIMIT_MB, max_processes: int = 10) -> SandboxCgroup:
        group = SandboxCgroup.create(memory_mb, max_processes)
        assert group is not None
        made.append(group)
        return group

    yield make
    for group in made:
        assert group.destroy()
        assert _gone(group)


def _run_in(group: SandboxCgroup, code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], preexec_fn=group.join,
                          capture_output=True, text=True, timeout=60, check=False)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _tmpfs_dir() -> str | None:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split(" ")
            sep = fields.index("-")
            if fields[4] == "/dev/shm" and fields[sep + 1] == "tmpfs":
                return "/dev/shm"
    return None


# --- where cgroups are: parsing (runs everywhere) --------------------------------------

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime shared:9 - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
PURE_V2 = """\
22 1 8:1 / / rw - ext4 /dev/sda1 rw
29 22 0:26 /user.slice /sys/fs/my\\040cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate
"""


def test_mountinfo_parsing_finds_cgroup_mounts() -> None:
    mounts = cgroups._parse_mountinfo(HYBRID)
    assert [(m.fstype, m.point) for m in mounts] == [
        ("cgroup", "/sys/fs/cgroup/cpu"), ("cgroup", "/sys/fs/cgroup/memory"),
        ("cgroup", "/sys/fs/cgroup/pids"), ("cgroup2", "/sys/fs/cgroup/unified")]
    assert "pids" in mounts[2].options
    (v2,) = cgroups._parse_mountinfo(PURE_V2)
    assert (v2.root, v2.point, v2.fstype) == ("/user.slice", "/sys/fs/my cgroup", "cgroup2")


def test_proc_cgroup_parsing_and_group_directories() -> None:
    paths = cgroups._parse_proc_cgroup("4:memory:/process_api/x\n8:pids:/\n"
                                       "2:cpu,cpuacct:/a\n9:name=systemd:/\n0::/b/c\n")
    assert paths == {"memory": "/process_api/x", "pids": "/", "cpu": "/a", "cpuacct": "/a",
                     "name=systemd": "/", "": "/b/c"}
    (v2,) = cgroups._parse_mountinfo(PURE_V2)
    assert cgroups._group_dir(v2, "/user.slice/u.scope") == "/sys/fs/my cgroup/u.scope"
    assert cgroups._group_dir(v2, "/user.slice") == "/sys/fs/my cgroup"
    assert cgroups._group_dir(v2, "/system.slice/x") is None  # not under this mount
    assert cgroups._group_dir(v2, "/user.slice/../x") is None
    memory = cgroups._parse_mountinfo(HYBRID)[1]
    assert cgroups._group_dir(memory, "/") == "/sys/fs/cgroup/memory"
    assert cgroups._group_dir(memory, "/process_api/x") == "/sys/fs/cgroup/memory/process_api/x"


def test_bad_limits_raise() -> None:
    with pytest.raises(ValueError):
        SandboxCgroup.create(0, 10)
    with pytest.raises(ValueError):
        SandboxCgroup.create(64, 0)


# --- this host ------------------------------------------------------------------------


def test_support_matches_the_host_layout() -> None:
    found = _skip_unless_active()
    assert cgroups.support() is found  # probed once
    with open("/proc/self/cgroup") as f:
        v1_memory = any("memory" in line.split(":")[1].split(",") for line in f)
    assert found.version == ("v1" if v1_memory else "v2")  # this hybrid host: v1
    assert found.parents and all(os.path.isdir(path) for path in found.parents)
    assert all(path in found.reason for path in found.parents)
    described = cgroups.describe()
    assert described["version"] == found.version
    assert described["parents"] == list(found.parents)


def test_v2_probe_says_what_it_lacks_on_a_hybrid_host() -> None:
    found = _skip_unless_active()
    if found.version != "v1":
        pytest.skip(f"not a hybrid host (cgroup {found.version} is used)")
    mounts = cgroups._parse_mountinfo(_read("/proc/self/mountinfo"))
    paths = cgroups._parse_proc_cgroup(_read("/proc/self/cgroup"))
    v2 = cgroups._probe_version("v2", mounts, paths)
    assert not v2.active
    assert v2.reason.startswith("cgroup v2: ")


def test_limits_read_back(make_group: Make) -> None:
    group = make_group(LIMIT_MB, 10)
    assert _read(os.path.join(group.pids_dir, "pids.max")) == str(10 + PIDS_HEADROOM)
    limit = str(LIMIT_MB * MB)
    if group.version == "v2":
        assert _read(os.path.join(group.memory_dir, "memory.max")) == limit
        for name, value in (("memory.swap.max", "0"), ("memory.oom.group", "1")):
            if os.path.exists(os.path.join(group.memory_dir, name)):
                assert _read(os.path.join(group.memory_dir, name)) == value
    else:
        assert _read(os.path.join(group.memory_dir, "memory.limit_in_bytes")) == limit
        memsw = os.path.join(group.memory_dir, "memory.memsw.limit_in_bytes")
        if os.path.exists(memsw):
            assert _read(memsw) == limit
    assert [os.path.basename(path) for path in group.procs_files] == ["cgroup.procs"] * len(
        group.dirs)
    assert not group.memory_exceeded()


def test_a_small_process_runs_and_is_counted(make_group: Make) -> None:
    group = make_group()
    done = _run_in(group, "print(sum(range(1000)))")
    assert done.returncode == 0, done.stderr
    assert not group.memory_exceeded()
    peak = group.peak_bytes()
    if peak is not None:
        assert 0 < peak <= LIMIT_MB * MB


def test_anonymous_memory_over_the_limit_is_oom_killed(make_group: Make) -> None:
    group = make_group()
    done = _run_in(group, ANONYMOUS)
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stdout, done.stderr)
    assert group.memory_exceeded()


@pytest.mark.parametrize("where", ["memfd", "tmpfs"])
def test_shared_memory_counts(make_group: Make, where: str) -> None:
    group = make_group()
    target = "memfd"
    if where == "tmpfs":
        directory = _tmpfs_dir()
        if directory is None:
            pytest.skip("/dev/shm is not a tmpfs here")
        target = os.path.join(directory, f"adrs-cgroup-test-{os.getpid()}")
    try:
        done = _run_in(group, SHARED, target)
    finally:
        if target != "memfd" and os.path.exists(target):
            os.unlink(target)
    assert "survived" not in done.stdout
    assert done.returncode in (3, -signal.SIGKILL), (done.returncode, done.stderr)
    assert group.memory_exceeded()


def test_process_limit_stops_a_fork_loop(make_group: Make) -> None:
    group = make_group(256, 10)
    done = _run_in(group, FORKS)
    assert done.returncode == 0, done.stderr
    forked = int(done.stdout)
    assert 10 - 1 <= forked <= 10 + PIDS_HEADROOM - 1  # the forking process counts too


def test_destroy_kills_a_leftover_grandchild(make_group: Make) -> None:
    group = make_group()
    done = _run_in(group, LEAVE_GRANDCHILD)
    assert done.returncode == 0, done.stderr
    grandchild = int(done.stdout)
    pidfd = os.pidfd_open(grandchild)
    try:
        assert grandchild in cgroups._members(group.dirs)
        assert group.destroy()
        assert _gone(group)
        assert select.select([pidfd], [], [], 5.0)[0]  # readable: it has exited
    finally:
        os.close(pidfd)
    assert group.destroy()  # twice: harmless
    assert not group.memory_exceeded()
    assert group.peak_bytes() is None


def test_destroy_stops_processes_that_hop_to_new_pids(make_group: Make) -> None:
    """Processes that fork and exit without end (so a listed pid is soon stale) are
    killed all the same: destroy() first forbids forks (pids.max 0)."""
    group = make_group(256, 10)
    starter = subprocess.Popen([sys.executable, "-c", HOPPERS], preexec_fn=group.join)
    assert starter.wait(10) == 0
    time.sleep(0.2)
    assert cgroups._members(group.dirs)  # still hopping
    assert group.destroy()
    assert _gone(group)


def test_stale_parent_is_replaced_and_a_live_one_left_alone() -> None:
    found = _skip_unless_active()
    base = os.path.join(found.memory_parent, f"stale-test-{os.getpid()}")
    os.mkdir(base)
    sleeper = None
    try:
        stale = os.path.join(base, f"adrs-{os.getpid()}")
        os.makedirs(os.path.join(stale, "s1"))
        assert cgroups._claim_parent(base) == stale
        assert os.listdir(stale) and not os.path.exists(os.path.join(stale, "s1"))
        cgroups._disown(stale)
        os.makedirs(os.path.join(stale, "s2"))
        sleeper = subprocess.Popen(["sleep", "60"])
        cgroups._write(os.path.join(stale, "s2", "cgroup.procs"), str(sleeper.pid))
        other = cgroups._claim_parent(base)
        assert other != stale and other.startswith(stale + "-")
        assert sleeper.poll() is None
        cgroups._disown(other)
    finally:
        assert cgroups._clear(tuple(os.path.join(base, *parts) for parts in (
            (f"adrs-{os.getpid()}", "s2"), (f"adrs-{os.getpid()}",), ())))
        if sleeper is not None:
            sleeper.wait(5)


def test_sweep_removes_empty_parents_of_dead_processes_only() -> None:
    found = _skip_unless_active()
    base = os.path.join(found.memory_parent, f"sweep-test-{os.getpid()}")
    os.mkdir(base)
    dead = subprocess.Popen(["true"])
    dead.wait()
    sleeper = subprocess.Popen(["sleep", "60"])
    left = [os.path.join(base, f"adrs-{dead.pid}", "s1"),
            os.path.join(base, f"adrs-{sleeper.pid}", "s1"), os.path.join(base, "other")]
    try:
        for path in left:
            os.makedirs(path)
        cgroups._sweep(base)
        assert sorted(os.path.basename(path) for path in cgroups._subgroups(base)) == [
            f"adrs-{sleeper.pid}", "other"]
    finally:
        sleeper.kill()
        sleeper.wait(5)
        cgroups._clear((*left[1:], os.path.dirname(left[1]), left[0], os.path.dirname(left[0]),
                        base))
    assert not os.path.exists(base)


def test_a_vanished_parent_is_made_again(make_group: Make) -> None:
    found = _skip_unless_active()
    if any(cgroups._subgroups(parent) for parent in found.parents):
        pytest.skip("the parent group is in use")
    for parent in found.parents:
        os.rmdir(parent)
    group = make_group()
    assert all(path.startswith(parent) for path, parent in zip(group.dirs, found.parents,
                                                                 strict=True))
    assert all(os.path.isdir(parent) for parent in found.parents)


def test_v2_kill_path_on_a_cgroup2_mount() -> None:
    """cgroup.kill and rmdir on a cgroup2 group (no controllers needed for this part)."""
    mounts = cgroups._parse_mountinfo(_read("/proc/self/mountinfo"))
    ours = cgroups._locate(mounts, "cgroup2", "",
                           cgroups._parse_proc_cgroup(_read("/proc/self/cgroup")).get(""))
    if ours is None or not os.access(ours, os.W_OK):
        pytest.skip("no writable cgroup2 group of ours here")
    path = os.path.join(ours, f"adrs-kill-test-{os.getpid()}")
    try:
        os.mkdir(path)
    except OSError as error:
        pytest.skip(f"cannot create a cgroup2 group under {ours}: {error}")
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        cgroups._write(os.path.join(path, "cgroup.procs"), str(sleeper.pid))
    except OSError as error:
        sleeper.kill()
        pytest.skip(f"cannot move a process into {path}: {error}")
    finally:
        assert cgroups._clear((path,))
    assert sleeper.wait(5) == -signal.SIGKILL
    assert not os.path.exists(path)


def test_cost_per_sandbox(make_group: Make) -> None:
    times = []
    for _ in range(50):
        sleeper = subprocess.Popen(["sleep", "60"])
        start = time.perf_counter()
        group = make_group()
        group.join(sleeper.pid)
        assert group.destroy()
        times.append(time.perf_counter() - start)
        assert sleeper.wait(5) == -signal.SIGKILL
    median_ms = statistics.median(times) * 1000
    print(f"create+join+destroy: median {median_ms:.2f} ms of 50")
    assert median_ms < 20


def test_zz_no_leftover_groups() -> None:
    found = _skip_unless_active()
    for parent in found.parents:
        assert cgroups._subgroups(parent) == []

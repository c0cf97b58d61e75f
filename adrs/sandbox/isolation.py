"""How a sandboxed child is started: limits, namespaces, environment, command line.

Protections, each used when this machine allows it (`protections()` says which):
- resource limits (address space, CPU time, file size, no core dumps) set before exec, by
  `prlimit` when installed, else by a pre-exec function in the forked child;
- fresh user, pid, mount and network namespaces (`unshare`): no network, a private /proc
  (so the parent's environment cannot be read there), rlimits the candidate cannot raise
  even when we run as root, and every process the candidate starts dies with the sandbox,
  even after setsid();
- inside those namespaces, a minimal read-only root (system directories, the interpreter,
  its site-packages, the harness) plus the writable working directory, and no capabilities
  (lockdown.py): the candidate cannot read or rewrite the evaluator, the simulator, data
  files, the run store or home directories, even though it is root of its namespace;
- a whitelisted environment: nothing of the parent's (API keys ...) leaks in.
The namespace set-up is probed once per process and dropped if this machine refuses it.
Where every one of these works, the child is forked by a zygote (zygote.py), which sets
up the same namespaces, limits and lockdown without starting an interpreter; the command
built here is then the fallback.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import resource
import shutil
import site
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adrs.sandbox import cgroups
from adrs.sandbox.zygote import ZYGOTE_CLIENT

CHILD_SCRIPT = str(Path(__file__).with_name("boot.py"))  # starts child.py (see boot.py)
# Loaded by path in the sandbox (by boot.py, or once by the zygote, forkserver.py).
_SANDBOX_MODULES = ("child.py", "codec.py", "lockdown.py", "seccomp.py")
# -S: no site module, whose .pth imports (editable installs ...) cost more than the rest of
# the start-up; the child adds site-packages itself. -P: the script's directory is not
# importable. Not -E/-I: the environment is a whitelist built here, and PYTHONHASHSEED in
# it must be honoured.
PYTHON_FLAGS = ("-S", "-P")
SITE_DIRS_VAR = "ADRS_SITE_DIRS"  # read by child.py
LOCKDOWN_VAR = "ADRS_LOCKDOWN"  # read by child.py
MAX_TASKS_VAR = "ADRS_MAX_TASKS"  # read by child.py
DISK_MB_VAR = "ADRS_DISK_MB"  # read by child.py
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "NUMEXPR_NUM_THREADS")
_NS_FLAGS = ("--ipc", "--pid", "--fork", "--kill-child", "--mount-proc")
_PRLIMIT_NAMES = {resource.RLIMIT_AS: "as", resource.RLIMIT_CPU: "cpu",
                  resource.RLIMIT_FSIZE: "fsize", resource.RLIMIT_CORE: "core",
                  resource.RLIMIT_NPROC: "nproc", resource.RLIMIT_NOFILE: "nofile",
                  resource.RLIMIT_MSGQUEUE: "msgqueue"}
MAX_OPEN_FILES = 256  # RLIMIT_NOFILE of a sandbox: bounds memfds and pipes it can hold


@dataclass(frozen=True)
class Limits:
    """Resource limits of one evaluation.

    timeout_s is the wall-clock budget of the whole evaluation, load included; cpu_s
    (RLIMIT_CPU, per process) defaults to ceil(timeout_s) + 1; memory_mb is RLIMIT_AS;
    output_bytes caps each of stdout, stderr and any file the candidate writes;
    max_processes is enforced inside a user namespace when not running as root (elsewhere
    the kernel would count all of the user's processes); where the kernel namespaces pid_max
    (Linux >= 6.14) the sandbox's processes and threads are also bounded by
    max(max_processes, 299), root or not; network=False: no network. disk_mb is the size
    of the sandbox's working directory and /dev/shm (one tmpfs; where the sandbox cannot be
    locked down, files are bounded only by output_bytes each). reply_mb bounds one encoded
    reply of the candidate (codec frame), checked before it is read.
    Where the host offers a cgroup (cgroups.py), the whole sandbox (all its processes,
    shared memory, memfd, its tmpfs) is also held to memory_mb + disk_mb, and its
    processes to max_processes.
    """

    timeout_s: float = 30.0
    memory_mb: int = 4096
    cpu_s: int | None = None
    output_bytes: int = 1_000_000
    max_processes: int = 64
    network: bool = False
    disk_mb: int = 64
    reply_mb: int = 64

    def __post_init__(self) -> None:
        if not (self.timeout_s > 0 and math.isfinite(self.timeout_s)):
            raise ValueError(f"timeout_s must be a positive number, got {self.timeout_s!r}")
        for name in ("memory_mb", "output_bytes", "max_processes", "disk_mb", "reply_mb"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        if self.cpu_s is not None and self.cpu_s < 1:
            raise ValueError(f"cpu_s must be at least 1, got {self.cpu_s!r}")

    @property
    def cpu_seconds(self) -> int:
        return self.cpu_s if self.cpu_s is not None else math.ceil(self.timeout_s) + 1


@dataclass(frozen=True)
class LaunchPlan:
    """The command that starts a child, and the pre-exec function if one is needed."""

    command: list[str]
    preexec: Callable[[], None] | None
    namespaced: bool  # True: the child is pid 1 of its own pid namespace
    lockdown: bool = False  # True: the child makes the filesystem read-only (lockdown.py)
    # Set where a zygote may fork the child instead (user namespace and lockdown work
    # here): the rlimits it sets inside the namespaces, as (resource, value) pairs.
    fork_rlimits: tuple[tuple[int, int], ...] | None = None


_PROBES = threading.RLock()  # one probe at a time: the others wait for its answer
_warming: threading.Thread | None = None  # warm_up's
_Probe = Callable[..., Any]


def _probed_once(probe: _Probe) -> _Probe:
    """functools.cache, and a caller that comes while any probe runs (warm_up's thread)
    waits for it instead of probing a second time."""
    cached = functools.cache(probe)

    @functools.wraps(probe)
    def once(*args: Any) -> Any:
        with _PROBES:
            return cached(*args)

    return once


def warm_up() -> None:
    """Probe this machine and start the zygote now, on a daemon thread: what the first
    sandbox would do first, overlapped with the caller's own start-up (`adrs run` imports
    and reads its configuration meanwhile; adrs/cli/entry.py). A failure is left to the
    first sandbox, which probes again and says why."""
    global _warming
    _warming = threading.Thread(target=warm, name="adrs-sandbox-warm-up", daemon=True)
    _warming.start()


def wait_warm() -> None:
    """Wait for warm_up's thread to end (a caller about to fork: see forked.py)."""
    if _warming is not None:
        _warming.join()


def warm() -> None:
    """Probe this machine and start this process's zygote (warm_up's thread; a forked
    evaluation worker, whose probes its parent already made)."""
    with _PROBES, contextlib.suppress(Exception):
        _precompile()
        protection_report()


@_probed_once
def _namespace_prefix(unshare: str | None, network: bool) -> tuple[str, ...]:
    """The `unshare` prefix that works on this machine, probed once; () if none does."""
    if unshare is None:
        return ()
    variants: list[tuple[str, ...]] = [("--user", "--map-root-user", "--cgroup"),
                                       ("--user", "--map-root-user")]
    if os.geteuid() == 0:
        variants.append(())  # root where user namespaces are refused (some containers)
    for extra in variants:
        prefix = (unshare, *extra, *(() if network else ("--net",)), *_NS_FLAGS)
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            probe = subprocess.run([*prefix, sys.executable, "-S", "-c", ""], timeout=10,
                                   stdin=subprocess.DEVNULL, capture_output=True, env={})
            if probe.returncode == 0:
                return prefix
    return ()


@_probed_once
def _precompile() -> None:
    """Write the bytecode of the sandbox's modules, so that no child compiles them; a
    module whose cached bytecode is current is left alone (compiling them on every
    start took the GIL from `adrs run`'s own imports, which it overlaps)."""
    for name in _SANDBOX_MODULES:
        source = str(Path(__file__).with_name(name))
        if not bytecode_current(source):
            import py_compile

            with contextlib.suppress(OSError, py_compile.PyCompileError):  # read-only install
                py_compile.compile(source, doraise=True)


def bytecode_current(source: str) -> bool:
    """Whether `source`'s cached bytecode is what the import system would use as is: this
    interpreter's magic number, checked by timestamp, the source's mtime and size."""
    import importlib.util

    try:
        with open(importlib.util.cache_from_source(source), "rb") as cached:
            header = cached.read(16)
        stat = os.stat(source)
    except OSError:
        return False
    return (len(header) == 16 and header[:4] == importlib.util.MAGIC_NUMBER
            and int.from_bytes(header[4:8], "little") == 0
            and int.from_bytes(header[8:12], "little") == int(stat.st_mtime) & 0xFFFFFFFF
            and int.from_bytes(header[12:16], "little") == stat.st_size & 0xFFFFFFFF)


@_probed_once
def _lockdown_probe(prefix: tuple[str, ...]) -> dict[str, bool] | None:
    """child.py's lockdown probe inside the namespaces of `prefix`, run once: what took
    effect (lockdown.lock_down's report), or None if the sandbox cannot be locked down."""
    if "--user" not in prefix:  # capabilities to drop exist only in our own user namespace
        return None
    with tempfile.TemporaryDirectory(prefix="adrs-probe-") as workdir, \
            contextlib.suppress(OSError, subprocess.SubprocessError, ValueError):
        probe = subprocess.run(
            [*prefix, sys.executable, *PYTHON_FLAGS, CHILD_SCRIPT, "--lockdown-probe", workdir],
            timeout=10, stdin=subprocess.DEVNULL, capture_output=True, env={})
        if probe.returncode == 0:
            pairs = (item.split("=") for item in probe.stdout.decode().split())
            return {key: value == "1" for key, value in pairs}
    return None


def _lockdown_works(prefix: tuple[str, ...]) -> bool:
    return _lockdown_probe(prefix) is not None


def _locked_down_with(prefix: tuple[str, ...], what: str) -> bool:
    """Whether the lockdown probe saw `what` take effect (see lockdown.lock_down)."""
    return bool((_lockdown_probe(prefix) or {}).get(what))


def _rlimits(limits: Limits, count_processes: bool) -> dict[int, int]:
    values = {resource.RLIMIT_AS: limits.memory_mb << 20,
              resource.RLIMIT_CPU: limits.cpu_seconds,
              resource.RLIMIT_FSIZE: limits.output_bytes,
              resource.RLIMIT_CORE: 0,
              resource.RLIMIT_NOFILE: MAX_OPEN_FILES,
              resource.RLIMIT_MSGQUEUE: 0}
    if count_processes:
        values[resource.RLIMIT_NPROC] = limits.max_processes
    return values


def _set_rlimits(values: dict[int, int]) -> None:
    for key, value in values.items():
        resource.setrlimit(key, (value, value))


def launch_plan(limits: Limits, argv: list[str]) -> LaunchPlan:
    """How to run `argv` under `limits` here.

    prlimit runs inside the namespaces, so that the process count is the sandbox's own.
    The pre-exec function is a fallback only: it is not safe in a threaded parent.
    """
    _precompile()
    prefix = list(_namespace_prefix(_which("unshare"), limits.network))
    prlimit = _which("prlimit")
    # Root ignores RLIMIT_NPROC; outside a user namespace it would count all our processes.
    count = bool(prefix) and prlimit is not None and os.geteuid() != 0
    values = _rlimits(limits, count)
    lockdown = _lockdown_works(tuple(prefix))
    fork_rlimits = None
    if "--user" in prefix and lockdown:  # the zygote's children count their own processes
        fork_rlimits = tuple(_rlimits(limits, os.geteuid() != 0).items())
    if prlimit is None:
        return LaunchPlan(prefix + argv, functools.partial(_set_rlimits, values), bool(prefix),
                          lockdown, fork_rlimits)
    flags = [f"--{_PRLIMIT_NAMES[key]}={value}" for key, value in values.items()]
    return LaunchPlan([*prefix, prlimit, *flags, "--", *argv], None, bool(prefix), lockdown,
                      fork_rlimits)


def _which(name: str) -> str | None:
    """shutil.which, looked up once per PATH: a launch asks for two tools, and a search
    of PATH is a dozen stat calls."""
    return _which_on(name, os.environ.get("PATH"))


@functools.lru_cache(maxsize=16)
def _which_on(name: str, path: str | None) -> str | None:
    return shutil.which(name, path=path)


@functools.cache
def _site_dirs() -> str:
    """This interpreter's site-packages (not the user's): what candidates may import."""
    return os.pathsep.join(site.getsitepackages())


def environment(workdir: str, lockdown: bool = False, max_tasks: int = 0,
                disk_mb: int = 64) -> dict[str, str]:
    """The child's whole environment: a whitelist, never the parent's other variables.

    The ADRS_* variables tell child.py what to set up (they carry no secret)."""
    env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": workdir, "TMPDIR": workdir,
           "LANG": os.environ.get("LANG", "C.UTF-8"), "PYTHONHASHSEED": "0",
           "PYTHONDONTWRITEBYTECODE": "1", SITE_DIRS_VAR: _site_dirs()}
    if lockdown:
        env[LOCKDOWN_VAR] = "1"
        env[MAX_TASKS_VAR] = str(max_tasks)
        env[DISK_MB_VAR] = str(disk_mb)
    if "LC_ALL" in os.environ:
        env["LC_ALL"] = os.environ["LC_ALL"]
    env.update(dict.fromkeys(_THREAD_VARS, "1"))
    return env


@dataclass(frozen=True)
class Protection:
    """One protection of the sandbox as started here and now, for `adrs doctor`."""

    name: str
    active: bool
    why: str  # what it does when active, what is missing when not


def protections(network: bool = False) -> dict[str, bool]:
    """Which protections a sandbox started now would have (see `protection_report`)."""
    return {p.name: p.active for p in protection_report(network)}


def protection_report(network: bool = False) -> list[Protection]:
    """Every protection, active or missing, with the reason (for `adrs doctor`)."""
    prefix = _namespace_prefix(_which("unshare"), network)
    lockdown = _lockdown_works(prefix)
    zygote = "--user" in prefix and lockdown and _zygote_works()
    prlimit = _which("prlimit") is not None and not zygote
    root = os.geteuid() == 0
    userns = "--user" in prefix
    no_lock = "needs a user namespace and mount_setattr (Linux >= 5.12)"
    cgroup = cgroups.support()
    rows = [
        ("forked_by_zygote", zygote, "sandboxes are forked from a started interpreter",
         "each sandbox starts an interpreter (slower, same protections but the uid)"),
        ("rlimits", True, "address space, CPU time, file size, open files, no core; set by "
         + ("the zygote's fork" if zygote else "prlimit(1)" if prlimit
            else "a pre-exec function"), ""),
        ("environment_whitelist", True, "no variable of the trusted side (API keys)", ""),
        ("user_namespace", userns, "own user namespace", "unshare --user is refused here"),
        ("pid_namespace", bool(prefix), "own pid namespace: every process dies with it",
         "no pid namespace: a setsid() grandchild can outlive the sandbox"),
        ("private_proc", bool(prefix), "its own /proc", "the host's /proc is visible"),
        ("ipc_namespace", bool(prefix), "own IPC namespace: SysV IPC dies with the sandbox",
         "no IPC namespace: shared memory can outlive the sandbox"),
        ("cgroup_namespace", "--cgroup" in prefix,
         "own cgroup namespace: /proc/self/cgroup shows no host path or sandbox name",
         "no cgroup namespace: /proc/self/cgroup shows the sandbox's cgroup path"),
        ("network_namespace", bool(prefix) and not network, "no network (loopback only)",
         "network allowed by limits.network" if network else "no network namespace"),
        ("process_count_limit",
         cgroup.active or (bool(prefix) and (prlimit or zygote) and not root),
         "pids.max of the sandbox's cgroup" if cgroup.active
         else "RLIMIT_NPROC inside the user namespace",
         "RLIMIT_NPROC does not apply to root and no cgroup" if root else "no user namespace"),
        ("fork_bomb_bound", _locked_down_with(prefix, "tasks"),
         "pid_max of the sandbox's pid namespace (at most max(max_processes, 299) tasks)",
         "pid_max is not per namespace before Linux 6.14"),
        ("read_only_filesystem", lockdown, "a read-only minimal root", no_lock),
        ("private_filesystem", lockdown,
         "only system dirs, the interpreter, the harness and its own tmpfs", no_lock),
        ("disk_limit", lockdown, "working directory and /dev/shm: one tmpfs of disk_mb",
         "files are bounded only by output_bytes each"),
        ("minimal_dev", lockdown, "/dev holds null, zero, full, random, urandom", no_lock),
        ("host_mounts_hidden", _locked_down_with(prefix, "pivot"),
         "pivot_root: the host's mount table is gone", "chroot only: /proc/1/mountinfo "
         "shows the host's mounts" if lockdown else no_lock),
        ("ipc_limits", _locked_down_with(prefix, "ipc"),
         "SysV shared memory capped at disk_mb", "SysV limits are the host's defaults"),
        ("seccomp_filter", _locked_down_with(prefix, "seccomp"),
         "ptrace, bpf, io_uring, userfaultfd, perf_event_open, keyctl, mount, namespaces, "
         "kexec and modules denied", "seccomp filters are refused here" if lockdown
         else no_lock),
        ("no_capabilities", lockdown, "every capability dropped for good", no_lock),
        ("runs_as_non_root", (zygote and lockdown) or not root,
         "an unprivileged uid without groups" if root else "the host user is not root",
         "as root on the Popen path: mapped to host root (without capabilities)"),
        ("cgroup_limits", cgroup.active,
         f"memory (shared memory, memfd, tmpfs included) and processes per sandbox: "
         f"{cgroup.reason}", f"{cgroup.reason}; memory bounded per process (RLIMIT_AS, "
         f"{MAX_OPEN_FILES} open files of at most output_bytes) and by the tmpfs size"),
    ]
    return [Protection(name, bool(on), yes if on else no) for name, on, yes, no in rows]


def _zygote_works() -> bool:
    return ZYGOTE_CLIENT.available(environment("/"))

"""One cgroup per sandbox: a memory limit that counts shared memory, and a process limit.

Rlimits bound each process on its own; they do not bound what a sandbox holds in all:
shared memory, memfd, tmpfs files, many processes. A cgroup does: every page the sandbox's
processes charge (anonymous, page cache, shmem/tmpfs/memfd) counts against one limit, and
its pids controller bounds its tasks. Used where the host offers it:

- cgroup v2: our group (from "0::/path" in /proc/self/cgroup, its mount from
  /proc/self/mountinfo) must offer memory and pids, and delegate them to subgroups (its
  cgroup.subtree_control has them, or we can enable them: only the root may when it holds
  processes, v2's no-internal-processes rule). Sandboxes then live under a parent group
  "adrs-<pid>" created there, with +memory +pids in its own subtree_control;
- cgroup v1: the memory and pids hierarchies (found in mountinfo, wherever mounted), our
  group in each, and a parent "adrs-<pid>" under it in each.

`support()` probes this once per process by really creating (and removing) a group with
both limits. `SandboxCgroup.create()` makes one group per sandbox (in each v1 hierarchy).
A sandbox process joins it by writing "0" to each of `procs_files` BEFORE it enters a
user namespace (afterwards it no longer has the right to write there); its children
inherit the group. Only the trusted side uses this module; the files it reads are kernel
files under the cgroup mounts, read with a bound all the same.

The parent group is removed at exit (atexit, best effort, only by the process that made
it). Processes killed, or ended by os._exit (multiprocessing workers), leave theirs: a
new parent sweeps its siblings "adrs-<pid>" whose pid is not running (in our pid
namespace) and that hold no process. A leftover parent of a dead process that had our pid
is removed and made anew when no process is left in it (else a differently named parent
is used: we never kill processes we did not place). Should a parent vanish anyway
(swept from another pid namespace sharing the hierarchy), create() makes it again.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import functools
import itertools
import os
import re
import secrets
import signal
import threading
import time
from dataclasses import dataclass

__all__ = ["PIDS_HEADROOM", "SandboxCgroup", "Support", "describe", "support"]

# pids.max = max_processes + PIDS_HEADROOM: room for the sandbox's own start-up processes
# (the process that made the namespaces on the fork path, the candidate's own process, and
# on the Popen path the thread that watches the trusted side ...). pids counts threads as
# well as processes.
PIDS_HEADROOM = 4
_CONTROLLERS = ("memory", "pids")
_READ_LIMIT = 64 * 1024
_MOUNTINFO_LIMIT = 1 << 20  # not under a cgroup mount; hosts with many mounts
_DESTROY_WAIT_S = 1.0
_FIRST_SLEEP_S = 0.0005
_MAX_SLEEP_S = 0.01
_STALE_DEPTH = 4
_ESCAPE = re.compile(r"\\([0-7]{3})")
_PARENT_NAME = re.compile(r"adrs-([0-9]+)(?:-[0-9a-f]+)?")


@dataclass(frozen=True)
class Support:
    """Whether sandboxes get cgroups here: version "v2", "v1" or None, and why (not).

    memory_parent and pids_parent are the parent groups of the sandbox groups (the same
    directory in v2), empty when not active.
    """

    version: str | None
    reason: str
    memory_parent: str = ""
    pids_parent: str = ""

    @property
    def active(self) -> bool:
        return self.version is not None

    @property
    def parents(self) -> tuple[str, ...]:
        return _unique((self.memory_parent, self.pids_parent)) if self.active else ()


@dataclass(frozen=True)
class _Mount:
    """A cgroup mount: the hierarchy path mounted (root) at point; options: super options
    (in v1 the controllers, e.g. "memory")."""

    root: str
    point: str
    fstype: str
    options: frozenset[str]


# --- reading and writing kernel files ------------------------------------------------


def _read(path: str, limit: int = _READ_LIMIT) -> str:
    """At most `limit` bytes of a file (raises OSError)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks: list[bytes] = []
        size = 0
        while size < limit:
            chunk = os.read(fd, limit - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return os.fsdecode(b"".join(chunks))
    finally:
        os.close(fd)


def _write(path: str, text: str) -> None:
    """One write(2) of text to a kernel file (raises OSError)."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _write_if_present(path: str, text: str) -> bool:
    """Like _write, but a file this kernel lacks is not an error: returns False."""
    try:
        _write(path, text)
    except FileNotFoundError:
        return False
    return True


def _counters(path: str) -> dict[str, int]:
    """'key value' lines (memory.events, memory.oom_control) as a dict."""
    counters: dict[str, int] = {}
    for line in _read(path).splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            counters[key] = int(value)
    return counters


def _members(dirs: tuple[str, ...]) -> set[int]:
    """The pids listed in the groups' cgroup.procs (only complete lines: a read cut at
    the bound must not yield a truncated pid); groups already gone count as empty."""
    pids: set[int] = set()
    for path in dirs:
        try:
            lines = _read(os.path.join(path, "cgroup.procs")).split("\n")[:-1]
        except OSError:
            continue
        pids.update(int(line) for line in lines if line.isdigit())
    return pids


def _unique(paths: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(paths))


# --- where our groups are: /proc/self/mountinfo and /proc/self/cgroup ------------------


def _unescape(field: str) -> str:
    return _ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


def _parse_mountinfo(text: str) -> tuple[_Mount, ...]:
    """The cgroup and cgroup2 mounts of a mountinfo text."""
    mounts = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            sep = fields.index("-", 6)
        except ValueError:
            continue
        if len(fields) < sep + 4 or fields[sep + 1] not in ("cgroup", "cgroup2"):
            continue
        mounts.append(_Mount(_unescape(fields[3]), _unescape(fields[4]), fields[sep + 1],
                             frozenset(fields[sep + 3].split(","))))
    return tuple(mounts)


def _parse_proc_cgroup(text: str) -> dict[str, str]:
    """Our path per controller ("memory", "pids", "name=systemd" ...) in the v1
    hierarchies; key "" for the v2 hierarchy ("0::/path")."""
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3 or not parts[2].startswith("/"):
            continue
        for name in parts[1].split(",") if parts[1] else [""]:
            paths[name] = parts[2]
    return paths


def _group_dir(mount: _Mount, path: str) -> str | None:
    """The directory of group `path` under this mount; None when the mount shows another
    part of the hierarchy (or the path leaves our cgroup namespace: "/..")."""
    if ".." in path.split("/"):
        return None
    root = mount.root.rstrip("/")
    if root and path != root and not path.startswith(root + "/"):
        return None
    relative = path[len(root):].strip("/")
    return os.path.join(mount.point, relative) if relative else mount.point


def _locate(mounts: tuple[_Mount, ...], fstype: str, controller: str,
            path: str | None) -> str | None:
    """Our group's directory in the hierarchy of `controller` (v1) or in cgroup2."""
    if path is None:
        return None
    for mount in mounts:
        if mount.fstype == fstype and (fstype == "cgroup2" or controller in mount.options):
            found = _group_dir(mount, path)
            if found is not None and os.path.isdir(found):
                return found
    return None


# --- killing and removing groups -------------------------------------------------------


def _pidfd(pid: int) -> int | None:
    """A pidfd of pid (None: this kernel has none, use kill); raises ProcessLookupError."""
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        raise
    except OSError:
        return None


def _kill_listed(dirs: tuple[str, ...]) -> None:
    """SIGKILL every process listed in the groups, never a recycled pid: each is held by
    a pidfd, then signalled only if still listed (so the pidfd is that member)."""
    handles: dict[int, int | None] = {}
    try:
        for pid in _members(dirs) - {0, os.getpid()}:
            with contextlib.suppress(ProcessLookupError):
                handles[pid] = _pidfd(pid)
        listed = _members(dirs) if handles else set()
        for pid, fd in handles.items():
            if pid in listed:
                with contextlib.suppress(OSError):
                    if fd is None:
                        os.kill(pid, signal.SIGKILL)
                    else:
                        signal.pidfd_send_signal(fd, signal.SIGKILL)
    finally:
        for fd in handles.values():
            if fd is not None:
                os.close(fd)


def _kill_all(dirs: tuple[str, ...]) -> None:
    """v2 with cgroup.kill (Linux >= 5.14): the kernel kills the whole group, forks
    included; else (v1, older v2) kill the listed processes."""
    for path in dirs:
        try:
            _write(os.path.join(path, "cgroup.kill"), "1")
        except OSError:
            _kill_listed((path,))


def _rmdir(path: str) -> bool:
    """Remove a group; True when it is gone (also when it was already)."""
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def _stop_forks(dirs: tuple[str, ...]) -> None:
    """pids.max 0 where there is one: no process of the group can fork any more, so none
    escapes a kill by list (v1, v2 before cgroup.kill) by hopping to new pids."""
    for path in dirs:
        with contextlib.suppress(OSError):
            _write(os.path.join(path, "pids.max"), "0")


def _clear(dirs: tuple[str, ...], wait_s: float = _DESTROY_WAIT_S) -> bool:
    """Kill everything in the groups and remove them, retrying for up to wait_s while
    killed processes leave (asynchronously). True when every group is gone."""
    deadline = time.monotonic() + wait_s
    _stop_forks(dirs)
    pause = _FIRST_SLEEP_S
    left = dirs
    while True:
        _kill_all(left)
        left = tuple(path for path in left if not _rmdir(path))
        if not left:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, _MAX_SLEEP_S)


def _subgroups(path: str) -> list[str]:
    try:
        with os.scandir(path) as entries:
            return [entry.path for entry in entries if entry.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def _has_processes(path: str, depth: int = _STALE_DEPTH) -> bool:
    """Whether any process is in this group or its subgroups (down to depth)."""
    if _members((path,)):
        return True
    return depth > 0 and any(_has_processes(sub, depth - 1) for sub in _subgroups(path))


def _remove_empty_tree(path: str, depth: int = _STALE_DEPTH) -> None:
    """rmdir a group and its subgroups, deepest first (raises OSError)."""
    if depth > 0:
        for sub in _subgroups(path):
            _remove_empty_tree(sub, depth - 1)
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(path)


# --- the parent group of this process's sandboxes -------------------------------------

_owned_parents: list[str] = []
_owner_pid = 0
_lock = threading.Lock()
_names = itertools.count()


def _sweep(base: str) -> None:
    """Remove the parent groups that dead processes left under `base` (killed, or ended
    by os._exit as multiprocessing workers do, so atexit did not run), when empty of
    processes. A process is dead when its pid is not in our /proc."""
    for path in _subgroups(base):
        match = _PARENT_NAME.fullmatch(os.path.basename(path))
        if match is None or int(match.group(1)) == os.getpid():
            continue
        if not os.path.exists(f"/proc/{match.group(1)}") and not _has_processes(path):
            with contextlib.suppress(OSError):
                _remove_empty_tree(path)


def _claim_parent(base: str) -> str:
    """Create the parent group "adrs-<pid>" under our group `base`. A leftover of a dead
    process with our pid is removed first if empty; if processes are still in it, a new
    name is taken instead (raises OSError). Leftovers of other dead processes are swept."""
    _sweep(base)
    name = f"adrs-{os.getpid()}"
    path = os.path.join(base, name)
    if os.path.isdir(path):
        if _has_processes(path):
            path = os.path.join(base, f"{name}-{secrets.token_hex(4)}")
        else:
            _remove_empty_tree(path)
    os.mkdir(path)
    _own(path)
    return path


def _own(path: str) -> None:
    global _owner_pid
    if not _owned_parents:
        _owner_pid = os.getpid()
        atexit.register(_cleanup_at_exit)
    _owned_parents.append(path)


def _disown(path: str) -> None:
    _rmdir(path)
    with contextlib.suppress(ValueError):
        _owned_parents.remove(path)


def _cleanup_at_exit() -> None:
    """Kill what is left in our sandbox groups and remove them and the parents (only in
    the process that made them, not in a forked child)."""
    if os.getpid() != _owner_pid:
        return
    names = {os.path.basename(sub) for parent in _owned_parents for sub in _subgroups(parent)}
    for name in names:
        _clear(tuple(os.path.join(parent, name) for parent in _owned_parents))
    _clear(tuple(_owned_parents), wait_s=0.1)


# --- probing ------------------------------------------------------------------------


def _try_group(found: Support) -> None:
    """Really create a group with both limits, then remove it (raises OSError)."""
    group = _make(found, f"probe-{os.getpid()}", 64, 1)
    if not _clear(group.dirs):
        raise OSError(errno.EBUSY, "the probe group could not be removed")


def _probe_v2(mounts: tuple[_Mount, ...], paths: dict[str, str]) -> Support:
    ours = _locate(mounts, "cgroup2", "", paths.get(""))
    if ours is None:
        return Support(None, "cgroup v2: not mounted here, or our group is not visible")
    offered = _read(os.path.join(ours, "cgroup.controllers")).split()
    missing = [name for name in _CONTROLLERS if name not in offered]
    if missing:
        return Support(None, f"cgroup v2: {ours} lacks the {'+'.join(missing)} "
                             f"controller(s) (it has: {' '.join(offered) or 'none'})")
    if not _delegates(ours):
        return Support(None, f"cgroup v2: our group {ours} holds processes, so it cannot "
                             f"enable memory+pids for subgroups (no internal processes); "
                             f"start adrs in a leaf group below it, then enable them in "
                             f"{ours}/cgroup.subtree_control")
    parent = _claim_parent(ours)
    try:
        _write(os.path.join(parent, "cgroup.subtree_control"), "+memory +pids")
        found = Support("v2", f"cgroup v2 memory+pids under {parent}", parent, parent)
        _try_group(found)
    except OSError:
        _disown(parent)
        raise
    return found


def _delegates(ours: str) -> bool:
    """Whether our group enables memory and pids for its subgroups, enabling them if it
    may (only the root may while it holds processes)."""
    control = os.path.join(ours, "cgroup.subtree_control")
    if all(name in _read(control).split() for name in _CONTROLLERS):
        return True
    try:
        _write(control, "+memory +pids")
    except OSError:
        return False
    return True


def _probe_v1(mounts: tuple[_Mount, ...], paths: dict[str, str]) -> Support:
    ours = {name: _locate(mounts, "cgroup", name, paths.get(name)) for name in _CONTROLLERS}
    missing = [name for name, path in ours.items() if path is None]
    if missing:
        return Support(None, f"cgroup v1: no {'+'.join(missing)} hierarchy mounted, or "
                             f"our group there is not visible")
    parents: dict[str, str] = {}
    try:
        for base in _unique((str(ours["memory"]), str(ours["pids"]))):
            parents[base] = _claim_parent(base)
        memory, pids = parents[str(ours["memory"])], parents[str(ours["pids"])]
        where = memory if memory == pids else f"{memory} and {pids}"
        found = Support("v1", f"cgroup v1 memory+pids under {where}", memory, pids)
        _try_group(found)
    except OSError:
        for parent in parents.values():
            _disown(parent)
        raise
    return found


def _probe_version(name: str, mounts: tuple[_Mount, ...], paths: dict[str, str]) -> Support:
    probe = _probe_v2 if name == "v2" else _probe_v1
    try:
        return probe(mounts, paths)
    except (OSError, ValueError) as error:
        return Support(None, f"cgroup {name}: {error}")


@functools.cache
def _probe() -> Support:
    try:
        mounts = _parse_mountinfo(_read("/proc/self/mountinfo", _MOUNTINFO_LIMIT))
        paths = _parse_proc_cgroup(_read("/proc/self/cgroup"))
    except OSError as error:
        return Support(None, f"cannot read /proc/self: {error}")
    v2 = _probe_version("v2", mounts, paths)
    if v2.active:
        return v2
    v1 = _probe_version("v1", mounts, paths)
    return v1 if v1.active else Support(None, f"{v2.reason}; {v1.reason}")


def support() -> Support:
    """Whether (and where) sandboxes get cgroups here: probed once per process, by really
    creating and removing a group with memory and pids limits."""
    with _lock:
        return _probe()


def describe() -> dict[str, object]:
    """For `adrs doctor`: version, reason and the parent group(s) of the sandbox groups."""
    found = support()
    return {"version": found.version, "reason": found.reason, "parents": list(found.parents),
            "pids_headroom": PIDS_HEADROOM}


def _make_anew(found: Support, name: str, memory_mb: int, max_processes: int
               ) -> SandboxCgroup:
    """_make, after making our parent group(s) again if they are gone (a sweep by another
    process that took us for dead: another pid namespace sharing the hierarchy)."""
    try:
        return _make(found, name, memory_mb, max_processes)
    except FileNotFoundError:
        _restore_parents(found)
        return _make(found, name, memory_mb, max_processes)


def _restore_parents(found: Support) -> None:
    """Make our parent group(s) again where they are gone (raises OSError)."""
    for parent in found.parents:
        if not os.path.isdir(parent):
            with contextlib.suppress(FileExistsError):
                os.mkdir(parent)
            if found.version == "v2":
                _write(os.path.join(parent, "cgroup.subtree_control"), "+memory +pids")


# --- one group per sandbox ----------------------------------------------------------


def _limit_memory(version: str, path: str, limit: int) -> None:
    """v2: memory.max, no swap, the whole group killed on OOM; v1: memory and
    memory+swap limits (or no swapping where swap is not accounted)."""
    if version == "v2":
        _write(os.path.join(path, "memory.max"), str(limit))
        _write_if_present(os.path.join(path, "memory.swap.max"), "0")
        _write_if_present(os.path.join(path, "memory.oom.group"), "1")
        return
    _write(os.path.join(path, "memory.limit_in_bytes"), str(limit))
    if not _write_if_present(os.path.join(path, "memory.memsw.limit_in_bytes"), str(limit)):
        _write_if_present(os.path.join(path, "memory.swappiness"), "0")


def _make(found: Support, name: str, memory_mb: int, max_processes: int) -> SandboxCgroup:
    """Create the group(s) with their limits; nothing is left behind on OSError."""
    assert found.version is not None
    group = SandboxCgroup(found.version, os.path.join(found.memory_parent, name),
                          os.path.join(found.pids_parent, name))
    made: list[str] = []
    try:
        for path in group.dirs:
            os.mkdir(path)
            made.append(path)
        _limit_memory(found.version, group.memory_dir, memory_mb << 20)
        _write(os.path.join(group.pids_dir, "pids.max"), str(max_processes + PIDS_HEADROOM))
    except OSError:
        for path in reversed(made):
            _rmdir(path)
        raise
    return group


@dataclass(frozen=True)
class SandboxCgroup:
    """The cgroup of one sandbox (one directory in v2, one per hierarchy in v1).

    Limits: memory_mb of memory in all (anonymous, page cache, shmem, tmpfs and memfd
    included; no swap), and max_processes + PIDS_HEADROOM tasks (threads count).
    A process joins by writing "0" (itself) or its pid to every file of procs_files, which
    it must do BEFORE it enters a user namespace; its children inherit the group.
    """

    version: str
    memory_dir: str
    pids_dir: str

    @property
    def dirs(self) -> tuple[str, ...]:
        return _unique((self.memory_dir, self.pids_dir))

    @property
    def procs_files(self) -> tuple[str, ...]:
        return tuple(os.path.join(path, "cgroup.procs") for path in self.dirs)

    @classmethod
    def create(cls, memory_mb: int, max_processes: int) -> SandboxCgroup | None:
        """A new group with these limits; None where cgroups are not supported here or
        the group cannot be made (never raises for that; ValueError for bad limits)."""
        if memory_mb < 1 or max_processes < 1:
            raise ValueError(f"bad cgroup limits: {memory_mb} MB, {max_processes} processes")
        found = support()
        if not found.active:
            return None
        try:
            return _make_anew(found, f"s{os.getpid()}-{next(_names)}", memory_mb,
                              max_processes)
        except OSError:
            return None

    def join(self, pid: int = 0) -> None:
        """Move process pid (0: the caller) into every hierarchy (raises OSError)."""
        for path in self.procs_files:
            _write(path, str(pid))

    def memory_exceeded(self) -> bool:
        """Whether the group reached its memory limit (a charge had to reclaim or failed,
        which also counts page cache it reclaimed) or had a process OOM-killed. False
        where the counters cannot be read (after destroy())."""
        try:
            if self.version == "v2":
                events = _counters(os.path.join(self.memory_dir, "memory.events"))
                return any(events.get(key, 0) > 0 for key in ("max", "oom", "oom_kill"))
            return self._v1_failures() > 0
        except OSError:
            return False

    def _v1_failures(self) -> int:
        failures = int(_read(os.path.join(self.memory_dir, "memory.failcnt")))
        with contextlib.suppress(FileNotFoundError):  # memsw hits first: it counts swap too
            failures += int(_read(os.path.join(self.memory_dir, "memory.memsw.failcnt")))
        oom = _counters(os.path.join(self.memory_dir, "memory.oom_control"))
        return failures + oom.get("oom_kill", 0)

    def peak_bytes(self) -> int | None:
        """The most memory the group used (v2: memory.peak, Linux >= 5.19; v1:
        memory.max_usage_in_bytes); None where not available."""
        name = "memory.peak" if self.version == "v2" else "memory.max_usage_in_bytes"
        try:
            return int(_read(os.path.join(self.memory_dir, name)))
        except (OSError, ValueError):
            return None

    def destroy(self) -> bool:
        """Kill every process left in the group and remove it, waiting up to about a
        second for killed processes to leave. Never raises; True when all is gone.
        Harmless to call again."""
        try:
            return _clear(self.dirs)
        except Exception:  # best effort by contract: the caller is cleaning up
            return False

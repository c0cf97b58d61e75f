"""Inside the sandbox, before the candidate loads: a minimal read-only root, no privileges.

Loaded by path by child.py (stdlib only, never imported by the trusted side for its
behaviour). It runs in the sandbox's worker process, which is root of its own user, mount,
pid, network and IPC namespaces. Root in a user namespace that maps to our own user can
read and write every file that user can (as real root: every file): the evaluator, the
simulator, data files with the future in them, the run store, keys in home directories.
So the candidate gets a new root holding only what a Python program needs, read-only:

- the system directories (/usr, /lib*, /bin, /sbin, /etc) and the sandbox's /proc;
- a minimal /dev: null, zero, full, random, urandom, the fd links, and /dev/shm;
- the interpreter's prefixes and site-packages directories (`visible`), and the harness;
- its working directory: a fresh tmpfs of `disk_mb` (shared with /dev/shm) holding a copy
  of the files the trusted side put there. The candidate never writes where the trusted
  side looks: the tmpfs lives in the sandbox's mount namespace and dies with it.

Everything else (/home, /root, /tmp, /work, /srv, /opt, /mnt, /var, /run ...) does not
exist there. The process pivots into that root and detaches the old one, so not even the
host's mount table stays visible (/proc/1/mountinfo), or chroots where pivot_root is
refused. The sandbox's pid namespace gets a pid_max (namespaced since Linux 6.14; at least
301), which bounds its processes and threads even where RLIMIT_NPROC does not apply (as
root): a fork bomb stops at 300 tasks. SysV IPC of the sandbox's own IPC namespace is
capped to `disk_mb` of shared memory and a few small message queues.

Then it drops every capability for good (bounding set, securebits, capset,
no_new_privs); where the trusted side mapped an unprivileged uid into the user namespace
(it does when it runs as root), the candidate switches to that uid and to no supplementary
group, so even root-owned files in the visible directories are not its own. Last, a
seccomp filter (seccomp.py) denies the system calls a candidate never needs.

Linux >= 5.12 on x86_64 or aarch64; `lock_down` raises OSError where that is not so, and
the trusted side probes it once (`python child.py --lockdown-probe DIR`) before relying on it.
It calls libc through `_ctypes` directly (integers, bytes as char *, None as NULL): the
`ctypes` package costs 3 ms to import, paid on every evaluation.
"""

from __future__ import annotations

import _ctypes
import os
import sys

TYPE_CHECKING = False  # typing and collections cost milliseconds, paid by every evaluation
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    _Call = Callable[..., None]

SYSTEM_PATHS = ("/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin", "/etc",
                "/proc")
DEVICES = ("null", "zero", "full", "random", "urandom")
_DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
              ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"))
NEW_ROOT = ".root"  # inside the working directory: an empty directory the candidate sees
_DISK = "/.disk"  # inside the new root, only while it is built
_SYSCALLS = {"x86_64": {"mount_setattr": 442, "pivot_root": 155},
             "aarch64": {"mount_setattr": 442, "pivot_root": 41}}
_AT_FDCWD = -100
_AT_RECURSIVE = 0x8000
_MOUNT_ATTR_RDONLY = 0x1
_MOUNT_ATTR_NOSUID = 0x2
_MS_BIND = 0x1000
_MS_REC = 0x4000
_MNT_DETACH = 0x2
_PR_SET_PDEATHSIG = 1
_SIGKILL = 9
_PR_CAPBSET_DROP = 24
_PR_SET_SECUREBITS = 28
_PR_SET_NO_NEW_PRIVS = 38
# noroot, noroot_locked, no_setuid_fixup, no_setuid_fixup_locked, keep_caps_locked:
# uid 0 gets no capabilities back on execve, and this cannot be changed again.
_SECUREBITS = 0x01 | 0x02 | 0x04 | 0x08 | 0x20
_CAPABILITY_VERSION_3 = 0x20080522
_LAST_CAP = 63
_MSG_QUEUES = 16  # msgmni: message queues of the sandbox's IPC namespace (default 32000)


def _mount_attr(attr_set: int, attr_clr: int) -> bytes:
    """struct mount_attr {u64 attr_set, attr_clr, propagation, userns_fd}."""
    return b"".join(value.to_bytes(8, sys.byteorder) for value in (attr_set, attr_clr, 0, 0))


def _outermost(paths: Iterable[str]) -> list[str]:
    """Real, existing, absolute paths, without those inside another one of them.

    Nested binds would create their mount points inside an already bound real directory,
    that is, on the real filesystem.
    """
    kept: list[str] = []
    for path in sorted({os.path.realpath(p) for p in paths if os.path.exists(p)}, key=len):
        if path != "/" and not any(path.startswith(k.rstrip("/") + "/") or path == k
                                   for k in kept):
            kept.append(path)
    return kept


_Plan = tuple[tuple[tuple[str, str], ...], tuple[str, ...], tuple[tuple[str, bool], ...]]
_PLANS: dict[tuple[str, ...], _Plan] = {}


def plan_binds(visible: Iterable[str]) -> _Plan:
    """What the new root holds besides /dev and the working directory, for `visible`: the
    system paths that are symlinks (path, target), the directories to make (parents
    first) and the paths to bind (path, whether a directory): the other system paths
    and the outermost of `visible`. Found once per process and list of paths: a zygote
    finds it before it clones (each sandbox spent 0.2 ms finding it)."""
    key = tuple(visible)
    plan = _PLANS.get(key)
    if plan is None:
        links = tuple((p, os.readlink(p)) for p in SYSTEM_PATHS if os.path.islink(p))
        system = [p for p in SYSTEM_PATHS if not os.path.islink(p)]
        binds = tuple((p, os.path.isdir(p)) for p in _outermost([*system, *key]))
        dirs: list[str] = []
        for path, _ in binds:
            parent = os.path.dirname(path)
            chain = []
            while parent != "/" and parent not in dirs:
                chain.append(parent)
                parent = os.path.dirname(parent)
            dirs += reversed(chain)
        plan = _PLANS[key] = (links, tuple(dirs), binds)
    return plan


def _bind(call: _Call, source: str, target: str, is_dir: bool,
          flags: int = _MS_BIND | _MS_REC) -> None:
    """Bind `source` at `target` (its parent exists), creating an empty file or directory
    to mount on."""
    if is_dir:
        os.mkdir(target)
    else:
        open(target, "x").close()
    call("mount", os.fsencode(source), os.fsencode(target), None, flags, None)


def _build_dev(call: _Call, root: str) -> None:
    """The devices a Python program uses; no kvm, fuse, loop, tty or the like."""
    os.mkdir(root + "/dev")
    for name in DEVICES:
        if os.path.exists("/dev/" + name):
            _bind(call, "/dev/" + name, f"{root}/dev/{name}", False, _MS_BIND)
    for name, target in _DEV_LINKS:
        os.symlink(target, f"{root}/dev/{name}")


def _build_disk(call: _Call, root: str, workdir: str, disk_mb: int,
                owner: tuple[int, int] | None) -> None:
    """One tmpfs of `disk_mb`, seen as the working directory and as /dev/shm, holding a
    read-only copy of the files the trusted side left in the real working directory."""
    disk = root + _DISK
    os.mkdir(disk)
    options = f"size={max(disk_mb, 1)}m,mode=700".encode()
    call("mount", b"tmpfs", os.fsencode(disk), b"tmpfs", 0, options)
    work, shm = disk + "/work", disk + "/shm"
    for path in (work, shm):
        os.mkdir(path, 0o700)
        if owner is not None:
            os.chown(path, *owner)
    for name in os.listdir(workdir):
        source = os.path.join(workdir, name)
        if name != NEW_ROOT and os.path.isfile(source) and not os.path.islink(source):
            with open(source, "rb") as src, open(os.path.join(work, name), "xb") as dst:
                dst.write(src.read())
            os.chmod(os.path.join(work, name), 0o444)
    os.makedirs(root + workdir)
    os.mkdir(root + "/dev/shm")
    for source, target in ((work, root + workdir), (shm, root + "/dev/shm")):
        call("mount", os.fsencode(source), os.fsencode(target), None, _MS_BIND, None)
    call("umount2", os.fsencode(disk), _MNT_DETACH)
    os.rmdir(disk)


def _build_root(call: _Call, workdir: str, visible: Iterable[str], disk_mb: int,
                owner: tuple[int, int] | None) -> str:
    root = os.path.join(workdir, NEW_ROOT)
    os.mkdir(root)
    call("mount", b"tmpfs", os.fsencode(root), b"tmpfs", 0, b"size=1m,mode=755")
    links, dirs, binds = plan_binds(visible)
    for path, target in links:  # merged-/usr systems: /bin -> usr/bin stays a symlink
        os.symlink(target, root + path)
    for path in dirs:
        os.mkdir(root + path)
    for path, is_dir in binds:
        _bind(call, path, root + path, is_dir)
    _build_dev(call, root)
    _build_disk(call, root, workdir, disk_mb, owner)
    return root


def _enter_root(call: _Call, numbers: dict[str, int], root: str) -> bool:
    """Make `root` this mount namespace's root and detach the old one (pivot_root(2)'s
    "." "." idiom); chroot where pivot_root is refused. Returns whether it pivoted."""
    os.chdir(root)
    try:
        call("syscall", numbers["pivot_root"], b".", b".")
        call("umount2", b".", _MNT_DETACH)
        pivoted = True
    except OSError:
        call("chroot", b".")
        pivoted = False
    os.chdir("/")
    return pivoted


def lock_down(workdir: str, visible: Iterable[str] = (), max_tasks: int = 0,
              disk_mb: int = 64, install_filter: Callable[[], None] | None = None
              ) -> dict[str, bool]:
    """Pivot into a read-only minimal root and drop every privilege (see above).

    With `max_tasks`, also bound the pid namespace to that many processes and threads.
    `install_filter` is seccomp.py's `install`, called last (the caller loads that module
    before the pivot: its file is not in the new root). Returns which of the optional
    protections took effect: "tasks" (that bound), "pivot" (the host's mount table is gone),
    "uid" (an unprivileged uid), "ipc" (SysV limits), "seccomp".
    """
    numbers = _SYSCALLS.get(os.uname().machine)
    if numbers is None:
        raise OSError(f"mount_setattr is not known on {os.uname().machine}")
    libc = _ctypes.dlopen(None, os.RTLD_NOW)  # type: ignore[arg-type]  # NULL: this program

    def call(name: str, *args: object) -> None:
        if _ctypes.call_function(_ctypes.dlsym(libc, name), args) != 0:
            raise OSError(f"{name}{args[:2]} failed")

    workdir = os.path.realpath(workdir)
    owner = _unprivileged_ids()
    report = {"tasks": max_tasks > 0 and _bound_tasks(max_tasks),
              "ipc": _limit_ipc(disk_mb), "uid": owner is not None}
    root = _build_root(call, workdir, visible, disk_mb, owner)
    attr = _mount_attr(_MOUNT_ATTR_RDONLY | _MOUNT_ATTR_NOSUID, 0)
    call("syscall", numbers["mount_setattr"], _AT_FDCWD, os.fsencode(root), _AT_RECURSIVE,
         attr, len(attr))
    attr = _mount_attr(0, _MOUNT_ATTR_RDONLY)
    for writable in (root + workdir, root + "/dev/shm"):
        call("syscall", numbers["mount_setattr"], _AT_FDCWD, os.fsencode(writable), 0, attr,
             len(attr))
    report["pivot"] = _enter_root(call, numbers, root)
    os.chdir(workdir)
    _drop_privileges(call, libc, owner)
    report["seccomp"] = install_filter is not None and _install_seccomp(install_filter)
    return report


_MIN_PID_MAX = 301  # the kernel refuses less (RESERVED_PIDS + 1)
_PID_MAX_NAMESPACED = (6, 14)


def _kernel_version() -> tuple[int, int]:
    major, _, rest = os.uname().release.partition(".")
    minor = "".join(c for c in rest.partition(".")[0] if c.isdigit())
    return (int(major), int(minor or 0)) if major.isdigit() else (0, 0)


def _bound_tasks(max_tasks: int) -> bool:
    """pid_max of our pid namespace: pids 1 .. max_tasks + 1 (the candidate's, pid 1 its own),
    or the kernel's minimum.

    Only where pid_max is per pid namespace: on an older kernel, root of a user namespace
    that maps to real root might be able to write the machine's own pid_max.
    """
    if _kernel_version() < _PID_MAX_NAMESPACED:
        return False
    return _write_sysctl("kernel/pid_max", max(max_tasks + 2, _MIN_PID_MAX))


def _limit_ipc(disk_mb: int) -> bool:
    """SysV shared memory of this (the sandbox's own) IPC namespace: at most `disk_mb` in
    all; a few message queues. The namespace, and all of it, ends with the sandbox."""
    page = os.sysconf("SC_PAGE_SIZE")
    values = (("kernel/shmmax", disk_mb << 20), ("kernel/shmall", (disk_mb << 20) // page),
              ("kernel/shmmni", 64), ("kernel/msgmni", _MSG_QUEUES))
    return all([_write_sysctl(name, value) for name, value in values])


def _write_sysctl(name: str, value: int) -> bool:
    """One write (os.open: a file object costs four more system calls per sysctl)."""
    try:
        fd = os.open("/proc/sys/" + name, os.O_WRONLY | os.O_CLOEXEC)
    except OSError:  # not namespaced here: it would be the whole machine's
        return False
    try:
        os.write(fd, str(value).encode())
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def _unprivileged_ids() -> tuple[int, int] | None:
    """The (uid, gid) other than 0 that the trusted side mapped into our user namespace,
    if it did (it does when it runs as root): the candidate's identity."""
    found = []
    for name in ("uid_map", "gid_map"):  # os.read: a text file object costs 0.1 ms here
        fd = os.open("/proc/self/" + name, os.O_RDONLY | os.O_CLOEXEC)
        try:
            lines = os.read(fd, 4096).decode().splitlines()
        finally:
            os.close(fd)
        inside = [int(line.split()[0]) for line in lines if line.strip()]
        found.append(next((n for n in inside if n != 0), None))
    uid, gid = found
    return None if uid is None or gid is None else (uid, gid)


def _drop_privileges(call: _Call, libc: int, owner: tuple[int, int] | None) -> None:
    call("prctl", _PR_SET_SECUREBITS, _SECUREBITS, 0, 0, 0)
    drop = _ctypes.dlsym(libc, "prctl")
    for cap in range(_LAST_CAP + 1):
        if _ctypes.call_function(drop, (_PR_CAPBSET_DROP, cap, 0, 0, 0)) != 0:
            break  # EINVAL: past the last capability this kernel knows
    if owner is not None:  # no_setuid_fixup: the capabilities go with capset below
        os.setgroups([])
        os.setresgid(owner[1], owner[1], owner[1])
        os.setresuid(owner[0], owner[0], owner[0])
    header = _CAPABILITY_VERSION_3.to_bytes(4, sys.byteorder) + bytes(4)  # version, pid 0
    call("capset", header, bytes(24))  # effective, permitted, inheritable: all empty
    call("prctl", _PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    # The change of user cleared the parent-death signal: killed again when the parent (a
    # zygote, which exits with the trusted side) dies. The seccomp filter keeps the
    # candidate from clearing it; before this, it was not running yet.
    call("prctl", _PR_SET_PDEATHSIG, _SIGKILL, 0, 0, 0)


def _install_seccomp(install_filter: Callable[[], None]) -> bool:
    try:
        install_filter()
    except OSError:  # an old kernel, another architecture: the probe reports it missing
        return False
    return True

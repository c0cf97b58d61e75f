"""Inside the sandbox, before the candidate loads: a minimal read-only root, no privileges.

Loaded by path by child.py (stdlib only, never imported by the trusted side for its
behaviour). It runs in the sandbox's worker process, which is root of its own user and
mount namespaces. Root in a user namespace that maps to our own user can read and write
every file that user can (as real root: every file): the evaluator, the simulator, data
files with the future in them, the run store, keys in home directories. So the candidate
gets a new root directory holding only what a Python program needs, read-only:

- the system directories (/usr, /lib*, /bin, /sbin, /etc, /dev) and the sandbox's /proc;
- the interpreter's prefixes and site-packages directories (`visible`), and the harness;
- its working directory, the one writable place.

Everything else (/home, /root, /tmp, /work, /srv, /opt, /mnt, /var, /run ...) does not
exist there. The sandbox's pid namespace gets a pid_max (namespaced since Linux 6.14; at
least 301), which bounds its processes and threads even where RLIMIT_NPROC does not apply
(as root): a fork bomb stops at 300 tasks.
Then the process chroots into it and drops every capability for good
(bounding set, securebits, capset, no_new_privs), so it can neither undo the mounts nor
leave the chroot.

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
                "/dev", "/proc")
NEW_ROOT = ".root"  # inside the working directory: an empty directory the candidate sees
_SYS_MOUNT_SETATTR = {"x86_64": 442, "aarch64": 442}
_AT_FDCWD = -100
_AT_RECURSIVE = 0x8000
_MOUNT_ATTR_RDONLY = 0x1
_MOUNT_ATTR_NOSUID = 0x2
_MS_BIND = 0x1000
_MS_REC = 0x4000
_PR_CAPBSET_DROP = 24
_PR_SET_SECUREBITS = 28
_PR_SET_NO_NEW_PRIVS = 38
# noroot, noroot_locked, no_setuid_fixup, no_setuid_fixup_locked, keep_caps_locked:
# uid 0 gets no capabilities back on execve, and this cannot be changed again.
_SECUREBITS = 0x01 | 0x02 | 0x04 | 0x08 | 0x20
_CAPABILITY_VERSION_3 = 0x20080522
_LAST_CAP = 63


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


def _expose(call: _Call, root: str, path: str) -> None:
    """Make `path` appear at the same place under `root`: a bind, or a copied symlink."""
    target = root + path
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if os.path.isdir(path):
        os.mkdir(target)
    else:
        open(target, "x").close()
    source = os.fsencode(path)
    call("mount", source, os.fsencode(target), None, _MS_BIND | _MS_REC, None)


def _build_root(call: _Call, workdir: str, visible: Iterable[str]) -> str:
    root = os.path.join(workdir, NEW_ROOT)
    os.mkdir(root)
    call("mount", b"tmpfs", os.fsencode(root), b"tmpfs", 0, b"size=1m,mode=755")
    for path in SYSTEM_PATHS:  # merged-/usr systems: /bin -> usr/bin stays a symlink
        if os.path.islink(path):
            os.symlink(os.readlink(path), root + path)
    system = [p for p in SYSTEM_PATHS if not os.path.islink(p)]
    for path in _outermost([*system, *visible]):
        _expose(call, root, path)
    # The working directory itself, without the new root's mount inside it (no MS_REC).
    os.makedirs(root + workdir)
    call("mount", os.fsencode(workdir), os.fsencode(root + workdir), None, _MS_BIND, None)
    return root


def lock_down(workdir: str, visible: Iterable[str] = (), max_tasks: int = 0) -> bool:
    """Chroot into a read-only minimal root and drop every capability (see above).

    With `max_tasks`, also bound the pid namespace to that many processes and threads;
    returns whether that bound could be set (the kernel may not namespace pid_max).
    """
    number = _SYS_MOUNT_SETATTR.get(os.uname().machine)
    if number is None:
        raise OSError(f"mount_setattr is not known on {os.uname().machine}")
    libc = _ctypes.dlopen(None, os.RTLD_NOW)  # type: ignore[arg-type]  # NULL: this program

    def call(name: str, *args: object) -> None:
        if _ctypes.call_function(_ctypes.dlsym(libc, name), args) != 0:
            raise OSError(f"{name}{args[:2]} failed")

    workdir = os.path.realpath(workdir)
    bounded = max_tasks > 0 and _bound_tasks(max_tasks)
    root = _build_root(call, workdir, visible)
    attr = _mount_attr(_MOUNT_ATTR_RDONLY | _MOUNT_ATTR_NOSUID, 0)
    call("syscall", number, _AT_FDCWD, os.fsencode(root), _AT_RECURSIVE, attr, len(attr))
    attr = _mount_attr(0, _MOUNT_ATTR_RDONLY)
    call("syscall", number, _AT_FDCWD, os.fsencode(root + workdir), 0, attr, len(attr))
    call("chroot", os.fsencode(root))
    os.chdir(workdir)
    _drop_capabilities(call, libc)
    return bounded


_MIN_PID_MAX = 301  # the kernel refuses less (RESERVED_PIDS + 1)
_PID_MAX_NAMESPACED = (6, 14)


def _kernel_version() -> tuple[int, int]:
    major, _, rest = os.uname().release.partition(".")
    minor = "".join(c for c in rest.partition(".")[0] if c.isdigit())
    return (int(major), int(minor or 0)) if major.isdigit() else (0, 0)


def _bound_tasks(max_tasks: int) -> bool:
    """pid_max of our pid namespace: pids 1 .. max_tasks + 1 (init and the candidate's),
    or the kernel's minimum.

    Only where pid_max is per pid namespace: on an older kernel, root of a user namespace
    that maps to real root might be able to write the machine's own pid_max.
    """
    if _kernel_version() < _PID_MAX_NAMESPACED:
        return False
    try:
        with open("/proc/sys/kernel/pid_max", "w") as f:
            f.write(str(max(max_tasks + 2, _MIN_PID_MAX)))
    except OSError:  # not namespaced here (Linux < 6.14): it is the whole machine's
        return False
    return True


def _drop_capabilities(call: _Call, libc: int) -> None:
    call("prctl", _PR_SET_SECUREBITS, _SECUREBITS, 0, 0, 0)
    drop = _ctypes.dlsym(libc, "prctl")
    for cap in range(_LAST_CAP + 1):
        if _ctypes.call_function(drop, (_PR_CAPBSET_DROP, cap, 0, 0, 0)) != 0:
            break  # EINVAL: past the last capability this kernel knows
    header = _CAPABILITY_VERSION_3.to_bytes(4, sys.byteorder) + bytes(4)  # version, pid 0
    call("capset", header, bytes(24))  # effective, permitted, inheritable: all empty
    call("prctl", _PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)

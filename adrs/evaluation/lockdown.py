"""Inside the sandbox, before the candidate loads: a read-only filesystem and no privileges.

Loaded by path by child.py (stdlib only, never imported by the trusted side for its
behaviour). It runs in the sandbox's worker process, which is root of its own user and
mount namespaces. Root in a user namespace that maps to our own user can write every file
that user can (as real root: every file); so the whole mount tree is made read-only
(recursively, mount_setattr), the working directory is bind-mounted writable on top, and
then every capability is dropped for good (bounding set, securebits, capset,
no_new_privs), so the candidate cannot undo the mounts. Writes outside the working
directory then fail with EROFS, whoever owns the file.

Linux >= 5.12 on x86_64 or aarch64; `lock_down` raises OSError where that is not so, and
the trusted side probes it once (`python child.py --lockdown-probe DIR`) before relying on it.
"""

from __future__ import annotations

import ctypes
import os
import platform

_SYS_MOUNT_SETATTR = {"x86_64": 442, "aarch64": 442}
_AT_FDCWD = -100
_AT_RECURSIVE = 0x8000
_MOUNT_ATTR_RDONLY = 0x1
_MOUNT_ATTR_NOSUID = 0x2
_MS_BIND = 0x1000
_PR_CAPBSET_DROP = 24
_PR_SET_SECUREBITS = 28
_PR_SET_NO_NEW_PRIVS = 38
# noroot, noroot_locked, no_setuid_fixup, no_setuid_fixup_locked, keep_caps_locked:
# uid 0 gets no capabilities back on execve, and this cannot be changed again.
_SECUREBITS = 0x01 | 0x02 | 0x04 | 0x08 | 0x20
_CAPABILITY_VERSION_3 = 0x20080522
_LAST_CAP = 63


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def lock_down(workdir: str) -> None:
    """Make everything but `workdir` read-only, then drop every capability (see above)."""
    number = _SYS_MOUNT_SETATTR.get(platform.machine())
    if number is None:
        raise OSError(0, f"mount_setattr is not known on {platform.machine()}")
    libc = ctypes.CDLL(None, use_errno=True)

    def set_attr(path: bytes, flags: int, attr: _MountAttr, what: str) -> None:
        _check(libc.syscall(ctypes.c_long(number), ctypes.c_int(_AT_FDCWD), path,
                            ctypes.c_uint(flags), ctypes.byref(attr),
                            ctypes.c_size_t(ctypes.sizeof(attr))), what)

    # The working directory becomes a mount of its own first: a bind made after the
    # read-only pass would copy the read-only flag.
    path = os.fsencode(workdir)
    _check(libc.mount(path, path, None, ctypes.c_ulong(_MS_BIND), None), "bind working dir")
    set_attr(b"/", _AT_RECURSIVE, _MountAttr(_MOUNT_ATTR_RDONLY | _MOUNT_ATTR_NOSUID, 0, 0, 0),
             "read-only mounts")
    set_attr(path, 0, _MountAttr(0, _MOUNT_ATTR_RDONLY, 0, 0), "writable working directory")
    os.chdir(workdir)  # the old working directory is the read-only one under the bind
    _check(libc.prctl(_PR_SET_SECUREBITS, ctypes.c_ulong(_SECUREBITS), 0, 0, 0), "securebits")
    for cap in range(_LAST_CAP + 1):
        if libc.prctl(_PR_CAPBSET_DROP, ctypes.c_ulong(cap), 0, 0, 0) != 0:
            break  # EINVAL: past the last capability this kernel knows
    header = (ctypes.c_uint32 * 2)(_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable: all empty
    _check(libc.capset(header, data), "capset")
    _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), 0, 0, 0), "no_new_privs")

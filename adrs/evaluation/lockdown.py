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
It calls libc through `_ctypes` directly (integers, bytes as char *, None as NULL): the
`ctypes` package costs 3 ms to import, paid on every evaluation.
"""

from __future__ import annotations

import _ctypes
import os
import struct

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


def _mount_attr(attr_set: int, attr_clr: int) -> bytes:
    """struct mount_attr {u64 attr_set, attr_clr, propagation, userns_fd}."""
    return struct.pack("=4Q", attr_set, attr_clr, 0, 0)


def lock_down(workdir: str) -> None:
    """Make everything but `workdir` read-only, then drop every capability (see above)."""
    number = _SYS_MOUNT_SETATTR.get(os.uname().machine)
    if number is None:
        raise OSError(f"mount_setattr is not known on {os.uname().machine}")
    libc = _ctypes.dlopen(None, os.RTLD_NOW)  # type: ignore[arg-type]  # NULL: this program

    def call(name: str, *args: object) -> None:
        if _ctypes.call_function(_ctypes.dlsym(libc, name), args) != 0:
            raise OSError(f"{name}{args[:2]} failed")

    # The working directory becomes a mount of its own first: a bind made after the
    # read-only pass would copy the read-only flag.
    path = os.fsencode(workdir)
    call("mount", path, path, None, _MS_BIND, None)
    attr = _mount_attr(_MOUNT_ATTR_RDONLY | _MOUNT_ATTR_NOSUID, 0)
    call("syscall", number, _AT_FDCWD, b"/", _AT_RECURSIVE, attr, len(attr))
    attr = _mount_attr(0, _MOUNT_ATTR_RDONLY)
    call("syscall", number, _AT_FDCWD, path, 0, attr, len(attr))
    os.chdir(workdir)  # the old working directory is the read-only one under the bind
    call("prctl", _PR_SET_SECUREBITS, _SECUREBITS, 0, 0, 0)
    drop = _ctypes.dlsym(libc, "prctl")
    for cap in range(_LAST_CAP + 1):
        if _ctypes.call_function(drop, (_PR_CAPBSET_DROP, cap, 0, 0, 0)) != 0:
            break  # EINVAL: past the last capability this kernel knows
    header = struct.pack("=Ii", _CAPABILITY_VERSION_3, 0)
    call("capset", header, bytes(24))  # effective, permitted, inheritable: all empty
    call("prctl", _PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)

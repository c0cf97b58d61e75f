"""clone(2) for the zygote: a fork that lands in new namespaces, as pid 1 of a new pid one.

Loaded by path by forkserver.py (stdlib only, never imported by the trusted side). Without
it a sandbox takes two forks: one that unshares the namespaces (a pid namespace only
applies to the children of the process that made it) and one that becomes pid 1. With it
the zygote's one clone call does both, which saves a process per sandbox: its fork, its
copied pages and its exit (about 1 ms of CPU per evaluation, benchmarks/sandbox_cpu.py).

Python has no clone, so this calls the raw system call the way glibc's fork does
(`flags | SIGCHLD`, no new stack: the child returns on a copy-on-write copy of ours), and
the child runs on without glibc's and Python's after-fork work. That is only sound in a
process like the zygote:

- single-threaded, so no lock is held by a thread the child does not have, and no thread
  state needs dropping;
- with no `os.register_at_fork` hooks to run (the zygote imports neither random nor
  threading; `Cloner.find` refuses to work otherwise);
- with glibc (`find` returns None with another C library), and the one thing its fork
  fixes that matters left to the kernel: the thread id glibc keeps in its thread
  descriptor (pthread_self()->tid, read by pthread_kill, pthread_getcpuclockid, the
  affinity and scheduling calls). glibc's fork has the kernel write the child's id there
  (CLONE_CHILD_SETTID); so does `clone`. Where that field sits differs between glibc
  versions: `find` looks for our thread id near pthread_self() and keeps an address only
  once a real clone showed that glibc then reads the child's own id (1, in its pid
  namespace) through pthread_getcpuclockid. It returns None where no address passes, and
  the zygote then forks as before.

The call holds the GIL throughout (ctypes.PyDLL), as os.fork does.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_SYSCALLS = {"x86_64": {"clone": 56, "gettid": 186}, "aarch64": {"clone": 220, "gettid": 178}}
_CLONE_CHILD_SETTID = 0x01000000
_SCAN_BYTES = 1024  # struct pthread is larger than this in every glibc
_AT_FORK_MODULES = ("random", "threading", "multiprocessing", "logging", "concurrent")


class Cloner:
    """The zygote's clone: `clone(flags)` returns the child's pid, and 0 in the child."""

    def __init__(self, tid_address: int) -> None:
        self._libc = ctypes.PyDLL(None, use_errno=True)
        self._libc.syscall.restype = ctypes.c_long
        machine = os.uname().machine
        self._numbers = _SYSCALLS[machine]
        self._x86_64 = machine == "x86_64"
        self.tid_address = tid_address

    def clone(self, flags: int) -> int:
        """clone(flags | SIGCHLD) on our stack, the child's thread id written to glibc's
        descriptor; OSError if the kernel refused."""
        args = [ctypes.c_ulong(flags | _CLONE_CHILD_SETTID | int(signal.SIGCHLD)),
                ctypes.c_void_p(0), ctypes.c_void_p(0)]
        child_tid, tls = ctypes.c_void_p(self.tid_address), ctypes.c_void_p(0)
        # x86_64: clone(flags, stack, parent_tid, child_tid, tls); aarch64 swaps the last two
        args += [child_tid, tls] if self._x86_64 else [tls, child_tid]
        pid = self._libc.syscall(ctypes.c_long(self._numbers["clone"]), *args)
        if pid < 0:
            raise OSError(ctypes.get_errno(), "clone failed")
        return int(pid)

    @classmethod
    def find(cls, flags: int) -> Cloner | None:
        """A cloner whose children see their own thread id through glibc, checked with a
        real clone with `flags` (which must make a pid namespace: the check expects pid 1);
        None where no address passes, on other machines, or with at-fork hooks
        registered."""
        if os.uname().machine not in _SYSCALLS or not _glibc() or any(
                name in sys.modules for name in _AT_FORK_MODULES):
            return None
        for address in _tid_fields():
            cloner = cls(address)
            if cloner._works(flags):
                return cloner
        return None

    def _works(self, flags: int) -> bool:
        try:
            pid = self.clone(flags)
        except OSError:
            return False
        if pid == 0:
            os._exit(0 if _glibc_tid() == 1 == self._gettid() else 1)
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0

    def _gettid(self) -> int:
        return int(self._libc.syscall(ctypes.c_long(self._numbers["gettid"])))


def _glibc() -> bool:
    """Whether the C library is glibc, whose thread descriptor `_tid_fields` scans (it is
    larger than the scan; another library's may end sooner)."""
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc ")
    except (ValueError, OSError):
        return False


def _pthread_self() -> int:
    libc = ctypes.CDLL(None)
    libc.pthread_self.restype = ctypes.c_void_p
    return int(libc.pthread_self() or 0)


def _tid_fields() -> list[int]:
    """Addresses near pthread_self() that hold our thread id (the main thread's is our pid)."""
    base, tid = _pthread_self(), os.getpid()
    if not base:
        return []
    return [base + offset for offset in range(0, _SCAN_BYTES, 4)
            if ctypes.c_int.from_address(base + offset).value == tid]


def _glibc_tid() -> int:
    """The thread id glibc keeps for the calling thread (pthread_getcpuclockid encodes it
    in the clock id: ((~tid) << 3) | 6)."""
    libc = ctypes.CDLL(None)
    clock = ctypes.c_int()
    if libc.pthread_getcpuclockid(ctypes.c_void_p(_pthread_self()), ctypes.byref(clock)):
        return -1
    return ~(clock.value >> 3)

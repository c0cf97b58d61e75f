"""Inside the sandbox, last step of the lockdown: a seccomp filter against kernel attack surface.

Loaded by path (stdlib only, no imports from adrs), like lockdown.py, and for the same
reason it calls libc through `_ctypes` rather than `ctypes`. A candidate program never
needs to debug other processes, load kernel code or modules, mount, enter or create
namespaces, or reach the kernel's more exposed interfaces (io_uring, bpf, userfaultfd,
perf events, keyrings); the filter makes those syscalls fail with EPERM, so a kernel bug in
one of them cannot be reached from the sandbox. Everything else is allowed.

The filter (a classic BPF program over `struct seccomp_data`, see seccomp(2)):

1. kills the process when the syscall's ABI is not the native one (32-bit `int 0x80` on
   x86_64, AArch32 on aarch64), which would otherwise reach other syscall numbers;
2. on x86_64, returns EPERM for x32 syscalls (numbers with bit 30 set);
3. returns EPERM for the syscalls in `DENIED`;
4. returns ENOSYS for `clone3`, whose flags live in memory a filter cannot read: glibc
   then falls back to `clone` for threads, fork and posix_spawn;
5. returns EPERM for `clone` with a namespace flag;
6. returns EPERM for `prctl(PR_SET_PDEATHSIG, ...)`: the lockdown set the sandbox's
   process to be killed when its parent (the zygote, which exits with the trusted side)
   dies, and the candidate must not undo that;
7. allows the rest.

Its result depends on the syscall number alone except for `clone` and `prctl`, so the
kernel's seccomp action cache (Linux >= 5.11) decides every other syscall without running
the program.
Filters are inherited over fork, clone and execve and cannot be removed; `install` applies
it to every thread of the process (SECCOMP_FILTER_FLAG_TSYNC).

The syscall numbers are literal tables here, copied from the kernel's uapi headers
(asm/unistd_64.h for x86_64, asm-generic/unistd.h for aarch64); the tests compare them
with the headers of the machine they run on.
"""

from __future__ import annotations

import _ctypes
import os
import sys

DENIED = (
    # other processes' memory and debugging
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
    # exposed kernel interfaces
    "userfaultfd", "perf_event_open", "bpf", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "keyctl", "add_key", "request_key", "lookup_dcookie",
    # mounts, namespaces, the root directory
    "mount", "umount2", "pivot_root", "chroot", "mount_setattr", "open_tree", "move_mount",
    "fsopen", "fsconfig", "fsmount", "fspick", "unshare", "setns",
    # the machine itself
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "swapon", "swapoff", "reboot", "syslog", "acct", "quotactl",
    # files by handle, which bypasses the chroot
    "name_to_handle_at", "open_by_handle_at",
    # port I/O
    "iopl", "ioperm",
)
"""Syscalls that fail with EPERM (where the machine has them: iopl, ioperm and
lookup_dcookie on x86_64 only). Besides: clone3 fails with ENOSYS, clone with a
namespace flag with EPERM, and prctl(PR_SET_PDEATHSIG) with EPERM."""

# From /usr/include/x86_64-linux-gnu/asm/unistd_64.h.
_X86_64 = {
    "ptrace": 101, "syslog": 103, "pivot_root": 155, "chroot": 161, "acct": 163,
    "mount": 165, "umount2": 166, "swapon": 167, "swapoff": 168, "reboot": 169,
    "iopl": 172, "ioperm": 173, "init_module": 175, "delete_module": 176, "quotactl": 179,
    "lookup_dcookie": 212, "kexec_load": 246, "add_key": 248, "request_key": 249,
    "keyctl": 250, "unshare": 272, "perf_event_open": 298, "name_to_handle_at": 303,
    "open_by_handle_at": 304, "setns": 308, "process_vm_readv": 310,
    "process_vm_writev": 311, "kcmp": 312, "finit_module": 313, "kexec_file_load": 320,
    "bpf": 321, "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "open_tree": 428, "move_mount": 429, "fsopen": 430,
    "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
    "clone": 56, "clone3": 435, "seccomp": 317, "prctl": 157,
}
# From /usr/include/asm-generic/unistd.h (aarch64 uses the generic table).
_AARCH64 = {
    "umount2": 39, "mount": 40, "pivot_root": 41, "chroot": 51, "quotactl": 60,
    "acct": 89, "unshare": 97, "kexec_load": 104, "init_module": 105, "delete_module": 106,
    "syslog": 116, "ptrace": 117, "reboot": 142, "add_key": 217, "request_key": 218,
    "keyctl": 219, "swapon": 224, "swapoff": 225, "perf_event_open": 241,
    "name_to_handle_at": 264, "open_by_handle_at": 265, "setns": 268,
    "process_vm_readv": 270, "process_vm_writev": 271, "kcmp": 272, "finit_module": 273,
    "bpf": 280, "userfaultfd": 282, "kexec_file_load": 294, "io_uring_setup": 425,
    "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428, "move_mount": 429,
    "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
    "clone": 220, "clone3": 435, "seccomp": 277, "prctl": 167,
}
_NOT_DENIED_ON = {"aarch64": ("lookup_dcookie", "iopl", "ioperm")}
_ABI = {  # machine: (AUDIT_ARCH_*, syscall table, x32 numbers exist)
    "x86_64": (0xC000003E, _X86_64, True),
    "aarch64": (0xC00000B7, _AARCH64, False),
}

# Classic BPF opcodes (linux/filter.h, linux/bpf_common.h).
_LD_W_ABS = 0x00 | 0x00 | 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ = 0x05 | 0x10  # BPF_JMP | BPF_JEQ | BPF_K
_JGE = 0x05 | 0x30  # BPF_JMP | BPF_JGE | BPF_K
_JSET = 0x05 | 0x40  # BPF_JMP | BPF_JSET | BPF_K
_RET = 0x06  # BPF_RET | BPF_K
# struct seccomp_data {int nr; u32 arch; u64 instruction_pointer; u64 args[6]}
_NR, _ARCH, _ARG0_LOW = 0, 4, 16 if sys.byteorder == "little" else 20

_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
_RET_ALLOW = 0x7FFF0000
_EPERM, _ENOSYS = 1, 38
_X32_SYSCALL_BIT = 0x40000000
# CLONE_NEWTIME is 0x80, which legacy clone() reads as part of the exit signal; no real
# exit signal has that bit, so it costs nothing to refuse it as well.
_CLONE_NAMESPACES = (0x20000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000
                     | 0x20000000 | 0x40000000 | 0x80)

_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_PDEATHSIG = 1
_SECCOMP_SET_MODE_FILTER = 1
_SECCOMP_FILTER_FLAG_TSYNC = 1


def filter_program(machine: str) -> bytes:
    """The filter for `machine` (`os.uname().machine`): an array of struct sock_filter."""
    abi = _ABI.get(machine)
    if abi is None:
        raise OSError(f"no seccomp filter for {machine!r} (only x86_64 and aarch64)")
    arch, table, x32 = abi
    skip = _NOT_DENIED_ON.get(machine, ())
    denied = sorted({table[name] for name in DENIED if name not in skip})
    # (code, jump if true, jump if false, k); jumps name a label below, None is the next one.
    code: list[tuple[int, str | None, str | None, int]] = [
        (_LD_W_ABS, None, None, _ARCH),
        (_JEQ, None, "kill", arch),
        (_LD_W_ABS, None, None, _NR),
    ]
    if x32:
        code.append((_JGE, "eperm", None, _X32_SYSCALL_BIT))
    code.append((_JEQ, "clone", None, table["clone"]))
    code.append((_JEQ, "prctl", None, table["prctl"]))
    code.append((_JEQ, "enosys", None, table["clone3"]))
    code += [(_JEQ, "eperm", None, number) for number in denied]
    code.append((_RET, None, None, _RET_ALLOW))
    labels = {"clone": len(code)}
    code += [
        (_LD_W_ABS, None, None, _ARG0_LOW),
        (_JSET, "eperm", None, _CLONE_NAMESPACES),
        (_RET, None, None, _RET_ALLOW),
    ]
    labels["prctl"] = len(code)
    code += [  # the kernel reads prctl's option as an int: its low word
        (_LD_W_ABS, None, None, _ARG0_LOW),
        (_JEQ, "eperm", None, _PR_SET_PDEATHSIG),
        (_RET, None, None, _RET_ALLOW),
    ]
    for label, value in (("eperm", _RET_ERRNO | _EPERM), ("enosys", _RET_ERRNO | _ENOSYS),
                         ("kill", _RET_KILL_PROCESS)):
        labels[label] = len(code)
        code.append((_RET, None, None, value))

    order = sys.byteorder
    out = bytearray()
    for index, (op, true, false, k) in enumerate(code):
        jt = labels[true] - index - 1 if true else 0
        jf = labels[false] - index - 1 if false else 0
        out += op.to_bytes(2, order) + bytes((jt, jf)) + k.to_bytes(4, order)
    return bytes(out)


_prepared: list[tuple[object, object, object, bytes]] = []  # see prepare()


def prepare() -> None:
    """Build this machine's filter and the C functions that install it, once per process.
    The zygote does it before it forks, so a sandbox only installs: building them (three
    ctypes classes and the program) costs a fresh fork copied pages and type set-up.
    Raises OSError where no filter can be built (see install)."""
    if _prepared:
        return
    if sys.maxsize < 2**32:  # an i386 or x32 interpreter: its syscalls are another ABI
        raise OSError("the seccomp filter needs a 64-bit interpreter")
    program = filter_program(os.uname().machine)

    class Char(_ctypes._SimpleCData):  # type: ignore[type-arg]  # not generic at run time
        _type_ = "c"

    class Function(_ctypes.CFuncPtr):  # returns int, keeps errno
        _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO

    libc = _ctypes.dlopen(None, os.RTLD_NOW)  # type: ignore[arg-type]  # NULL: this program
    # The array owns a copy of the program for as long as it is kept here.
    filters = (Char * len(program)).from_buffer_copy(program)
    # struct sock_fprog {unsigned short len; (padding); struct sock_filter *filter}
    fprog = ((len(program) // 8).to_bytes(2, sys.byteorder) + bytes(6)
             + _ctypes.addressof(filters).to_bytes(8, sys.byteorder))
    _prepared.append((Function(_ctypes.dlsym(libc, "prctl")),
                      Function(_ctypes.dlsym(libc, "syscall")), filters, fprog))


def install(machine: str | None = None) -> None:
    """Set no_new_privs and install the filter on every thread of this process, for good.

    Raises OSError where that is not possible: another machine, a 32-bit interpreter, a
    kernel without seccomp filters or TSYNC, or a thread that already has another filter.
    """
    actual = os.uname().machine
    if machine is not None and machine != actual:
        raise OSError(f"the filter for {machine} would kill this {actual} process")
    prepare()
    prctl, syscall, _, fprog = _prepared[0]
    abi = _ABI[actual]
    assert callable(prctl) and callable(syscall)
    _ctypes.set_errno(0)
    if prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(_ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    result = syscall(abi[1]["seccomp"], _SECCOMP_SET_MODE_FILTER,
                     _SECCOMP_FILTER_FLAG_TSYNC, fprog)
    if result != 0:
        if result > 0:  # TSYNC: the thread that could not take the filter
            raise OSError(f"seccomp: thread {result} has a different filter")
        errno = _ctypes.get_errno()
        raise OSError(errno, f"seccomp(SECCOMP_SET_MODE_FILTER): {os.strerror(errno)}")

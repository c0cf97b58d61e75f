"""The sandbox's seccomp filter: denied syscalls fail, everything a candidate needs works.

Each runtime test installs the filter in a fresh `python -S` process that loads seccomp.py
by path, as the sandbox does (a filter cannot be removed again). The tables are checked
against the kernel headers of this machine, and the programs of both machines by a small
classic-BPF interpreter, so the aarch64 filter is checked on x86_64 too.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

import adrs.sandbox

MODULE_PATH = Path(adrs.sandbox.__file__).parent / "seccomp.py"
MACHINES = ("x86_64", "aarch64")
MACHINE = os.uname().machine

needs_kernel = pytest.mark.skipif(
    sys.platform != "linux" or MACHINE not in MACHINES,
    reason=f"seccomp filters exist for Linux on x86_64 and aarch64, not {sys.platform} "
           f"on {MACHINE}")


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("adrs_seccomp_by_path", MODULE_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


seccomp = load()

PRELUDE = f"""
import ctypes, errno, importlib.util, os, sys
spec = importlib.util.spec_from_file_location("seccomp", {str(MODULE_PATH)!r})
seccomp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(seccomp)
libc = ctypes.CDLL(None, use_errno=True)
NR = seccomp._X86_64 if os.uname().machine == "x86_64" else seccomp._AARCH64

def call(name_or_number, *args):
    number = NR[name_or_number] if isinstance(name_or_number, str) else name_or_number
    ctypes.set_errno(0)
    result = libc.syscall(ctypes.c_long(number), *[ctypes.c_long(a) for a in args])
    return result, ctypes.get_errno()

def fails(result, expected):
    assert result == (-1, expected), (result, errno.errorcode.get(result[1]))

def status(field):
    with open("/proc/self/status") as f:
        return next(line.split()[1] for line in f if line.startswith(field + ":"))
"""


def run(body: str, *, install: bool = True) -> subprocess.CompletedProcess[str]:
    code = PRELUDE + ("seccomp.install()\n" if install else "") + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-S", "-c", code], capture_output=True,
                          text=True, timeout=120, check=False)


def check(body: str, *, install: bool = True) -> str:
    done = run(body, install=install)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


# The program, without a kernel.

SECCOMP_DATA_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
ALLOW, KILL = 0x7FFF0000, 0x80000000
EPERM, ENOSYS = 0x00050000 | 1, 0x00050000 | 38
CLONE_NAMESPACE_FLAGS = (0x20000, 0x02000000, 0x04000000, 0x08000000, 0x10000000,
                         0x20000000, 0x40000000, 0x80)
SIGCHLD = 17


def evaluate(program: bytes, nr: int, arch: int, arg0: int = 0) -> int:
    """Run a classic BPF seccomp program on one struct seccomp_data (little-endian)."""
    data = (nr.to_bytes(4, "little") + arch.to_bytes(4, "little") + bytes(8)
            + arg0.to_bytes(8, "little") + bytes(40))
    accumulator, pc = 0, 0
    while True:
        code = int.from_bytes(program[pc * 8:pc * 8 + 2], "little")
        jt, jf = program[pc * 8 + 2], program[pc * 8 + 3]
        k = int.from_bytes(program[pc * 8 + 4:pc * 8 + 8], "little")
        if code == 0x20:  # ld [k]
            accumulator = int.from_bytes(data[k:k + 4], "little")
            pc += 1
        elif code in (0x15, 0x35, 0x45):  # jeq, jge, jset
            taken = {0x15: accumulator == k, 0x35: accumulator >= k,
                     0x45: bool(accumulator & k)}[code]
            pc += 1 + (jt if taken else jf)
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x} at {pc}")


@pytest.mark.parametrize("machine", MACHINES)
def test_program_is_short(machine: str) -> None:
    program = seccomp.filter_program(machine)
    assert len(program) % 8 == 0
    assert 0 < len(program) // 8 < 256


def test_other_machines_have_no_program() -> None:
    for machine in ("i686", "armv7l", "riscv64", "aarch64_be", ""):
        with pytest.raises(OSError):
            seccomp.filter_program(machine)


@pytest.mark.parametrize("machine", MACHINES)
def test_program_decisions(machine: str) -> None:
    program = seccomp.filter_program(machine)
    table = seccomp._X86_64 if machine == "x86_64" else seccomp._AARCH64
    arch = SECCOMP_DATA_ARCH[machine]
    denied = {table[name] for name in seccomp.DENIED if name in table}
    if machine == "aarch64":
        assert {"iopl", "ioperm", "lookup_dcookie"}.isdisjoint(table)
    else:
        assert set(seccomp.DENIED) <= set(table)
    assert len(denied) == len(seccomp.DENIED) - (3 if machine == "aarch64" else 0)
    for nr in range(600):
        expected = EPERM if nr in denied else ENOSYS if nr == table["clone3"] else ALLOW
        assert evaluate(program, nr, arch, CLONE_NAMESPACE_FLAGS[0]
                        if nr != table["clone"] else SIGCHLD) == expected, nr
    clone = table["clone"]
    thread_flags = 0x3D0F00  # what glibc's pthread_create passes to clone
    assert evaluate(program, clone, arch, SIGCHLD) == ALLOW
    assert evaluate(program, clone, arch, thread_flags) == ALLOW
    assert evaluate(program, clone, arch, 0x4111) == ALLOW  # vfork: CLONE_VM|CLONE_VFORK
    assert evaluate(program, clone, arch, 0xFFFFFFFF_00000000 | SIGCHLD) == ALLOW
    for flag in CLONE_NAMESPACE_FLAGS:
        assert evaluate(program, clone, arch, flag | SIGCHLD) == EPERM, hex(flag)
    prctl = table["prctl"]  # PR_SET_PDEATHSIG (1) refused, its high word ignored as the
    for option, verdict in ((1, EPERM), (1 | 1 << 32, EPERM), (2, ALLOW), (38, ALLOW),
                            (0, ALLOW)):  # kernel does; PR_GET_PDEATHSIG, NO_NEW_PRIVS
        assert evaluate(program, prctl, arch, option) == verdict, option
    other_arches = [*SECCOMP_DATA_ARCH.values(), 0x40000003, 0x40000028, 0]  # i386, arm
    for other in other_arches:
        if other != arch:
            assert evaluate(program, 39, other) == KILL
            assert evaluate(program, clone, other, SIGCHLD) == KILL
    x32_getpid = 0x40000000 | 39
    assert evaluate(program, x32_getpid, arch) == (EPERM if machine == "x86_64" else ALLOW)


# The tables, against the kernel headers of this machine.

HEADERS = {"x86_64": Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"),
           "aarch64": Path("/usr/include/asm-generic/unistd.h")}


@pytest.mark.parametrize("machine", MACHINES)
def test_table_matches_kernel_header(machine: str) -> None:
    header = HEADERS[machine]
    if not header.exists():
        pytest.skip(f"{header} is not installed (linux-libc-dev): cannot check the "
                    f"{machine} syscall numbers")
    defined = {name: int(number) for name, number in
               re.findall(r"^#define __NR_(\w+)\s+(\d+)\s*$", header.read_text(), re.M)}
    table = seccomp._X86_64 if machine == "x86_64" else seccomp._AARCH64
    wrong = {name: (number, defined[name]) for name, number in table.items()
             if name in defined and defined[name] != number}
    assert not wrong, f"table: header numbers differ: {wrong}"
    missing = sorted(set(table) - set(defined))
    if missing:
        pytest.skip(f"{header} is older than these syscalls, not checked: {missing}")


# The filter in a process.

@needs_kernel
def test_denied_syscalls_fail_with_eperm(tmp_path: Path) -> None:
    check(f"""
    assert status("Seccomp") == "2" and status("NoNewPrivs") == "1"
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    ctypes.set_errno(0)
    fails((libc.ptrace(0, 0, None, None), ctypes.get_errno()), errno.EPERM)  # TRACEME
    fails(call("userfaultfd", 0), errno.EPERM)
    params = ctypes.create_string_buffer(120)
    fails(call("io_uring_setup", 1, ctypes.addressof(params)), errno.EPERM)
    ctypes.set_errno(0)
    fails((libc.unshare(0x10000000), ctypes.get_errno()), errno.EPERM)  # CLONE_NEWUSER
    if hasattr(os, "unshare"):
        try:
            os.unshare(os.CLONE_NEWUSER)
        except PermissionError:
            pass
        else:
            raise AssertionError("os.unshare(CLONE_NEWUSER) worked")
    fails(call("bpf", 0, 0, 0), errno.EPERM)  # BPF_MAP_CREATE
    fails(call("keyctl", 0, -3, 0), errno.EPERM)  # KEYCTL_GET_KEYRING_ID, session keyring
    ctypes.set_errno(0)
    target = {str(tmp_path / "absent")!r}.encode()  # ENOENT without the filter
    fails((libc.mount(b"none", target, b"tmpfs", 0, None), ctypes.get_errno()),
          errno.EPERM)
    # Every denied syscall, with arguments the kernel would refuse anyway.
    for name in seccomp.DENIED:
        if name in NR:
            fails(call(name, -1, -1, -1, -1, -1, -1), errno.EPERM)
    print("ok")
    """)


@needs_kernel
def test_clone3_is_enosys_and_namespaced_clone_eperm() -> None:
    check("""
    fails(call("clone3", 0, 0), errno.ENOSYS)
    for flag in (0x20000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000,
                 0x40000000, 0x80):
        result = call("clone", flag | 17, 0, 0, 0, 0)
        if result[0] == 0:  # the filter let it through: this is the child
            os._exit(0)
        fails(result, errno.EPERM)
    pid, _ = call("clone", 17, 0, 0, 0, 0)  # a plain fork through the raw syscall
    if pid == 0:
        os._exit(7)
    assert pid > 0
    assert os.waitpid(pid, 0)[1] == 7 << 8
    """)


@needs_kernel
def test_the_parent_death_signal_cannot_be_changed() -> None:
    check("""
    PR_SET_PDEATHSIG, PR_GET_PDEATHSIG = 1, 2
    fails(call("prctl", PR_SET_PDEATHSIG, 0, 0, 0, 0), errno.EPERM)
    fails(call("prctl", PR_SET_PDEATHSIG, 9, 0, 0, 0), errno.EPERM)
    signal = ctypes.c_int(-1)
    assert libc.prctl(PR_GET_PDEATHSIG, ctypes.byref(signal), 0, 0, 0) == 0
    assert signal.value == 0  # as it was: this process never set one
    """)


@needs_kernel
def test_without_the_filter_the_same_calls_reach_the_kernel() -> None:
    check("""
    assert status("Seccomp") == "0"
    fails(call("keyctl", 9999), errno.EOPNOTSUPP)
    fails(call("clone3", 0, 0), errno.EINVAL)
    fails(call("setns", -1, 0), errno.EBADF)
    """, install=False)


@needs_kernel
def test_everyday_work_still_works(tmp_path: Path) -> None:
    numpy = pytest.importorskip("numpy")
    site = str(Path(numpy.__file__).parent.parent)
    out = check(f"""
    import multiprocessing, socket, subprocess, threading
    results = []
    threads = [threading.Thread(target=results.append, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0, 1, 2, 3]
    pid = os.fork()
    if pid == 0:
        os._exit(3)
    assert os.waitpid(pid, 0)[1] == 3 << 8
    assert subprocess.run(["true"]).returncode == 0
    assert subprocess.run([sys.executable, "-S", "-c", "print(6 * 7)"], capture_output=True,
                          text=True).stdout == "42\\n"
    sys.path.insert(0, {site!r})
    import numpy
    a = numpy.arange(40000.0).reshape(200, 200)
    assert numpy.dot(a, a.T).shape == (200, 200)
    path = os.path.join({str(tmp_path)!r}, "data.txt")
    with open(path, "w") as f:
        f.write("hello")
    with open(path) as f:
        assert f.read() == "hello"
    os.rename(path, path + ".old")
    os.unlink(path + ".old")
    left, right = socket.socketpair(socket.AF_UNIX)
    left.sendall(b"ping")
    assert right.recv(4) == b"ping"
    server = socket.socket(socket.AF_UNIX)
    server.bind(os.path.join({str(tmp_path)!r}, "sock"))
    server.listen()
    with multiprocessing.Pool(2) as pool:
        assert pool.map(abs, [-1, -2, -3]) == [1, 2, 3]
    print("ok")
    """)
    assert out == "ok\n"


@needs_kernel
def test_children_and_existing_threads_inherit_the_filter() -> None:
    check("""
    import subprocess, threading
    def ptrace_traceme():
        ctypes.set_errno(0)
        return libc.ptrace(0, 0, None, None), ctypes.get_errno()
    started, go, seen = threading.Event(), threading.Event(), []
    def early():
        started.set()
        go.wait()
        seen.append((status("Seccomp"), ptrace_traceme()))
    thread = threading.Thread(target=early)
    thread.start()  # before install: TSYNC must give it the filter too
    started.wait()
    seccomp.install()
    go.set()
    thread.join()
    assert seen == [("2", (-1, errno.EPERM))], seen
    pid = os.fork()
    if pid == 0:
        ok = status("Seccomp") == "2" and ptrace_traceme() == (-1, errno.EPERM)
        os._exit(0 if ok else 1)
    assert os.waitpid(pid, 0)[1] == 0
    out = subprocess.run(["grep", "^Seccomp:", "/proc/self/status"], capture_output=True,
                         text=True).stdout
    assert out.split() == ["Seccomp:", "2"], out
    assert seccomp.install() is None  # a second filter on top is allowed
    """, install=False)


@needs_kernel
def test_install_refuses_another_machine() -> None:
    other = "aarch64" if MACHINE == "x86_64" else "x86_64"
    check(f"""
    try:
        seccomp.install({other!r})
    except OSError:
        pass
    else:
        raise AssertionError("installed the filter of another machine")
    assert status("Seccomp") == "0"
    """, install=False)


@pytest.mark.skipif(sys.platform != "linux" or MACHINE != "x86_64",
                    reason="the x32 and int 0x80 ABIs exist on x86_64 only")
def test_other_abis_are_refused_on_x86_64() -> None:
    check("""
    fails(call(0x40000000 | 39), errno.EPERM)  # x32 getpid
    """)
    # getpid through the 32-bit entry, from machine code: mov eax, 20; int 0x80; ret
    int80 = """
    import mmap
    page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(bytes.fromhex("b814000000cd80c3"))
    address = ctypes.addressof(ctypes.c_char.from_buffer(page))
    print(ctypes.CFUNCTYPE(ctypes.c_int)(address)() == os.getpid(), flush=True)
    """
    control = run(int80, install=False)
    if control.stdout != "True\n":
        pytest.skip(f"no 32-bit syscall entry here (or no W+X page): {control.returncode} "
                    f"{control.stderr[-300:]}")
    done = run(int80)
    assert done.returncode == -signal.SIGSYS, (done.returncode, done.stdout, done.stderr)
    assert done.stdout == ""


@needs_kernel
def test_a_fork_installs_the_filter_its_parent_prepared() -> None:
    """The zygote's way: prepare once (not installed: the parent stays unfiltered), then
    each fork installs what was prepared."""
    check("""
    seccomp.prepare()
    seccomp.prepare()
    assert len(seccomp._prepared) == 1 and status("Seccomp") == "0"
    pid = os.fork()
    if pid == 0:
        seccomp.install()
        os._exit(0 if status("Seccomp") == "2" and call("unshare", 0)[1] == errno.EPERM else 1)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert status("Seccomp") == "0"
    """, install=False)

"""The zygote fast path: sandboxes forked from a started interpreter, same protections."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sandbox_procs import processes_in

from adrs.sandbox import codec
from adrs.sandbox.candidate import Candidate, Limits
from adrs.sandbox.isolation import environment, protections
from adrs.sandbox.standby import STANDBY
from adrs.sandbox.zygote import ZYGOTE_CLIENT, ForkedSandbox, ZygoteError, _Zygote

pytestmark = pytest.mark.timeout(60)

FAST = Limits(timeout_s=10.0)
needs_zygote = pytest.mark.skipif(not protections()["forked_by_zygote"],
                                  reason="this machine has no user namespaces or lockdown: "
                                  "every sandbox takes the Popen path")
OPEN_FDS = "import os\ndef f():\n    return len(os.listdir('/proc/self/fd')) - 1\n"


def zygote_pid() -> int:
    zygote = ZYGOTE_CLIENT._zygote
    assert zygote is not None
    return zygote.proc.pid


@pytest.fixture
def popen_path() -> Iterator[None]:
    ZYGOTE_CLIENT.enabled = False
    yield
    ZYGOTE_CLIENT.enabled = True


@needs_zygote
def test_sandboxes_are_forked_by_the_zygote() -> None:
    with Candidate("def f(x):\n    return x * 2\n", FAST) as candidate:
        assert isinstance(candidate.process.proc, ForkedSandbox)
        assert candidate.call("f", 21) == 42
    assert candidate.process.proc.returncode is not None  # reaped, through the zygote


@needs_zygote
def test_zygote_holds_no_secret_and_no_descriptor(monkeypatch: pytest.MonkeyPatch) -> None:
    ZYGOTE_CLIENT.close()  # the next sandbox starts a fresh zygote, with the key set
    STANDBY.drain()  # and no standby: the zygote holds the status pipe of each living one
    monkeypatch.setattr(STANDBY, "enabled", False)
    monkeypatch.setenv("OPENAI_API_KEY", "secret-0123456789")
    with Candidate(OPEN_FDS, FAST) as candidate:
        candidate.call("f")
    pid = zygote_pid()
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    assert b"secret-0123456789" not in environ
    names = sorted(item.split(b"=")[0].decode() for item in environ.split(b"\0") if item)
    assert names == sorted(environment("/"))
    targets = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    assert targets.count("/dev/null") == 3  # stdin, stdout, stderr
    assert sum(target.startswith("socket:") for target in targets) == 1  # control socket
    # Nothing else: no file, no other socket, no pipe (it sees its sandboxes end on their
    # pidfds, closed once reaped).
    assert [t for t in targets if not t.startswith(("/dev/null", "socket:"))] == []


def test_sandbox_sees_only_its_own_descriptors() -> None:
    # stdin, stdout, stderr and the two pipes: nothing of the zygote's or ours.
    with Candidate(OPEN_FDS, FAST) as candidate:
        assert candidate.call("f") == 5


def test_popen_fallback_still_works(popen_path: None) -> None:
    with Candidate(OPEN_FDS, FAST) as candidate:
        assert isinstance(candidate.process.proc, subprocess.Popen)
        assert candidate.call("f") == 5


@needs_zygote
def test_a_dead_zygote_is_restarted(monkeypatch: pytest.MonkeyPatch) -> None:
    STANDBY.drain()  # no standby of the old zygote, no launch racing the assertions
    monkeypatch.setattr(STANDBY, "enabled", False)
    with Candidate(OPEN_FDS, FAST) as candidate:
        candidate.call("f")
    first = zygote_pid()
    os.kill(first, signal.SIGKILL)
    with Candidate("def f():\n    return 1\n", FAST) as candidate:
        assert candidate.call("f") == 1
        assert isinstance(candidate.process.proc, ForkedSandbox)
    assert zygote_pid() != first


@needs_zygote
def test_killing_the_sandbox_ends_its_namespace() -> None:
    source = ("import os, time\ndef f():\n    if os.fork() == 0:\n        os.setsid()\n"
              "        time.sleep(60)\n    return os.getpid()\n")
    with Candidate(source, FAST) as candidate:
        assert candidate.call("f") == 1  # its own pid namespace's init
        proc, workdir = candidate.process.proc, candidate.workdir
        assert isinstance(proc, ForkedSandbox) and workdir is not None
        assert len(processes_in(workdir)) >= 2  # the candidate, the sleeper (and, forked,
        # the process that made the namespaces)
        proc.kill()
        assert proc.wait(timeout=10) == -signal.SIGKILL
        deadline = time.monotonic() + 10
        while processes_in(workdir) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert processes_in(workdir) == []


IDS = ("import os\ndef f():\n    with open('/proc/self/uid_map') as m:\n        ids = m.read()\n"
       "    return [ids.split(), os.getuid(), len(os.listdir('/proc/self/fd')) - 1]\n")


@needs_zygote
@pytest.mark.skipif(os.geteuid() != 0, reason="only root maps a second id (through the "
                    "zygote); other users map themselves")
def test_as_root_the_zygote_maps_root_and_nobody_without_a_helper() -> None:
    """The zygote writes the maps once the sandbox has entered its user namespace: the
    candidate runs as nobody, mapped to the host's nobody, and inherits none of the
    mapping's pipes."""
    with Candidate(IDS, FAST) as candidate:
        uid_map, uid, fds = candidate.call("f")
    assert uid_map == ["0", "0", "1", "65534", "65534", "1"]
    assert uid == 65534
    with Candidate(OPEN_FDS, FAST) as plain:
        assert fds == plain.call("f")  # the same descriptors as ever: no pipe left open


def test_a_sandbox_that_dies_before_asking_for_its_maps_leaves_nothing_open() -> None:
    from adrs.sandbox import forkserver

    mapper = forkserver.Mapper()
    pid = os.fork()
    if pid == 0:
        mapper.child_ends()
        os._exit(0)  # never asks
    mapper.parent_ends()
    os.waitpid(pid, 0)
    mapper.answer(pid)  # end of file: no maps written, both ends closed, no exception
    for fd in (mapper.ask_r, mapper.answer_w):
        with pytest.raises(OSError):
            os.fstat(fd)


PLAIN_START = ("import os, signal\ndef f():\n    return [signal.getsignal(signal.SIGCHLD) == "
               "signal.SIG_DFL, signal.set_wakeup_fd(-1), len(os.listdir('/proc/self/task'))]"
               "\n")


@needs_zygote
def test_a_zygote_sandbox_starts_with_default_signals_and_one_thread() -> None:
    """The zygote sets no SIGCHLD handler or wakeup descriptor for its sandboxes to reset,
    and its sandboxes run no thread of their own watching for the trusted side."""
    with Candidate(PLAIN_START, FAST) as candidate:
        assert isinstance(candidate.process.proc, ForkedSandbox)
        assert candidate.call("f") == [True, -1, 1]


TRUSTED = """
import os, sys, threading, time
from adrs.sandbox.candidate import Candidate, Limits
source = ("import os, time\\ndef f():\\n    if os.fork() == 0:\\n        os.setsid()\\n"
          "        time.sleep(60)\\n    return 1\\n"
          "def busy():\\n    time.sleep(60)\\n")
candidate = Candidate(source, Limits(timeout_s=60.0))
candidate.start()
candidate.call("f")
if {busy!r}:  # the candidate is in a call (asleep) when this process dies
    threading.Thread(target=candidate.call, args=("busy",), daemon=True).start()
    time.sleep(0.2)
print(candidate.workdir, flush=True)
time.sleep(60)
"""


@needs_zygote
@pytest.mark.parametrize("busy", [False, True], ids=["waiting", "in-a-call"])
def test_sandboxes_die_with_the_trusted_process(busy: bool) -> None:
    """No thread in the sandbox watches for the trusted side: when its process is killed,
    the zygote sees end of file and exits, and its sandboxes die with it (PDEATHSIG, armed
    again after the lockdown's change of user, which clears it), even one whose candidate
    is busy in a call and never reads its request pipe again."""
    trusted = subprocess.Popen([sys.executable, "-c", TRUSTED.format(busy=busy)],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert trusted.stdout is not None
        workdir = trusted.stdout.readline().strip()
        assert workdir and len(processes_in(workdir)) >= 2  # the candidate and its sleeper
    finally:
        trusted.kill()
        trusted.wait()
    deadline = time.monotonic() + 10
    while processes_in(workdir) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_in(workdir) == []


@needs_zygote
@pytest.mark.parametrize("env", [None, {"PATH": 1}, {"PATH": ["/bin"]}])
def test_a_malformed_request_is_refused_and_the_zygote_serves_on(env: object) -> None:
    """The zygote sets each request's environment in itself before it forks: a request
    whose environment is not text is refused with an error, not a dead zygote."""
    zygote = _Zygote(environment("/"))
    assert zygote.ready
    fds = [os.open(os.devnull, os.O_RDWR) for _ in range(4)]
    try:
        with pytest.raises(ZygoteError, match="malformed request"):
            zygote.spawn({"env": env, "cwd": "/", "candidate": "x", "harness": None,
                          "rlimits": [], "network": False, "cgroup": []}, fds)
        assert zygote.alive()
    finally:
        for fd in fds:
            os.close(fd)
        zygote.close()


PDEATHSIG = ("import ctypes\ndef f():\n    libc = ctypes.CDLL(None, use_errno=True)\n"
             "    signal = ctypes.c_int(-1)\n"
             "    libc.prctl(2, ctypes.byref(signal), 0, 0, 0)\n"
             "    cleared = libc.prctl(1, 0, 0, 0, 0)\n"
             "    return [signal.value, cleared, ctypes.get_errno()]\n")


@needs_zygote
def test_the_candidate_dies_with_its_parent_and_cannot_change_that() -> None:
    """An attack: the candidate clears its parent-death signal to outlive the trusted side.
    The lockdown armed it (SIGKILL) after its change of user, and the filter refuses."""
    with Candidate(PDEATHSIG, FAST) as candidate:
        assert candidate.call("f") == [9, -1, 1]  # SIGKILL; prctl failed with EPERM


@needs_zygote
def test_a_connected_socket_is_served_and_the_zygote_ends_with_the_last_one() -> None:
    """Another control socket (a forked worker's: adrs/evaluation/forked.py) is served as
    the first is; the zygote exits only once every socket has reached end of file."""
    zygote = _Zygote(environment("/"))
    assert zygote.ready
    second = zygote.connect()
    zygote.sock.close()  # the first socket's holder is gone
    time.sleep(0.2)
    assert zygote.alive()  # served on: the second socket is open
    fds = [os.open(os.devnull, os.O_RDWR) for _ in range(4)]
    try:
        socket.send_fds(second, [codec.encode({"env": None})], fds)  # refused, answered
        assert codec.decode(second.recv(1 << 16)) == {"error": "malformed request"}
        socket.send_fds(second, [codec.encode({"connect": True})], [])  # no socket given
        assert codec.decode(second.recv(1 << 16)) == {"error": "malformed request"}
    finally:
        for fd in fds:
            os.close(fd)
    second.close()
    assert zygote.proc.wait(timeout=10) == 0
    zygote._close_pidfd()


def test_without_pidfds_there_is_no_zygote(monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel without pidfd_open (before 5.3): the zygote is not ready, and sandboxes
    take the Popen path (its sandboxes are handed over as pidfds, too)."""
    def no_pidfds(pid: int) -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", no_pidfds)
    zygote = _Zygote(environment("/"))
    assert not zygote.ready and not zygote.alive()
    assert zygote.proc.returncode is not None  # closed: ended and reaped


@needs_zygote
def test_a_sandbox_sees_none_of_the_zygotes_control_sockets() -> None:
    """An attack: a candidate looks for one of the zygote's control sockets (to fork
    sandboxes of its own, or to ask for one more socket). With a second socket served (a
    forked worker's), a sandbox forked afterwards still holds its own five descriptors
    only."""
    assert ZYGOTE_CLIENT.available(environment("/"))
    STANDBY.drain()  # the sandbox below is forked after the connect
    extra = ZYGOTE_CLIENT.connect_child()
    assert extra is not None
    try:
        with Candidate(OPEN_FDS, FAST) as candidate:
            assert candidate.call("f") == 5
    finally:
        extra.close()

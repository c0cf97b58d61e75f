"""The fast path of sandbox start-up: fork sandboxes from a started interpreter.

Starting `python` costs about 10 ms of every evaluation; forking an interpreter that has
already started and loaded the sandbox's modules costs about 1 ms. One zygote per trusted
process (forkserver.py) is started lazily on first use, restarted when it has died, and
started anew in a forked or spawned worker process. It is started like a sandbox, with
the whitelisted environment, its own session, /dev/null as stdin, stdout and stderr, and
no descriptor but its control socket, so it holds nothing the candidate must not see; the
sandboxes it forks enter fresh user, pid, mount and network namespaces, get the same
rlimits and lock themselves down exactly as on the Popen path (see isolation.py).

It is used only where that path has been probed to work with every protection (user
namespace and lockdown) and the zygote's own probe agrees; otherwise sandbox.py starts
the child with Popen as before. `available()` says which path is active.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from adrs.sandbox import codec

ZYGOTE_SCRIPT = str(Path(__file__).with_name("forkserver.py"))
_START_TIMEOUT_S = 10.0
_MAX_MESSAGE = 1 << 16
_STATUS_BYTES = 4
_UNKNOWN_STATUS = -int(signal.SIGKILL)  # the zygote died before it could report one


class ZygoteError(Exception):
    """The zygote could not start a sandbox (a fault of the machine, not the candidate)."""


class ForkedSandbox:
    """A sandbox process forked by the zygote, with the part of Popen's interface that
    sandbox.py uses: pid, returncode, poll, wait, and kill (of the whole sandbox).

    Killing uses a pidfd, so it can never hit a recycled pid; the exit status comes from
    the zygote, which reaps the process, through a pipe of its own.
    """

    def __init__(self, pid: int, pidfd: int, status_fd: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._pidfd = pidfd
        self._status_fd = status_fd

    def poll(self) -> int | None:
        return self._wait(0.0)

    def wait(self, timeout: float | None = None) -> int:
        code = self._wait(timeout)
        if code is None:
            raise subprocess.TimeoutExpired(f"sandbox {self.pid}", timeout or 0.0)
        return code

    def kill(self) -> None:
        """SIGKILL the sandbox process; its namespace init and everything in it die too."""
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)

    def _wait(self, timeout: float | None) -> int | None:
        if self.returncode is not None:
            return self.returncode
        poller = select.poll()
        poller.register(self._status_fd, select.POLLIN)
        if not poller.poll(None if timeout is None else timeout * 1000):
            return None
        data = os.read(self._status_fd, _STATUS_BYTES)
        if len(data) == _STATUS_BYTES:
            code = int.from_bytes(data, sys.byteorder, signed=True)
        else:  # the zygote is gone: wait for the process itself, status unknown
            pid_poller = select.poll()
            pid_poller.register(self._pidfd, select.POLLIN)
            if not pid_poller.poll(None if timeout is None else timeout * 1000):
                self.kill()
                pid_poller.poll(None)
            code = _UNKNOWN_STATUS
        self.returncode = code
        os.close(self._status_fd)
        os.close(self._pidfd)
        return code


class _Zygote:
    """The client side of one running forkserver.py."""

    def __init__(self, env: dict[str, str]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-S", "-P", ZYGOTE_SCRIPT, str(theirs.fileno())],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, pass_fds=(theirs.fileno(),), cwd="/", env=env,
                start_new_session=True)
        finally:
            theirs.close()
        self.sock = ours
        try:  # alive() asks it, in a forked worker too
            self.pidfd = os.pidfd_open(self.proc.pid)
        except OSError:  # no pidfds (Linux < 5.3): the zygote's sandboxes need them too
            self.pidfd = -1
        self.sock.settimeout(_START_TIMEOUT_S)
        try:
            self.ready = self.pidfd >= 0 and codec.decode(
                self.sock.recv(_MAX_MESSAGE)) == {"ready": True}
        except (OSError, codec.CodecError):
            self.ready = False
        self.sock.settimeout(None)
        if not self.ready:
            self.close()

    def alive(self) -> bool:
        """Whether it runs: asked of its pidfd, which a forked worker that kept it can ask
        too (it is not that worker's child)."""
        if not self.ready or self.pidfd < 0:
            return False
        poller = select.poll()
        poller.register(self.pidfd, select.POLLIN)
        return not poller.poll(0)

    def spawn(self, request: dict[str, object], fds: list[int]) -> ForkedSandbox:
        status_r, status_w = os.pipe2(os.O_CLOEXEC)
        try:
            socket.send_fds(self.sock, [codec.encode(request)], [*fds, status_w])
        finally:
            os.close(status_w)
        try:
            message, pidfds, _, _ = socket.recv_fds(self.sock, _MAX_MESSAGE, 1)
            reply = codec.decode(message) if message else {"error": "the zygote exited"}
        except BaseException:
            os.close(status_r)
            raise
        if not isinstance(reply, dict) or not isinstance(reply.get("pid"), int) \
                or len(pidfds) != 1:
            os.close(status_r)
            for fd in pidfds:
                os.close(fd)
            raise ZygoteError(f"the zygote could not start a sandbox: {reply!r}")
        os.set_inheritable(pidfds[0], False)  # as every descriptor of ours
        return ForkedSandbox(reply["pid"], pidfds[0], status_r)

    def connect(self) -> socket.socket:
        """Another control socket to this zygote, which serves it as it serves ours (for a
        worker about to be forked: see ZygoteClient.connect_child)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            socket.send_fds(self.sock, [codec.encode({"connect": True})], [theirs.fileno()])
        finally:
            theirs.close()
        try:
            reply = codec.decode(self.sock.recv(_MAX_MESSAGE))
        except BaseException:
            ours.close()
            raise
        if reply != {"connected": True}:
            ours.close()
            raise ZygoteError(f"the zygote did not take another socket: {reply!r}")
        return ours

    def through(self, sock: socket.socket) -> _Zygote:
        """In a forked child: this zygote, reached through `sock` (from `connect`); the
        copies of our socket and pidfd that the child inherited are closed."""
        other = object.__new__(_Zygote)
        other.proc, other.ready, other.sock = self.proc, self.ready, sock
        other.pidfd = os.dup(self.pidfd)
        self.forget()
        return other

    def forget(self) -> None:
        """Close this process's copies of the control socket and the pidfd, leaving the
        zygote to whoever else holds the socket (a forked child, or its parent); it sees
        end of file when the last holder closes it."""
        self.sock.close()
        self._close_pidfd()

    def close(self) -> None:
        self._close_pidfd()
        self.sock.close()  # end of file: the zygote exits
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        if self.proc.returncode is None:
            self.proc.kill()
            self.proc.wait()

    def _close_pidfd(self) -> None:
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1


class ZygoteClient:
    """This process's zygote: started lazily, restarted once per spawn if it died.

    Thread-safe: one request at a time goes through the control socket. Setting `enabled`
    to False makes every sandbox take the Popen path (benchmarks/sandbox.py compares them).
    """

    def __init__(self) -> None:
        self.enabled = True
        self._lock = threading.Lock()
        self._zygote: _Zygote | None = None
        self._owner = -1
        self._broken = False  # the zygote's probe failed here: never try again

    def spawn(self, env: dict[str, str], request: dict[str, object],
              fds: list[int]) -> ForkedSandbox | None:
        """Fork a sandbox; None when the zygote is not available (use the Popen path)."""
        with self._lock:
            for _ in range(2):
                zygote = self._get(env)
                if zygote is None:
                    return None
                try:
                    return zygote.spawn(request, fds)
                except OSError:  # it died under us: restart it once
                    self._drop()
                except ZygoteError:  # it refused: a bug, not the candidate's fault
                    self._drop()
                    self._broken = True
                    return None
            return None

    def available(self, env: dict[str, str]) -> bool:
        with self._lock:
            return self._get(env) is not None

    def _get(self, env: dict[str, str]) -> _Zygote | None:
        if self._owner != os.getpid():  # a forked worker: the zygote is its parent's
            if self._zygote is not None:
                self._zygote.forget()
            self._zygote, self._owner, self._broken = None, os.getpid(), False
        if self._broken or not self.enabled:
            return None
        if self._zygote is not None and not self._zygote.alive():
            self._drop()
        if self._zygote is None:
            zygote = _Zygote(env)
            if not zygote.ready:
                self._broken = True
                return None
            self._zygote = zygote
        return self._zygote

    def _drop(self) -> None:
        if self._zygote is not None:
            with contextlib.suppress(OSError):
                self._zygote.close()
            self._zygote = None

    def connect_child(self) -> socket.socket | None:
        """A control socket of its own to this process's zygote for a child about to be
        forked, which passes it to `adopt`; None when no zygote of ours runs."""
        with self._lock:
            zygote = self._zygote
            if zygote is None or self._owner != os.getpid() or not zygote.alive():
                return None
            try:
                return zygote.connect()
            except (OSError, ZygoteError, codec.CodecError):
                return None

    def adopt(self, sock: socket.socket) -> None:
        """In a forked child: use the parent's zygote through `sock` (connect_child's)."""
        inherited = self._zygote
        self._owner = os.getpid()
        self._zygote = None if inherited is None else inherited.through(sock)

    def keep_after_fork(self) -> None:
        """In a forked child: take over the parent's zygote (which the parent then
        `release`s) instead of starting one."""
        self._owner = os.getpid()

    def release(self) -> None:
        """In the parent, after a forked child took its zygote over: forget it (the child
        now holds it); a later sandbox here starts a new one."""
        with self._lock:
            if self._zygote is not None and self._owner == os.getpid():
                self._zygote.forget()
                self._zygote = None

    def close(self) -> None:
        with self._lock:
            if self._owner == os.getpid():
                self._drop()


ZYGOTE_CLIENT = ZygoteClient()
atexit.register(ZYGOTE_CLIENT.close)

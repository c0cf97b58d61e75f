"""The zygote: a started interpreter that forks sandboxes on request (see zygote.py).

Run by zygote.py as `python -S -P forkserver.py SOCKET_FD`, with the sandbox's whitelisted
environment, no other descriptor than its control socket and nothing of the trusted side
imported: it holds child.py, codec.py and lockdown.py (stdlib only), loaded once. Each
request forks a process that sets up what `unshare --user --map-root-user --net --pid
--fork --kill-child --mount-proc` and `prlimit` set up on the Popen path (as root, where
clone.py works, one clone lands straight in the new namespaces), then runs child.py's main
as pid 1 of its own namespaces. So a sandbox costs a fork instead of an
interpreter start, and gets the same protections.

Control protocol (one SOCK_SEQPACKET socket, codec-encoded messages):
- the zygote first sends {"ready": bool}: whether it could set up the namespaces once;
- request {"env", "cwd", "candidate", "harness", "rlimits", "network", "cgroup"} (the
  cgroup.procs files the sandbox joins before it enters its namespaces) with five
  descriptors (stdout, stderr, request pipe, reply pipe, status pipe); reply {"pid": int}
  with a pidfd of the sandbox process, or {"error": str};
- when the sandbox process ends, its exit status (4 bytes, as `Popen.returncode`) is
  written to its status pipe, which is then closed;
- request {"connect": True} with one descriptor, a socket of the same kind: the zygote
  serves it too, as it serves the first (a worker forked by the trusted side asks on its
  own socket); reply {"connected": True}, or {"error": str}.
The zygote exits when every control socket has reached end of file.
"""

from __future__ import annotations

import _ctypes
import fcntl  # here, once: imported in each sandbox, it cost 0.7 ms of CPU
import os
import resource
import select
import signal
import socket
import sys
from importlib.machinery import SourceFileLoader

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType

    from adrs.sandbox.clone import Cloner

_CLONE_NEWNS = 0x00020000
_CLONE_NEWCGROUP = 0x02000000
_CLONE_NEWIPC = 0x08000000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWPID = 0x20000000
_CLONE_NEWNET = 0x40000000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REC, _MS_PRIVATE = 0x2, 0x4, 0x8, 0x4000, 0x40000
_PR_SET_PDEATHSIG = 1
_REQ_FD, _REP_FD = 3, 4  # where the sandbox finds its pipes (child.py's argv)
_FIRST_FREE_FD = 5
_MAX_MESSAGE = 1 << 20
_STATUS_BYTES = 4
CANDIDATE_ID = 65534  # nobody: the candidate's uid and gid inside and outside (as root)
_ZYGOTE = os.getpid()  # this script is the zygote's main module


def _load(name: str) -> ModuleType:
    """A sandbox module next to this file, from its cached bytecode (as boot.py does)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")
    module = type(sys)(f"_adrs_sandbox_{name}")
    module.__file__ = path
    sys.modules[module.__name__] = module
    SourceFileLoader(module.__name__, path).exec_module(module)
    return module


child = _load("child")
child.site_paths(os.environ.get(child.SITE_DIRS_VAR, ""))  # once, for every fork
_load("lockdown")  # child.py finds it in sys.modules: no load per sandbox
_seccomp = _load("seccomp")  # child.py likewise
try:  # noqa: SIM105 (contextlib costs start-up time) the filter, built once for every fork
    _seccomp.prepare()
except OSError:  # no filter here: each sandbox's lockdown reports it, as on the Popen path
    pass
codec = child.codec
_CONNECT = codec.encode({"connect": True})  # with one descriptor: a socket to serve too
_LIBC = _ctypes.dlopen(None, os.RTLD_NOW)  # type: ignore[arg-type]


def _libc(name: str, *args: object) -> None:
    if _ctypes.call_function(_ctypes.dlsym(_LIBC, name), args) != 0:
        raise OSError(f"{name}{args[:2]} failed")


# ------------------------------------------------------------------------ in the sandbox
def _enter_namespaces(network: bool, mapper: tuple[int, int] | None) -> None:
    """unshare --user --map-root-user [--net] --ipc --pid --mount --cgroup, in this process.

    As root, the zygote, left outside the new user namespace, also maps CANDIDATE_ID
    (nobody) to the host's nobody (a namespace cannot map a second id itself), so that
    lockdown.py can drop the candidate to it: a candidate mapped to host root would own
    every root-owned file it can see. `mapper` is the pair of pipes to ask it and read its
    answer (`Mapper`); this costs no process of its own, where a helper fork did.
    """
    uid, gid = os.geteuid(), os.getegid()
    flags = _namespaces(network)
    if uid != 0:
        _unshare(flags)
        _write_maps("self", f"0 {uid} 1", f"0 {gid} 1", deny_setgroups=True)
        return
    if mapper is None:
        raise OSError("as root, the user namespace's ids need the zygote to map them")
    try:
        _unshare(flags)
    except OSError:
        for fd in mapper:
            os.close(fd)
        raise
    _await_mapping(mapper)


def _namespaces(network: bool) -> int:
    """The namespaces a sandbox gets (its cgroup namespace is made apart: see _unshare)."""
    return (_CLONE_NEWUSER | _CLONE_NEWNS | _CLONE_NEWPID | _CLONE_NEWIPC
            | (0 if network else _CLONE_NEWNET))


def _await_mapping(mapper: tuple[int, int]) -> None:
    """Ask the zygote to map our user namespace's ids (and, after a clone, to move us into
    the sandbox's cgroup first), and wait for its answer; end of file: it is gone."""
    ask, answer = mapper
    try:
        os.write(ask, b"1")
        mapped = os.read(answer, 1) == b"1"
    finally:
        os.close(ask)
        os.close(answer)
    if not mapped:
        raise OSError("the zygote could not place the sandbox (cgroup, user ids)")


class Mapper:
    """The zygote's end of one namespace's id mapping (root only): the sandbox process
    writes a byte once it has entered its user namespace; the zygote then writes the maps
    of that process (`answer`), after moving a cloned one into its cgroup, and replies
    b"1", or b"0" when it could not."""

    def __init__(self) -> None:
        self.cgroup: list[str] = []  # cgroup.procs files to move a cloned sandbox into
        self.ask_r, self.ask_w = os.pipe()
        self.answer_r, self.answer_w = os.pipe()

    def child_ends(self) -> tuple[int, int]:
        """In the forked sandbox: its two ends (the zygote's are closed)."""
        os.close(self.ask_r)
        os.close(self.answer_w)
        return self.ask_w, self.answer_r

    def parent_ends(self) -> None:
        """In the zygote, after the fork: drop the sandbox's ends."""
        os.close(self.ask_w)
        os.close(self.answer_r)

    def answer(self, pid: int) -> None:
        """Map the ids of `pid` if it asked (end of file: it died first), then close."""
        try:
            if os.read(self.ask_r, 1) == b"1":
                ok = True
                try:
                    for procs in self.cgroup:  # a cloned sandbox: see _cloned
                        with open(procs, "w") as f:
                            f.write(str(pid))
                    ids = f"0 0 1\n{CANDIDATE_ID} {CANDIDATE_ID} 1"
                    _write_maps(str(pid), ids, ids, deny_setgroups=False)
                except OSError:
                    ok = False
                os.write(self.answer_w, b"1" if ok else b"0")
        except OSError:  # it died meanwhile
            pass
        finally:
            os.close(self.ask_r)
            os.close(self.answer_w)


def _unshare(flags: int) -> None:
    """unshare(2), with a cgroup namespace where the kernel has them: the sandbox then sees
    its own cgroup as "/" (neither the trusted side's pid nor the sandbox's name)."""
    try:
        _libc("unshare", flags | _CLONE_NEWCGROUP)
    except OSError:
        _libc("unshare", flags)


def _write_maps(pid: str, uid_map: str, gid_map: str, deny_setgroups: bool) -> None:
    files = [("uid_map", uid_map), ("gid_map", gid_map)]
    if deny_setgroups:  # an unprivileged writer must deny setgroups before gid_map
        files.insert(0, ("setgroups", "deny"))
    for name, text in files:
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write(text)


def _mount_proc() -> None:
    """--mount-proc: a private mount tree, and a /proc of the new pid namespace."""
    _libc("mount", b"none", b"/", None, _MS_REC | _MS_PRIVATE, None)
    _libc("mount", b"proc", b"/proc", b"proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, None)


def _die_with(parent_alive_fd: int) -> None:
    """--kill-child: this process is killed when its parent dies (checked for the race)."""
    _libc("prctl", _PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    poller = select.poll()
    poller.register(parent_alive_fd, select.POLLIN)
    if poller.poll(0):  # end of file: the parent died before PDEATHSIG was set
        os._exit(1)
    os.close(parent_alive_fd)


def _place_fds(fds: list[int], keep: tuple[int, ...] = ()) -> None:
    """stdin /dev/null, stdout, stderr, the two pipes at 3 and 4; nothing else open but
    `keep` (the mapper's ends, closed once the namespace is mapped)."""
    high = [os.dup(fd) if fd >= _FIRST_FREE_FD else _dup_high(fd) for fd in fds[:4]]
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for target, fd in zip((1, 2, _REQ_FD, _REP_FD), high, strict=True):
        os.dup2(fd, target)  # dup2 clears close-on-exec: as Popen's pass_fds would
    low = _FIRST_FREE_FD
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))


def _set_environ(env: dict[str, str]) -> None:
    """Make the environment `env`, changing only what differs: the zygote started with
    the sandbox's whitelisted environment, so most variables are already right."""
    current = os.environ
    for key in [key for key in current if key not in env]:
        del current[key]
    for key, value in env.items():
        if current.get(key) != value:
            current[key] = value


def _dup_high(fd: int) -> int:
    return fcntl.fcntl(fd, fcntl.F_DUPFD, _FIRST_FREE_FD)


def _sandbox(request: dict[str, object], fds: list[int],
             mapper: tuple[int, int] | None) -> int:
    """The forked sandbox process (what unshare was): returns the exit status."""
    _libc("prctl", _PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)  # dies with the zygote
    if os.getppid() != _ZYGOTE:  # it died before PDEATHSIG was set
        os._exit(1)
    mapper = _prepare(request, fds, mapper)
    cgroup = request.get("cgroup") or []
    assert isinstance(cgroup, list)
    for procs in cgroup:  # before the user namespace: see cgroups.py
        with open(str(procs), "w") as f:
            f.write("0")
    _enter_namespaces(bool(request["network"]), mapper)
    alive_r, alive_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(alive_w)
        _die_with(alive_r)
        return _sandbox_init(request)
    os.close(alive_r)
    for fd in range(_FIRST_FREE_FD):
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _cloned(request: dict[str, object], fds: list[int],
            mapper: tuple[int, int] | None) -> int:
    """The cloned sandbox process, already pid 1 of its namespaces: returns the exit
    status. The zygote moves it into its cgroup before mapping its ids; its cgroup
    namespace is made after that, so that it sees its own cgroup as "/"."""
    _libc("prctl", _PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)  # dies with the zygote
    mapper = _prepare(request, fds, mapper)
    assert mapper is not None
    _await_mapping(mapper)  # end of file if the zygote died before PDEATHSIG was set
    try:  # noqa: SIM105 (contextlib costs start-up time) where the kernel has them
        _libc("unshare", _CLONE_NEWCGROUP)
    except OSError:
        pass
    return _sandbox_init(request)


def _prepare(request: dict[str, object], fds: list[int],
             mapper: tuple[int, int] | None) -> tuple[int, int] | None:
    """Session, descriptors and working directory of a sandbox process (its environment
    and signal dispositions are the zygote's: see Zygote.spawn and serve); returns the
    mapper's ends, moved above the descriptors it places."""
    os.setsid()
    if mapper is not None:  # above 0-4, which _place_fds fills: the originals it closes
        mapper = (_dup_high(mapper[0]), _dup_high(mapper[1]))
    _place_fds(fds, mapper or ())
    cwd = request["cwd"]
    assert isinstance(cwd, str)
    os.chdir(cwd)
    return mapper


def _sandbox_init(request: dict[str, object]) -> int:
    """Pid 1 of the new namespaces: /proc, limits, then child.py, which runs the candidate
    in this process (see its docstring)."""
    _mount_proc()
    rlimits = request["rlimits"]
    assert isinstance(rlimits, list)
    for key, value in rlimits:
        resource.setrlimit(key, (value, value))
    harness = request["harness"]
    argv = ["child.py", str(_REQ_FD), str(_REP_FD), str(request["candidate"]),
            *([harness] if isinstance(harness, str) else [])]
    try:  # no thread watching for the trusted side: see Zygote.serve
        return int(child.main(argv, watch_parent=False))
    finally:
        child._flush_output()


def _run_sandbox(request: dict[str, object], fds: list[int],
                 mapper: tuple[int, int] | None, body: Callable[..., int]) -> None:
    """Never returns: the sandbox's exit status (`body`: _sandbox after a fork, _cloned
    after a clone), or 127 if setting it up failed."""
    code = 127
    try:
        code = body(request, fds, mapper)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:  # report on the sandbox's stderr; the status says it
        try:  # noqa: SIM105
            os.write(2, f"the sandbox could not start: {exc!r}\n".encode())
        except OSError:
            pass
    os._exit(code)


# ---------------------------------------------------------------------------- the zygote
def _probe() -> bool:
    """Whether namespaces and /proc can be set up here (once, at start)."""
    mapper = Mapper() if os.geteuid() == 0 else None
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            _enter_namespaces(False, None if mapper is None else mapper.child_ends())
            inner = os.fork()
            if inner == 0:
                try:
                    _mount_proc()
                    os._exit(0)
                finally:
                    os._exit(1)
            code = os.waitstatus_to_exitcode(os.waitpid(inner, 0)[1])
        finally:
            os._exit(code)
    if mapper is not None:
        mapper.parent_ends()
        mapper.answer(pid)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def _find_cloner() -> Cloner | None:
    """As root, where clone.py's check passes: one clone per sandbox instead of two forks
    (see clone.py); else None, and sandboxes are forked as before."""
    if os.geteuid() != 0:
        return None
    try:
        cloner = _load("clone").Cloner
        found: Cloner | None = cloner.find(_namespaces(False))
    except Exception:  # no clone here: forking is always there
        return None
    return found


class Zygote:
    def __init__(self, sock: socket.socket, cloner: Cloner | None = None) -> None:
        self.socks = {sock.fileno(): sock}  # every control socket: the first, connected
        self.cloner = cloner
        self.ends: dict[int, tuple[int, int]] = {}  # pidfd -> sandbox pid, status pipe
        self.poller = select.poll()
        self.mappers: dict[int, tuple[int, Mapper]] = {}  # ask pipe -> sandbox, mapper

    def spawn(self, message: bytes, fds: list[int], sock: socket.socket) -> None:
        """Start the sandbox `message` asks for; answered on `sock`, which asked."""
        try:
            request = codec.decode(message)
            env = request.get("env") if isinstance(request, dict) else None
            if not isinstance(env, dict) or len(fds) != 5 or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
                raise ValueError("malformed request")
        except Exception as exc:
            self._close(fds)
            sock.send(codec.encode({"error": str(exc)}))
            return
        if isinstance(request.get("harness"), str):  # compiled here, once: see child.py
            child.precompile(request["harness"])
        # Here, not in the sandbox: it inherits the environment, and most of it is already
        # right (the zygote started with the whitelisted one); setting it in each sandbox
        # cost it 0.2 ms of copied pages.
        _set_environ(request["env"])
        if request["env"].get(child.LOCKDOWN_VAR) == "1":  # its paths found once, here
            harness = request.get("harness")
            child.prepare_lockdown(harness if isinstance(harness, str) else None)
        mapper = Mapper() if os.geteuid() == 0 else None
        pid = self._start(request, fds, mapper)
        pidfd = os.pidfd_open(pid)
        self.ends[pidfd] = (pid, fds[4])  # reaped once its pidfd is readable (serve)
        self.poller.register(pidfd, select.POLLIN)
        self._close(fds[:4])
        if mapper is not None:  # answered when it asks (serve)
            mapper.parent_ends()
            self.mappers[mapper.ask_r] = (pid, mapper)
            self.poller.register(mapper.ask_r, select.POLLIN)
        socket.send_fds(sock, [codec.encode({"pid": pid})], [pidfd])

    def _start(self, request: dict[str, object], fds: list[int],
               mapper: Mapper | None) -> int:
        """Clone the sandbox (root, where the cloner works) or fork it; its pid."""
        if self.cloner is not None and mapper is not None:
            flags = _namespaces(bool(request["network"]))
            cgroup = request.get("cgroup") or []
            assert isinstance(cgroup, list)
            mapper.cgroup = [str(procs) for procs in cgroup]
            try:
                pid = self.cloner.clone(flags)
            except OSError:  # the fork below reports what is wrong the usual way
                mapper.cgroup = []
            else:
                if pid == 0:
                    self._detach()  # the objects must not close reused numbers
                    _run_sandbox(request, fds, mapper.child_ends(), _cloned)
                return pid
        pid = os.fork()
        if pid == 0:
            self._detach()  # closed by the sandbox; the objects must not close them again
            _run_sandbox(request, fds, None if mapper is None else mapper.child_ends(),
                         _sandbox)
        return pid

    def _detach(self) -> None:
        for sock in self.socks.values():
            sock.detach()

    def connect(self, fds: list[int], sock: socket.socket) -> None:
        """Serve one more control socket (a forked worker's of the trusted side, which
        sent it over an existing one); answered on `sock`, which asked."""
        if len(fds) != 1:
            self._close(fds)
            sock.send(codec.encode({"error": "malformed request"}))
            return
        added = socket.socket(fileno=fds[0])
        self.socks[added.fileno()] = added
        self.poller.register(added.fileno(), select.POLLIN)
        sock.send(codec.encode({"connected": True}))

    def reap(self, pidfd: int) -> None:
        """The sandbox of `pidfd` has ended: reap it and write its status to its pipe."""
        self.poller.unregister(pidfd)
        pid, status_fd = self.ends.pop(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        try:  # noqa: SIM105
            os.write(status_fd, code.to_bytes(_STATUS_BYTES, sys.byteorder, signed=True))
        except OSError:  # the trusted side stopped listening
            pass
        os.close(status_fd)

    @staticmethod
    def _close(fds: list[int]) -> None:
        for fd in fds:
            os.close(fd)

    def serve(self) -> None:
        """Spawn on request, answer the mappings, reap the sandboxes, until end of file.

        A sandbox's end is seen on its pidfd: the zygote sets no SIGCHLD handler and no
        wakeup descriptor, so its sandboxes inherit the default dispositions and reset
        nothing. No thread in the sandbox watches for the trusted side either: when that
        process dies, this socket reaches end of file, the zygote exits, and every sandbox
        dies with it (PR_SET_PDEATHSIG)."""
        poller = self.poller
        for fd in self.socks:
            poller.register(fd, select.POLLIN)
        while self.socks:
            for fd, _ in poller.poll():
                if fd in self.mappers:
                    pid, mapper = self.mappers.pop(fd)
                    poller.unregister(fd)
                    mapper.answer(pid)
                elif fd in self.ends:
                    self.reap(fd)
                elif fd in self.socks:
                    self._request(fd)

    def _request(self, fd: int) -> None:
        """A message on control socket `fd`: a sandbox to start, a socket to serve too,
        or end of file (that socket's holders are gone: the zygote ends with the last)."""
        sock = self.socks[fd]
        message, fds, _, _ = socket.recv_fds(sock, _MAX_MESSAGE, 8)
        if not message:
            self.poller.unregister(fd)
            self.socks.pop(fd).close()
            return
        if message == _CONNECT:
            self.connect(fds, sock)
        else:
            self.spawn(message, fds, sock)


def main(argv: list[str]) -> int:
    sock = socket.socket(fileno=int(argv[1]))
    try:
        ready = _probe()
    except OSError:
        ready = False
    cloner = _find_cloner() if ready else None  # before "ready": it could only crash here
    sock.send(codec.encode({"ready": ready}))
    if ready:
        Zygote(sock, cloner).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

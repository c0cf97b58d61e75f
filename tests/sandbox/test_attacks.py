"""Adversarial candidates against the sandbox's trust boundary (see docs/evaluation.md).

Each attack is a program an LLM optimising its score could write: it goes after what the
trusted side touches (capture files, the working directory, the reply pipe) or what the
kernel leaves open (IPC, memory outside the rlimits, devices, the mount table, system
calls, the uid). Every attack runs through `adrs eval` as a user runs it and through a
real run. Each must end invalid, or valid with no effect, within its time limit plus 10 s;
afterwards no IPC segment and no working directory is left, the fake key and the host
secret are nowhere in the output or the run folder, and the run reaches its last candidate.
An attack that finds a hole prints a LEAK line to stderr, which the trusted side stores:
so a hole shows up as that line in the output (or as the secret itself).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from adrs.config.run_config import resolve
from adrs.engine.mutator import Proposal, ProposalContext
from adrs.evaluation.backends import LocalBackend
from adrs.evaluation.runner import EvalJob, run_job
from adrs.run.session import start_run
from adrs.sandbox.candidate import Limits
from adrs.sandbox.isolation import protections
from adrs.sandbox.standby import STANDBY
from adrs.sandbox.sweeper import SWEEPER
from adrs.sandbox.zygote import ZYGOTE_CLIENT
from adrs.store.database import RunStore

pytestmark = pytest.mark.timeout(300)

PROTECTIONS = protections()
FAKE_KEY = "sk-adrs-attack-fake-key-5f1d0c"
SECRET = "adrs-host-secret-e41b7a"  # in a host file the candidate must never see
TIMEOUT_S = 4.0
MEMORY_MB = 512
DISK_MB = 32
SHM_KEY = 0x0AD25
EVALUATOR = '''import random

def evaluate(candidate):
    value = candidate.call("predict", [10.0, 11.0, 12.0])
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return {"valid": False, "error": f"predict returned {type(value).__name__}"}
    future = 12.0 + random.SystemRandom().uniform(5.0, 6.0)
    error = abs(float(value) - future)
    return {"score": 100.0 / (1.0 + error), "metrics": {"abs_error": error}}
'''
HONEST = "def predict(history):\n    return history[-1]\n"
LIBC = "import ctypes, ctypes.util, errno, os, sys\nlibc = ctypes.CDLL(None, use_errno=True)\n"


@dataclass(frozen=True)
class Attack:
    source: str  # defines predict(history); SECRET_PATH and SECRET are filled in
    blocked_by: str  # for the table in the note


def _program(body: str, prelude: str = "import os, sys\n") -> str:
    indented = "\n".join("    " + line for line in body.strip().splitlines())
    # The marker is made at run time: the program's source (stored too) does not hold it.
    return (f"{prelude}\ndef leak(what):\n    print('LE' + 'AK:' + what, file=sys.stderr)\n\n"
            f"def predict(history):\n{indented}\n    return history[-1]\n")


ATTACKS: dict[str, Attack] = {
    "capture files swapped for symlinks to host secrets": Attack(_program("""
targets = ['/proc/self/environ', SECRET_PATH, '/proc/1/environ', '/etc/shadow']
for name in ('stderr.txt', 'stdout.txt', '../stderr.txt', '../stdout.txt'):
    for target in targets:
        try:
            if os.path.lexists(name):
                os.remove(name)
            os.symlink(target, name)
        except OSError:
            pass
try:
    leak('read the secret: ' + open(SECRET_PATH).read())
except OSError:
    pass
print('some output', file=sys.stderr)"""), "capture by memfd descriptor; private root"),
    "capture files swapped for FIFOs": Attack(_program("""
for name in ('stderr.txt', 'stdout.txt'):
    if os.path.lexists(name):
        os.remove(name)
    os.mkfifo(name)"""), "capture by memfd descriptor (no path is opened)"),
    "capture file swapped for a symlink to /dev/zero": Attack(_program("""
for name in ('stderr.txt', 'stdout.txt'):
    if os.path.lexists(name):
        os.remove(name)
    os.symlink('/dev/zero', name)"""), "capture by memfd descriptor; bounded pread tail"),
    "3,000-deep directory tree without permissions": Attack(_program("""
for top in ('.', '/dev/shm'):
    start = os.open('.', os.O_RDONLY)
    os.chdir(top)
    for _ in range(3000):
        os.mkdir('d')
        os.chdir('d')
    open('f', 'w').write('x')
    os.fchdir(start)
os.chmod('d', 0)"""), "tmpfs in the sandbox's mount namespace; iterative cleanup by fd"),
    "SysV shared memory left for the next candidate": Attack(_program(f"""
shmget, shmat = libc.shmget, libc.shmat
shmat.restype = ctypes.c_void_p
found = shmget({SHM_KEY}, 0, 0)
if found >= 0:
    leak('found the segment of an earlier candidate')
for size in (1 << 30, 512 << 20, 16 << 20):
    shmid = shmget({SHM_KEY}, ctypes.c_size_t(size), 0o1666)
    if shmid >= 0:
        address = shmat(shmid, None, 0)
        if address not in (None, ctypes.c_void_p(-1).value):
            ctypes.memset(address, 7, size)
            libc.shmdt(ctypes.c_void_p(address))
            if size > {DISK_MB} << 20:
                leak(f'held {{size >> 20}} MB of SysV shared memory')
        break""", LIBC), "IPC namespace (dies with the sandbox); shmall = disk_mb"),
    "memfd and files beyond the memory and disk limits": Attack(_program(f"""
import mmap
chunk = 900 << 10  # under the file-size limit (output_bytes)
held, total = [], 0
try:
    while total < 4 * {MEMORY_MB} << 20:
        fd = os.memfd_create('hoard')
        os.pwrite(fd, b'x' * chunk, 0)
        held.append(mmap.mmap(fd, chunk))  # the mapping keeps it after close
        os.close(fd)
        total += chunk
except (OSError, MemoryError, ValueError):
    pass
print(f'held {{total >> 20}} MB of memfd', file=sys.stderr)
for mapping in held:
    mapping.close()
written = 0
for n in range(4 * {DISK_MB} << 20 // chunk):
    try:
        with open(f'hoard-{{n}}.bin', 'wb') as f:
            f.write(b'y' * chunk)
            written += chunk
    except OSError:
        break
print(f'wrote {{written >> 20}} MB of files', file=sys.stderr)
if total > ({MEMORY_MB} + {DISK_MB}) << 20:
    leak(f'held {{total >> 20}} MB of memfd')
if written > ({DISK_MB} + 1) << 20 and DISK_LIMITED:
    leak(f'wrote {{written >> 20}} MB of files')"""),
        "RLIMIT_AS and RLIMIT_NOFILE, cgroup memory where offered; tmpfs of disk_mb"),
    "reply frame declaring 1 TB": Attack(_program("""
os.write(4, (1 << 40).to_bytes(8, 'little') + b'l')
os._exit(0)"""), "reply frame limit (limits.reply_mb) checked before reading"),
    "reply frame of 60 million one-byte items": Attack(_program("""
n = 60_000_000
body = b'l' + n.to_bytes(4, 'little') + b'N' * n
os.write(4, len(body).to_bytes(8, 'little'))
view = memoryview(body)
while view:
    view = view[os.write(4, view):]
os._exit(0)"""), "codec item cap and decode deadline"),
    "reply frame of 60 million items behind the ok head": Attack(_program("""
n = 60_000_000
head = b'd' + (1).to_bytes(4, 'little') + (2).to_bytes(4, 'little') + b'ok'
body = head + b'l' + n.to_bytes(4, 'little') + b'N' * n
os.write(4, len(body).to_bytes(8, 'little'))
view = memoryview(body)
while view:
    view = view[os.write(4, view):]
os._exit(0)"""), "the reply shortcut (codec.decode_reply) keeps the item cap and deadline"),
    "devices, mount table, uid and system calls": Attack(_program("""
for name in ('kvm', 'fuse', 'loop-control', 'loop0', 'userfaultfd', 'zram0', 'mem'):
    if os.path.exists('/dev/' + name):
        leak('/dev/' + name + ' exists')
for name in ('tty0', 'vcs', 'tty1', 'console', 'kmsg'):
    try:
        os.close(os.open('/dev/' + name, os.O_WRONLY))
        leak('/dev/' + name + ' is writable')
    except OSError:
        pass
for pid in ('1', 'self'):
    try:
        for line in open(f'/proc/{pid}/mountinfo'):
            point = line.split()[4]
            if point == '/sys' or point.startswith(('/sys/', '/dev/pts', '/dev/mqueue')):
                leak(f'host mount {point} in /proc/{pid}/mountinfo')
                break
    except OSError:
        pass
if os.getuid() == 0 and UNPRIVILEGED:
    leak('runs as uid 0')
cgroups = open('/proc/self/cgroup').read()
if CGROUPNS and any(line.rsplit(':', 1)[-1] != '/' for line in cgroups.splitlines()):
    leak('its cgroup path is visible: ' + cgroups.replace(chr(10), ' '))
calls = {'ptrace': (0, 0, 0, 0), 'userfaultfd': (0,), 'bpf': (0, 0, 0),
         'io_uring_setup': (1, 0), 'keyctl': (0, 0), 'perf_event_open': (0, 0, -1, -1, 0),
         'unshare': (0x10000000,), 'mount': (0, 0, 0, 0, 0)}
numbers = {'x86_64': {'ptrace': 101, 'userfaultfd': 323, 'bpf': 321, 'io_uring_setup': 425,
                      'keyctl': 250, 'perf_event_open': 298, 'unshare': 272, 'mount': 165},
           'aarch64': {'ptrace': 117, 'userfaultfd': 282, 'bpf': 280, 'io_uring_setup': 425,
                       'keyctl': 219, 'perf_event_open': 241, 'unshare': 97, 'mount': 40}}
table = numbers.get(os.uname().machine, {})
for name, args in calls.items():
    if name in table and SECCOMP:
        ctypes.set_errno(0)
        result = libc.syscall(table[name], *args)
        if result >= 0 or ctypes.get_errno() != errno.EPERM:
            leak(f'{name} was not denied (errno {ctypes.get_errno()})')""", LIBC),
        "minimal /dev; pivot_root; uid 65534; seccomp filter; cgroup namespace"),
}


def sources(secret_path: Path, unprivileged: bool = PROTECTIONS["runs_as_non_root"]
            ) -> dict[str, str]:
    fill = {"SECRET_PATH": repr(str(secret_path)),
            "DISK_LIMITED": str(PROTECTIONS["disk_limit"]),
            "UNPRIVILEGED": str(unprivileged),
            "SECCOMP": str(PROTECTIONS["seccomp_filter"]),
            "CGROUPNS": str(PROTECTIONS["cgroup_namespace"])}
    out = {}
    for name, attack in ATTACKS.items():
        source = attack.source
        for key, value in fill.items():
            source = source.replace(key, value)
        out[name] = source
    return out


@pytest.fixture(scope="module")
def problem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("attacked") / "attacked"
    folder.mkdir()
    (folder / "evaluator.py").write_text(EVALUATOR)
    (folder / "README.md").write_text("Predict the next value of the series.\n")
    (folder / "initial_program.py").write_text(
        f"# EVOLVE-BLOCK-START\n{HONEST}# EVOLVE-BLOCK-END\n")
    limits = (f"{{timeout_s: {TIMEOUT_S}, memory_mb: {MEMORY_MB}, disk_mb: {DISK_MB}, "
              f"output_bytes: 1000000}}")
    (folder / "problem.yaml").write_text(
        "name: attacked\ndescription: adversarial candidates\n"
        f"evaluator: evaluator.py:evaluate\ndefaults:\n  evaluation:\n    limits: {limits}\n")
    return folder


@pytest.fixture(scope="module")
def secret_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("host-secret") / "credentials"
    path.write_text(f"{SECRET}\nOPENAI_API_KEY={FAKE_KEY}\n")
    return path


@pytest.fixture(autouse=True)
def key_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A key in the trusted side's environment (inherited by its workers) to be stolen."""
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)


def shm_segments() -> set[str]:
    lines = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    return {line.split()[1] for line in lines if line.strip()}


@pytest.fixture
def no_leftovers(tmp_path_factory: pytest.TempPathFactory,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Sandboxes made meanwhile (here, in `adrs eval` and in workers) use a temporary
    directory of their own, which must be empty afterwards."""
    import tempfile

    scratch = tmp_path_factory.mktemp("scratch")
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    shm = shm_segments()
    yield
    STANDBY.drain()
    assert SWEEPER.flush()
    assert shm_segments() <= shm, "a SysV shared memory segment outlived its sandbox"
    assert list(scratch.iterdir()) == [], "a sandbox working directory was left behind"


def assert_clean(text: str) -> None:
    for needle in ("LEAK:", FAKE_KEY, SECRET):
        assert needle not in text, f"{needle!r} in {text[:2000]!r}"


# --------------------------------------------------------------------------- adrs eval
@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_through_adrs_eval(name: str, problem: Path, secret_path: Path,
                                  tmp_path: Path, no_leftovers: None) -> None:
    program = tmp_path / "attack.py"
    program.write_text(sources(secret_path)[name])
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "adrs", "eval", str(problem), str(program),
                           "--json"], capture_output=True, text=True,
                          timeout=TIMEOUT_S + 60)
    elapsed = time.monotonic() - started
    assert proc.returncode in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    result = json.loads(proc.stdout)
    assert_clean(proc.stdout + proc.stderr)
    assert result["valid"] is False or 5.0 <= result["metrics"]["abs_error"] <= 6.0, result
    # Start-up of the interpreter and of adrs included, within the limit plus 10 s.
    assert elapsed <= TIMEOUT_S + 10 + 5, f"{name} took {elapsed:.1f} s"


@pytest.fixture
def popen_path() -> Iterator[None]:
    STANDBY.drain()
    ZYGOTE_CLIENT.enabled = False
    yield
    ZYGOTE_CLIENT.enabled = True


def test_every_attack_on_the_popen_path(problem: Path, secret_path: Path, popen_path: None,
                                        no_leftovers: None) -> None:
    """The fallback path (an interpreter per sandbox under unshare and prlimit) holds too;
    only the uid differs there as root (see docs/evaluation.md)."""
    limits = Limits(timeout_s=TIMEOUT_S, memory_mb=MEMORY_MB, disk_mb=DISK_MB)
    unprivileged = os.geteuid() != 0
    for name, source in sources(secret_path, unprivileged).items():
        started = time.monotonic()
        result = run_job(EvalJob(str(problem), "evaluator.py:evaluate", source, limits))
        assert time.monotonic() - started <= TIMEOUT_S + 10, name
        assert_clean(json.dumps(result.to_json()))
        assert not result.valid or 5.0 <= float(result.metrics["abs_error"]) <= 6.0, name


@pytest.mark.parametrize("bomb", ["reply frame of 60 million one-byte items",
                                  "reply frame of 60 million items behind the ok head"])
def test_the_reply_bomb_costs_the_trusted_side_little(problem: Path, tmp_path: Path,
                                                      bomb: str) -> None:
    """Peak RSS of the trusted process while it refuses a 60 MB frame of 60 M items, on
    the generic decoder and on the shortcut for {"ok": value}."""
    program = tmp_path / "bomb.py"
    program.write_text(sources(tmp_path)[bomb])
    script = (
        "import json, resource, sys\n"
        "from adrs.evaluation.runner import EvalJob, run_job\n"
        "from adrs.sandbox.candidate import Limits\n"
        f"job = EvalJob({str(problem)!r}, 'evaluator.py:evaluate', open(sys.argv[1]).read(),"
        f" Limits(timeout_s={TIMEOUT_S}, memory_mb={MEMORY_MB}))\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "result = run_job(job)\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(json.dumps({'error': result.error, 'base_kb': base, 'peak_kb': peak}))\n")
    proc = subprocess.run([sys.executable, "-c", script, str(program)], capture_output=True,
                          text=True, timeout=120)
    report = json.loads(proc.stdout)
    print(f"trusted side: {report['base_kb'] >> 10} MB before, {report['peak_kb'] >> 10} MB "
          "peak while refusing the bomb")
    assert "cannot be decoded" in report["error"] and "items" in report["error"]
    assert report["peak_kb"] - report["base_kb"] < 200 << 10  # the frame (60 MB) and change


# ---------------------------------------------------------------------- a whole run
class AttackMutator:
    """Proposes the attacks in order, one per candidate, then honest programs."""

    def __init__(self, programs: list[tuple[str, str]]) -> None:
        self.programs = programs

    async def propose(self, ctx: ProposalContext) -> Proposal:
        index = ctx.candidate_id - 1
        name, source = self.programs[index] if index < len(self.programs) else (
            f"honest {index}", HONEST)
        code = f"# EVOLVE-BLOCK-START\n{source}# EVOLVE-BLOCK-END\n"
        return Proposal(code=code, edit_kind="rewrite", prompt=None, response=name)


def test_attacks_through_a_real_run(problem: Path, secret_path: Path, tmp_path: Path,
                                    no_leftovers: None) -> None:
    programs = list(sources(secret_path).items())
    iterations = len(programs) + 3
    config = resolve([("test", {
        "stop": {"iterations": iterations},
        "evaluation": {"backend": "local", "workers": 2,
                       "limits": {"timeout_s": TIMEOUT_S, "memory_mb": MEMORY_MB,
                                  "disk_mb": DISK_MB}}})])
    run_dir = tmp_path / "run"
    summary = start_run(str(problem), config, run_dir, [], mutator=AttackMutator(programs),
                        backend=LocalBackend(2))
    assert summary.reason == "iterations" and summary.candidates == iterations
    store = RunStore.open(run_dir, readonly=True)
    try:
        records = list(store.records())
    finally:
        store.close()
    assert [r.id for r in records] == list(range(iterations))
    by_name = {r.response: r for r in records if r.response}
    for name in ATTACKS:
        result = by_name[name].result
        assert result is not None, name
        print(f"{name}: valid={result.valid} error={(result.error or '')[:90]!r} "
              f"stderr={result.stderr.strip()!r}")  # pytest -s: the table of the note
        assert not result.valid or 5.0 <= float(result.metrics["abs_error"]) <= 6.0, name
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert_clean(path.read_bytes().decode("utf-8", "replace"))

"""The Ray backend: workers survive candidates, tasks never retry, concurrency is bounded."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from adrs.config.run_config import EvaluationConfig, RunConfig, resolve
from adrs.evaluation.ray_backend import RayBackend
from adrs.evaluation.runner import EvalJob
from adrs.sandbox.candidate import Limits
from adrs.sandbox.isolation import protections
from adrs.store.database import RunStore

pytestmark = [pytest.mark.timeout(180), pytest.mark.usefixtures("ray_cluster")]

REPO = Path(__file__).resolve().parents[2]
LIMITS = Limits(timeout_s=20.0, memory_mb=1024)
PID_EVALUATOR = """import os, time

def evaluate(candidate):
    start = time.time()
    candidate.call("f")
    return {"score": 1.0, "metrics": {"pid": os.getpid(), "start": start, "end": time.time()}}
"""
# A fault of the system (the evaluator kills its own worker), logged once per attempt.
KILLER_EVALUATOR = """import os

def evaluate(candidate):
    with open(os.environ["ADRS_TEST_LOG"], "a") as log:
        log.write("attempt\\n")
    os._exit(9)
"""


def test_crashing_candidates_do_not_kill_the_worker(tmp_path: Path) -> None:
    (tmp_path / "pid.py").write_text(PID_EVALUATOR)
    backend = RayBackend(2)
    try:
        probe = EvalJob(str(tmp_path), "pid.py:evaluate", "def f():\n    return 1\n", LIMITS)
        pid = int(backend.submit(probe).result(timeout=60).metrics["pid"])
        crashes = ["import ctypes\ndef f():\n    ctypes.string_at(0)\n",
                   "import os\ndef f():\n    os._exit(1)\n",
                   "import os, signal\ndef f():\n    os.kill(os.getppid(), signal.SIGKILL)\n"
                   "    os.kill(1, signal.SIGKILL)\n    os.kill(0, signal.SIGKILL)\n"]
        results = [backend.submit(EvalJob(str(tmp_path), "pid.py:evaluate", source, LIMITS))
                   .result(timeout=60) for source in crashes]
    finally:
        backend.close()
    # The third kills what it can reach: its parent, pid 1 and its process group. In its
    # own pid namespace it is pid 1 itself, and a namespace's init ignores its own
    # signals (adrs/sandbox/child.py): it returns; without one, it kills itself.
    assert [r.valid for r in results] == [False, False, protections()["pid_namespace"]]
    assert "SIGSEGV" in (results[0].error or "")
    assert "exited with code 1" in (results[1].error or "")
    os.kill(pid, 0)  # the Ray worker that evaluated the probe is still alive


def test_tasks_are_not_retried(tmp_path: Path) -> None:
    import ray

    from adrs.evaluation import ray_backend

    (tmp_path / "killer.py").write_text(KILLER_EVALUATOR)
    log = tmp_path / "attempts.log"
    # The backend's own remote function; a runtime env only to tell the evaluator the log
    # (Ray would retry a task whose worker died up to 3 times by default).
    remote = ray_backend._remote(ray).options(runtime_env={
        "env_vars": {"ADRS_TEST_LOG": str(log)}})
    job = EvalJob(str(tmp_path), "killer.py:evaluate", "x = 1\n", LIMITS)
    with pytest.raises(ray.exceptions.RayError):
        ray.get(remote.remote(job), timeout=120)
    assert log.read_text().split() == ["attempt"]


def test_concurrency_is_bounded_by_workers(tmp_path: Path) -> None:
    (tmp_path / "pid.py").write_text(PID_EVALUATOR)
    nap = "import time\ndef f():\n    time.sleep(0.3)\n"
    backend = RayBackend(1)
    try:
        futures = [backend.submit(EvalJob(str(tmp_path), "pid.py:evaluate", nap, LIMITS))
                   for _ in range(3)]
        results = [future.result(timeout=60) for future in futures]
    finally:
        backend.close()
    windows = sorted((float(r.metrics["start"]), float(r.metrics["end"])) for r in results)
    assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(windows))


# Logs the pid of each process that imports it, next to itself (Ray workers get no test
# environment); sleeps at import when told to by a file next to it.
IMPORT_LOGGER = """import os, pathlib, time
HERE = pathlib.Path(__file__).parent
with (HERE / "imports.log").open("a") as log:
    log.write(f"{os.getpid()}\\n")
if (HERE / "slow").exists():
    time.sleep(float((HERE / "slow").read_text()))

def evaluate(candidate):
    return {"score": 1.0}
"""


def test_prepare_readies_as_many_ray_workers_as_slots_and_returns_when_they_are(
        tmp_path: Path) -> None:
    (tmp_path / "logger.py").write_text(IMPORT_LOGGER)
    backend = RayBackend(2)
    try:
        backend.prepare(EvalJob(str(tmp_path), "logger.py:evaluate", "x = 1\n", LIMITS),
                        threading.Event())
        pids = (tmp_path / "imports.log").read_text().split()
    finally:
        backend.close()
    assert len(pids) == 2 and len(set(pids)) == 2  # one task per slot, at once


def test_prepare_returns_soon_after_stop_even_while_workers_are_not_ready(
        tmp_path: Path) -> None:
    (tmp_path / "logger.py").write_text(IMPORT_LOGGER)
    (tmp_path / "slow").write_text("8")
    stop = threading.Event()
    backend = RayBackend(1)
    try:
        threading.Timer(0.5, stop.set).start()
        started = time.monotonic()
        backend.prepare(EvalJob(str(tmp_path), "logger.py:evaluate", "x = 1\n", LIMITS),
                        stop)
        assert time.monotonic() - started < 4.0
    finally:
        backend.close()


def test_ray_is_the_default_backend_and_address_needs_it() -> None:
    assert RunConfig().evaluation.backend == "ray"
    assert EvaluationConfig(ray_address="auto").ray_address == "auto"
    with pytest.raises(Exception, match="'ray_address' needs backend 'ray'"):
        resolve([("cli", {"evaluation": {"backend": "local", "ray_address": "auto"}})])


# Where an earlier `ray start` or the environment points: the embedded Ray must ignore it.
BOGUS_RAY_ADDRESS = "127.0.0.1:1"


SLOW_PID_EVALUATOR = """
import os
import time

_scaffolded = evaluate


def evaluate(candidate):
    time.sleep(0.15)
    result = _scaffolded(candidate)
    result.setdefault("metrics", {})["ppid"] = os.getppid()
    return result
"""


def test_adrs_run_uses_an_embedded_ray_by_default(tmp_path: Path) -> None:
    """The default backend starts its own local Ray, whatever RAY_ADDRESS says, and
    nothing but adrs's own lines reach the terminal (no Ray notices on stderr). With no
    start delay, Ray comes up while the first candidates run in workers forked from the
    adrs process (its pid is their parent's, in the evaluator's metrics) and takes the
    later ones (a Ray worker, whose parent is Ray's)."""
    temp = Path(tempfile.mkdtemp(prefix="adrs-test-", dir="/tmp"))  # short: Ray's sockets
    env = {**os.environ, "RAY_ADDRESS": BOGUS_RAY_ADDRESS, "TMPDIR": str(temp)}
    env.pop("ADRS_DEBUG", None)
    adrs = [sys.executable, "-m", "adrs"]
    subprocess.run([*adrs, "problems", "new", "slow", "--dir", str(tmp_path)], check=True,
                   capture_output=True, env=env)
    problem = tmp_path / "slow"
    with (problem / "evaluator.py").open("a") as evaluator:
        evaluator.write(SLOW_PID_EVALUATOR)
    config = tmp_path / "c.yaml"
    config.write_text("evaluation: {ray_start_delay_s: 0}\nstop: {iterations: 200}\n")
    proc = subprocess.Popen([*adrs, "run", str(problem), "-c", str(config),
                             "--run-dir", str(tmp_path / "r")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    out, err = proc.communicate(timeout=200)
    assert proc.returncode == 0, err
    assert "200 candidates" in out
    assert "backend: ray" in (tmp_path / "r" / "config.yaml").read_text()
    assert err == ""
    assert all(line.startswith(("adrs: ", "run folder: ", "candidates ", "new best ",
                                "stopped: ", "best score ")) for line in
               out.splitlines()), out
    store = RunStore.open(tmp_path / "r", readonly=True)
    try:
        parents = [r.result.metrics["ppid"] for r in store.records()
                   if r.result and r.result.valid]
    finally:
        store.close()
    assert parents[0] == proc.pid  # before Ray was up: a worker forked by adrs
    assert any(pid != proc.pid for pid in parents), "Ray never took a candidate"
    # The Ray workers, killed at exit, kept standby sandboxes: their folders are gone too.
    assert not [p.name for p in temp.iterdir() if p.name.startswith("adrs-sandbox-")]
    shutil.rmtree(temp, ignore_errors=True)


EMBEDDED = """import sys
from pathlib import Path
from adrs.evaluation.ray_backend import RayBackend
from adrs.evaluation.runner import EvalJob
from adrs.sandbox.candidate import Limits

root = Path(sys.argv[1])
with RayBackend(1) as backend:
    job = EvalJob(str(root), "adrs.evaluators.toy:evaluate",
                  (root / "initial_program.py").read_text(), Limits(timeout_s=20))
    print("valid", backend.submit(job).result(timeout=60).valid)
"""


def test_the_embedded_backend_ignores_ray_address() -> None:
    """... and, closed, leaves no working directory of its killed workers' standbys."""
    temp = Path(tempfile.mkdtemp(prefix="adrs-test-", dir="/tmp"))  # short: Ray's sockets
    env = {**os.environ, "RAY_ADDRESS": BOGUS_RAY_ADDRESS, "TMPDIR": str(temp)}
    env.pop("ADRS_DEBUG", None)
    proc = subprocess.run([sys.executable, "-c", EMBEDDED, str(REPO / "problems" / "toy")],
                          capture_output=True, text=True, timeout=150, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["valid", "True"]
    assert proc.stderr == ""  # Ray's notices and native log lines stay off the terminal
    assert not [p.name for p in temp.iterdir() if p.name.startswith("adrs-sandbox-")]
    shutil.rmtree(temp, ignore_errors=True)


def test_ray_address_with_another_backend_is_a_usage_error(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "adrs", "run", "toy", "--backend", "local",
                           "--ray-address", "auto", "--run-dir", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "'ray_address' needs backend 'ray'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# Logs each attempt, then loses its worker (a fault of the system: the process is gone) or
# runs a candidate that crashes its sandbox (a fault of the candidate: an invalid result).
FAULT_EVALUATOR = """import os

def evaluate(candidate, options):
    with open(options["log"], "a") as log:
        log.write("attempt\\n")
    if options["lose_worker"]:
        os._exit(9)
    return {"score": candidate.call("f")}
"""


def _fault_job(root: Path, log: Path, source: str, *, lose_worker: bool) -> EvalJob:
    return EvalJob(str(root), "fault.py:evaluate", source, LIMITS,
                   options={"log": str(log), "lose_worker": lose_worker})


def test_system_faults_are_retried_a_bounded_number_of_times(tmp_path: Path) -> None:
    import ray

    (tmp_path / "fault.py").write_text(FAULT_EVALUATOR)
    log = tmp_path / "attempts.log"
    backend = RayBackend(1, system_retries=2)
    try:
        future = backend.submit(_fault_job(tmp_path, log, "def f():\n    return 1.0\n",
                                           lose_worker=True))
        with pytest.raises(ray.exceptions.WorkerCrashedError):
            future.result(timeout=150)
    finally:
        backend.close()
    assert log.read_text().split() == ["attempt"] * 3  # the first and two retries


def test_candidate_faults_are_never_retried(tmp_path: Path) -> None:
    (tmp_path / "fault.py").write_text(FAULT_EVALUATOR)
    log = tmp_path / "attempts.log"
    backend = RayBackend(1, system_retries=2)
    try:
        crash = "import os\ndef f():\n    os._exit(3)\n"
        result = backend.submit(_fault_job(tmp_path, log, crash, lose_worker=False)) \
            .result(timeout=60)
    finally:
        backend.close()
    assert not result.valid and "exited with code 3" in (result.error or "")
    assert log.read_text().split() == ["attempt"]


def test_workers_auto_off_a_cluster_is_this_machines_cpus(tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    proc = subprocess.run([sys.executable, "-m", "adrs", "run", "toy", "--backend", "thread",
                           "--workers", "auto", "--iterations", "3", "--run-dir",
                           str(run_dir)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    cpus = len(os.sched_getaffinity(0))
    assert f"workers: {cpus}\n" in (run_dir / "config.yaml").read_text()
    bad = subprocess.run([sys.executable, "-m", "adrs", "run", "toy", "--workers", "many"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "expected a number or 'auto'" in bad.stderr

"""adrs on a real multi-node Ray cluster on this machine (marker `ray_cluster`).

One cluster per module: a head and a worker node, each a `ray start --block` process in its
own session with its own --temp-dir, token authentication on (RAY_AUTH_MODE=token and a
fresh token in RAY_AUTH_TOKEN, the way Ray documents it; ~/.ray is never touched). adrs
runs as a subprocess with --ray-address. Stopping kills each node's session (never
`ray stop`, which would stop every Ray of this user, the test session's embedded one too).

The probe problem's evaluator wraps the toy evaluator and reports, as metrics, where it ran:
its node and the files it was loaded from, which prove that the problem folder and adrs
were shipped (they lie in the node's temp dir, not where the driver has them). Problem
option paths are not shipped: the attempt log named by an option is written at the same
path on every node. Starting the cluster takes ~10 s; the module ~40 s.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray_cluster, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).parent / "ray"
NODE_START_S = 60.0

PROBE_YAML = """name: ship-probe
description: The toy autoscaler, evaluated by an evaluator that reports where it ran.
evaluator: probe.py:evaluate
task: TASK.md
features:
  - {name: code_length, bins: 4}
options: {log: null, nap_s: 0.0}
defaults:
  evaluation: {limits: {timeout_s: 20}}
"""
PROBE_EVALUATOR = """import hashlib, os, time
from pathlib import Path

import adrs
import ray
from adrs.evaluators.toy import evaluate as toy

HERE = Path(__file__).resolve()


def evaluate(candidate, options):
    digest = hashlib.sha256(candidate.source.encode()).hexdigest()
    if options["log"]:
        with open(options["log"], "a") as log:
            log.write(f"{HERE} {digest}\\n")
    time.sleep(options["nap_s"])
    result = toy(candidate)
    result["metrics"] = {**result.get("metrics", {}),
                         "node": ray.get_runtime_context().get_node_id(),
                         "evaluator": str(HERE), "adrs": adrs.__file__,
                         "data": (HERE.parent / "data.txt").read_text().strip()}
    return result
"""


class Node:
    """One `ray start --block` process, the leader of its own session."""

    def __init__(self, temp_dir: Path, args: list[str], env: dict[str, str]) -> None:
        self.temp_dir = temp_dir
        self.out = temp_dir / "start.out"
        with self.out.open("wb") as out:
            self.process = subprocess.Popen(
                [str(RAY), "start", "--block", "--disable-usage-stats", "--temp-dir",
                 str(temp_dir), *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)

    def wait_started(self) -> None:
        deadline = time.monotonic() + NODE_START_S
        while "Ray runtime started" not in self.out.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray start failed:\n{self.out.read_text()[-2000:]}")
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL every process of the node's session (raylet, workers, agents ...)."""
        sid = self.process.pid
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.getsid(int(entry.name)) == sid:
                        os.kill(int(entry.name), signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        self.process.wait(timeout=30)


class Cluster:
    """A head and worker nodes on this machine, token authentication on."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(16)
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token,
                    "RAY_USAGE_STATS_ENABLED": "0",
                    # a lost node is declared dead after ~3 s, not ~15 s
                    "RAY_health_check_period_ms": "1000",
                    "RAY_health_check_failure_threshold": "3"}
        for name in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH", "ADRS_DEBUG"):
            self.env.pop(name, None)
        self.nodes: list[Node] = []

    def start(self, workers: int) -> None:
        self.add(["--head", "--port", str(self.port), "--num-cpus", "1",
                  "--include-dashboard=false"])
        for _ in range(workers):
            self.add(["--address", self.address, "--num-cpus", "1"])

    def add(self, args: list[str]) -> Node:
        node = Node(Path(tempfile.mkdtemp(prefix="adrs-rc-", dir="/tmp")), args, self.env)
        self.nodes.append(node)
        node.wait_started()
        return node

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.kill()
            shutil.rmtree(node.temp_dir, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if not RAY.is_file():
        pytest.skip(f"no `ray` command next to {sys.executable}: cannot run `ray start`")
    cluster = Cluster()
    try:
        try:
            cluster.start(workers=1)
        except (OSError, RuntimeError) as exc:
            pytest.skip(f"`ray start` is unavailable here: {exc}")
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def probe(tmp_path: Path) -> Path:
    """The probe problem, in a folder of this test only."""
    root = tmp_path / "ship-probe"
    root.mkdir()
    toy = REPO / "problems" / "toy"
    shutil.copy(toy / "initial_program.py", root)
    shutil.copy(toy / "TASK.md", root)
    (root / "problem.yaml").write_text(PROBE_YAML)
    (root / "probe.py").write_text(PROBE_EVALUATOR)
    (root / "data.txt").write_text("shipped\n")
    return root


def _adrs(cluster: Cluster, *args: str, env: dict[str, str] | None = None,
          timeout: float = 150) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "adrs", "run", *args, "--ray-address",
                           cluster.address], capture_output=True, text=True,
                          timeout=timeout, env=env or cluster.env)


def _rows(run_dir: Path) -> list[sqlite3.Row]:
    with sqlite3.connect(run_dir / "candidates.sqlite") as db:
        db.row_factory = sqlite3.Row
        return list(db.execute("SELECT * FROM candidates ORDER BY id"))


def _metrics(row: sqlite3.Row) -> dict[str, object]:
    return dict(json.loads(row["result"])["metrics"])


def _evaluated(rows: list[sqlite3.Row]) -> list[sqlite3.Row]:
    return [row for row in rows if row["result"] is not None and row["duplicate_of"] is None]


def test_candidates_run_on_every_node_from_shipped_code(cluster: Cluster, probe: Path,
                                                        tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    started = time.monotonic()
    proc = _adrs(cluster, str(probe), "--iterations", "12", "--workers", "auto",
                 "--option", "nap_s=0.3", "--run-dir", str(run_dir))
    print(f"\n12 candidates on a {len(cluster.nodes)}-node cluster: "
          f"{time.monotonic() - started:.1f} s (adrs run, Ray join included)")
    assert proc.returncode == 0, proc.stderr
    assert "workers: 2" in (run_dir / "config.yaml").read_text()  # auto: the cluster's CPUs
    evaluated = _evaluated(_rows(run_dir))
    assert sum(row["valid"] for row in evaluated) >= len(evaluated) // 2  # sandboxes work
    metrics = [_metrics(row) for row in evaluated]
    assert len({m["node"] for m in metrics}) == len(cluster.nodes) == 2
    temp_dirs = [str(node.temp_dir) for node in cluster.nodes]
    for m in metrics:  # the evaluator and adrs were loaded from the nodes' shipped copies
        for key in ("evaluator", "adrs"):
            path = str(m[key])
            assert path.startswith(tuple(temp_dirs)) and "runtime_resources" in path, path
            assert not path.startswith(str(probe)) and not path.startswith(str(REPO))
        assert m["data"] == "shipped"


def test_a_lost_node_loses_no_candidate(cluster: Cluster, probe: Path,
                                        tmp_path: Path) -> None:
    doomed = cluster.add(["--address", cluster.address, "--num-cpus", "1"])
    log = tmp_path / "attempts.log"  # an option path: the same path on every node
    run_dir = tmp_path / "run"
    # No re-evaluation of new bests: each candidate's attempts are then only the lost
    # evaluation and its retry (a re-evaluation is another attempt, of the system's choosing).
    config = tmp_path / "no-reevaluation.yaml"
    config.write_text("evaluation: {reevaluate: {count: 0}}\n")
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "adrs", "run", str(probe), "-c", str(config), "--iterations",
         "14", "--workers", "3", "--ray-address", cluster.address, "--run-dir", str(run_dir),
         "--option", f"log={log}", "--option", "nap_s=1.0"],
        env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lost = _wait_for_attempt(log, doomed.temp_dir, proc)
        doomed.kill()
        cluster.nodes.remove(doomed)
        shutil.rmtree(doomed.temp_dir, ignore_errors=True)
        _, err = proc.communicate(timeout=150)
    finally:
        if proc.poll() is None:
            proc.kill()
    print(f"\nnode killed mid-run; run finished in {time.monotonic() - started:.1f} s, "
          f"rc {proc.returncode}; stderr: {err.strip()}")
    assert proc.returncode == 0, err
    assert "evaluating the candidate again" in err
    rows = _rows(run_dir)
    assert len(rows) == 14 and all(row["status"] != "pending" for row in rows)
    evaluated = _evaluated(rows)
    hashes = Counter(row["code_hash"] for row in evaluated)
    assert max(hashes.values()) == 1  # no candidate evaluated twice in the store
    attempts = Counter(line.split()[1] for line in log.read_text().splitlines())
    assert attempts[lost] == 2  # the lost evaluation ran again, elsewhere, once
    by_digest = {_digest(row["code"]): row for row in evaluated}
    assert by_digest[lost]["result"] is not None  # ... and its result is stored, once


def _digest(code: str) -> str:
    import hashlib

    return hashlib.sha256(code.encode()).hexdigest()


def _wait_for_attempt(log: Path, temp_dir: Path, proc: subprocess.Popen[str]) -> str:
    """The digest of the first candidate that started on the node of `temp_dir`."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        for line in log.read_text().splitlines() if log.exists() else []:
            path, digest = line.split()
            if path.startswith(str(temp_dir)):
                return digest
        time.sleep(0.1)
    raise AssertionError(f"no candidate started on the doomed node (rc {proc.poll()})")


def test_a_wrong_token_is_one_line_naming_the_fix(cluster: Cluster, tmp_path: Path) -> None:
    env = {**cluster.env, "RAY_AUTH_TOKEN": secrets.token_hex(16),
           "RAY_NUM_REDIS_GET_RETRIES": "2"}  # Ray gives up after ~2 s, not 20
    proc = _adrs(cluster, "toy", "--iterations", "2", "--run-dir", str(tmp_path / "r"),
                 env=env, timeout=90)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("adrs: ")]
    assert errors == [errors[0]] and "refused this process's authentication token" in \
        errors[0] and "RAY_AUTH_TOKEN" in errors[0], proc.stderr

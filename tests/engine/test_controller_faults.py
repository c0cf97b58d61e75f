"""Faults while proposing or evaluating: every launched candidate is stored, the run ends
"error: ...", and resume continues after the stored ids (toy problem, real evaluations)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from adrs.config.run_config import RunConfig, dump, resolve
from adrs.engine.archive import Archive
from adrs.engine.controller import Controller, RunSummary
from adrs.errors import UserError
from adrs.evaluation.backends import ThreadBackend
from adrs.evaluation.runner import EvalJob
from adrs.llm.client import LLMRejected
from adrs.llm.mutator import LLMMutator, LLMRequest, ScriptedClient
from adrs.problem.spec import Problem, load_problem
from adrs.run.session import resume_run, start_run
from adrs.store.database import DB_NAME, CandidateRecord, RunStore
from adrs.store.events import CandidateLaunched, Event, RunStopped
from adrs.types import EvalResult

REPO = Path(__file__).resolve().parents[2]
MARGIN = re.compile(r"^MARGIN = (.*)$", re.MULTILINE)
HEADROOM = re.compile(r"^HEADROOM = .*$", re.MULTILINE)
WORKERS = 2
DEPTH = 3 + WORKERS  # proposals in flight + evaluations


def code_for(problem: Problem, cid: int) -> str:
    """A distinct, valid program per candidate: MARGIN encodes the candidate id."""
    code = HEADROOM.sub("HEADROOM = 1.2", problem.initial_code)
    return MARGIN.sub(f"MARGIN = {cid / 1000}", code)


def candidate_of(source: str) -> int:
    found = MARGIN.search(source)
    assert found is not None
    return round(float(found.group(1)) * 1000)


def mutator(problem: Problem, config: RunConfig, same_as: dict[int, int] | None = None,
            raises: dict[int, Exception] | None = None) -> LLMMutator:
    """Proposes code_for(id), or another id's code (`same_as`), or raises (`raises`)."""
    def reply(request: LLMRequest) -> str:
        cid = request.candidate_id
        if raises and cid in raises:
            raise raises[cid]
        return f"```python\n{code_for(problem, (same_as or {}).get(cid, cid))}```"
    return LLMMutator(ScriptedClient(reply), config.llm)


class FaultyBackend:
    """Real evaluations after a random delay; chosen candidates' futures fail instead.

    `faults` maps a candidate id to the exception its evaluation raises (after
    `fault_delay_s`), or to "cancel" for a future the backend cancels itself.
    """

    def __init__(self, faults: dict[int, Callable[[], Exception] | str] | None = None,
                 delay_s: float = 0.05, fault_delay_s: float = 0.0) -> None:
        self.inner, self.workers = ThreadBackend(WORKERS), WORKERS
        self.faults, self.delay_s, self.fault_delay_s = faults or {}, delay_s, fault_delay_s
        self.submitted: list[int] = []
        self._lock = threading.Lock()

    def submit(self, job: EvalJob) -> concurrent.futures.Future[EvalResult]:
        cid = candidate_of(job.source)
        with self._lock:
            self.submitted.append(cid)
        fault = self.faults.get(cid)
        if fault == "cancel":
            cancelled: concurrent.futures.Future[EvalResult] = concurrent.futures.Future()
            cancelled.cancel()
            return cancelled
        delay = random.random() * self.delay_s  # unseeded on purpose: timing must not matter

        def work() -> EvalResult:
            if callable(fault):
                time.sleep(self.fault_delay_s)
                raise fault()
            time.sleep(delay)
            return self.inner.submit(job).result()

        pool = concurrent.futures.ThreadPoolExecutor(1)
        future = pool.submit(work)
        pool.shutdown(wait=False)
        return future

    def close(self) -> None:
        self.inner.close()


def crash(cid: int) -> Callable[[], Exception]:
    return lambda: RuntimeError(f"worker crashed on candidate {cid}")


@pytest.fixture(scope="module")
def toy() -> Problem:
    return load_problem("toy")


def config_for(iterations: int, deterministic: bool = True) -> RunConfig:
    return resolve([("test", {"seed": 7, "deterministic": deterministic,
                              "stop": {"iterations": iterations},
                              "archive": {"islands": 2, "migration_interval": 10},
                              "llm": {"proposals_in_flight": 3},
                              "evaluation": {"workers": WORKERS}})])


class Run:
    """A controller on a fresh store, with the events it emitted and the summary."""

    def __init__(self, tmp: Path, problem: Problem, config: RunConfig, backend: Any,
                 proposer: Any = None) -> None:
        self.events: list[Event] = []
        self.store = RunStore.create(tmp, dump(config), {"problem": problem.name})
        self.controller = Controller(
            problem=problem, config=config, store=self.store,
            mutator=proposer or mutator(problem, config), backend=backend,
            archive=Archive(config.archive, seed=config.seed), observers=[self.events.append])

    def run(self) -> RunSummary:
        try:
            return asyncio.run(self.controller.run())
        finally:
            self.records = list(self.store.records())
            self.store.close()

    def launched(self) -> list[int]:
        return [e.id for e in self.events if isinstance(e, CandidateLaunched)]


def assert_no_gap(run: Run) -> dict[int, CandidateRecord]:
    ids = [r.id for r in run.records]
    assert ids == list(range(len(ids)))
    assert set(run.launched()) | {0} == set(ids)  # every launched id, and only those
    return {r.id: r for r in run.records}


def assert_fault(record: CandidateRecord, message: str) -> None:
    assert record.status == "evaluated" and record.code is not None
    assert record.result is not None and not record.result.valid
    assert record.result.error == f"system fault during evaluation: {message}"
    assert record.code_hash is None  # no verdict on the code: not a dedup target


@pytest.mark.parametrize("deterministic", [True, False])
def test_a_failed_evaluation_is_stored_and_ends_the_run_with_an_error(
        tmp_path: Path, toy: Problem, deterministic: bool) -> None:
    backend = FaultyBackend({3: crash(3)})
    run = Run(tmp_path / "r", toy, config_for(40, deterministic), backend)
    summary = run.run()
    assert summary.reason == "error: RuntimeError: worker crashed on candidate 3"
    by_id = assert_no_gap(run)
    assert_fault(by_id[3], "RuntimeError: worker crashed on candidate 3")
    # No launch after the fault was seen; those in flight were stored.
    assert 3 < len(by_id) <= 20
    others = [r for r in run.records if r.id != 3]
    assert all(r.status == "evaluated" and r.result is not None and r.result.valid
               for r in others)
    assert summary.candidates == len(by_id) and summary.valid == len(by_id) - 1
    stopped = [e for e in run.events if isinstance(e, RunStopped)]
    assert [e.reason for e in stopped] == [summary.reason]


@pytest.mark.parametrize("deterministic", [True, False])
def test_a_fault_of_the_last_candidate_is_not_reported_as_iterations(
        tmp_path: Path, toy: Problem, deterministic: bool) -> None:
    """The stop reason is already "iterations" when the last candidate is launched."""
    backend = FaultyBackend({7: crash(7)})
    run = Run(tmp_path / "r", toy, config_for(8, deterministic), backend)
    summary = run.run()
    assert summary.reason == "error: RuntimeError: worker crashed on candidate 7"
    by_id = assert_no_gap(run)
    assert sorted(by_id) == list(range(8))
    assert_fault(by_id[7], "RuntimeError: worker crashed on candidate 7")


@pytest.mark.parametrize("deterministic", [True, False])
def test_candidates_sharing_a_failed_evaluation_are_all_stored(
        tmp_path: Path, toy: Problem, deterministic: bool) -> None:
    """Candidate 4 proposes 3's code while 3 is being evaluated: both get the fault."""
    config = config_for(12, deterministic)
    backend = FaultyBackend({3: crash(3)}, fault_delay_s=0.3)
    run = Run(tmp_path / "r", toy, config, backend, mutator(toy, config, same_as={4: 3}))
    summary = run.run()
    assert summary.reason == "error: RuntimeError: worker crashed on candidate 3"
    assert backend.submitted.count(3) == 1  # 4 waited on 3's evaluation
    by_id = assert_no_gap(run)
    assert_fault(by_id[3], "RuntimeError: worker crashed on candidate 3")
    assert_fault(by_id[4], "RuntimeError: worker crashed on candidate 3")


def test_a_job_the_backend_cancels_is_a_fault(tmp_path: Path, toy: Problem) -> None:
    run = Run(tmp_path / "r", toy, config_for(20), FaultyBackend({2: "cancel"}))
    summary = run.run()
    reason = "RuntimeError: the evaluation backend cancelled the job"
    assert summary.reason == f"error: {reason}"
    assert_fault(assert_no_gap(run)[2], reason)


def test_a_fault_while_proposing_is_stored_as_a_failed_proposal(
        tmp_path: Path, toy: Problem) -> None:
    config = config_for(20)
    proposer = mutator(toy, config, raises={5: KeyError("models")})
    run = Run(tmp_path / "r", toy, config, FaultyBackend(), proposer)
    summary = run.run()
    assert summary.reason == "error: KeyError: 'models'"
    record = assert_no_gap(run)[5]
    assert record.status == "proposal_failed" and record.code is None
    assert record.error == "system fault during proposal: KeyError: 'models'"


@pytest.mark.parametrize("deterministic", [True, False])
def test_a_user_error_while_evaluating_stores_every_launched_candidate(
        tmp_path: Path, toy: Problem, deterministic: bool) -> None:
    """A bad problem option found by the evaluator: exit 2 as before, nothing lost."""
    bad_option = UserError("option 'trace': file 'x' does not exist")
    run = Run(tmp_path / "r", toy, config_for(30, deterministic),
              FaultyBackend({4: lambda: bad_option}))
    with pytest.raises(UserError) as raised:
        run.run()
    assert raised.value is bad_option
    by_id = assert_no_gap(run)
    assert len(by_id) > 4
    failed = by_id[4]
    assert failed.result is not None and failed.result.error == str(bad_option)
    stopped = [e for e in run.events if isinstance(e, RunStopped)]
    assert [e.reason for e in stopped] == [f"error: {bad_option}"]


def test_a_fault_of_the_initial_program_stores_nothing_and_resume_redoes_it(
        tmp_path: Path, toy: Problem) -> None:
    config = config_for(6)
    run = Run(tmp_path / "r", toy, config, FaultyBackend({0: crash(0)}))
    summary = run.run()
    assert summary.reason == "error: RuntimeError: worker crashed on candidate 0"
    assert run.records == [] and run.launched() == []
    store = RunStore.open(tmp_path / "r")
    again = Controller(problem=toy, config=config, store=store, mutator=mutator(toy, config),
                       backend=FaultyBackend(), archive=Archive(config.archive, seed=7))
    again.restore()
    try:
        assert asyncio.run(again.run()).reason == "iterations"
        assert [r.id for r in store.records()] == list(range(6))
    finally:
        store.close()


def test_resume_after_a_fault_continues_after_the_stored_ids(
        tmp_path: Path, toy: Problem) -> None:
    config = config_for(40)
    run_dir = tmp_path / "r"
    backend = FaultyBackend({3: crash(3)})
    summary = start_run("toy", config, run_dir, [], mutator(toy, config), backend)
    assert summary.reason == "error: RuntimeError: worker crashed on candidate 3"
    store = RunStore.open(run_dir)
    try:
        stored = store.count()
        assert store.meta("status") == "failed" and store.meta("stop_reason") == summary.reason
    finally:
        store.close()
    resumed = resume_run(run_dir, [], iterations=stored + 5, mutator=mutator(toy, config),
                         backend=FaultyBackend())
    assert resumed.reason == "iterations" and resumed.candidates == stored + 5
    store = RunStore.open(run_dir)
    try:
        assert [r.id for r in store.records()] == list(range(stored + 5))
        assert store.meta("status") == "finished"
    finally:
        store.close()


def test_a_user_error_mid_run_marks_the_run_failed(tmp_path: Path, toy: Problem) -> None:
    config = config_for(20)
    run_dir = tmp_path / "r"
    proposer = mutator(toy, config, raises={4: LLMRejected("the API key was rejected")})
    with pytest.raises(LLMRejected):
        start_run("toy", config, run_dir, [], proposer, FaultyBackend())
    store = RunStore.open(run_dir)
    try:
        assert store.meta("status") == "failed"
        assert store.meta("stop_reason") == "error: the API key was rejected"
        records = list(store.records())
        assert [r.id for r in records] == list(range(len(records))) and len(records) > 4
        assert records[4].status == "proposal_failed"
        assert records[4].error == "the API key was rejected"
    finally:
        store.close()


CRASHING_EVALUATOR = '''
import os
from adrs.evaluators.toy import evaluate as toy_evaluate

def evaluate(candidate):
    with open(os.environ["EVAL_COUNT"], "a+") as log:
        log.seek(0)
        count = len(log.read().split()) + 1
        log.write("x\\n")
    if count == int(os.environ["CRASH_AT"]):
        os._exit(1)  # the worker process dies: a fault of the system, not the candidate
    return toy_evaluate(candidate)
'''


def adrs(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "adrs", *args], capture_output=True,
                          text=True, timeout=120, env=env)


def test_cli_a_crashed_worker_exits_1_and_resume_continues(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    shutil.copytree(REPO / "problems" / "toy", folder)
    (folder / "evaluator.py").write_text(CRASHING_EVALUATOR)
    spec = (folder / "problem.yaml").read_text()
    (folder / "problem.yaml").write_text(spec.replace("adrs.evaluators.toy:evaluate",
                                                      "evaluator.py:evaluate"))
    run_dir = tmp_path / "r"
    env = {**os.environ, "EVAL_COUNT": str(tmp_path / "count"), "CRASH_AT": "4"}
    proc = adrs("run", str(folder), "--iterations", "30", "--run-dir", str(run_dir),
                "--backend", "local", "--workers", "2", env=env)
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("adrs: run failed: error: BrokenProcessPool"), proc.stderr
    assert "stopped: error: BrokenProcessPool" in proc.stdout
    db = sqlite3.connect(run_dir / DB_NAME)
    try:
        rows = db.execute("SELECT id, valid, result FROM candidates ORDER BY id").fetchall()
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    finally:
        db.close()
    ids = [i for (i, _, _) in rows]
    assert ids == list(range(len(ids))) and 3 < len(ids) < 30
    faulted = [i for (i, valid, result) in rows
               if not valid and "system fault during evaluation: BrokenProcessPool" in result]
    assert faulted and min(faulted) >= 1  # every evaluation in flight at the crash
    assert meta["status"] == "failed" and meta["stop_reason"].startswith("error: Broken")
    resumed = adrs("resume", str(run_dir), "--iterations", str(len(ids) + 4), env=env)
    assert resumed.returncode == 0, resumed.stderr
    db = sqlite3.connect(run_dir / DB_NAME)
    try:
        after = [i for (i,) in db.execute("SELECT id FROM candidates ORDER BY id")]
    finally:
        db.close()
    assert after == list(range(len(ids) + 4))

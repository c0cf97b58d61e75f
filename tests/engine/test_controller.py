"""The controller end to end on the toy problem, with real sandboxed evaluations."""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import re
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from adrs.config.run_config import RunConfig, dump, resolve
from adrs.engine.archive import Archive
from adrs.engine.controller import Controller, RunSummary
from adrs.engine.mutator import Mutator, OfflineMutator
from adrs.evaluation.backends import ThreadBackend
from adrs.evaluation.runner import EvalJob
from adrs.llm.mutator import LLMMutator, LLMRequest, ScriptedClient
from adrs.problem.spec import Problem, load_problem
from adrs.store.database import RunStore
from adrs.store.events import Event
from adrs.types import EvalResult, LLMUsage

HEADROOM = re.compile(r"^HEADROOM = .*$", re.MULTILINE)


class JitteryBackend:
    """Real evaluations, completed after a random delay so completion order varies."""

    def __init__(self, workers: int = 3) -> None:
        self.inner, self.workers = ThreadBackend(workers), workers
        self.jobs: list[str] = []
        self._lock = threading.Lock()

    def submit(self, job: EvalJob) -> concurrent.futures.Future[EvalResult]:
        with self._lock:
            self.jobs.append(job.source)
        delay = random.random() * 0.05  # unseeded on purpose: timing must not matter

        def slow() -> EvalResult:
            time.sleep(delay)
            return self.inner.submit(job).result()

        pool = concurrent.futures.ThreadPoolExecutor(1)
        future = pool.submit(slow)
        pool.shutdown(wait=False)
        return future

    def close(self) -> None:
        self.inner.close()


def rewrite_script(problem: Problem) -> ScriptedClient:
    """Deterministic replies per (candidate, attempt): rewrites, some garbage, some repeats."""
    def reply(request: LLMRequest) -> str:
        rng = random.Random(f"{request.candidate_id}:{request.attempt}")
        if request.candidate_id % 7 == 3 or rng.random() < 0.15:
            return "I am not sure what to change."
        value = round(rng.choice([1.0, 1.1, 1.2, 1.3, 1.4, 1.5]) + 0.01 * rng.randint(0, 3), 2)
        code = HEADROOM.sub(f"HEADROOM = {value}", problem.initial_code)
        return f"```python\n{code}```"
    return ScriptedClient(reply)


def make(tmp: Path, problem: Problem, config: RunConfig, mutator: Mutator,
         backend: Any, events: list[Event] | None = None) -> Controller:
    store = RunStore.create(tmp, dump(config), {"problem": problem.name})
    sink = events if events is not None else []
    return Controller(problem=problem, config=config, store=store, mutator=mutator,
                      backend=backend, archive=Archive(config.archive, seed=config.seed),
                      observers=[sink.append])


def run(controller: Controller) -> RunSummary:
    try:
        return asyncio.run(controller.run())
    finally:
        controller.store.close()


def fingerprint(controller: Controller) -> list[tuple[int, int, float, tuple[int, ...]]]:
    return [(p.island, p.id, p.score, controller.archive.bins_of(p))
            for i in range(controller.config.archive.islands)
            for p in controller.archive.elites(i)]


def records(run_dir: Path) -> list[tuple[Any, ...]]:
    store = RunStore.open(run_dir)
    try:
        return [(r.id, r.status, r.code, r.parent_ids, r.island, r.response,
                 r.result.score if r.result else None) for r in store.records()]
    finally:
        store.close()


@pytest.fixture(scope="module")
def toy() -> Problem:
    return load_problem("toy")


def config_for(llm: dict[str, Any] | None = None, **stop: Any) -> RunConfig:
    return resolve([("test", {"seed": 7, "stop": {"iterations": 40, **stop},
                              "archive": {"islands": 2, "migration_interval": 10},
                              "llm": {"proposals_in_flight": 3, **(llm or {})}})])


def test_same_seed_and_responses_give_the_same_archive(tmp_path: Path, toy: Problem) -> None:
    """A replay of the first run's sampling points (adrs/engine/schedule.py), other timing."""
    recording = str(tmp_path / "exchanges.jsonl")
    config = config_for({"record": recording})
    first = make(tmp_path / "a", toy, config, LLMMutator(rewrite_script(toy), config.llm),
                 JitteryBackend())
    config = config_for({"mode": "replay", "replay": recording})
    second = make(tmp_path / "b", toy, config, LLMMutator(rewrite_script(toy), config.llm),
                  JitteryBackend())
    run(first)
    run(second)
    assert fingerprint(first) == fingerprint(second)
    assert records(tmp_path / "a") == records(tmp_path / "b")
    statuses = {r[1] for r in records(tmp_path / "a")}
    assert statuses == {"evaluated", "duplicate", "proposal_failed"}


def test_a_different_seed_gives_a_different_run(tmp_path: Path, toy: Problem) -> None:
    config = config_for()
    a = make(tmp_path / "a", toy, config, OfflineMutator(), JitteryBackend())
    b = make(tmp_path / "b", toy, replace(config, seed=8), OfflineMutator(), JitteryBackend())
    run(a)
    run(b)
    assert records(tmp_path / "a") != records(tmp_path / "b")


def test_offline_mutator_beats_the_initial_program(tmp_path: Path, toy: Problem) -> None:
    config = config_for(iterations=80)
    controller = make(tmp_path / "r", toy, config, OfflineMutator(), JitteryBackend())
    summary = run(controller)
    initial = RunStore.open(tmp_path / "r").get(0)
    assert initial is not None and initial.result is not None
    assert summary.best is not None and initial.result.score is not None
    assert summary.best.score > initial.result.score + 2.0
    assert summary.candidates == 80 and summary.reason == "iterations"


def test_duplicates_are_never_evaluated_twice(tmp_path: Path, toy: Problem) -> None:
    code = HEADROOM.sub("HEADROOM = 1.25", toy.initial_code)
    client = ScriptedClient(lambda request: f"```python\n{code}```")
    config = config_for(iterations=12)
    backend = JitteryBackend()
    controller = make(tmp_path / "r", toy, config, LLMMutator(client, config.llm), backend)
    run(controller)
    # The initial program and the one distinct child, each once more as a new best
    # (adrs/engine/reevaluation.py: the toy is deterministic, so one probe each).
    assert len(backend.jobs) == 4 and len(set(backend.jobs)) == 2
    statuses = [r[1] for r in records(tmp_path / "r")]
    # Children of the child itself change nothing: those proposals fail instead.
    assert statuses.count("evaluated") == 2 and len(statuses) == 12
    assert statuses.count("duplicate") + statuses.count("proposal_failed") == 10
    # Candidates 1 .. depth start at once from the initial program: 2 .. depth duplicate 1.
    assert statuses.count("duplicate") >= config.pipeline_depth - 1


def test_resume_rebuilds_the_same_archive(tmp_path: Path, toy: Problem) -> None:
    config = config_for(iterations=30)
    live = make(tmp_path / "r", toy, config, OfflineMutator(), JitteryBackend())
    run(live)
    store = RunStore.open(tmp_path / "r")
    again = Controller(problem=toy, config=config, store=store, mutator=OfflineMutator(),
                       backend=JitteryBackend(), archive=Archive(config.archive, seed=7))
    again.restore()
    store.close()
    assert fingerprint(again) == fingerprint(live)
    assert again.counters.next_id == 30 and again.counters.applied == 30
    assert again.archive.stats() == live.archive.stats()


@pytest.mark.parametrize(("stop", "reason"), [
    ({"target_score": 0.0}, "target score"),
    ({"patience": 3}, "no improvement"),
    ({"budget_usd": 0.05}, "budget"),
])
def test_stop_conditions(tmp_path: Path, toy: Problem, stop: dict[str, Any],
                         reason: str) -> None:
    code = HEADROOM.sub("HEADROOM = 1.25", toy.initial_code)
    client = PricedClient(f"```python\n{code}```", cost=0.02)
    config = config_for(iterations=200, **stop)
    events: list[Event] = []
    controller = make(tmp_path / "r", toy, config, LLMMutator(client, config.llm),
                      JitteryBackend(), events)
    summary = run(controller)
    assert summary.reason == reason
    assert summary.candidates < 30
    if reason == "budget":
        # New proposals stop once the budget is reached; in-flight ones still finish, each
        # with its repair attempts (this bare mutator has no guard counting calls at once).
        calls = config.pipeline_depth * (1 + config.llm.repair_attempts)
        assert 0.05 <= summary.cost_usd <= 0.05 + 0.02 * calls


class PricedClient:
    def __init__(self, text: str, cost: float) -> None:
        self.text, self.cost = text, cost

    async def complete(self, request: LLMRequest) -> Any:
        from adrs.llm.mutator import LLMReply
        return LLMReply(self.text, LLMUsage(model="priced", cost_usd=self.cost, calls=1))


def test_invalid_initial_program_stops_the_run(tmp_path: Path, toy: Problem) -> None:
    broken = replace(toy, initial_code=toy.initial_code.replace("return level", "return -1 *"))
    controller = make(tmp_path / "r", broken, config_for(), OfflineMutator(), JitteryBackend())
    summary = run(controller)
    assert summary.reason.startswith("initial program invalid")
    assert summary.valid == 0 and summary.candidates == 1

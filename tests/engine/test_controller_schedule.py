"""Determinism without stalls: a slow LLM call holds back no launch, and the recorded
sampling points make a replay, or a killed run resumed, rebuild the same archive."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from test_controller import HEADROOM, JitteryBackend, fingerprint, records, run

from adrs.config.run_config import RunConfig, dump, resolve
from adrs.engine.archive import Archive
from adrs.engine.controller import Controller
from adrs.engine.schedule import points_path, read_points
from adrs.errors import UserError
from adrs.llm.mutator import LLMMutator, LLMReply, LLMRequest
from adrs.problem.spec import Problem, load_problem
from adrs.store.database import DB_NAME, RunStore
from adrs.store.events import CandidateEvaluated, CandidateLaunched, Event, Observer
from adrs.types import LLMUsage

SLOW_ID, SLOW_S = 3, 2.5


@pytest.fixture(scope="module")
def toy() -> Problem:
    return load_problem("toy")


class DelayedClient:
    """Scripted rewrites of the toy's HEADROOM (a function of the candidate only), each
    after a delay given per candidate; stamps when each reply is sent."""

    def __init__(self, problem: Problem, delays: dict[int, float], jitter_s: float = 0.0
                 ) -> None:
        self.problem, self.delays, self.jitter_s = problem, delays, jitter_s
        self.answered: dict[int, float] = {}

    async def complete(self, request: LLMRequest) -> LLMReply:
        cid = request.candidate_id
        # Unseeded jitter on purpose: the timing must not matter.
        await asyncio.sleep(self.delays.get(cid, 0.0) + random.random() * self.jitter_s)
        self.answered[cid] = time.monotonic()
        rng = random.Random(f"{cid}:{request.attempt}")
        value = round(1.0 + rng.randint(0, 60) / 100, 2)
        code = HEADROOM.sub(f"HEADROOM = {value}", self.problem.initial_code)
        return LLMReply(f"```python\n{code}```", LLMUsage(model="delayed", calls=1))


def build(tmp: Path, problem: Problem, config: RunConfig, client: DelayedClient,
          *observers: Observer) -> Controller:
    store = RunStore.create(tmp, dump(config), {"problem": problem.name})
    return Controller(problem=problem, config=config, store=store,
                      mutator=LLMMutator(client, config.llm), backend=JitteryBackend(2),
                      archive=Archive(config.archive, seed=config.seed), observers=observers)


def config_for(iterations: int, **llm: Any) -> RunConfig:
    # No re-evaluation of new bests: it holds applies back while launches go on, so the
    # killed run below would have launched everything before candidate 8 is applied.
    return resolve([("test", {"seed": 11, "stop": {"iterations": iterations},
                              "archive": {"islands": 2, "migration_interval": 5},
                              "llm": {"proposals_in_flight": 3, **llm},
                              "evaluation": {"workers": 2, "reevaluate": {"count": 0}}})])


def test_a_slow_call_holds_back_no_launch(tmp_path: Path, toy: Problem) -> None:
    config = config_for(16)
    client = DelayedClient(toy, {SLOW_ID: SLOW_S}, jitter_s=0.02)
    launched: dict[int, float] = {}

    def stamp(event: Event) -> None:
        if isinstance(event, CandidateLaunched):
            launched[event.id] = time.monotonic()

    controller = build(tmp_path / "r", toy, config, client, stamp)
    summary = run(controller)
    assert summary.candidates == 16 and summary.reason == "iterations"
    slow_done = client.answered[SLOW_ID]
    # Every candidate behind the slow one was launched, and proposed, before it answered.
    assert all(launched[cid] < slow_done for cid in range(SLOW_ID + 1, 16))
    assert all(client.answered[cid] < slow_done for cid in range(SLOW_ID + 1, 16))
    # The store still holds every id once, applied in id order.
    assert [r[0] for r in records(tmp_path / "r")] == list(range(16))


def test_a_replay_with_other_timing_rebuilds_the_same_archive(
        tmp_path: Path, toy: Problem) -> None:
    recording = tmp_path / "exchanges.jsonl"
    live_config = config_for(30, record=str(recording))
    live = build(tmp_path / "live", toy, live_config,
                 DelayedClient(toy, {SLOW_ID: 0.5, 9: 0.3}, 0.02))
    run(live)
    points = read_points(points_path(recording))
    assert sorted(points) == list(range(1, 30))
    assert any(points[cid] < cid - config_for(1).pipeline_depth for cid in points), \
        "the slow calls should have left some candidates sampled from an older archive"
    replay_config = config_for(30, mode="replay", replay=str(recording))
    replayed = build(tmp_path / "replayed", toy, replay_config,
                     DelayedClient(toy, {20: 0.4}, 0.02))
    run(replayed)
    assert fingerprint(replayed) == fingerprint(live)
    assert records(tmp_path / "replayed") == records(tmp_path / "live")


def test_a_killed_run_resumed_samples_its_lost_candidates_as_before(
        tmp_path: Path, toy: Problem) -> None:
    recording = tmp_path / "exchanges.jsonl"
    config = config_for(24, record=str(recording))
    def interrupt(event: Event) -> None:
        if isinstance(event, CandidateEvaluated) and event.id == 8:
            first.request_stop("interrupted")

    # 9-11 answer late: still in flight when 8 is applied, however fast evaluations are.
    slow = {2: 0.3, 9: 0.6, 10: 0.6, 11: 0.6}
    first = build(tmp_path / "r", toy, config, DelayedClient(toy, slow, 0.03), interrupt)
    assert run(first).reason == "interrupted"
    store = RunStore.open(tmp_path / "r")
    stored = store.count()
    lost = {cid: p for cid, p in store.tables.launches().items() if cid >= stored}
    assert lost and min(lost.values()) < stored  # sampled from an archive now gone
    resumed = Controller(problem=toy, config=config, store=store,
                         mutator=LLMMutator(DelayedClient(toy, {}, 0.03), config.llm),
                         backend=JitteryBackend(2), archive=Archive(config.archive, seed=11))
    resumed.restore()
    try:
        assert asyncio.run(resumed.run()).reason == "iterations"
        # The lost candidates were sampled again at their old points, not at the resume's.
        assert {cid: store.tables.launches()[cid] for cid in lost} == lost
    finally:
        store.close()
    # An uninterrupted replay of the recorded points, with the same responses, agrees.
    replay_config = config_for(24, mode="replay", replay=str(recording))
    replayed = build(tmp_path / "replayed", toy, replay_config, DelayedClient(toy, {}, 0.03))
    run(replayed)
    assert fingerprint(replayed) == fingerprint(resumed)
    assert records(tmp_path / "replayed") == records(tmp_path / "r")


def test_a_store_without_sampling_points_still_opens(tmp_path: Path) -> None:
    """A run of an older adrs has no `launches` table: read-only it has no points, and
    opened for writing (resume) it gets the table."""
    store = RunStore.create(tmp_path / "r", "{}\n", {"problem": "toy"})
    store.tables.add_launch(1, 1)
    assert store.tables.launches() == {1: 1}
    store.close()
    db = sqlite3.connect(tmp_path / "r" / DB_NAME)
    db.execute("DROP TABLE launches")
    db.commit()
    db.close()
    reader = RunStore.open(tmp_path / "r", readonly=True)
    assert reader.tables.launches() == {}
    reader.close()
    writer = RunStore.open(tmp_path / "r")
    writer.tables.add_launch(2, 1)
    assert writer.tables.launches() == {2: 1}
    writer.close()


def test_a_damaged_points_file_is_one_clear_error(tmp_path: Path) -> None:
    path = points_path(tmp_path / "exchanges.jsonl")
    assert path.name == "exchanges.jsonl.launches" and read_points(path) == {}
    path.write_text('{"id": 1, "sampled_after": 1}\n{"id": 2}\n')
    with pytest.raises(UserError, match="line 2 is not a sampling point"):
        read_points(path)

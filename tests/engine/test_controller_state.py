"""RunState: applying records, replaying them, the attempts memory and the stop reasons."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adrs.config.run_config import RunConfig, dump, resolve
from adrs.engine.archive import AddStatus, Archive
from adrs.engine.controller_state import AttemptsMemory, RunState
from adrs.errors import UserError
from adrs.store.database import CandidateRecord, RunStore, Status
from adrs.store.events import Event, NewBest, RunStopped
from adrs.types import EvalResult, LLMUsage


class Observing:
    """A mutator stand-in that only watches what is applied."""

    spent_usd = 0.0

    def __init__(self) -> None:
        self.seen: list[tuple[int, AddStatus | None]] = []

    async def propose(self, ctx: Any) -> Any:
        raise AssertionError("never called")

    def observe(self, record: CandidateRecord, status: AddStatus | None) -> None:
        self.seen.append((record.id, status))


def config_for(**stop: Any) -> RunConfig:
    return resolve([("test", {"seed": 5, "stop": {"iterations": 10, **stop},
                              "archive": {"islands": 2}, "llm": {"recent_attempts": 2}})])


def state_for(tmp: Path, config: RunConfig, events: list[Event] | None = None,
              store: RunStore | None = None) -> tuple[RunState, Observing]:
    mutator = Observing()
    store = store or RunStore.create(tmp, dump(config), {"problem": "toy"})
    def tell(event: Event) -> None:
        if events is not None:
            events.append(event)
    state = RunState(config=config, store=store, archive=Archive(config.archive, seed=5),
                     mutator=mutator, observers=[tell])
    return state, mutator


def record(cid: int, code: str | None, score: float | None = None,
           status: Status = "evaluated") -> CandidateRecord:
    result = None if score is None else EvalResult(valid=True, score=score)
    return CandidateRecord(
        id=cid, status=status, island=cid % 2, generation=0 if cid == 0 else 1,
        parent_ids=() if cid == 0 else (0,), edit_kind="initial" if cid == 0 else "diff",
        created=0.0, code=code, code_hash=code, result=result,
        error="no reply" if status == "proposal_failed" else None,
        usage=LLMUsage(cost_usd=0.25))


RECORDS = (record(0, "a = 0", 1.0), record(1, "a = 1", 2.0), record(2, "a = 0", 1.0),
           record(3, None, status="proposal_failed"), record(4, "a = 4", 0.5))


def test_apply_tallies_dedups_stores_and_tells(tmp_path: Path) -> None:
    events: list[Event] = []
    state, mutator = state_for(tmp_path, config_for(), events)
    for rec in RECORDS:
        state.apply(rec)
    c = state.counters
    assert (c.applied, c.valid, c.failed, c.duplicates, c.next_id) == (5, 3, 1, 1, 5)
    assert c.cost_usd == 1.25 and c.best is not None and c.best.id == 1
    assert c.since_improvement == 3 and c.hashes == {"a = 0": 0, "a = 1": 1, "a = 4": 4}
    stored = list(state.store.records())
    assert [r.status for r in stored] == ["evaluated", "evaluated", "duplicate",
                                         "proposal_failed", "evaluated"]
    assert stored[2].duplicate_of == 0 and stored[2].result is None
    assert [e.id for e in events if isinstance(e, NewBest)] == [0, 1]
    assert [cid for cid, _ in mutator.seen] == [0, 1, 2, 3, 4]


def test_replay_rebuilds_the_same_state_silently(tmp_path: Path) -> None:
    live, _ = state_for(tmp_path, config_for())
    for rec in RECORDS:
        live.apply(rec)
    events: list[Event] = []
    again, mutator = state_for(tmp_path, config_for(), events, store=live.store)
    again.replay(live.store.records())
    assert again.counters == live.counters
    assert again.archive.stats() == live.archive.stats()
    assert again.attempts.recent(0) == live.attempts.recent(0)
    assert events == [] and len(list(again.store.records())) == len(RECORDS)
    assert len(mutator.seen) == len(RECORDS)  # the observe hook learns on replay too


def test_attempts_memory_keeps_the_latest_per_parent() -> None:
    memory = AttemptsMemory(limit=2)
    memory.remember(record(0, "a = 0", 1.0))  # the initial program has no parent
    for rec in RECORDS[1:]:
        memory.remember(rec)
    recent = memory.recent(0)
    assert [p.id for p in recent] == [4, 3]
    assert recent[1].code == "" and recent[1].result.error == "no reply"
    assert memory.recent(7) == ()


def test_the_first_stop_reason_stays_unless_an_error_follows(tmp_path: Path) -> None:
    state, _ = state_for(tmp_path, config_for())
    state.request_stop("budget")
    state.request_stop("wall time")
    assert state.stop == "budget"
    state.request_stop("error: RuntimeError: boom")
    state.request_stop("error: OSError: disk")
    assert state.stop == "error: RuntimeError: boom"
    state.request_stop("interrupted")  # an error stays
    assert state.stop == "error: RuntimeError: boom"


def test_an_interrupt_after_the_last_launch_is_not_a_finished_run(tmp_path: Path) -> None:
    """Every candidate launched ("iterations") but some still in flight: Ctrl-C abandons
    them, so the run stops as interrupted, not as finished."""
    state, _ = state_for(tmp_path, config_for())
    state.request_stop("iterations")
    state.request_stop("interrupted")
    assert state.stop == "interrupted"


def test_faults_stop_the_run_and_a_user_error_is_kept(tmp_path: Path) -> None:
    state, _ = state_for(tmp_path, config_for())
    message = state.fault(RuntimeError("crash\ndetails"), "evaluation")
    assert message == "system fault during evaluation: RuntimeError: crash\ndetails"
    assert state.stop == "error: RuntimeError: crash" and state.fatal is None
    rejected = UserError("the API key was rejected")
    assert state.fault(rejected, "proposal") == "the API key was rejected"
    assert state.fatal is rejected and state.stop == "error: RuntimeError: crash"


def test_stop_conditions_and_the_summary(tmp_path: Path) -> None:
    events: list[Event] = []
    state, _ = state_for(tmp_path, config_for(target_score=2.0), events)
    assert not state.stop_if_done(1) and state.stop is None
    assert state.stop_if_done(10) and state.stop == "iterations"
    other, _ = state_for(tmp_path / "other", config_for(target_score=2.0), events)
    for rec in RECORDS[:2]:
        other.apply(rec)
    assert other.stop_if_done(2) and other.stop == "target score"
    summary = other.finish(2)
    assert (summary.reason, summary.candidates, summary.valid, summary.cost_usd) == (
        "target score", 2, 2, 0.5)
    assert isinstance(events[-1], RunStopped) and events[-1].best_id == 1


def test_an_invalid_initial_program_stops_the_run(tmp_path: Path) -> None:
    state, _ = state_for(tmp_path, config_for())
    state.apply_initial(CandidateRecord(
        id=0, status="evaluated", island=0, generation=0, parent_ids=(),
        edit_kind="initial", created=0.0, code="a = 0", code_hash="a = 0",
        result=EvalResult.invalid("SyntaxError")))
    assert state.stop == "initial program invalid: SyntaxError"
    assert state.counters.failed == 1 and state.counters.next_id == 1

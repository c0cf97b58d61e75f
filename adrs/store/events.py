"""Typed events: every step of a run, for the event log, the live display and the dashboard.

Observers receive events and cannot change the run's state (events are frozen values).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol


@dataclass(frozen=True, kw_only=True)
class Event:
    t: float = field(default_factory=time.time)

    @property
    def kind(self) -> str:
        return type(self).__name__

    def to_json(self) -> dict[str, Any]:
        return {"type": self.kind, **dataclasses.asdict(self)}


@dataclass(frozen=True, kw_only=True)
class RunStarted(Event):
    """A session of a run begins. `iterations` is the run's total; the fields after it are
    what the store already holds (all zero and None on a new run), so a resumed run's
    progress counts from there: `candidates` stored, of which `failures` failed and
    `duplicates` were duplicates, `cost_usd` spent, and the best valid candidate."""

    run_id: str
    run_dir: str
    problem: str
    proposer: str
    seed: int
    resumed: bool
    iterations: int
    candidates: int = 0
    failures: int = 0
    duplicates: int = 0
    cost_usd: float = 0.0
    best_id: int | None = None
    best_score: float | None = None
    best_evaluations: int = 1  # how the best's score came about, as in NewBest
    best_spread: float | None = None
    best_first: float | None = None
    trust: str = "trusted"  # the problem's trust: "self-scored" when the score is not


@dataclass(frozen=True, kw_only=True)
class CandidateLaunched(Event):
    id: int
    island: int
    parent_ids: tuple[int, ...]


@dataclass(frozen=True, kw_only=True)
class CandidateProposed(Event):
    id: int
    edit_kind: str
    model: str
    cost_usd: float
    propose_s: float


@dataclass(frozen=True, kw_only=True)
class ProposalFailed(Event):
    id: int
    error: str


@dataclass(frozen=True, kw_only=True)
class DuplicateSkipped(Event):
    id: int
    duplicate_of: int


@dataclass(frozen=True, kw_only=True)
class CandidateEvaluated(Event):
    id: int
    valid: bool
    score: float | None
    error: str | None
    eval_s: float


@dataclass(frozen=True, kw_only=True)
class ArchiveUpdated(Event):
    id: int
    status: str
    best_id: int | None
    best_score: float | None
    coverage: float


@dataclass(frozen=True, kw_only=True)
class NewBest(Event):
    """A candidate became the run's best. When it was evaluated more than once (noise-aware
    selection, adrs/engine/reevaluation.py), `score` is the mean of its `evaluations`, whose
    valid scores range over `spread`, the `first` of them its first evaluation's; a best
    evaluated once keeps the defaults, and its log line has only `id` and `score` (so an
    event log written before these fields reads the same)."""

    id: int
    score: float
    evaluations: int = 1
    spread: float | None = None
    first: float | None = None

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        if self.evaluations <= 1:
            for key in ("evaluations", "spread", "first"):
                del data[key]
        return data


@dataclass(frozen=True, kw_only=True)
class RunStopped(Event):
    reason: str
    candidates: int
    best_id: int | None
    best_score: float | None
    cost_usd: float


class Observer(Protocol):
    """Receives every event in order. Must not raise; must not block for long."""

    def __call__(self, event: Event) -> None: ...


class EventLog:
    """Append-only JSON-lines event log; each line is flushed as it is written."""

    def __init__(self, path: Path) -> None:
        self._file: IO[str] = path.open("a", encoding="utf-8")

    def __call__(self, event: Event) -> None:
        self._file.write(json.dumps(event.to_json(), default=str) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_events(path: Path) -> list[dict[str, Any]]:
    """Read an event log, skipping a final line cut short by a crash."""
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events

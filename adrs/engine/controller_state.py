"""The controller's state: the one place a run's state changes.

`RunState.apply` takes one finished candidate record and applies it everywhere: the dedup
table, the store, the counters, the attempts memory, the archive, the mutator's optional
`observe` hook and the events. It is used live (by the pipeline, in candidate-id order when
deterministic) and when replaying the store on resume, so every tally here is derived from
applied records only. `RunState` also keeps the stop reason (and a UserError to raise at
the end of the run) and builds the `RunSummary`.

Data moves one way: the pipeline (adrs/engine/pipeline.py) reads this state and hands
records to it; nothing here calls the pipeline.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from adrs.config.run_config import RunConfig
from adrs.engine.archive import AddStatus, Archive, behaviour_marked
from adrs.engine.mutator import Mutator
from adrs.engine.reevaluation import Noise, noise_of
from adrs.errors import UserError
from adrs.store.database import CandidateRecord, RunStore
from adrs.store.events import (
    ArchiveUpdated,
    CandidateEvaluated,
    DuplicateSkipped,
    Event,
    NewBest,
    Observer,
    RunStarted,
    RunStopped,
)
from adrs.types import EvalResult, Program


@dataclass(frozen=True)
class RunSummary:
    """How a run (or one session of it) ended."""

    reason: str
    candidates: int
    valid: int
    best: Program | None
    cost_usd: float


@dataclass
class Counters:
    """Mutable tallies, derived only from applied records (so replay restores them)."""

    applied: int = 0
    valid: int = 0
    failed: int = 0
    duplicates: int = 0
    cost_usd: float = 0.0
    since_improvement: int = 0
    best: Program | None = None
    next_id: int = 0
    hashes: dict[str, int] = field(default_factory=dict)


class AttemptsMemory:
    """The latest attempts per parent, for the 'recent attempts' part of prompts."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._by_parent: dict[int, deque[Program]] = {}

    def remember(self, record: CandidateRecord) -> None:
        """Keep `record` as the newest attempt on its first parent (none for the initial)."""
        if not record.parent_ids:
            return
        result = record.result or EvalResult.invalid(
            record.error or f"duplicate of candidate {record.duplicate_of}")
        attempt = Program(id=record.id, code=record.code or "", result=result,
                          parent_ids=record.parent_ids, island=record.island,
                          generation=record.generation, edit_kind=record.edit_kind)
        self._by_parent.setdefault(record.parent_ids[0],
                                   deque(maxlen=self._limit)).appendleft(attempt)

    def recent(self, parent_id: int) -> tuple[Program, ...]:
        """The attempts on `parent_id`, newest first."""
        return tuple(self._by_parent.get(parent_id, ()))


class RunState:
    """Archive, counters, store, events, dedup, attempts memory and the stop reason."""

    def __init__(self, *, config: RunConfig, store: RunStore, archive: Archive,
                 mutator: Mutator, observers: Sequence[Observer] = ()) -> None:
        self.config, self.store, self.archive = config, store, archive
        self._mutator = mutator
        self._observers = list(observers)
        self.counters = Counters()
        self.attempts = AttemptsMemory(config.llm.recent_attempts)
        self.stop: str | None = None
        self.fatal: UserError | None = None
        self._started = time.monotonic()
        self._replaying = False

    # --------------------------------------------------------------- lifecycle
    def replay(self, records: Iterable[CandidateRecord]) -> None:
        """Rebuild archive and counters from stored records, in id order (no store, no events)."""
        self._replaying = True
        for record in records:
            self.apply(record)
        self._replaying = False

    def begin(self, started: RunStarted | None) -> None:
        """Start the wall clock of this session and announce it."""
        self._started = time.monotonic()
        if started is not None:
            self.emit(started)

    def finish(self, next_launch: int) -> RunSummary:
        """Announce the end of the session and sum it up."""
        reason = self.stop or self._reason(next_launch) or "iterations"
        c = self.counters
        best = c.best
        self.emit(RunStopped(reason=reason, candidates=c.applied,
                             best_id=None if best is None else best.id,
                             best_score=None if best is None else best.score,
                             cost_usd=c.cost_usd))
        return RunSummary(reason=reason, candidates=c.applied, valid=c.valid, best=best,
                          cost_usd=c.cost_usd)

    def emit(self, event: Event) -> None:
        """Tell the observers, except while replaying the store."""
        if self._replaying:
            return
        for observer in self._observers:
            observer(event)

    # ------------------------------------------------------------ stop reasons
    def request_stop(self, reason: str) -> None:
        """Record why the run stops.

        The first reason stays, except that an error ("error: ...") replaces a reason that
        is not one: a run that lost work to a fault must not end as if it had finished; and
        "interrupted", which abandons the candidates in flight, replaces any reason but an
        error (a run interrupted after its last launch has not finished its iterations).
        """
        replaces = not self.stop.startswith("error") if self.stop is not None else True
        if self.stop is None or (replaces and (reason.startswith("error")
                                               or reason == "interrupted")):
            self.stop = reason

    def stop_if_done(self, next_launch: int, waiting_usd: float = 0.0, *,
                     recorded: bool = False) -> bool:
        """Stop (and say so) when a stop condition holds before launching `next_launch`.

        `waiting_usd` is the cost of finished candidates not applied yet (waiting for an
        earlier one, in deterministic mode): spent all the same. A candidate with a recorded
        sampling point (`recorded`: replay, resume) was launched by the recorded run, so
        only the iterations and the wall time hold it back: a replay launches what the
        recorded run launched, whatever its timing.
        """
        reason = self._reason(next_launch, waiting_usd, recorded=recorded)
        if reason is not None:
            self.stop = reason
        return reason is not None

    def fault(self, exc: Exception, stage: str) -> str:
        """Stop the run for a fault while proposing or evaluating; the message to store.

        A UserError (bad input found mid-run: a rejected API key, a bad problem option) is
        kept, to be raised again once everything in flight is stored (the CLI exits with 2);
        any other exception is a fault of the system, and the run ends "error: ...".
        """
        if isinstance(exc, UserError):
            self.fatal = self.fatal or exc
            self.request_stop(f"error: {exc}")
            return str(exc)
        self.request_stop(f"error: {describe_fault(exc)}")
        return f"system fault during {stage}: {describe_fault(exc, full=True)}"

    def _reason(self, next_launch: int, waiting_usd: float = 0.0, *,
                recorded: bool = False) -> str | None:
        stop, c = self.config.stop, self.counters
        if next_launch >= stop.iterations:
            return "iterations"
        if stop.max_wall_s is not None and time.monotonic() - self._started >= stop.max_wall_s:
            return "wall time"
        if recorded:
            return None
        if stop.target_score is not None and c.best and c.best.score >= stop.target_score:
            return "target score"
        if stop.patience is not None and c.since_improvement >= stop.patience:
            return "no improvement"
        # The mutator may count calls not yet stored (adrs/llm/budget.py), to stop sooner.
        spent = max(c.cost_usd + waiting_usd, getattr(self._mutator, "spent_usd", 0.0))
        if stop.budget_usd is not None and spent >= stop.budget_usd:
            return "budget"
        return None

    # ------------------------------------------------------------------- apply
    def apply_initial(self, record: CandidateRecord) -> None:
        """Apply the evaluated initial program; the run stops at once if it is invalid."""
        self.apply(record)
        if self.counters.valid == 0:
            error = None if record.result is None else record.result.error
            self.stop = "initial program invalid: " + (error or "no score")

    def apply(self, record: CandidateRecord) -> None:
        """The one place state changes; used live and when replaying the store."""
        if record.status == "evaluated" and record.code_hash is not None:
            record = self._dedup(record)
        record = behaviour_marked(record, self.archive)  # a note only; archive.add decides
        if not self._replaying:
            self.store.add(record)
        c = self.counters
        c.applied += 1
        c.next_id = max(c.next_id, record.id + 1)
        c.cost_usd += record.usage.cost_usd
        c.since_improvement += 1
        self.attempts.remember(record)
        program = record.program()
        status = None
        if program is not None:
            status = self._add_to_archive(program, record.code_hash)
        elif record.status == "proposal_failed":
            c.failed += 1
        # Optional mutator hook (see adrs/llm/setup.py): learns from every applied record,
        # live and replayed, so an adaptive ensemble's state survives resume.
        observe = getattr(self._mutator, "observe", None)
        if observe is not None:
            observe(record, status)
        self._emit_applied(record)

    def _dedup(self, record: CandidateRecord) -> CandidateRecord:
        assert record.code_hash is not None
        first = self.counters.hashes.setdefault(record.code_hash, record.id)
        if first == record.id:
            return record
        return replace(record, status="duplicate", duplicate_of=first, result=None)

    def _add_to_archive(self, program: Program, code_hash: str | None) -> AddStatus:
        c = self.counters
        islands = range(self.config.archive.islands) if program.edit_kind == "initial" else (
            program.island,)
        for island in islands:
            status = self.archive.add(replace(program, island=island))
        if not program.result.valid:
            c.failed += 1
            return status
        c.valid += 1
        if c.best is None or program.score > c.best.score:
            c.best, c.since_improvement = program, 0
            if not self._replaying:  # with the spread of its evaluations, if re-evaluated
                self.emit(new_best(program, noise_of(
                    self.store.tables.evaluations(program.id), code_hash)))
        stats = self.archive.stats()
        self.emit(ArchiveUpdated(id=program.id, status=status.name, best_id=stats.best_id,
                                 best_score=stats.best_score, coverage=stats.coverage))
        return status

    def _emit_applied(self, record: CandidateRecord) -> None:
        if record.status == "duplicate":
            self.counters.duplicates += 1
            self.emit(DuplicateSkipped(id=record.id, duplicate_of=record.duplicate_of or 0))
        elif record.result is not None:
            res = record.result
            self.emit(CandidateEvaluated(id=record.id, valid=res.valid, score=res.score,
                                         error=res.error, eval_s=record.eval_s))


def new_best(program: Program, noise: Noise | None) -> NewBest:
    """The NewBest event of `program`, with how its score came from several evaluations."""
    if noise is None or not noise.scores:
        return NewBest(id=program.id, score=program.score)
    return NewBest(id=program.id, score=program.score, evaluations=noise.evaluations,
                   spread=noise.spread, first=noise.scores[0])


def describe_fault(exc: BaseException, *, full: bool = False) -> str:
    """'Type: message'; the first line of the message only, unless `full`."""
    message = str(exc).strip()
    if not full:
        message = message.split("\n", 1)[0].strip()
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__

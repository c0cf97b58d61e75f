"""The evolutionary controller: an asynchronous steady-state pipeline.

Up to `llm.proposals_in_flight` proposals and `evaluation.workers` evaluations run at once,
so slow LLM calls and slow evaluations overlap. The controller is the only stage that moves
data: archive -> mutator -> evaluation backend -> archive, store and events.

Determinism (see docs/architecture.md): results are applied to the archive and committed to
the store in candidate-id order, and candidate i is launched only once candidate
i - depth has been applied, so the archive depends on the seed and the responses, not on
timing. With `deterministic: false` results are applied as they complete instead.

Every launched candidate is stored, whatever happens to it: a fault while proposing or
evaluating it (a crashed worker, a bug, a UserError such as a rejected API key) is stored
as that candidate's outcome, no new candidate is launched, the ones in flight finish and
are stored, and the run ends with the reason "error: ...". Only an interruption abandons
the candidates in flight (resume launches those ids again).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from adrs.code.program import code_hash
from adrs.config.run_config import RunConfig
from adrs.engine.archive import AddStatus, Archive
from adrs.engine.mutator import Mutator, Proposal, ProposalContext
from adrs.errors import EditError, UserError
from adrs.evaluation.backends import EvalBackend
from adrs.problem.spec import Problem, eval_job
from adrs.store.database import CandidateRecord, RunStore
from adrs.store.events import (
    ArchiveUpdated,
    CandidateEvaluated,
    CandidateLaunched,
    CandidateProposed,
    DuplicateSkipped,
    Event,
    NewBest,
    Observer,
    ProposalFailed,
    RunStarted,
    RunStopped,
)
from adrs.types import EvalResult, LLMUsage, Program

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSummary:
    """How a run (or one session of it) ended."""

    reason: str
    candidates: int
    valid: int
    best: Program | None
    cost_usd: float


@dataclass
class _Counters:
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


class Controller:
    """Runs one session of a run: restores state from the store, then evolves."""

    def __init__(self, *, problem: Problem, config: RunConfig, store: RunStore,
                 mutator: Mutator, backend: EvalBackend, archive: Archive,
                 observers: Sequence[Observer] = ()) -> None:
        self.problem, self.config, self.store = problem, config, store
        # Every evaluation shares this job but for the source (options checked once, here).
        self._job = eval_job(problem, config, source="")
        self.archive = archive
        self._mutator, self._backend = mutator, backend
        self._observers = list(observers)
        self.counters = _Counters()
        self._attempts: dict[int, deque[Program]] = {}
        self._buffer: dict[int, CandidateRecord] = {}
        self._in_flight = 0
        self._next_launch = 0
        self._pending: dict[str, asyncio.Future[EvalResult]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop: str | None = None
        self._fatal: UserError | None = None
        self._started = time.monotonic()
        self._replaying = False

    # ----------------------------------------------------------------- state
    def restore(self) -> None:
        """Rebuild archive and counters by replaying the store in id order."""
        self._replaying = True
        for record in self.store.records():
            self._apply(record)
        self._replaying = False

    def request_stop(self, reason: str) -> None:
        """Stop launching; with 'interrupted', in-flight candidates are abandoned.

        The first reason stays, except that an error ("error: ...") replaces a reason that
        is not one: a run that lost work to a fault must not end as if it had finished.
        """
        if self._stop is None or (reason.startswith("error")
                                  and not self._stop.startswith("error")):
            self._stop = reason
        if reason == "interrupted":
            for task in self._tasks:
                task.cancel()

    # ------------------------------------------------------------------- run
    async def run(self, started: RunStarted | None = None) -> RunSummary:
        self._started = time.monotonic()
        if started is not None:
            self._emit(started)
        self._next_launch = self.counters.next_id
        if self.counters.next_id == 0:
            await self._evaluate_initial()
        self._launch_more()
        while self._tasks:
            await asyncio.wait(set(self._tasks))
        summary = self._finish(self._stop or self._stop_reason() or "iterations")
        if self._fatal is not None:
            raise self._fatal  # everything applied so far is stored; the CLI exits with 2
        return summary

    async def _evaluate_initial(self) -> None:
        code = self.problem.initial_code
        self._next_launch = 1
        try:
            result = await self._evaluate(code)
        except UserError:
            raise
        except Exception as exc:  # not stored: resume evaluates the initial program again
            self.request_stop(f"error: {_describe(exc)}")
            return
        self._apply(CandidateRecord(
            id=0, status="evaluated", island=0, generation=0, parent_ids=(),
            edit_kind="initial", created=time.time(), code=code, code_hash=code_hash(code),
            result=result, eval_s=result.duration_s))
        if self.counters.valid == 0:
            self._stop = "initial program invalid: " + (result.error or "no score")

    def _launch_more(self) -> None:
        """Launch every candidate the pipeline has room for, sampling the archive now.

        Called right after each apply. In deterministic mode candidate i may start once
        candidate i - depth is applied; since applies happen in id order and sampling is
        synchronous, candidate i always sees the archive exactly as it was after applying
        i - depth, whatever the timing.
        """
        depth = self.config.pipeline_depth
        while self._stop is None:
            if self.config.deterministic:
                room = self._next_launch < self.counters.next_id + depth
            else:
                room = self._in_flight < depth
            if not room:
                return
            reason = self._stop_reason()
            if reason is not None:
                self._stop = reason
                return
            self._launch(self._next_launch)
            self._next_launch += 1

    def _stop_reason(self) -> str | None:
        stop, c = self.config.stop, self.counters
        if self._next_launch >= stop.iterations:
            return "iterations"
        if stop.max_wall_s is not None and time.monotonic() - self._started >= stop.max_wall_s:
            return "wall time"
        if stop.target_score is not None and c.best and c.best.score >= stop.target_score:
            return "target score"
        if stop.patience is not None and c.since_improvement >= stop.patience:
            return "no improvement"
        # The mutator may count calls not yet stored (adrs/budget.py), to stop sooner.
        spent = max(c.cost_usd, getattr(self._mutator, "spent_usd", 0.0))
        if stop.budget_usd is not None and spent >= stop.budget_usd:
            return "budget"
        return None

    # ------------------------------------------------------------- candidate
    def _launch(self, cid: int) -> None:
        rng = random.Random(f"{self.config.seed}:{cid}")
        island = cid % self.config.archive.islands
        sel = self.archive.sample(island, rng)
        self._emit(CandidateLaunched(id=cid, island=island, parent_ids=(sel.parent.id,)))
        ctx = ProposalContext(candidate_id=cid, parent=sel.parent,
                              inspirations=sel.inspirations, mate=sel.mate, island=island,
                              rng=rng, task=self.problem.task,
                              attempts=tuple(self._attempts.get(sel.parent.id, ())))
        parents = (sel.parent.id,)
        base = CandidateRecord(id=cid, status="proposal_failed", island=island,
                               generation=sel.parent.generation + 1, parent_ids=parents,
                               edit_kind="diff", created=time.time())
        self._in_flight += 1
        task = asyncio.create_task(self._candidate(ctx, base))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _candidate(self, ctx: ProposalContext, base: CandidateRecord) -> None:
        # A CancelledError (interrupted) propagates: the candidate is abandoned, unstored.
        try:
            record = await self._make(ctx, base)
        except Exception as exc:  # raised before evaluating (a fault while proposing)
            record = self._faulted(base, exc, "proposal")
        try:
            self._deliver(record)
        except Exception as exc:  # storing or applying failed: a fault of adrs or the disk
            self.request_stop(f"error: {_describe(exc)}")
            _log.error("candidate %d could not be stored", record.id, exc_info=exc)

    def _faulted(self, record: CandidateRecord, exc: Exception,
                 stage: str) -> CandidateRecord:
        """The stored outcome of a candidate whose proposal or evaluation raised; stops the run.

        A UserError (bad input found mid-run: a rejected API key, a bad problem option) is
        raised again by `run` once everything in flight is stored (the CLI exits with 2);
        any other exception is a fault of the system, and the run ends "error: ...".
        """
        if isinstance(exc, UserError):
            self._fatal = self._fatal or exc
            message = str(exc)
            self.request_stop(f"error: {exc}")
        else:
            message = f"system fault during {stage}: {_describe(exc, full=True)}"
            self.request_stop(f"error: {_describe(exc)}")
        if record.status == "proposal_failed":  # no program yet
            self._emit(ProposalFailed(id=record.id, error=message))
            return replace(record, error=message, usage=getattr(exc, "usage", record.usage))
        # No code hash: a fault is no verdict on the code, so the same code proposed later
        # (after resume, say) is evaluated instead of counted as a duplicate of this one.
        return replace(record, code_hash=None, result=EvalResult.invalid(message))

    async def _make(self, ctx: ProposalContext, base: CandidateRecord) -> CandidateRecord:
        cid = base.id
        started = time.perf_counter()
        try:
            proposal = await self._mutator.propose(ctx)
        except EditError as exc:
            self._emit(ProposalFailed(id=cid, error=str(exc)))
            # A failed proposal still cost LLM calls: keep its usage (see llm.ProposalError).
            return replace(base, error=str(exc), propose_s=time.perf_counter() - started,
                           usage=getattr(exc, "usage", LLMUsage()),
                           attempts=getattr(exc, "attempts", 1))
        if proposal.edit_kind == "crossover" and ctx.mate is not None:
            base = replace(base, parent_ids=(ctx.parent.id, ctx.mate.id))
        return await self._evaluate_proposal(base, proposal, time.perf_counter() - started)

    async def _evaluate_proposal(self, base: CandidateRecord, proposal: Proposal,
                                 propose_s: float) -> CandidateRecord:
        digest = code_hash(proposal.code)
        record = replace(base, status="evaluated", code=proposal.code,
                         code_hash=digest, prompt=proposal.prompt, response=proposal.response,
                         notes=proposal.notes, edit_kind=proposal.edit_kind,
                         usage=proposal.usage, attempts=proposal.attempts,
                         propose_s=propose_s)
        self._emit(CandidateProposed(id=base.id, edit_kind=proposal.edit_kind,
                                     model=proposal.usage.model,
                                     cost_usd=proposal.usage.cost_usd, propose_s=propose_s))
        if digest in self.counters.hashes:
            return replace(record, status="duplicate",
                           duplicate_of=self.counters.hashes[digest])
        try:
            result = await self._shared_evaluation(digest, proposal.code)
        except Exception as exc:
            return self._faulted(record, exc, "evaluation")
        return replace(record, result=result, eval_s=result.duration_s)

    async def _shared_evaluation(self, digest: str, code: str) -> EvalResult:
        """Evaluate each distinct normalised program once, even when proposed twice at once."""
        if digest in self._pending:
            return await asyncio.shield(self._pending[digest])
        future: asyncio.Future[EvalResult] = asyncio.get_running_loop().create_future()
        self._pending[digest] = future
        try:
            result = await self._evaluate(code)
        except Exception as exc:  # the candidates waiting on this evaluation fail alike
            future.set_exception(exc)
            future.exception()  # retrieved: no warning when nobody else waits
            raise
        except BaseException:
            future.cancel()
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._pending[digest]

    async def _evaluate(self, code: str) -> EvalResult:
        job = replace(self._job, source=code)
        submitted = self._backend.submit(job)
        try:
            return await asyncio.wrap_future(submitted)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if submitted.cancelled() and task is not None and not task.cancelling():
                # The backend cancelled the job itself: a fault, not an interruption.
                raise RuntimeError("the evaluation backend cancelled the job") from None
            raise

    # ----------------------------------------------------------------- apply
    def _deliver(self, record: CandidateRecord) -> None:
        """Apply a finished candidate: in id order when deterministic, else at once."""
        self._in_flight -= 1
        self._buffer[record.id] = record
        if self.config.deterministic:
            while self.counters.next_id in self._buffer:
                self._apply(self._buffer.pop(self.counters.next_id))
                self._launch_more()  # after each apply, so sampling sees exactly that state
        else:
            self._apply(self._buffer.pop(record.id))
            self._launch_more()

    def _apply(self, record: CandidateRecord) -> None:
        """The one place state changes; used live and when replaying the store."""
        if record.status == "evaluated" and record.code_hash is not None:
            record = self._dedup(record)
        if not self._replaying:
            self.store.add(record)
        c = self.counters
        c.applied += 1
        c.next_id = max(c.next_id, record.id + 1)
        c.cost_usd += record.usage.cost_usd
        c.since_improvement += 1
        self._remember_attempt(record)
        program = record.program()
        status = None
        if program is not None:
            status = self._add_to_archive(program)
        elif record.status == "proposal_failed":
            c.failed += 1
        # Optional mutator hook (see adrs/llm_setup.py): learns from every applied record,
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

    def _add_to_archive(self, program: Program) -> AddStatus:
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
            self._emit(NewBest(id=program.id, score=program.score))
        stats = self.archive.stats()
        self._emit(ArchiveUpdated(id=program.id, status=status.name, best_id=stats.best_id,
                                  best_score=stats.best_score, coverage=stats.coverage))
        return status

    def _remember_attempt(self, record: CandidateRecord) -> None:
        """Keep the latest attempts per parent, for the 'recent attempts' part of prompts."""
        if not record.parent_ids:
            return
        result = record.result or EvalResult.invalid(
            record.error or f"duplicate of candidate {record.duplicate_of}")
        attempt = Program(id=record.id, code=record.code or "", result=result,
                          parent_ids=record.parent_ids, island=record.island,
                          generation=record.generation, edit_kind=record.edit_kind)
        limit = self.config.llm.recent_attempts
        self._attempts.setdefault(record.parent_ids[0], deque(maxlen=limit)).appendleft(attempt)

    def _emit_applied(self, record: CandidateRecord) -> None:
        if record.status == "duplicate":
            self.counters.duplicates += 1
            self._emit(DuplicateSkipped(id=record.id, duplicate_of=record.duplicate_of or 0))
        elif record.result is not None:
            res = record.result
            self._emit(CandidateEvaluated(id=record.id, valid=res.valid, score=res.score,
                                          error=res.error, eval_s=record.eval_s))

    # ---------------------------------------------------------------- finish
    def _finish(self, reason: str) -> RunSummary:
        c = self.counters
        best = c.best
        self._emit(RunStopped(reason=reason, candidates=c.applied,
                              best_id=None if best is None else best.id,
                              best_score=None if best is None else best.score,
                              cost_usd=c.cost_usd))
        return RunSummary(reason=reason, candidates=c.applied, valid=c.valid, best=best,
                          cost_usd=c.cost_usd)

    def _emit(self, event: Event) -> None:
        if self._replaying:
            return
        for observer in self._observers:
            observer(event)


def _describe(exc: BaseException, *, full: bool = False) -> str:
    """'Type: message'; the first line of the message only, unless `full`."""
    message = str(exc).strip()
    if not full:
        message = message.split("\n", 1)[0].strip()
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__

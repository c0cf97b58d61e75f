"""The controller's pipeline: what to launch, and the candidates in flight.

`Pipeline` decides when a candidate may start, samples its parent from the archive, runs
its proposal and evaluation as a task, keeps the in-flight bookkeeping and, when
deterministic, the sampling points (adrs/engine/schedule.py) and a reorder buffer that
hands finished records to `RunState.apply` in candidate-id order. `Evaluator` submits
programs to the evaluation backend, each distinct normalised program once. A record that
would become the new best is evaluated again first (adrs/engine/reevaluation.py) when its
turn to be applied comes, and applied with the mean of its evaluations.

Data moves one way: the pipeline reads the state (counters, archive, attempts memory, stop
reason) and hands it finished records, stop requests and events; the state
(adrs/engine/controller_state.py) never calls back.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Coroutine, Iterable
from dataclasses import replace

from adrs.code.program import code_hash
from adrs.config.run_config import RunConfig
from adrs.engine.controller_state import RunState, describe_fault
from adrs.engine.mutator import Mutator, Proposal, ProposalContext
from adrs.engine.reevaluation import Reevaluator
from adrs.engine.schedule import SamplingPoints
from adrs.errors import EditError, UserError
from adrs.evaluation.backends import EvalBackend
from adrs.evaluation.runner import EvalJob
from adrs.problem.spec import Problem
from adrs.store.database import CandidateRecord
from adrs.store.events import CandidateLaunched, CandidateProposed, ProposalFailed
from adrs.types import EvalResult, LLMUsage

_log = logging.getLogger(__name__)


class Evaluator:
    """Submits programs to the backend; the same program in flight twice runs once."""

    def __init__(self, job: EvalJob, backend: EvalBackend) -> None:
        self._job, self._backend = job, backend  # every job is `job` but for the source
        self._pending: dict[str, asyncio.Future[EvalResult]] = {}

    async def evaluate_distinct(self, digest: str, code: str) -> EvalResult:
        """Evaluate each distinct normalised program once, even when proposed twice at once."""
        if digest in self._pending:
            return await asyncio.shield(self._pending[digest])
        future: asyncio.Future[EvalResult] = asyncio.get_running_loop().create_future()
        self._pending[digest] = future
        try:
            result = await self.evaluate(code)
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

    async def evaluate(self, code: str) -> EvalResult:
        """Evaluate `code`; a job the backend cancels itself is a fault, not an interruption."""
        submitted = self._backend.submit(replace(self._job, source=code))
        try:
            return await asyncio.wrap_future(submitted)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if submitted.cancelled() and task is not None and not task.cancelling():
                raise RuntimeError("the evaluation backend cancelled the job") from None
            raise


class Pipeline:
    """Launches candidates while there is room and hands their records to the state."""

    def __init__(self, *, problem: Problem, config: RunConfig, mutator: Mutator,
                 evaluator: Evaluator, state: RunState, points: SamplingPoints) -> None:
        self._problem, self._config = problem, config
        self._mutator, self._evaluator, self._state = mutator, evaluator, state
        self._points = points
        self._buffer: dict[int, CandidateRecord] = {}
        self.reevaluator = Reevaluator(config.evaluation.reevaluate, evaluator.evaluate,
                                       state.store)
        self._reevaluating: set[int] = set()  # in the buffer, being evaluated again
        self._reevaluated: set[int] = set()  # in the buffer, evaluated again: to apply
        # Candidates sampled on resume at their recorded point, launched first.
        self._ready: dict[int, tuple[ProposalContext, CandidateRecord]] = {}
        self._in_flight = 0
        self._next_launch = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def next_launch(self) -> int:
        """The id the next launched candidate gets."""
        return self._next_launch

    async def run(self) -> None:
        """Evaluate the initial program on a fresh run, then launch until stopped; drain."""
        self._next_launch = self._state.counters.next_id
        if self._state.counters.next_id == 0:
            await self._evaluate_initial()
        try:
            self._launch_more()
            while self._tasks:
                await asyncio.wait(set(self._tasks))
        finally:
            self._points.close()

    def cancel(self) -> None:
        """Abandon the candidates in flight (interrupted): they are not stored."""
        for task in self._tasks:
            task.cancel()

    async def _evaluate_initial(self) -> None:
        code = self._problem.initial_code
        self._next_launch = 1
        try:
            result = await self._evaluator.evaluate(code)
        except UserError:
            raise
        except Exception as exc:  # not stored: resume evaluates the initial program again
            self._state.request_stop(f"error: {describe_fault(exc)}")
            return
        record = CandidateRecord(
            id=0, status="evaluated", island=0, generation=0, parent_ids=(),
            edit_kind="initial", created=time.time(), code=code, code_hash=code_hash(code),
            result=result, eval_s=result.duration_s)
        if self.reevaluator.wanted(record, None, {}):
            try:
                record = await self.reevaluator.run(record)
            except UserError:
                raise
            except Exception as exc:
                self._state.request_stop(f"error: {describe_fault(exc)}")
                return
        self._state.apply_initial(record)

    def restore(self, records: Iterable[CandidateRecord]) -> None:
        """Apply the stored records in id order (resume), sampling on the way every
        candidate the store recorded as launched but not stored (in flight when the last
        session ended) at its recorded point, as that session sampled it."""
        records = list(records)
        self.reevaluator.restore(records)
        start = max((r.id for r in records), default=-1) + 1
        by_point = self._points.pending(start) if self._config.deterministic else {}
        for record in records:
            self._state.replay((record,))
            for cid in by_point.pop(self._state.counters.next_id, ()):
                self._ready[cid] = _sample(cid, self._state, self._config, self._problem)

    def _launch_more(self) -> None:
        """Launch every candidate the pipeline has room for.

        Called after each apply and each finished candidate. Without a recorded point a
        candidate starts when fewer than `depth` are in flight, and is sampled from the
        archive now; in deterministic mode that point (`next_id`: every candidate below it
        is applied, in id order) is recorded. A candidate with a recorded point (replay,
        resume) starts exactly when that point is reached: applies happen in id order and
        this runs after each, so it sees the archive as the recorded run did.
        """
        while self._state.stop is None:
            cid = self._next_launch
            recorded = self._config.deterministic and self._points.get(cid) is not None
            waiting_usd = sum(r.usage.cost_usd for r in self._buffer.values())
            if not self._room(cid) or self._state.stop_if_done(cid, waiting_usd,
                                                               recorded=recorded):
                return
            self._launch(cid)
            self._next_launch += 1

    def _room(self, cid: int) -> bool:
        point = self._points.get(cid) if self._config.deterministic else None
        if cid in self._ready or point is None:
            # While a new best is evaluated again, the candidates finished behind it count
            # as in flight: no run of launches from the archive it is about to change.
            waiting = len(self._buffer) - len(self._reevaluating) if self._reevaluating else 0
            return cid in self._ready or (self._in_flight + waiting
                                          < self._config.pipeline_depth)
        applied = self._state.counters.next_id
        if point > applied:
            return False
        if point < applied:  # an inconsistent record: sampled now, and a replay will say so
            _log.warning("candidate %d was recorded at sampling point %d, already passed "
                         "(%d); it is sampled now", cid, point, applied)
        return True

    def _launch(self, cid: int) -> None:
        ready = self._ready.pop(cid, None)
        ctx, base = ready or _sample(cid, self._state, self._config, self._problem)
        if self._config.deterministic:
            point = self._points.get(cid) if ready else None
            self._points.log(cid, self._state.counters.next_id if point is None else point)
        self._state.emit(CandidateLaunched(id=cid, island=ctx.island,
                                           parent_ids=(ctx.parent.id,)))
        self._in_flight += 1
        self._start(self._candidate(ctx, base))

    def _start(self, work: Coroutine[None, None, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _candidate(self, ctx: ProposalContext, base: CandidateRecord) -> None:
        # A CancelledError (interrupted) propagates: the candidate is abandoned, unstored.
        try:
            record = await self._make(ctx, base)
        except Exception as exc:  # raised before evaluating (a fault while proposing)
            record = _faulted(self._state, base, exc, "proposal")
        # A finished candidate waiting for its turn to be applied is no longer in flight:
        # a slow one holds back no launch.
        self._in_flight -= 1
        self._buffer[record.id] = record
        self._settle(record.id)

    async def _reevaluate(self, record: CandidateRecord) -> None:
        try:
            record = await self.reevaluator.run(record)
        except Exception as exc:  # a fault of the backend (a candidate's is a verdict)
            record = _faulted(self._state, record, exc, "evaluation")
        self._in_flight -= 1
        self._buffer[record.id] = record
        self._reevaluating.discard(record.id)
        self._reevaluated.add(record.id)
        self._settle(record.id)

    async def _make(self, ctx: ProposalContext, base: CandidateRecord) -> CandidateRecord:
        cid = base.id
        started = time.perf_counter()
        try:
            proposal = await self._mutator.propose(ctx)
        except EditError as exc:
            self._state.emit(ProposalFailed(id=cid, error=str(exc)))
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
        self._state.emit(CandidateProposed(id=base.id, edit_kind=proposal.edit_kind,
                                           model=proposal.usage.model,
                                           cost_usd=proposal.usage.cost_usd,
                                           propose_s=propose_s))
        hashes = self._state.counters.hashes
        if digest in hashes:
            return replace(record, status="duplicate", duplicate_of=hashes[digest])
        # Evaluated already but not applied yet (waiting for its turn or its re-evaluation):
        # the same verdict; whichever of the two is applied first, the other is a duplicate.
        waiting = next((r.result for r in self._buffer.values()
                        if r.code_hash == digest and r.result is not None), None)
        if waiting is not None:
            return replace(record, result=waiting, eval_s=0.0)
        try:
            result = await self._evaluator.evaluate_distinct(digest, proposal.code)
        except Exception as exc:
            return _faulted(self._state, record, exc, "evaluation")
        return replace(record, result=result, eval_s=result.duration_s)

    def _settle(self, cid: int) -> None:
        """Apply the finished candidates whose turn came (in id order when deterministic,
        `cid` at once otherwise), starting the re-evaluation of one that would be the new
        best instead (it is applied when that ends); then launch into the room left."""
        try:
            order = (self._state.counters.next_id,) if self._config.deterministic else (cid,)
            while order[0] in self._buffer and order[0] not in self._reevaluating:
                record = self._buffer[order[0]]
                if record.id not in self._reevaluated and self.reevaluator.wanted(
                        record, _best_score(self._state), self._state.counters.hashes):
                    self._reevaluating.add(record.id)
                    self._in_flight += 1  # it holds an evaluation slot
                    self._start(self._reevaluate(record))
                    break
                self._reevaluated.discard(record.id)
                self._state.apply(self._buffer.pop(record.id))
                self._launch_more()  # after each apply, so recorded points are met exactly
                if not self._config.deterministic:
                    break
                order = (self._state.counters.next_id,)
        except Exception as exc:  # storing or applying failed: a fault of adrs or the disk
            self._state.request_stop(f"error: {describe_fault(exc)}")
            _log.error("candidate %d could not be stored", cid, exc_info=exc)
        self._launch_more()


def _best_score(state: RunState) -> float | None:
    best = state.counters.best
    return None if best is None else best.score


def _faulted(state: RunState, record: CandidateRecord, exc: Exception,
             stage: str) -> CandidateRecord:
    """The stored outcome of a candidate whose proposal or evaluation raised; stops the run."""
    message = state.fault(exc, stage)
    if record.status == "proposal_failed":  # no program yet
        state.emit(ProposalFailed(id=record.id, error=message))
        return replace(record, error=message, usage=getattr(exc, "usage", record.usage))
    # No code hash: a fault is no verdict on the code, so the same code proposed later
    # (after resume, say) is evaluated instead of counted as a duplicate of this one.
    return replace(record, code_hash=None, result=EvalResult.invalid(message))


def _sample(cid: int, state: RunState, config: RunConfig,
            problem: Problem) -> tuple[ProposalContext, CandidateRecord]:
    """What candidate `cid` starts from, drawn from the archive and attempts memory now
    with the rng of (seed, cid) only; and its record until it is proposed."""
    rng = random.Random(f"{config.seed}:{cid}")
    island = cid % config.archive.islands
    sel = state.archive.sample(island, rng)
    ctx = ProposalContext(candidate_id=cid, parent=sel.parent, inspirations=sel.inspirations,
                          mate=sel.mate, island=island, rng=rng, task=problem.task,
                          attempts=state.attempts.recent(sel.parent.id),
                          sampled_after=state.counters.next_id)
    base = CandidateRecord(id=cid, status="proposal_failed", island=island,
                           generation=sel.parent.generation + 1, parent_ids=(sel.parent.id,),
                           edit_kind="diff", created=time.time())
    return ctx, base

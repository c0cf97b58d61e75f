"""The evolutionary controller: an asynchronous steady-state pipeline.

Up to `llm.proposals_in_flight` proposals and `evaluation.workers` evaluations run at once,
so slow LLM calls and slow evaluations overlap. The controller is the only stage that moves
data: archive -> mutator -> evaluation backend -> archive, store and events.

It composes two parts, and data moves one way between them:
- `Pipeline` (adrs/engine/pipeline.py): what to launch and when, parent sampling, the
  proposal and evaluation tasks, the in-flight bookkeeping and the reorder buffer;
- `RunState` (adrs/engine/controller_state.py): the one place state changes, applying each
  finished record to the archive, counters, store, events, dedup table and attempts
  memory, and keeping the stop reason.
The pipeline reads the state and hands it records; the state never calls the pipeline.

Determinism (see docs/architecture.md and adrs/engine/schedule.py): results are applied to
the archive and committed to the store in candidate-id order, and each candidate is sampled
from the archive as it was once the candidates below its recorded sampling point were
applied. A live run launches whenever fewer than `pipeline_depth` candidates are in flight
(a finished candidate waiting for a slow one before it is no longer in flight, so a slow
LLM call holds back no launch) and records the point; a replay or a resume samples at the
recorded points, so the archive depends on the seed and the responses, not on timing. With
`deterministic: false` results are applied as they complete instead, and nothing is
recorded.

Every launched candidate is stored, whatever happens to it: a fault while proposing or
evaluating it (a crashed worker, a bug, a UserError such as a rejected API key) is stored
as that candidate's outcome, no new candidate is launched, the ones in flight finish and
are stored, and the run ends with the reason "error: ...". Only an interruption abandons
the candidates in flight (resume launches those ids again).
"""

from __future__ import annotations

from collections.abc import Sequence

from adrs.config.run_config import RunConfig
from adrs.engine.archive import Archive
from adrs.engine.controller_state import Counters, RunState, RunSummary
from adrs.engine.mutator import Mutator
from adrs.engine.pipeline import Evaluator, Pipeline
from adrs.engine.schedule import SamplingPoints
from adrs.evaluation.backends import EvalBackend
from adrs.problem.spec import Problem, eval_job
from adrs.store.database import RunStore
from adrs.store.events import Observer, RunStarted

__all__ = ["Controller", "Counters", "RunSummary"]


class Controller:
    """Runs one session of a run: restores state from the store, then evolves."""

    def __init__(self, *, problem: Problem, config: RunConfig, store: RunStore,
                 mutator: Mutator, backend: EvalBackend, archive: Archive,
                 observers: Sequence[Observer] = ()) -> None:
        self.problem, self.config, self.store = problem, config, store
        # Every evaluation shares this job but for the source (options checked once, here).
        evaluator = Evaluator(eval_job(problem, config, source=""), backend)
        self.archive = archive
        self._state = RunState(config=config, store=store, archive=archive,
                               mutator=mutator, observers=observers)
        self.counters: Counters = self._state.counters
        self._pipeline = Pipeline(problem=problem, config=config, mutator=mutator,
                                  evaluator=evaluator, state=self._state,
                                  points=SamplingPoints(store, config))

    def restore(self) -> None:
        """Rebuild archive and counters by replaying the store in id order; candidates the
        last session had in flight are sampled on the way, at their recorded points."""
        self._pipeline.restore(self.store.records())

    def request_stop(self, reason: str) -> None:
        """Stop launching; with 'interrupted', in-flight candidates are abandoned.

        The first reason stays, except that an error replaces any other, and "interrupted"
        any but an error (RunState.request_stop).
        """
        self._state.request_stop(reason)
        if reason == "interrupted":
            self._pipeline.cancel()

    async def run(self, started: RunStarted | None = None) -> RunSummary:
        """Evolve until a stop reason holds; the summary of this session.

        A UserError met mid-run is raised again once everything in flight is stored.
        """
        self._state.begin(started)
        await self._pipeline.run()
        summary = self._state.finish(self._pipeline.next_launch)
        if self._state.fatal is not None:
            raise self._state.fatal  # everything applied so far is stored; the CLI exits with 2
        return summary

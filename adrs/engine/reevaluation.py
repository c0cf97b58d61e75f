"""Noise-aware selection: a new best is evaluated again before it counts.

A program whose score moves between evaluations (it sizes a search by wall-clock time, it
races threads) can take the run's best place with a lucky draw. So a candidate that would
become the best (its first score beats the best applied so far, and its code is not a
duplicate) is evaluated again through the same backend, each time in a fresh sandbox, before
it is applied (`evaluation.reevaluate`, adrs/config/run_config.py):

- probe "every_best" (default): once; if that score equals the first exactly, the program is
  deterministic and its score stands; if not, `count` re-evaluations in all. Once any
  program has proved noisy, every later best gets its `count` at once.
- probe "first_best": only the first best (the initial program) is probed; when it agrees,
  the evaluator counts as deterministic for the run and no later best is re-evaluated.

The candidate's stored score is then the mean of all its evaluations (so the archive, the
run's best, `adrs runs`, `show`, `best` and the dashboard all rank by it), and every single
evaluation is kept in the store (`RunStore.evaluations`), committed as it completes. A
re-evaluation that fails makes the candidate invalid: a best that fails one run in three is
not one.

Determinism: the pipeline decides and applies a re-evaluation when the candidate's turn to
be applied comes (every lower id applied, in deterministic mode), so the decision depends on
the applied archive only; the probe's memory (`noisy`, `probed`) is rebuilt on resume from
the stored evaluations of the stored candidates, and a candidate re-launched on resume
with the same code reuses its stored re-evaluations instead of running them again.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from adrs.config.run_config import ReevaluateConfig
from adrs.store.database import CandidateRecord, RunStore
from adrs.store.side_tables import Evaluation
from adrs.types import EvalResult

Evaluate = Callable[[str], Awaitable[EvalResult]]


@dataclass(frozen=True)
class Noise:
    """The evaluations of a re-evaluated candidate, summed up for the views."""

    scores: tuple[float, ...]  # first evaluation first; valid evaluations only
    evaluations: int  # all of them, the first included
    failed: int

    @property
    def mean(self) -> float:
        return math.fsum(self.scores) / len(self.scores) if self.scores else math.nan

    @property
    def spread(self) -> float:
        return max(self.scores) - min(self.scores) if self.scores else math.nan

    @property
    def text(self) -> str:
        """E.g. 'mean of 3, spread 4; first 238' (the figure it qualifies comes before)."""
        if self.failed:
            return (f"{self.failed} of {self.evaluations} evaluations failed; "
                    f"first {self.scores[0]:.6g}" if self.scores else
                    f"{self.failed} of {self.evaluations} evaluations failed")
        if self.spread == 0:
            return f"same in {self.evaluations} evaluations"
        return (f"mean of {self.evaluations}, spread {self.spread:.4g}; "
                f"first {self.scores[0]:.6g}")


def noise_of(evaluations: Iterable[Evaluation], code_hash: str | None) -> Noise | None:
    """The noise summary of one candidate's evaluations of the code `code_hash` (a candidate
    re-launched on resume may have rows of other code); None when it was not re-evaluated."""
    rows = sorted((e for e in evaluations if e.code_hash == code_hash), key=lambda e: e.n)
    if len(rows) < 2 or rows[0].n != 0:
        return None
    return Noise(scores=tuple(e.score for e in rows if e.valid and e.score is not None),
                 evaluations=len(rows), failed=sum(not e.valid for e in rows))


def _agree(a: Evaluation, b: Evaluation) -> bool:
    return a.valid == b.valid and a.score == b.score


class Reevaluator:
    """Decides which finished candidates to evaluate again, and does it."""

    def __init__(self, config: ReevaluateConfig, evaluate: Evaluate, store: RunStore) -> None:
        self._config, self._evaluate, self._store = config, evaluate, store
        self.noisy = False  # some program's evaluations differed
        self.probed = False  # some program was re-evaluated
        self.extra = 0  # re-evaluations run in this session (not reused)

    def restore(self, records: Sequence[CandidateRecord]) -> None:
        """Rebuild what the probes learnt from the stored candidates' stored evaluations."""
        by_id: dict[int, list[Evaluation]] = {}
        for ev in self._store.tables.evaluations():
            by_id.setdefault(ev.candidate_id, []).append(ev)
        for record in records:
            rows = [e for e in by_id.get(record.id, ()) if e.code_hash == record.code_hash]
            if len(rows) > 1:
                self._learn(rows)

    def wanted(self, record: CandidateRecord, best: float | None,
               hashes: dict[str, int]) -> bool:
        """Whether `record`, about to be applied, is to be evaluated again first."""
        res = record.result
        if (self._config.count == 0 or record.status != "evaluated" or res is None
                or not res.valid or res.score is None or record.code_hash is None
                or record.code_hash in hashes):
            return False
        if best is not None and res.score <= best:
            return False
        return not (self._config.probe == "first_best" and self.probed and not self.noisy)

    async def run(self, record: CandidateRecord) -> CandidateRecord:
        """`record` with the mean of its evaluations as its score (or invalid when one of
        them failed); each evaluation is stored as it completes."""
        assert record.code is not None and record.code_hash is not None
        assert record.result is not None
        code, digest = record.code, record.code_hash
        stored = {e.n: e for e in self._store.tables.evaluations(record.id)
                  if e.code_hash == digest}
        first = _evaluation(record.id, digest, 0, record.result)
        self._store.tables.add_evaluation(first)
        count = self._config.count

        async def nth(n: int) -> Evaluation:
            if n in stored:
                return stored[n]
            ev = _evaluation(record.id, digest, n, await self._evaluate(code))
            self.extra += 1
            self._store.tables.add_evaluation(ev)
            return ev

        rows = [first, *await asyncio.gather(*(nth(n) for n in range(
            1, 1 + (count if self.noisy else 1))))]
        if len(rows) < count + 1 and not _agree(first, rows[1]):
            rows += await asyncio.gather(*(nth(n) for n in range(len(rows), count + 1)))
        self._learn(rows)
        return _averaged(record, rows)

    def _learn(self, rows: Sequence[Evaluation]) -> None:
        self.probed = True
        self.noisy = self.noisy or not all(_agree(rows[0], e) for e in rows[1:])


def _evaluation(cid: int, digest: str, n: int, result: EvalResult) -> Evaluation:
    return Evaluation(candidate_id=cid, code_hash=digest, n=n, valid=result.valid,
                      score=result.score if result.valid else None, error=result.error,
                      duration_s=result.duration_s)


def _averaged(record: CandidateRecord, rows: Sequence[Evaluation]) -> CandidateRecord:
    assert record.result is not None
    failed = [e for e in rows if not e.valid]
    if failed:
        error = (f"re-evaluation {failed[0].n} of {len(rows) - 1} of this new best failed "
                 f"(its first evaluation scored {rows[0].score:.6g}): {failed[0].error}")
        res = record.result
        return replace(record, result=EvalResult.invalid(
            error, metrics=res.metrics, feedback=res.feedback, stderr=res.stderr,
            duration_s=res.duration_s))
    mean = math.fsum(e.score or 0.0 for e in rows) / len(rows)
    return replace(record, result=replace(record.result, score=mean))

"""Noise-aware selection (adrs/engine/reevaluation.py): new bests are evaluated again and
ranked by the mean; a deterministic evaluator costs one probe; resume re-runs nothing."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from test_controller import fingerprint, make, rewrite_script, run

from adrs.config.run_config import ReevaluateConfig, RunConfig, resolve
from adrs.engine.archive import Archive
from adrs.engine.controller import Controller
from adrs.engine.reevaluation import Reevaluator, noise_of
from adrs.evaluation.backends import ThreadBackend
from adrs.evaluation.runner import EvalJob
from adrs.llm.mutator import LLMMutator
from adrs.problem.spec import Problem, load_problem
from adrs.store.database import CandidateRecord, RunStore
from adrs.store.side_tables import Evaluation
from adrs.types import EvalResult


class CountingBackend:
    """Real toy evaluations; with `noise`, each valid score gets up to +-noise added from
    os.urandom on the trusted side (an evaluator whose score moves between runs)."""

    def __init__(self, noise: float = 0.0) -> None:
        self.inner, self.workers, self.noise = ThreadBackend(2), 2, noise
        self.jobs: list[str] = []
        self._lock = threading.Lock()

    def submit(self, job: EvalJob) -> concurrent.futures.Future[EvalResult]:
        with self._lock:
            self.jobs.append(job.source)
        if not self.noise:
            return self.inner.submit(job)
        out: concurrent.futures.Future[EvalResult] = concurrent.futures.Future()

        def done(inner: concurrent.futures.Future[EvalResult]) -> None:
            res = inner.result()
            if res.valid and res.score is not None:
                draw = int.from_bytes(os.urandom(4), "big") / 2**32
                res = replace(res, score=res.score + self.noise * (2 * draw - 1))
            out.set_result(res)

        self.inner.submit(job).add_done_callback(done)
        return out

    def close(self) -> None:
        self.inner.close()


@pytest.fixture(scope="module")
def toy() -> Problem:
    return load_problem("toy")


def config_for(iterations: int, **reevaluate: Any) -> RunConfig:
    return resolve([("test", {"seed": 5, "stop": {"iterations": iterations},
                              "archive": {"islands": 2},
                              "llm": {"proposals_in_flight": 2},
                              "evaluation": {"reevaluate": reevaluate}})])


def evaluated(store: RunStore) -> list[CandidateRecord]:
    return [r for r in store.records() if r.status == "evaluated" and r.result is not None]


def test_a_noisy_evaluator_ranks_and_reports_by_the_mean(tmp_path: Path, toy: Problem) -> None:
    config = config_for(20, count=3)
    backend = CountingBackend(noise=1.0)
    controller = make(tmp_path / "r", toy, config, LLMMutator(rewrite_script(toy), config.llm),
                      backend)
    summary = run(controller)
    store = RunStore.open(tmp_path / "r")
    try:
        by_id = {r.id: r for r in evaluated(store)}
        rows = store.tables.evaluations()
        noises = {cid: noise_of([e for e in rows if e.candidate_id == cid],
                                by_id[cid].code_hash) for cid in {e.candidate_id for e in rows}}
    finally:
        store.close()
    assert summary.best is not None and summary.best.id in noises
    for cid, noise in noises.items():
        assert noise is not None and noise.evaluations == 4 and noise.spread > 0
        stored = by_id[cid].result
        assert stored is not None and stored.score == noise.mean  # stored, ranked: the mean
        assert noise.scores[0] != noise.mean
    # The best is the best by the mean; a lucky first draw alone never is the best.
    valid = [r.result.score for r in by_id.values() if r.result and r.result.valid]
    assert summary.best.score == max(s for s in valid if s is not None)
    assert summary.best.score == noises[summary.best.id].mean  # type: ignore[union-attr]
    assert len(backend.jobs) == len(by_id) + 3 * len(noises)


@pytest.mark.parametrize("probe", ["first_best", "every_best"])
def test_a_deterministic_evaluator_is_probed_not_averaged(tmp_path: Path, toy: Problem,
                                                           probe: str) -> None:
    config = config_for(30, probe=probe)
    backend = CountingBackend()
    run(make(tmp_path / "r", toy, config, LLMMutator(rewrite_script(toy), config.llm),
             backend))
    store = RunStore.open(tmp_path / "r")
    try:
        rows, records = store.tables.evaluations(), evaluated(store)
    finally:
        store.close()
    probed = sorted({e.candidate_id for e in rows})
    extra = len(backend.jobs) - len(records)
    print(f"probe={probe}: {len(records)} evaluated candidates, {extra} extra evaluations "
          f"(probed {probed})")
    assert extra == len(probed) and all(e.n in (0, 1) for e in rows)
    assert all(e.score == rows[0].score for e in rows if e.candidate_id == 0)
    if probe == "first_best":
        assert probed == [0]  # the initial program agreed: the evaluator is deterministic
    else:
        assert len(probed) > 1  # each new best once
    for record in records:  # scores stand as they were
        assert record.result is not None and record.result.duration_s >= 0


def test_resume_rebuilds_the_archive_without_evaluating_again(tmp_path: Path,
                                                              toy: Problem) -> None:
    config = config_for(16, count=2)
    live = make(tmp_path / "r", toy, config, LLMMutator(rewrite_script(toy), config.llm),
                CountingBackend(noise=1.0))
    run(live)
    store = RunStore.open(tmp_path / "r")
    backend = CountingBackend(noise=1.0)
    again = Controller(problem=toy, config=config, store=store,
                       mutator=LLMMutator(rewrite_script(toy), config.llm), backend=backend,
                       archive=Archive(config.archive, seed=config.seed))
    try:
        again.restore()
    finally:
        store.close()
    assert fingerprint(again) == fingerprint(live) and not backend.jobs
    assert again.counters.best is not None and live.counters.best is not None
    assert again.counters.best.score == live.counters.best.score


class Calls:
    def __init__(self, scores: list[float | None]) -> None:
        self.scores, self.codes = scores, list[str]()

    async def __call__(self, code: str) -> EvalResult:
        self.codes.append(code)
        score = self.scores[len(self.codes) - 1]
        return EvalResult(valid=True, score=score) if score is not None else \
            EvalResult.invalid("timed out")


def record(score: float, cid: int = 3) -> CandidateRecord:
    return CandidateRecord(id=cid, status="evaluated", island=0, generation=1, parent_ids=(0,),
                           edit_kind="diff", created=0.0, code="x = 1\n", code_hash="h",
                           result=EvalResult(valid=True, score=score, metrics={"m": 1}))


def test_stored_reevaluations_are_reused_and_a_failed_one_invalidates(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path / "r", "{}\n", {"problem": "toy"})
    try:
        store.tables.add_evaluation(Evaluation(3, "h", 1, True, 241.0))
        store.tables.add_evaluation(Evaluation(3, "other code", 2, True, 0.0))
        calls = Calls([242.0])
        re = Reevaluator(ReevaluateConfig(count=2), calls, store)
        out = asyncio.run(re.run(record(238.0)))
        assert calls.codes == ["x = 1\n"] and re.extra == 1 and re.noisy
        assert out.result is not None and out.result.score == pytest.approx(721 / 3)
        noise = noise_of(store.tables.evaluations(3), "h")
        assert noise is not None and noise.text == "mean of 3, spread 4; first 238"
        failing = Reevaluator(ReevaluateConfig(count=2), Calls([10.0, None]), store)
        failing.noisy = True
        bad = asyncio.run(failing.run(record(9.0, cid=4)))
        assert bad.result is not None and not bad.result.valid
        assert "re-evaluation 2 of 2" in (bad.result.error or "") and bad.code_hash == "h"
    finally:
        store.close()


def test_only_a_would_be_best_that_is_no_duplicate_is_wanted(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path / "r", "{}\n", {"problem": "toy"})
    try:
        re = Reevaluator(ReevaluateConfig(probe="first_best"), Calls([]), store)
        assert re.wanted(record(5.0), None, {}) and re.wanted(record(5.0), 4.0, {})
        assert not re.wanted(record(4.0), 4.0, {}) and not re.wanted(record(5.0), 4.0, {"h": 1})
        re.probed = True  # the first best agreed: deterministic, nothing more re-evaluated
        assert not re.wanted(record(9.0), 4.0, {})
        re.noisy = True
        assert re.wanted(record(9.0), 4.0, {})
        off = Reevaluator(ReevaluateConfig(count=0), Calls([]), store)
        assert not off.wanted(record(9.0), None, {})
    finally:
        store.close()
    assert noise_of([], "h") is None

"""The pipeline's Evaluator: one evaluation per distinct program in flight, and faults."""

from __future__ import annotations

import asyncio
import concurrent.futures

import pytest

from adrs.config.run_config import resolve
from adrs.engine.pipeline import Evaluator
from adrs.evaluation.runner import EvalJob
from adrs.problem.spec import eval_job, load_problem
from adrs.types import EvalResult


class HeldBackend:
    """Records the sources submitted; the test completes (or cancels) their futures."""

    workers = 2

    def __init__(self) -> None:
        self.submitted: list[str] = []
        self.futures: list[concurrent.futures.Future[EvalResult]] = []

    def submit(self, job: EvalJob) -> concurrent.futures.Future[EvalResult]:
        self.submitted.append(job.source)
        future: concurrent.futures.Future[EvalResult] = concurrent.futures.Future()
        self.futures.append(future)
        return future

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def job() -> EvalJob:
    return eval_job(load_problem("toy"), resolve([]), source="")


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_the_same_program_in_flight_twice_is_evaluated_once(job: EvalJob) -> None:
    async def scenario() -> tuple[EvalResult, EvalResult, EvalResult]:
        backend = HeldBackend()
        evaluator = Evaluator(job, backend)
        first = asyncio.ensure_future(evaluator.evaluate_distinct("h", "x = 1"))
        second = asyncio.ensure_future(evaluator.evaluate_distinct("h", "x = 1"))
        await settle()
        assert backend.submitted == ["x = 1"]
        backend.futures[0].set_result(EvalResult(valid=True, score=3.0))
        results = await asyncio.gather(first, second)
        third = asyncio.ensure_future(evaluator.evaluate_distinct("h", "x = 1"))
        await settle()  # no longer pending: evaluated again
        backend.futures[1].set_result(EvalResult(valid=True, score=4.0))
        assert len(backend.submitted) == 2
        return results[0], results[1], await third
    first, second, third = asyncio.run(scenario())
    assert first.score == second.score == 3.0 and third.score == 4.0


def test_a_failed_evaluation_fails_every_waiter(job: EvalJob) -> None:
    async def scenario() -> list[BaseException | EvalResult]:
        backend = HeldBackend()
        evaluator = Evaluator(job, backend)
        waiting = [asyncio.ensure_future(evaluator.evaluate_distinct("h", "x = 1"))
                   for _ in range(2)]
        await settle()
        backend.futures[0].set_exception(RuntimeError("worker crashed"))
        return await asyncio.gather(*waiting, return_exceptions=True)
    outcomes = asyncio.run(scenario())
    assert [type(o) for o in outcomes] == [RuntimeError, RuntimeError]


def test_a_job_the_backend_cancels_is_a_fault(job: EvalJob) -> None:
    async def scenario() -> None:
        backend = HeldBackend()
        evaluator = Evaluator(job, backend)
        task = asyncio.ensure_future(evaluator.evaluate("x = 1"))
        await settle()
        assert backend.submitted == ["x = 1"]
        backend.futures[0].cancel()
        await task
    with pytest.raises(RuntimeError, match="backend cancelled the job"):
        asyncio.run(scenario())

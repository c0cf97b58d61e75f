"""Running a TXN candidate over the workloads, twice, in two fresh processes at once.

A program that sizes its search by the clock (or draws unseeded random numbers) answers
differently from one run to the next; scoring one run would reward its luck. So the
evaluation's own sandbox and a fresh sandbox of the same program (the same limits, what is
left of the time budget) each answer every workload, side by side; each workload keeps
the worse makespan of the two, and `same_order` records whether the orders agreed. A
deterministic program loses nothing: the same order twice. Side by side, the wall time is
one run's, within the time limit the problem states.

Every order is checked and priced here with the trusted model; nothing the candidate
reports is used. Each call is timed from this side and stopped after the call limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from adrs.sandbox.candidate import Candidate, CandidateFault, sibling

from .model import makespan
from .workloads import Workload

ENTRY = "get_best_schedule"


class Caller(Protocol):
    """A started sandbox of the candidate (adrs.sandbox.candidate.Candidate)."""

    def call(self, name: str, *args: object, timeout_s: float | None = None) -> object: ...


class PassError(Exception):
    """A fault of the candidate in one pass; the message is meant for the LLM."""


class VoidError(Exception):
    """A sandbox of ours could not be cleaned up: the evaluation's result is void."""


class ScheduleError(ValueError):
    """The returned value is not a permutation of the workload's indices."""


@dataclass(frozen=True)
class Answer:
    """One workload's answer in one pass: the order, its makespan and the call's time."""

    order: tuple[int, ...]
    makespan: int
    runtime_s: float


def check_schedule(schedule: object, size: int) -> list[int]:
    """`schedule` as a list of ints if it is a permutation of range(size), else
    ScheduleError with a message for the LLM. Accepts a list, a tuple or a 1-D integer
    numpy array (what the sandbox codec returns for one)."""
    tolist = getattr(schedule, "tolist", None)
    if callable(tolist) and getattr(getattr(schedule, "dtype", None), "kind", "") in "iu" \
            and getattr(schedule, "ndim", 0) == 1:
        schedule = tolist()
    if not isinstance(schedule, list | tuple):
        raise ScheduleError(f"returned {type(schedule).__name__}; expected a list of "
                            f"transaction indices, each of 0..{size - 1} exactly once")
    if len(schedule) != size:
        raise ScheduleError(f"returned {len(schedule)} indices for {size} transactions; "
                            f"expected each of 0..{size - 1} exactly once")
    seen: dict[int, int] = {}
    for position, index in enumerate(schedule):
        if isinstance(index, bool) or not isinstance(index, int):
            raise ScheduleError(f"entry {position} is {index!r} ({type(index).__name__}); "
                                "indices must be ints")
        if not 0 <= index < size:
            raise ScheduleError(f"entry {position} is {index}, outside 0..{size - 1}")
        if index in seen:
            raise ScheduleError(f"transaction {index} appears twice (entries {seen[index]} "
                                f"and {position}); each must appear exactly once")
        seen[index] = position
    return list(schedule)


def one_pass(caller: Caller, workloads: Sequence[Workload], budget_s: float,
             limit_s: float) -> list[Answer]:
    """Every workload's answer from `caller`, called in the order given; PassError on the
    first fault."""
    answers = []
    for workload in workloads:
        started = time.monotonic()
        try:
            schedule = caller.call(ENTRY, list(workload.texts), budget_s, timeout_s=limit_s)
        except CandidateFault as fault:
            raise PassError(f"on workload {workload.name}: {fault}") from None
        runtime = time.monotonic() - started
        try:
            order = check_schedule(schedule, len(workload))
        except ScheduleError as exc:
            raise PassError(f"on workload {workload.name}, {ENTRY} {exc}") from None
        answers.append(Answer(tuple(order), makespan(workload.txns, order), runtime))
    return answers


def _fresh_pass(candidate: Candidate, run: Callable[[Caller], list[Answer]]) -> list[Answer]:
    """`run` on a fresh sandbox of `candidate`'s program, closed afterwards."""
    try:
        fresh = sibling(candidate)
        with fresh:
            answers = run(fresh)
    except (CandidateFault, PassError) as fault:
        raise PassError(f"in the second run (a fresh process, run alongside): {fault}") \
            from None
    if fresh.cleanup_error is not None:  # as the runner treats its own sandbox
        raise VoidError("a sandbox could not be cleaned up after the program ran "
                           f"({fresh.cleanup_error}); its result is void")
    return answers


def two_passes(candidate: Any, workloads: Sequence[Workload], budget_s: float,
               limit_s: float) -> tuple[list[Answer], list[Answer] | None]:
    """The answers of `candidate` and, when it is a sandbox handle (Candidate), of a fresh
    sandbox of the same program run alongside (None otherwise). PassError (the first
    pass's fault first) or VoidError (a sandbox of ours not cleaned up)."""
    def run(caller: Caller) -> list[Answer]:
        return one_pass(caller, workloads, budget_s, limit_s)

    if not isinstance(candidate, Candidate):
        return run(candidate), None
    with ThreadPoolExecutor(1) as pool:
        second = pool.submit(_fresh_pass, candidate, run)
        first = run(candidate)  # a fault here is raised once the second run has ended
        return first, second.result()

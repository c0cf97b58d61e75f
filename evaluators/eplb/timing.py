"""Trusted timing of candidate calls, net of the sandbox's transport cost, robust to load.

A call through the sandbox costs, on top of the algorithm, encoding the arguments, two pipe
transfers and decoding the reply (about 0.1 ms, plus about 1 ms per 4 MB of reply). That is
not the algorithm's time, so it is measured and subtracted: a trusted echo program, in its
own sandbox (the candidate cannot tamper with it), receives the same arguments right after
each candidate call and returns zero arrays of the very shapes and dtypes that call returned.
Both sandboxes load harness.py, which keeps freed memory in the process between calls.

Other processes on the machine only ever add time. So the evaluator times several passes
over the windows and takes, for the candidate and for the echo separately, the smallest of
the per-pass medians: a pass hit by a burst of load does not count, and a single lucky call
does not either. The algorithm's time is that candidate figure minus that echo figure,
floored at MIN_TIME_S.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

import numpy as np

from adrs.sandbox.candidate import Candidate, Limits

MIN_TIME_S = 1e-5
# The problem's sandbox harness (allocator settings), loaded into the echo's sandbox too so
# that both sides of the subtraction run in the same kind of process.
HARNESS = str(Path(__file__).with_name("harness.py"))
ECHO_SOURCE = '''
import numpy as np


def blank(args, specs):
    """Zero arrays of the given (shape, dtype) specs; `args` only travels."""
    return tuple(np.zeros(tuple(shape), dtype=dtype) for shape, dtype in specs)
'''

Spec = tuple[tuple[int, ...], str]


def timed(call: Callable[[], object]) -> tuple[object, float]:
    """The value of `call()` and its wall time in seconds."""
    start = time.perf_counter()
    value = call()
    return value, time.perf_counter() - start


def reply_specs(reply: object) -> list[Spec]:
    """(shape, dtype) of every array in a reply; other items count as empty arrays."""
    items = reply if isinstance(reply, list | tuple) else (reply,)
    return [(tuple(int(n) for n in x.shape), x.dtype.str) if isinstance(x, np.ndarray)
            else ((0,), "<i8") for x in items]


class Echo:
    """The trusted echo program in its own sandbox; use it inside a with block.

    `round_trip(args, specs)` is the wall time of sending `args` and receiving arrays of
    `specs` back. `warm_up(args, specs)` makes the echo's first, slow round trips (pages of
    its buffers, caches) before any that counts.
    """

    WARM_UP_CALLS = 2

    def __init__(self) -> None:
        self._echo = Candidate(ECHO_SOURCE, Limits(timeout_s=600.0), harness=HARNESS)

    def __enter__(self) -> Echo:
        self._echo.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._echo.__exit__(exc_type, exc, tb)

    def warm_up(self, args: Sequence[object], specs: list[Spec]) -> None:
        for _ in range(self.WARM_UP_CALLS):
            self._echo.call("blank", list(args), specs)

    def round_trip(self, args: Sequence[object], specs: list[Spec]) -> float:
        return timed(lambda: self._echo.call("blank", list(args), specs))[1]


class NoEcho:
    """Counts no transport (tests with an in-process candidate); the same shape as Echo."""

    def __enter__(self) -> NoEcho:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def warm_up(self, args: Sequence[object], specs: list[Spec]) -> None:
        return None

    def round_trip(self, args: Sequence[object], specs: list[Spec]) -> float:
        return 0.0


def best_median(passes: Sequence[Sequence[float]]) -> float:
    """The smallest of the per-pass medians (each pass non-empty)."""
    return min(statistics.median(times) for times in passes)


def fastest(passes: Sequence[Sequence[float]]) -> int:
    """The index of the pass with the smallest median (the first of equals)."""
    medians = [statistics.median(times) for times in passes]
    return medians.index(min(medians))


def algorithm_time(call_passes: Sequence[Sequence[float]],
                   echo_passes: Sequence[Sequence[float]]) -> float:
    """best_median of the call times minus best_median of the echo times, >= MIN_TIME_S."""
    return max(best_median(call_passes) - best_median(echo_passes), MIN_TIME_S)

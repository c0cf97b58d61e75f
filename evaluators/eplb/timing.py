"""Trusted timing of candidate calls, net of the sandbox's transport cost.

A call through the sandbox costs, on top of the algorithm, encoding the arguments, two pipe
transfers and decoding the reply (about 0.1 ms, plus about 1 ms per 4 MB of reply). That is
not the algorithm's time, so it is measured and subtracted: a trusted echo program, in its
own sandbox (the candidate cannot tamper with it), receives the same arguments and returns
zero arrays of the very shapes and dtypes the candidate returned. The algorithm's time is
the median call time minus the median echo time, floored at MIN_TIME_S.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np

from adrs.evaluation.sandbox import Candidate, Limits

MIN_TIME_S = 1e-5
ECHO_CALLS = 7
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


def transport_time(args: Sequence[object], specs: list[Spec]) -> float:
    """Median round trip of `args` there and arrays of `specs` back, through a sandbox."""
    with Candidate(ECHO_SOURCE, Limits(timeout_s=60.0)) as echo:
        echo.call("blank", list(args), specs)  # warm-up
        times = [timed(lambda: echo.call("blank", list(args), specs))[1]
                 for _ in range(ECHO_CALLS)]
    return statistics.median(times)


def algorithm_time(call_times: Sequence[float], transport_s: float) -> float:
    """Median call time net of transport, at least MIN_TIME_S."""
    return max(statistics.median(call_times) - transport_s, MIN_TIME_S)

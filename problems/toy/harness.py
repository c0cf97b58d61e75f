"""The toy's harness: loaded inside the sandbox as module `harness`, after the candidate.

One message per tick for every series (lockstep), and only what is new in it: the trusted
evaluator (evaluators/toy.py) sends, at each tick, the load of the tick before in every
series (None at the first tick); the harness appends it to that series' history and
`provision_next` asks the candidate's `provision` for each series in turn, each time with
a fresh copy of the history. That is one small round trip across the sandbox per tick
instead of one per series and tick carrying the whole history; the candidate sees exactly
the calls, in the same order, as without the harness. Nothing here is trusted: the
evaluator checks every capacity it gets back, and the histories kept here only ever hold
loads the evaluator already sent.
"""

from __future__ import annotations

import sys

_histories: list[list[float]] = []


def provision_next(previous: list[float | None]) -> list[object]:
    """`provision(history)` for each series, after appending the load of the tick before
    (None at the first tick) to its history; a fresh list per call."""
    if not _histories:
        _histories.extend([] for _ in previous)
    provision = sys.modules["candidate"].provision
    answers = []
    for history, load in zip(_histories, previous, strict=True):
        if load is not None:
            history.append(load)
        answers.append(provision(list(history)))
    return answers

"""The toy's harness: loaded inside the sandbox as module `harness`, after the candidate.

One message per tick for every series (lockstep): the trusted evaluator
(evaluators/toy.py) sends the histories of all series, each holding only the loads before
the tick, and `provision_all` asks the candidate's `provision` for each in turn. That
is one round trip across the sandbox per tick instead of one per series and tick; the
candidate sees exactly the calls, in the same order, as without the harness. Nothing
here is trusted: the evaluator checks every capacity it gets back.
"""

from __future__ import annotations

import sys


def provision_all(histories: list[list[float]]) -> list[object]:
    """`provision(history)` for each series' history, in order (fresh lists: decoded)."""
    provision = sys.modules["candidate"].provision
    return [provision(history) for history in histories]

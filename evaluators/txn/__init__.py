"""Trusted evaluator of the TXN problem: order transactions for the smallest makespan.

`evaluate(candidate, options)` scores a candidate on three workloads, one of each kind
described in workloads.py. By default they are generated (seed GENERATED_SEED); to score on
the paper's own workloads, point the problem option `workloads` at its `workloads.json`
(`--option workloads=PATH`). A bad file is a UserError, so it stops `adrs run` or `adrs
eval` at once (exit 2, one line) instead of failing every candidate. Workloads are read
once per process and path.

Modules: model.py (the makespan model; also loaded into the sandbox as `harness`),
workloads.py (the file reader and the generators), bounds.py (lower bounds and best known
makespans), passes.py (the two runs side by side, validation), evaluator.py (scoring,
metrics, feedback).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from .evaluator import evaluate_workloads
from .workloads import Workload, generate_workloads, load_workloads

__all__ = ["WORKLOADS_OPTION", "configured_workloads", "evaluate"]

WORKLOADS_OPTION = "workloads"
GENERATED_SEED = 0


def configured_workloads(options: Mapping[str, Any] | None) -> tuple[Workload, ...]:
    """The paper's workloads if the option `workloads` names their file, else the generated
    ones."""
    path = str((options or {}).get(WORKLOADS_OPTION) or "").strip()
    return _workloads(path)


@functools.cache
def _workloads(path: str) -> tuple[Workload, ...]:
    return load_workloads(path) if path else generate_workloads(GENERATED_SEED)


def evaluate(candidate: Any, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The problem's evaluator (problem.yaml): see evaluator.evaluate_workloads."""
    return evaluate_workloads(candidate, configured_workloads(options))

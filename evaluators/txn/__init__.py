"""Trusted evaluator of the TXN problem: order transactions for the smallest makespan.

`evaluate(candidate)` scores a candidate on three workloads, one of each kind described in
workloads.py. By default they are generated (seed GENERATED_SEED); to score on the paper's
own workloads, point the environment variable ADRS_TXN_WORKLOADS at its `workloads.json`.
The variable is read once, when this package is imported, so that a bad path stops
`adrs run` or `adrs eval` at once (exit 2, one line) instead of failing every candidate.

Modules: model.py (the makespan model; also loaded into the sandbox as `harness`),
workloads.py (the file reader and the generators), evaluator.py (validation and scoring).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .evaluator import evaluate_workloads
from .workloads import Workload, generate_workloads, load_workloads

__all__ = ["WORKLOADS_VAR", "configured_workloads", "evaluate"]

WORKLOADS_VAR = "ADRS_TXN_WORKLOADS"
GENERATED_SEED = 0


def configured_workloads(environ: Mapping[str, str]) -> tuple[Workload, ...]:
    """The paper's workloads if `environ` names their file, else the generated ones."""
    path = environ.get(WORKLOADS_VAR, "").strip()
    return load_workloads(path) if path else generate_workloads(GENERATED_SEED)


_WORKLOADS = configured_workloads(os.environ)


def evaluate(candidate: Any) -> dict[str, Any]:
    """The problem's evaluator (problem.yaml): see evaluator.evaluate_workloads."""
    return evaluate_workloads(candidate, _WORKLOADS)

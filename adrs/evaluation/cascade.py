"""Cascade evaluation: cheap stages that gate the full evaluation.

A problem lists stages in problem.yaml, each a trusted evaluator (usually the full one on
a small workload) and an optional score threshold:

    cascade:
      - {evaluator: "evaluator.py:evaluate_quick", threshold: 40.0}

`run_job` runs the stages in order, each in a fresh sandbox, before the problem's
`evaluator`. A candidate that a stage finds invalid, or that scores below the stage's
threshold, is not evaluated further: its result is invalid, says which stage stopped it and
why, and keeps that stage's metrics and feedback (for the next prompt). A candidate that
passes every stage gets the full evaluation's result, as if there were no cascade. A stage
that takes a second parameter gets the job's problem options, as the evaluator does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from adrs.types import EvalResult


@dataclass(frozen=True)
class CascadeStage:
    """One gate: `evaluator` as in problem.yaml; `threshold` None gates on validity only."""

    evaluator: str
    threshold: float | None = None

    def __post_init__(self) -> None:
        if ":" not in self.evaluator:
            raise ValueError(f"a cascade 'evaluator' must look like 'module:function' or "
                             f"'file.py:function', got {self.evaluator!r}")
        if self.threshold is not None and not math.isfinite(self.threshold):
            raise ValueError(f"a cascade 'threshold' must be a finite number, "
                             f"got {self.threshold!r}")


def gate(stage: CascadeStage, number: int, result: EvalResult) -> EvalResult | None:
    """None if `result` lets the candidate through stage `number` (1-based), else the
    invalid result that ends its evaluation."""
    where = f"cascade stage {number} ({stage.evaluator})"
    if not result.valid:
        return EvalResult.invalid(f"{where}: {result.error}", stderr=result.stderr,
                                  feedback=result.feedback, metrics=result.metrics)
    if stage.threshold is None or (result.score is not None
                                   and result.score >= stage.threshold):
        return None
    return EvalResult.invalid(
        f"{where} scored {result.score:.6g}, below its threshold {stage.threshold:.6g}: "
        "the full evaluation was skipped", stderr=result.stderr, feedback=result.feedback,
        metrics=result.metrics)

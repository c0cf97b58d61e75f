"""Frozen value objects shared by every stage of the pipeline."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

MetricValue = float | int | str | bool
EditKind = Literal["initial", "diff", "rewrite", "crossover", "offline", "migrant"]


@dataclass(frozen=True)
class EvalResult:
    """The verdict of the trusted evaluator on one program. Higher score is better, always.

    A fault of the candidate is `valid=False` with an `error` the LLM can read; it is never
    an exception. `feedback` is text the evaluator wants the next prompt to show (for example
    the worst scenarios); `stderr` is the tail of what the candidate printed to stderr.
    `trace` is for the problem's author only and never reaches a prompt: the traceback of an
    evaluator that raised (its files and lines are the trusted side's, not the LLM's to see).
    """

    valid: bool
    score: float | None
    metrics: Mapping[str, MetricValue] = field(default_factory=dict)
    error: str | None = None
    feedback: str = ""
    stderr: str = ""
    duration_s: float = 0.0
    trace: str = ""

    def __post_init__(self) -> None:
        if self.valid and (self.score is None or not math.isfinite(self.score)):
            raise ValueError(f"a valid result needs a finite score, got {self.score!r}")

    @classmethod
    def invalid(cls, error: str, *, stderr: str = "", feedback: str = "",
                metrics: Mapping[str, MetricValue] | None = None,
                duration_s: float = 0.0, trace: str = "") -> EvalResult:
        return cls(valid=False, score=None, metrics=dict(metrics or {}), error=error,
                   feedback=feedback, stderr=stderr, duration_s=duration_s, trace=trace)

    def to_json(self) -> dict[str, Any]:
        return {"valid": self.valid, "score": self.score, "metrics": dict(self.metrics),
                "error": self.error, "feedback": self.feedback, "stderr": self.stderr,
                "duration_s": self.duration_s, "trace": self.trace}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EvalResult:
        return cls(valid=bool(data["valid"]), score=data.get("score"),
                   metrics=dict(data.get("metrics") or {}), error=data.get("error"),
                   feedback=data.get("feedback", ""), stderr=data.get("stderr", ""),
                   duration_s=float(data.get("duration_s", 0.0)),
                   trace=str(data.get("trace", "")))


@dataclass(frozen=True)
class LLMUsage:
    """Tokens and dollars spent on one proposal (all attempts together)."""

    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    calls: int = 0

    def __add__(self, other: LLMUsage) -> LLMUsage:
        return LLMUsage(model=self.model or other.model,
                        prompt_tokens=self.prompt_tokens + other.prompt_tokens,
                        completion_tokens=self.completion_tokens + other.completion_tokens,
                        cost_usd=self.cost_usd + other.cost_usd, calls=self.calls + other.calls)


@dataclass(frozen=True)
class Program:
    """An evaluated program as the archive and the prompts see it."""

    id: int
    code: str
    result: EvalResult
    parent_ids: tuple[int, ...] = ()
    island: int = 0
    generation: int = 0
    edit_kind: EditKind = "initial"

    @property
    def score(self) -> float:
        """The score used for ranking: invalid programs rank below every valid one."""
        if self.result.valid and self.result.score is not None:
            return self.result.score
        return -math.inf

"""Feature dimensions of the MAP-Elites grid and the binning of feature values.

A feature dimension maps a program to one float. Two are built in:

* ``code_length``: the number of characters inside the program's evolve blocks (the part the
  LLM may change; the fixed scaffold would only add a constant);
* ``complexity``: a cyclomatic-style count, 1 + decision points found with ``ast``.

Any other name is read from ``program.result.metrics``, so an evaluator can expose its own
behavioural descriptors (for example ``hit_rate`` or ``p99_latency``).
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from adrs.code.program import evolve_blocks
from adrs.code.syntax import parse
from adrs.errors import AdrsError
from adrs.types import MetricValue, Program


@dataclass(frozen=True)
class FeatureDim:
    """One axis of the grid: a feature name and how its values are cut into ``bins`` bins.

    With both ``lo`` and ``hi`` the range is fixed (values outside are clamped to the end
    bins). A bound left as None is adaptive: the archive uses the observed minimum (for
    ``lo``) or maximum (for ``hi``) of the feature over the valid programs added so far.
    """

    name: str
    bins: int = 10
    lo: float | None = None
    hi: float | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a feature dimension needs a name: use 'code_length', "
                             "'complexity' or the name of an evaluator metric")
        if isinstance(self.bins, bool) or not isinstance(self.bins, int) or self.bins < 1:
            raise ValueError(f"feature {self.name!r}: bins must be an integer >= 1, "
                             f"got {self.bins!r}; use for example bins=10")
        for bound in ("lo", "hi"):
            value = getattr(self, bound)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"feature {self.name!r}: {bound} must be a finite number "
                                 f"or None (adaptive), got {value!r}")
        if self.lo is not None and self.hi is not None and not self.lo < self.hi:
            raise ValueError(f"feature {self.name!r}: lo must be below hi, got lo={self.lo!r} "
                             f"hi={self.hi!r}; swap them or leave both None for an "
                             "adaptive range")

    @property
    def adaptive(self) -> bool:
        """True when at least one bound follows the observed values."""
        return self.lo is None or self.hi is None


@dataclass(frozen=True)
class Binning:
    """Cuts ``[lo, hi]`` into ``bins`` equal bins; values outside are clamped to the ends.

    ``lo == hi`` is allowed (an adaptive range that has seen one value): everything at or
    below ``lo`` is bin 0 and everything above is the last bin.
    """

    lo: float
    hi: float
    bins: int

    def __post_init__(self) -> None:
        if self.bins < 1:
            raise ValueError(f"bins must be >= 1, got {self.bins}")

    @classmethod
    def for_dim(cls, dim: FeatureDim, observed: tuple[float, float] | None) -> Binning:
        """The binning of ``dim`` given the observed (min, max) of its values, if any.

        Fixed bounds win over observed ones; with nothing observed an adaptive bound is 0.0.
        """
        obs_lo, obs_hi = observed if observed is not None else (0.0, 0.0)
        lo = dim.lo if dim.lo is not None else obs_lo
        hi = dim.hi if dim.hi is not None else obs_hi
        return cls(lo=lo, hi=max(lo, hi), bins=dim.bins)

    def index(self, value: float) -> int:
        """The bin of ``value``, in ``range(bins)``."""
        return bin_index(value, self.lo, self.hi, self.bins)

    def indices(self, values: Sequence[float]) -> list[int]:
        """``[self.index(v) for v in values]``, computed in bulk for re-binning."""
        lo, bins = self.lo, self.bins
        span = self.hi - lo
        if span <= 0.0:
            return [0 if value <= lo else bins - 1 for value in values]
        # Same arithmetic as bin_index, inlined: re-binning is the archive's hot loop.
        raws = [(value - lo) / span * bins for value in values]
        return [int(raw) if 0.0 <= raw < bins else (bins - 1 if raw >= bins else 0)
                for raw in raws]


def bin_index(value: float, lo: float, hi: float, bins: int) -> int:
    """``clamp(floor((value - lo) / (hi - lo) * bins), 0, bins - 1)``; see `Binning`.

    Never raises: an overflow to infinity clamps to the last bin and a NaN (infinity minus
    infinity from extreme bounds) to bin 0.
    """
    span = hi - lo
    if span <= 0.0:
        return 0 if value <= lo else bins - 1
    raw = (value - lo) / span * bins
    # int() is floor on [0, bins); comparing first keeps inf and NaN away from int().
    return int(raw) if 0.0 <= raw < bins else (bins - 1 if raw >= bins else 0)


def code_length(code: str) -> float:
    """Characters inside the evolve blocks; the whole code when it has no valid blocks."""
    try:
        blocks = evolve_blocks(code)
    except (AdrsError, ValueError):
        # A program without markers is still a program: measure all of it.
        return float(len(code))
    return float(sum(len(block) for block in blocks))


# Node types that each add one decision point (one extra path through the code).
_BRANCHES = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.ExceptHandler, ast.IfExp,
             ast.match_case)


def complexity(code: str) -> float:
    """1 + decision points of the code (0.0 when it does not parse).

    Decision points: if/elif, for, while, except handlers, ternaries, match cases, each
    extra operand of ``and``/``or``, and each ``if`` of a comprehension.
    """
    tree = parse(code)
    if tree is None:
        return 0.0
    count = 1
    for node in ast.walk(tree):
        if isinstance(node, _BRANCHES):
            count += 1
        elif isinstance(node, ast.BoolOp):
            count += len(node.values) - 1
        elif isinstance(node, ast.comprehension):
            count += len(node.ifs)
    return float(count)


def metric_value(metrics: Mapping[str, MetricValue], name: str) -> float:
    """The metric ``name`` as a float: bool is 0/1; missing, text or non-finite is 0.0."""
    value = metrics.get(name)
    if isinstance(value, bool | int | float):
        number = float(value)
        # NaN or infinity cannot be binned and would wreck an adaptive range.
        return number if math.isfinite(number) else 0.0
    return 0.0


BUILTIN_FEATURES: Mapping[str, Callable[[str], float]] = {
    "code_length": code_length,
    "complexity": complexity,
}


def feature_value(program: Program, name: str) -> float:
    """The value of one feature; built-in names take precedence over metric names."""
    builtin = BUILTIN_FEATURES.get(name)
    if builtin is not None:
        return builtin(program.code)
    return metric_value(program.result.metrics, name)


def feature_values(program: Program, dims: Sequence[FeatureDim]) -> tuple[float, ...]:
    """The program's value on each dimension, in the order of ``dims``."""
    return tuple(feature_value(program, dim.name) for dim in dims)

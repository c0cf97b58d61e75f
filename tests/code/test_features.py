"""Feature dimensions: validation, built-in extractors, metric features and binning."""

from __future__ import annotations

import math
import warnings

import pytest

from adrs.code.features import (
    Binning,
    FeatureDim,
    bin_index,
    code_length,
    complexity,
    feature_values,
    metric_value,
)
from adrs.types import EvalResult, Program

BLOCK = "def f(x):\n    return x + 1\n"
PROGRAM = f"import os\n# EVOLVE-BLOCK-START\n{BLOCK}# EVOLVE-BLOCK-END\nprint(f(1))\n"


def program(code: str = PROGRAM, **metrics: float | int | str | bool) -> Program:
    return Program(id=1, code=code, result=EvalResult(valid=True, score=1.0, metrics=metrics))


# ------------------------------------------------------------------------- FeatureDim


@pytest.mark.parametrize("bins", [0, -3, 2.5, True])
def test_feature_dim_rejects_bad_bins(bins: object) -> None:
    with pytest.raises(ValueError, match=r"bins must be an integer >= 1.*bins=10"):
        FeatureDim("x", bins=bins)  # type: ignore[arg-type]


@pytest.mark.parametrize(("lo", "hi"), [(5.0, 5.0), (6.0, 1.0)])
def test_feature_dim_rejects_lo_not_below_hi(lo: float, hi: float) -> None:
    with pytest.raises(ValueError, match=r"lo must be below hi.*swap them"):
        FeatureDim("x", lo=lo, hi=hi)


def test_feature_dim_rejects_non_finite_bounds_and_empty_name() -> None:
    with pytest.raises(ValueError, match="hi must be a finite number"):
        FeatureDim("x", lo=0.0, hi=math.inf)
    with pytest.raises(ValueError, match="needs a name"):
        FeatureDim("")


def test_feature_dim_adaptive_when_a_bound_is_missing() -> None:
    assert FeatureDim("x").adaptive
    assert FeatureDim("x", lo=0.0).adaptive
    assert not FeatureDim("x", lo=0.0, hi=1.0).adaptive


# ----------------------------------------------------------------------------- binning


@pytest.mark.parametrize(("value", "expected"), [
    (0.0, 0), (0.99, 0), (1.0, 1), (5.5, 5), (9.99, 9), (10.0, 9),  # hi is in the last bin
    (-4.0, 0), (42.0, 9),  # clamped
])
def test_bin_index_fixed_range(value: float, expected: int) -> None:
    assert bin_index(value, 0.0, 10.0, 10) == expected
    assert Binning(0.0, 10.0, 10).index(value) == expected


def test_bin_index_with_offset_range_and_one_bin() -> None:
    assert bin_index(150.0, 100.0, 200.0, 4) == 2
    assert bin_index(-1e9, 100.0, 200.0, 1) == 0
    assert bin_index(1e9, 100.0, 200.0, 1) == 0


def test_bin_index_degenerate_range() -> None:
    assert bin_index(3.0, 3.0, 3.0, 5) == 0
    assert bin_index(4.0, 3.0, 3.0, 5) == 4


def test_binning_for_dim_prefers_fixed_bounds_over_observed() -> None:
    assert Binning.for_dim(FeatureDim("x", bins=4), (2.0, 8.0)) == Binning(2.0, 8.0, 4)
    assert Binning.for_dim(FeatureDim("x", bins=4, lo=0.0), (2.0, 8.0)) == Binning(0.0, 8.0, 4)
    fixed = FeatureDim("x", bins=4, lo=-1.0, hi=1.0)
    assert Binning.for_dim(fixed, (2.0, 8.0)) == Binning(-1.0, 1.0, 4)
    assert Binning.for_dim(FeatureDim("x", bins=4), None) == Binning(0.0, 0.0, 4)


# -------------------------------------------------------------------------- extractors


def test_code_length_counts_evolve_block_characters_only() -> None:
    assert code_length(PROGRAM) == len(BLOCK)
    two = PROGRAM + "# EVOLVE-BLOCK-START\nX = 1\n# EVOLVE-BLOCK-END\n"
    assert code_length(two) == len(BLOCK) + len("X = 1\n")


def test_code_length_falls_back_to_whole_code_without_markers() -> None:
    assert code_length("x = 1\n") == 6
    unclosed = "# EVOLVE-BLOCK-START\nx = 1\n"
    assert code_length(unclosed) == len(unclosed)


@pytest.mark.parametrize(("code", "expected"), [
    ("x = 1\n", 1),
    ("if a:\n    pass\nelif b:\n    pass\nelse:\n    pass\n", 3),
    ("for i in r:\n    while c:\n        pass\n", 3),
    ("try:\n    pass\nexcept A:\n    pass\nexcept B:\n    pass\n", 3),
    ("x = a and b and c or d\n", 4),  # (a and b and c) or d: 2 + 1 operators
    ("y = [i for i in r if i if i > 2]\n", 3),
    ("z = 1 if a else 2\n", 2),
    ("match v:\n    case 1:\n        pass\n    case _:\n        pass\n", 3),
    ("async def f():\n    async for x in y:\n        pass\n", 2),
])
def test_complexity_counts_decision_points(code: str, expected: int) -> None:
    assert complexity(code) == expected


def test_complexity_is_zero_for_code_that_does_not_parse() -> None:
    assert complexity("def broken(:\n") == 0.0
    assert complexity("x = 1\x00\n") == 0.0


def test_complexity_ignores_warnings_of_candidate_code() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert complexity('s = "\\d"\n') == 1.0


@pytest.mark.parametrize(("value", "expected"), [
    (3, 3.0), (2.5, 2.5), (True, 1.0), (False, 0.0), ("fast", 0.0),
    (math.nan, 0.0), (-math.inf, 0.0),
])
def test_metric_value_numbers_bools_and_junk(value: float | str | bool, expected: float) -> None:
    assert metric_value({"m": value}, "m") == expected


def test_metric_value_missing_is_zero() -> None:
    assert metric_value({}, "m") == 0.0


def test_feature_values_in_dimension_order() -> None:
    prog = program(hit_rate=0.75, label="x")
    dims = (FeatureDim("hit_rate"), FeatureDim("code_length"), FeatureDim("complexity"),
            FeatureDim("label"), FeatureDim("absent"))
    assert feature_values(prog, dims) == (0.75, float(len(BLOCK)), 1.0, 0.0, 0.0)
    assert feature_values(prog, ()) == ()


def test_builtin_names_win_over_metrics_of_the_same_name() -> None:
    prog = program(code_length=999, complexity=999)
    assert feature_values(prog, (FeatureDim("code_length"), FeatureDim("complexity"))) == (
        float(len(BLOCK)), 1.0)

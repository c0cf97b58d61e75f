"""The trusted EPLB evaluator: workload, validation, load simulator, score, protocol."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from adrs.errors import UserError
from adrs.evaluators.eplb import evaluate_windows, scoring, timing
from adrs.evaluators.eplb.balance import balancedness, measure
from adrs.evaluators.eplb.placement import Instance, InvalidPlacement, check
from adrs.evaluators.eplb.workload import (
    TraceShape,
    jittered,
    load_trace,
    synthetic_windows,
    window_sums,
)

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
REAL_TRACE = SHARED / "data" / "eplb" / "expert-load.json"

# A small deployment: 4 experts, 6 slots on 2 GPUs (3 per GPU), 2 groups on 1 node.
SMALL = Instance(layers=2, experts=4, replicas=6, groups=2, nodes=1, gpus=2)


def placement(phy2log: list[list[int]], width: int | None = None) -> tuple[np.ndarray, ...]:
    """A consistent (phy2log, log2phy, logcnt) built from phy2log."""
    p2l = np.array(phy2log, dtype=np.int64)
    layers, experts = p2l.shape[0], int(p2l.max()) + 1
    logcnt = np.stack([np.bincount(row, minlength=experts) for row in p2l])
    width = width or int(logcnt.max())
    log2phy = np.full((layers, experts, width), -1, dtype=np.int64)
    for layer, row in enumerate(p2l):
        seen = [0] * experts
        for slot, expert in enumerate(row):
            log2phy[layer, expert, seen[expert]] = slot
            seen[expert] += 1
    return p2l, log2phy, logcnt


VALID = [[0, 1, 2, 0, 1, 3], [0, 1, 2, 3, 3, 3]]


# ---------------------------------------------------------------------------- balancedness
def test_balancedness_on_a_hand_computed_case() -> None:
    load = np.array([[6, 3, 2, 1], [0, 0, 0, 0]], dtype=np.int64)
    p2l, _, logcnt = placement(VALID)
    b = measure(load[:1], p2l[:1], logcnt[:1], num_gpus=2)
    # Slots carry [3, 1.5, 2 | 3, 1.5, 1]: GPUs 6.5 and 5.5, mean 6; slots mean 2, max 3.
    assert b.gpu == pytest.approx(6 / 6.5)
    assert b.slot == pytest.approx(2 / 3)
    # An unloaded layer adds nothing to either sum.
    assert measure(load, p2l, logcnt, num_gpus=2).gpu == pytest.approx(6 / 6.5)


def test_balancedness_is_a_ratio_of_sums_over_layers() -> None:
    loads = np.array([[1.0, 1.0], [0.0, 10.0]])
    # Per-layer ratios would average (1 + 0.5) / 2 = 0.75; the ratio of sums is 6 / 11.
    assert balancedness(loads) == pytest.approx(6 / 11)
    assert balancedness(np.zeros((2, 3))) == 1.0


# ------------------------------------------------------------------------------------ score
@pytest.mark.parametrize(("t", "speed", "penalty"), [
    (0.0005, 10.0, 0.0), (0.001, 10.0, 0.0), (0.002, 5.0, 0.0), (0.010, 1.0, 0.0),
    (0.020, 0.5, 0.4), (2.0, 0.005, 20.0)])
def test_score_formula(t: float, speed: float, penalty: float) -> None:
    assert scoring.score(0.7, t) == pytest.approx(90 * 0.7 + speed - penalty)


# ------------------------------------------------------------------------------- validation
def test_a_valid_placement_passes() -> None:
    checked = check(placement(VALID), SMALL)
    assert checked.logcnt.tolist() == [[2, 2, 1, 1], [1, 1, 1, 3]]
    assert check(placement(VALID, width=3), SMALL).log2phy.shape == (2, 4, 3)


def _set(index: int, where: tuple[int, ...], value: int) -> Callable[[list[np.ndarray]], None]:
    def edit(arrays: list[np.ndarray]) -> None:
        arrays[index][where] = value
    return edit


INVALID: dict[str, tuple[Callable[[list[np.ndarray]], object], str]] = {
    "not a tuple": (lambda a: a[0], "must return a tuple"),
    "two items": (lambda a: (a[0], a[1]), "a tuple of 2 items"),
    "float dtype": (lambda a: (a[0].astype(float), a[1], a[2]), "must hold integers"),
    "not an array": (lambda a: (a[0], a[1], "x"), "logcnt must be a numpy integer array"),
    "ragged": (lambda a: (a[0], a[1], [[1, 2], [3]]), "not a rectangular array"),
    "phy2log shape": (lambda a: (a[0][:, :5], a[1], a[2]), "phy2log has shape (2, 5)"),
    "logcnt shape": (lambda a: (a[0], a[1], a[2][:1]), "logcnt has shape (1, 4)"),
    "log2phy too wide": (lambda a: (a[0], np.full((2, 4, 4), -1), a[2]), "1 <= X <= 3"),
    "expert out of range": (_set(0, (0, 5), 4), "phy2log[0, 5] = 4 is not an expert id"),
    "negative expert": (_set(0, (1, 0), -1), "phy2log[1, 0] = -1"),
    "expert without replica": (_set(2, (1, 0), 0), "expert 0 of layer 1 has no replica"),
    "row sum": (_set(2, (0, 0), 3), "logcnt of layer 0 sums to 7"),
    "counts disagree": (lambda a: (a[0], a[1], np.array([[1, 2, 2, 1], a[2][1]])),
                        "logcnt[0, 0] = 1 but phy2log gives expert 0 2 slots"),
    "slot out of range": (_set(1, (0, 2, 0), 6), "log2phy[0, 2, 0] = 6 is not a slot id"),
    "padding not -1": (_set(1, (0, 2, 1), 4), "entries past logcnt must be -1"),
    "slot twice": (_set(1, (0, 0, 1), 0), "slot 0 of layer 0 is listed in log2phy 2 times"),
    "log2phy disagrees": (lambda a: _swap_log2phy(a), "the two must agree"),
}


def _swap_log2phy(arrays: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    log2phy = arrays[1].copy()  # experts 2 and 3 of layer 0 trade slots in log2phy only
    log2phy[0, 2, 0], log2phy[0, 3, 0] = log2phy[0, 3, 0], log2phy[0, 2, 0]
    return arrays[0], log2phy, arrays[2]


@pytest.mark.parametrize("case", sorted(INVALID))
def test_each_invalid_placement_is_rejected_with_its_reason(case: str) -> None:
    mutate, reason = INVALID[case]
    arrays = [np.array(a) for a in placement(VALID)]
    out = mutate(arrays)
    raw = tuple(arrays) if out is None else out
    with pytest.raises(InvalidPlacement) as info:
        check(raw, SMALL)
    assert reason in str(info.value)


# ---------------------------------------------------------------------------------- workload
def test_synthetic_workload_is_seeded_and_shaped() -> None:
    shape = TraceShape(records=250, layers=3)
    a, b = synthetic_windows(1, shape), synthetic_windows(1, shape)
    assert a.shape == (3, 3, 256) and a.dtype == np.int64 and np.array_equal(a, b)
    assert not np.array_equal(a, synthetic_windows(2, shape))
    # Every token is routed to 8 experts: window totals are 8 x tokens, tokens in range.
    tokens = a.sum(-1) / 8
    assert (tokens[:2] > 100 * 2000 * 0.95).all() and (tokens[:2] < 100 * 6000 * 1.05).all()
    assert (tokens[2] < 50 * 6000 * 1.05).all()  # the short last window of 50 records


def test_synthetic_workload_is_skewed_and_correlated() -> None:
    windows = synthetic_windows(0)
    assert windows.shape == (12, 58, 256)
    mean = windows.mean(-1, keepdims=True)
    assert np.median((windows / mean).max(-1)) > 3  # hot experts several times the mean
    corr = [np.corrcoef(windows[k].ravel(), windows[k + 1].ravel())[0, 1] for k in range(11)]
    assert np.median(corr) > 0.9


def test_window_sums_keep_a_short_last_window() -> None:
    records = np.arange(5 * 2 * 3).reshape(5, 2, 3)
    sums = window_sums(records, size=2)
    assert sums.shape == (3, 2, 3)
    assert np.array_equal(sums[0], records[0] + records[1])
    assert np.array_equal(sums[2], records[4])


def test_a_trace_file_is_read_and_windowed(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    records = rng.integers(0, 50, size=(150, 2, 4))
    path = tmp_path / "trace.json"
    path.write_text(json.dumps({"load_history": [{"logical_expert_load": r.tolist()}
                                                 for r in records]}))
    windows = load_trace(path)
    assert windows.shape == (2, 2, 4)
    assert np.array_equal(windows[1], records[100:].sum(0))


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot read"), ("{", "is not JSON"), ('{"load": []}', "must hold"),
    ('{"load_history": [{"logical_expert_load": [[1]]}]}', "more than 100")])
def test_a_bad_trace_file_is_one_clear_error(tmp_path: Path, content: str | None,
                                             message: str) -> None:
    path = tmp_path / f"bad{len(content or '')}.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=message):
        load_trace(path)


# ---------------------------------------------------------------------------------- protocol
class Recorder:
    """A trusted-side stand-in for a sandboxed candidate: records what it is shown."""

    def __init__(self, answer: Callable[[np.ndarray], object]) -> None:
        self.answer = answer
        self.seen: list[np.ndarray] = []

    def call(self, name: str, *args: object, timeout_s: float | None = None) -> object:
        assert name == "rebalance_experts" and args[1:] == (6, 2, 1, 2)
        weight = args[0]
        assert isinstance(weight, np.ndarray)
        self.seen.append(weight.copy())
        return self.answer(weight)


def _windows() -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(1, 100, size=(4, 2, 4)).astype(np.int64)


def test_the_candidate_never_sees_the_window_it_is_scored_on() -> None:
    windows = _windows()
    fake = Recorder(lambda w: placement(VALID))
    result = evaluate_windows(fake, windows, SMALL, subtract_transport=False, passes=1)
    assert result["metrics"]["windows"] == 3
    # Warm-up on window 0, then window k for the placement scored on k + 1.
    assert [next(i for i, w in enumerate(windows) if np.array_equal(w, s))
            for s in fake.seen] == [0, 0, 1, 2]


def test_the_score_uses_the_next_window() -> None:
    windows = _windows()
    result = evaluate_windows(Recorder(lambda w: placement(VALID)), windows, SMALL,
                              subtract_transport=False, passes=1)
    p2l, _, logcnt = placement(VALID)
    expected = [measure(windows[k + 1], p2l, logcnt, 2) for k in range(3)]
    metrics = result["metrics"]
    assert [metrics[f"gpu_w{k:02d}"] for k in range(3)] == \
        [round(b.gpu, 4) for b in expected]
    mean_gpu = sum(b.gpu for b in expected) / 3
    assert metrics["gpu_balancedness"] == pytest.approx(mean_gpu, abs=1e-6)
    t = metrics["t_ms"] / 1e3
    assert result["score"] == pytest.approx(scoring.score(mean_gpu, t), abs=1e-3)
    assert "Worst: placement from window" in result["feedback"]


def test_an_invalid_placement_names_its_window() -> None:
    calls = iter(range(100))

    def answer(weight: np.ndarray) -> object:
        p2l, log2phy, logcnt = placement(VALID)
        if next(calls) == 2:  # the warm-up and window 0 are fine; window 1 drops expert 3
            logcnt[0, 3] = 0
        return p2l, log2phy, logcnt

    result = evaluate_windows(Recorder(answer), _windows(), SMALL, subtract_transport=False)
    assert result == {"valid": False,
                      "error": "window 1: expert 3 of layer 0 has no replica (logcnt = 0); "
                               "every expert needs >= 1"}


def test_timing_passes_see_fresh_jittered_windows_and_are_scored_too() -> None:
    windows = _windows()
    calls = iter(range(100))

    def answer(weight: np.ndarray) -> object:
        # Honest on the warm-up and the first pass, then a worse (still valid) placement:
        # a candidate that behaves differently once it has been called a few times.
        return placement(VALID if next(calls) < 4 else [[0, 0, 1, 2, 3, 3], [0, 1, 2, 3, 3, 3]])

    fake = Recorder(answer)
    result = evaluate_windows(fake, windows, SMALL, subtract_transport=False, passes=3)
    metrics = result["metrics"]
    assert metrics["passes"] == 3 and len(fake.seen) == 1 + 3 * 3
    # Later passes show jittered copies: never byte-equal to anything shown before.
    later = fake.seen[4:]
    assert not any(np.array_equal(w, s) for w in windows for s in later)
    assert np.array_equal(later[0], jittered(windows, 1)[0])
    assert (np.abs(later[0] - windows[0]) <= 1).all()
    # The per-window figures are the first pass's; the balancedness averages all passes.
    first = np.mean([metrics[f"gpu_w{k:02d}"] for k in range(3)])
    assert metrics["gpu_balancedness"] < first - 0.01


def test_an_invalid_placement_in_a_timing_pass_names_the_pass() -> None:
    calls = iter(range(100))

    def answer(weight: np.ndarray) -> object:
        p2l, log2phy, logcnt = placement(VALID)
        if next(calls) == 6:  # pass 1 (calls 4 to 6), window 2
            logcnt[1, 0] = 0
        return p2l, log2phy, logcnt

    result = evaluate_windows(Recorder(answer), _windows(), SMALL, subtract_transport=False)
    assert result["valid"] is False
    assert result["error"].startswith("window 2 (timing pass 1, jittered windows): expert 0")


def test_algorithm_time_is_best_pass_median_net_of_best_echo_median() -> None:
    calls = [[0.030, 0.031, 0.090], [0.029, 0.080, 0.085], [0.028, 0.028, 0.027]]
    echoes = [[0.002, 0.002, 0.009], [0.003, 0.003, 0.003], [0.004, 0.004, 0.001]]
    # A loaded pass (the second) does not count: best medians 0.028 and 0.002.
    assert timing.algorithm_time(calls, echoes) == pytest.approx(0.026)
    assert timing.algorithm_time([[0.001]], [[0.002]]) == timing.MIN_TIME_S


@pytest.mark.skipif(not REAL_TRACE.is_file(), reason=f"no real EPLB trace at {REAL_TRACE} "
                    "(expert-load.json is only on Hugging Face, abmfy/eplb-openevolve)")
def test_the_real_trace_has_the_expected_shape() -> None:
    windows = load_trace(REAL_TRACE)
    assert windows.ndim == 3 and len(windows) >= 2 and windows.shape[2] % 8 == 0

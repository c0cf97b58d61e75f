"""The trusted EPLB evaluator: workload, validation, load simulator, score, protocol."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from adrs.errors import UserError
from adrs.evaluators.eplb import evaluate_windows, scoring, timing
from adrs.evaluators.eplb.balance import balancedness, measure
from adrs.evaluators.eplb.evaluate import FreshSandboxes
from adrs.evaluators.eplb.placement import Instance, InvalidPlacement, check
from adrs.evaluators.eplb.workload import (
    TraceShape,
    load_trace,
    synthetic_windows,
    warmup_window,
    window_sums,
)
from adrs.sandbox.candidate import Candidate, CandidateFault, Limits

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
    """A trusted-side stand-in for one sandboxed process of a candidate: records what it is
    shown, in a log of events shared with the other processes of the evaluation."""

    def __init__(self, answer: Callable[[np.ndarray], object], log: list[str],
                 name: str) -> None:
        self.answer = answer
        self.seen: list[np.ndarray] = []
        self.log = log
        self.name = name
        self.cleanup_error: str | None = None

    def call(self, name: str, *args: object, timeout_s: float | None = None) -> object:
        assert name == "rebalance_experts" and args[1:] == (6, 2, 1, 2)
        weight = args[0]
        assert isinstance(weight, np.ndarray)
        self.log.append(f"{self.name} call")
        self.seen.append(weight.copy())
        return self.answer(weight)

    def close(self) -> None:
        self.log.append(f"{self.name} close")


class Spawner:
    """A stand-in for FreshSandboxes: every call starts another Recorder; `answer(index,
    weight)` is the answer of the index-th process."""

    def __init__(self, answer: Callable[[int, np.ndarray], object] | None = None) -> None:
        self.processes: list[Recorder] = []
        self.log: list[str] = []
        self.answer = answer or (lambda index, w: placement(VALID))

    def __call__(self) -> Recorder:
        index = len(self.processes)
        self.log.append(f"p{index} start")
        process = Recorder(functools.partial(self.answer, index), self.log, f"p{index}")
        self.processes.append(process)
        return process


def _windows() -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(1, 100, size=(4, 2, 4)).astype(np.int64)


def _which(windows: np.ndarray, shown: np.ndarray) -> int | None:
    """The window `shown` is, if any."""
    same = [k for k, w in enumerate(windows) if np.array_equal(w, shown)]
    return same[0] if same else None


def test_the_candidate_never_sees_the_window_it_is_scored_on() -> None:
    windows = _windows()
    spawn = Spawner()
    result = evaluate_windows(spawn, windows, SMALL, subtract_transport=False, passes=1)
    assert result["metrics"]["windows"] == 3
    # A warm-up on a window of its own, then window k for the placement scored on k + 1.
    assert [_which(windows, s) for s in spawn.processes[0].seen] == [None, 0, 1, 2]
    assert spawn.log[-1] == "p0 close"


def test_the_score_uses_the_next_window() -> None:
    windows = _windows()
    result = evaluate_windows(Spawner(), windows, SMALL, subtract_transport=False, passes=1)
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

    def answer(index: int, weight: np.ndarray) -> object:
        p2l, log2phy, logcnt = placement(VALID)
        if next(calls) == 2:  # the warm-up and window 0 are fine; window 1 drops expert 3
            logcnt[0, 3] = 0
        return p2l, log2phy, logcnt

    result = evaluate_windows(Spawner(answer), _windows(), SMALL, subtract_transport=False)
    assert result == {"valid": False,
                      "error": "window 1: expert 3 of layer 0 has no replica (logcnt = 0); "
                               "every expert needs >= 1"}


def test_every_pass_is_a_fresh_process_that_sees_no_window_twice() -> None:
    windows = _windows()
    spawn = Spawner()
    result = evaluate_windows(spawn, windows, SMALL, subtract_transport=False, passes=3)
    assert result["metrics"]["passes"] == 3 and len(spawn.processes) == 3
    # One process at a time: each is closed before the next one starts.
    assert spawn.log == [event for p in range(3) for event in
                         [f"p{p} start"] + [f"p{p} call"] * 4 + [f"p{p} close"]]
    for process in spawn.processes:
        # A warm-up on an unrelated window, then each window once, in order: nothing it is
        # shown ever tells it the window its answer is scored on, or repeats an input.
        assert [_which(windows, s) for s in process.seen] == [None, 0, 1, 2]
        # ... and the passes are alike: the same inputs, so none can tell which it is.
        assert all(np.array_equal(a, b) for a, b in
                   zip(process.seen, spawn.processes[0].seen, strict=True))


WORSE = [[0, 0, 1, 2, 3, 3], [0, 1, 2, 3, 3, 3]]


@pytest.mark.parametrize("slow", ["better", "worse"])
def test_the_score_is_the_fastest_passs_balancedness_with_its_time(slow: str) -> None:
    # Process 1 places one way, processes 0 and 2 the other; the slow ones sleep 20 ms a
    # call. The score takes balancedness and time from the same (fastest) pass, whichever
    # way round: slower passes never lend it their balancedness.
    windows = _windows()
    slow_processes = {1} if slow == "better" else {0, 2}

    def answer(index: int, weight: np.ndarray) -> object:
        if index in slow_processes:
            time.sleep(0.02)
        return placement(VALID if index == 1 else WORSE)

    result = evaluate_windows(Spawner(answer), windows, SMALL, subtract_transport=False,
                              passes=3)
    metrics = result["metrics"]
    fast_layout = WORSE if slow == "better" else VALID
    p2l, _, logcnt = placement(fast_layout)
    expected = np.mean([measure(windows[k + 1], p2l, logcnt, 2).gpu for k in range(3)])
    assert metrics["gpu_balancedness"] == pytest.approx(expected, abs=1e-6)
    assert metrics["t_ms"] < 20 and (metrics["scored_pass"] == 1) == (slow == "worse")
    assert [metrics[f"gpu_w{k:02d}"] for k in range(3)] == [
        round(measure(windows[k + 1], p2l, logcnt, 2).gpu, 4) for k in range(3)]


def test_an_invalid_placement_in_a_timing_pass_names_the_pass() -> None:
    def answer(index: int, weight: np.ndarray) -> object:
        p2l, log2phy, logcnt = placement(VALID)
        if index == 1 and _which(_windows(), weight) == 2:
            logcnt[1, 0] = 0
        return p2l, log2phy, logcnt

    spawn = Spawner(answer)
    result = evaluate_windows(spawn, _windows(), SMALL, subtract_transport=False)
    assert result["valid"] is False
    assert result["error"].startswith("window 2 (timing pass 1): expert 0")
    assert len(spawn.processes) == 2 and spawn.log[-1] == "p1 close"


def test_a_fault_in_a_timing_pass_names_the_pass() -> None:
    def answer(index: int, weight: np.ndarray) -> object:
        if index == 2:
            raise CandidateFault("rebalance_experts() raised ValueError: no")
        return placement(VALID)

    spawn = Spawner(answer)
    with pytest.raises(CandidateFault) as info:
        evaluate_windows(spawn, _windows(), SMALL, subtract_transport=False)
    assert str(info.value) == ("in timing pass 2 (a fresh process of the program): "
                               "rebalance_experts() raised ValueError: no")
    assert spawn.log[-1] == "p2 close"


def test_a_process_that_cannot_be_cleaned_up_voids_the_result() -> None:
    class Dirty(Spawner):
        def __call__(self) -> Recorder:
            process = super().__call__()
            if len(self.processes) == 2:
                process.cleanup_error = "OSError: busy"
            return process

    result = evaluate_windows(Dirty(), _windows(), SMALL, subtract_transport=False)
    assert result["valid"] is False
    assert "(OSError: busy) (timing pass 1); its result is void" in result["error"]


def test_warmup_windows_look_like_the_workload_but_are_none_of_its_windows() -> None:
    windows = synthetic_windows(0)
    a, b = warmup_window(windows[0], 7), warmup_window(windows[0], 7)
    assert np.array_equal(a, b) and a.shape == windows[0].shape and a.dtype == np.int64
    assert not np.array_equal(a, warmup_window(windows[0], 8))
    assert a.mean() == pytest.approx(windows[0].mean(), rel=0.05)
    assert np.median(a.max(-1) / a.mean(-1)) > 3  # skewed like the workload
    # Far from every window of the workload: it tells nothing about any of them.
    assert min(np.abs(a - w).mean() for w in windows) > 0.3 * windows[0].mean()


SLEEPER = "def rebalance_experts(*args):\n    return None\n"


def test_fresh_sandboxes_run_the_same_program_within_the_evaluations_time_budget() -> None:
    with Candidate(SLEEPER, Limits(timeout_s=30)) as candidate:
        sandboxes = FreshSandboxes(candidate)
        fresh = sandboxes()
        try:
            assert fresh is not candidate and sandboxes.started == [fresh]
            assert fresh.source == SLEEPER and fresh.harness == candidate.harness
            assert 25 < fresh.limits.timeout_s <= 30
            assert fresh.call("rebalance_experts") is None
        finally:
            fresh.close()
        assert fresh.cleanup_error is None


def test_fresh_sandboxes_stop_when_the_budget_is_spent(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with Candidate(SLEEPER, Limits(timeout_s=30)) as candidate:
        sandboxes = FreshSandboxes(candidate)
        later = time.monotonic() + 31
        monkeypatch.setattr(time, "monotonic", lambda: later)
        with pytest.raises(CandidateFault, match=r"used up its time limit of 30\.0 s"):
            sandboxes()
        monkeypatch.undo()
        assert sandboxes.started == []


def test_algorithm_time_is_best_pass_median_net_of_best_echo_median() -> None:
    calls = [[0.030, 0.031, 0.090], [0.029, 0.080, 0.085], [0.028, 0.028, 0.027]]
    echoes = [[0.002, 0.002, 0.009], [0.003, 0.003, 0.003], [0.004, 0.004, 0.001]]
    # A loaded pass (the second) does not count: best medians 0.028 and 0.002.
    assert timing.algorithm_time(calls, echoes) == pytest.approx(0.026)
    assert timing.fastest(calls) == 2  # the pass whose balancedness is scored
    assert timing.algorithm_time([[0.001]], [[0.002]]) == timing.MIN_TIME_S


@pytest.mark.skipif(not REAL_TRACE.is_file(), reason=f"no real EPLB trace at {REAL_TRACE} "
                    "(expert-load.json is only on Hugging Face, abmfy/eplb-openevolve)")
def test_the_real_trace_has_the_expected_shape() -> None:
    windows = load_trace(REAL_TRACE)
    assert windows.ndim == 3 and len(windows) >= 2 and windows.shape[2] % 8 == 0

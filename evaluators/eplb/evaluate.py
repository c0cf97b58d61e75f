"""The trusted EPLB evaluator: predictive rebalancing over a workload's windows.

For each window k but the last, the candidate's `rebalance_experts` is called on window k
only, and its placement is scored on window k + 1: the candidate never sees the load it is
judged on before it has committed to a placement. Every output is validated (placement.py)
and balancedness is computed here (balance.py). Time is measured on this side of the
sandbox, after a warm-up call, net of the transport cost (timing.py).

The workload is the seeded synthetic trace (workload.py) unless the environment variable
ADRS_EPLB_TRACE names a real trace file, read by the evaluator process (never the sandbox).
"""

from __future__ import annotations

import functools
import os
import statistics
from typing import Any, Protocol

import numpy as np

from adrs.evaluators.eplb import scoring, timing
from adrs.evaluators.eplb.balance import Balance, measure
from adrs.evaluators.eplb.placement import Instance, InvalidPlacement, check
from adrs.evaluators.eplb.workload import Windows, load_trace, synthetic_windows

TRACE_ENV = "ADRS_EPLB_TRACE"
SYNTHETIC_SEED = 0
FUNCTION = "rebalance_experts"
WORST_SHOWN = 3


class Caller(Protocol):
    """What the evaluator needs of a candidate: adrs.evaluation.sandbox.Candidate."""

    def call(self, name: str, *args: object, timeout_s: float | None = None) -> object: ...


def evaluate(candidate: Caller) -> dict[str, Any]:
    """Score the candidate on the configured workload (see the module docstring)."""
    path = os.environ.get(TRACE_ENV)
    windows = load_trace(path) if path else synthetic_windows(SYNTHETIC_SEED)
    return evaluate_windows(candidate, windows)


def evaluate_windows(candidate: Caller, windows: Windows, inst: Instance | None = None,
                     subtract_transport: bool = True) -> dict[str, Any]:
    """Score the candidate on `windows` [K >= 2, layers, experts]."""
    if len(windows) < 2:
        raise ValueError(f"an EPLB workload needs at least 2 windows, got {len(windows)}")
    inst = inst or Instance(layers=windows.shape[1], experts=windows.shape[2])
    args = _args(windows[0], inst)
    candidate.call(FUNCTION, *args)  # warm-up: imports, caches; not timed, not scored
    balances: list[Balance] = []
    times: list[float] = []
    for k in range(len(windows) - 1):
        args = _args(windows[k], inst)
        raw, elapsed = timing.timed(functools.partial(candidate.call, FUNCTION, *args))
        try:
            placement = check(raw, inst)
        except InvalidPlacement as exc:
            return {"valid": False, "error": f"window {k}: {exc}"}
        times.append(elapsed)
        balances.append(measure(windows[k + 1], placement.phy2log, placement.logcnt, inst.gpus))
    transport = timing.transport_time(args, timing.reply_specs(raw)) if subtract_transport \
        else 0.0
    return _result(balances, times, transport)


def _args(window: np.ndarray, inst: Instance) -> tuple[object, ...]:
    return (np.array(window, dtype=np.int64), inst.replicas, inst.groups, inst.nodes, inst.gpus)


def _result(balances: list[Balance], times: list[float], transport: float) -> dict[str, Any]:
    t = timing.algorithm_time(times, transport)
    gpu = statistics.fmean(b.gpu for b in balances)
    slot = statistics.fmean(b.slot for b in balances)
    metrics: dict[str, float | int] = {
        "gpu_balancedness": round(gpu, 6), "slot_balancedness": round(slot, 6),
        "t_ms": round(t * 1e3, 4), "call_ms": round(statistics.median(times) * 1e3, 4),
        "transport_ms": round(transport * 1e3, 4),
        "speed_points": round(scoring.speed_points(t), 4),
        "penalty": round(scoring.penalty(t), 4), "windows": len(balances)}
    for k, b in enumerate(balances):
        metrics[f"gpu_w{k:02d}"] = round(b.gpu, 4)
        metrics[f"slot_w{k:02d}"] = round(b.slot, 4)
    return {"score": scoring.score(gpu, t), "metrics": metrics,
            "feedback": _feedback(balances, gpu, slot, t)}


def _feedback(balances: list[Balance], gpu: float, slot: float, t: float) -> str:
    worst = sorted(range(len(balances)), key=lambda k: balances[k].gpu)[:WORST_SHOWN]
    lines = [f"Mean GPU balancedness {gpu:.4f}, slot balancedness {slot:.4f}, "
             f"algorithm time {t * 1e3:.3f} ms per call (median, transport excluded)."]
    lines += [f"Worst: placement from window {k} scored on window {k + 1}: GPU "
              f"{balances[k].gpu:.4f}, slot {balances[k].slot:.4f}; most overloaded GPU in "
              f"layer {balances[k].hottest_layer}." for k in worst]
    if t > scoring.SLOW_S:
        lines.append(f"Slower than {scoring.SLOW_S * 1e3:.0f} ms: a penalty of "
                     f"{scoring.penalty(t):.2f} points applies.")
    return "\n".join(lines)

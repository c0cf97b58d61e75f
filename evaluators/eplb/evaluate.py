"""The trusted EPLB evaluator: predictive rebalancing over a workload's windows.

For each window k but the last, the candidate's `rebalance_experts` is called on window k
only, and its placement is scored on window k + 1: the candidate never sees the load it is
judged on before it has committed to a placement. Every output is validated (placement.py)
and balancedness is computed here (balance.py).

Time is measured on this side of the sandbox, after a warm-up call, net of the transport
cost, over PASSES passes through the windows (timing.py). The first pass uses the windows
as they are; every later pass uses a freshly jittered copy (workload.jittered), so that a
candidate cannot answer a repeated input from a cache. Every pass is validated and scored
alike: the reported balancedness is the mean over all passes, so a candidate that behaves
differently once it has been called a few times gains nothing. The per-window figures and
the feedback describe the first pass. The problem's sandbox harness (harness.py) keeps the
candidate process's freed memory between calls, as in a long-running server.

The workload is the seeded synthetic trace (workload.py) unless the problem option `trace`
(`--option trace=PATH`) names a real trace file, read by the evaluator process (never the
sandbox); a missing or malformed file is a UserError.
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from adrs.evaluators.eplb import scoring, timing
from adrs.evaluators.eplb.balance import Balance, measure
from adrs.evaluators.eplb.placement import Instance, InvalidPlacement, check
from adrs.evaluators.eplb.workload import Windows, jittered, load_trace, synthetic_windows

TRACE_OPTION = "trace"
SYNTHETIC_SEED = 0
FUNCTION = "rebalance_experts"
PASSES = 5
WORST_SHOWN = 3


class Caller(Protocol):
    """What the evaluator needs of a candidate: adrs.sandbox.candidate.Candidate."""

    def call(self, name: str, *args: object, timeout_s: float | None = None) -> object: ...


class Transport(Protocol):
    """timing.Echo or timing.NoEcho."""

    def round_trip(self, args: list[object], specs: list[timing.Spec]) -> float: ...


@dataclass(frozen=True)
class Pass:
    """One pass through the windows: a Balance and a call and echo time per placement."""

    balances: tuple[Balance, ...]
    call_times: tuple[float, ...]
    echo_times: tuple[float, ...]


def evaluate(candidate: Caller, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Score the candidate on the configured workload (see the module docstring)."""
    path = (options or {}).get(TRACE_OPTION)
    windows = load_trace(path) if path else synthetic_windows(SYNTHETIC_SEED)
    return evaluate_windows(candidate, windows)


def evaluate_windows(candidate: Caller, windows: Windows, inst: Instance | None = None,
                     subtract_transport: bool = True, passes: int = PASSES) -> dict[str, Any]:
    """Score the candidate on `windows` [K >= 2, layers, experts] over `passes` passes."""
    if len(windows) < 2:
        raise ValueError(f"an EPLB workload needs at least 2 windows, got {len(windows)}")
    inst = inst or Instance(layers=windows.shape[1], experts=windows.shape[2])
    candidate.call(FUNCTION, *_args(windows[0], inst))  # warm-up: imports, caches; not scored
    runs: list[Pass] = []
    with timing.Echo() if subtract_transport else timing.NoEcho() as echo:
        for index in range(passes):
            shown = windows if index == 0 else jittered(windows, index)
            run = _pass(candidate, echo, shown, inst)
            if isinstance(run, str):
                where = "" if index == 0 else f" (timing pass {index}, jittered windows)"
                return {"valid": False, "error": run.replace(":", where + ":", 1)}
            runs.append(run)
    return _result(runs)


def _pass(candidate: Caller, echo: Transport, windows: Windows,
          inst: Instance) -> Pass | str:
    """One pass: place from each window, score on the next; the error text if invalid."""
    balances: list[Balance] = []
    calls: list[float] = []
    echoes: list[float] = []
    for k in range(len(windows) - 1):
        args = _args(windows[k], inst)
        raw, elapsed = timing.timed(functools.partial(candidate.call, FUNCTION, *args))
        try:
            placement = check(raw, inst)
        except InvalidPlacement as exc:
            return f"window {k}: {exc}"
        calls.append(elapsed)
        echoes.append(echo.round_trip(list(args), timing.reply_specs(raw)))
        balances.append(measure(windows[k + 1], placement.phy2log, placement.logcnt, inst.gpus))
    return Pass(tuple(balances), tuple(calls), tuple(echoes))


def _args(window: np.ndarray, inst: Instance) -> tuple[object, ...]:
    return (np.array(window, dtype=np.int64), inst.replicas, inst.groups, inst.nodes, inst.gpus)


def _result(runs: list[Pass]) -> dict[str, Any]:
    t = timing.algorithm_time([r.call_times for r in runs], [r.echo_times for r in runs])
    gpu = statistics.fmean(statistics.fmean(b.gpu for b in r.balances) for r in runs)
    slot = statistics.fmean(statistics.fmean(b.slot for b in r.balances) for r in runs)
    first = runs[0].balances
    metrics: dict[str, float | int] = {
        "gpu_balancedness": round(gpu, 6), "slot_balancedness": round(slot, 6),
        "t_ms": round(t * 1e3, 4),
        "call_ms": round(timing.best_median([r.call_times for r in runs]) * 1e3, 4),
        "transport_ms": round(timing.best_median([r.echo_times for r in runs]) * 1e3, 4),
        "speed_points": round(scoring.speed_points(t), 4),
        "penalty": round(scoring.penalty(t), 4), "windows": len(first), "passes": len(runs)}
    for k, b in enumerate(first):
        metrics[f"gpu_w{k:02d}"] = round(b.gpu, 4)
        metrics[f"slot_w{k:02d}"] = round(b.slot, 4)
    return {"score": scoring.score(gpu, t), "metrics": metrics,
            "feedback": _feedback(first, gpu, slot, t)}


def _feedback(balances: tuple[Balance, ...], gpu: float, slot: float, t: float) -> str:
    worst = sorted(range(len(balances)), key=lambda k: balances[k].gpu)[:WORST_SHOWN]
    lines = [f"Mean GPU balancedness {gpu:.4f}, slot balancedness {slot:.4f}, "
             f"algorithm time {t * 1e3:.3f} ms per call (best per-pass median, transport "
             f"excluded)."]
    lines += [f"Worst: placement from window {k} scored on window {k + 1}: GPU "
              f"{balances[k].gpu:.4f}, slot {balances[k].slot:.4f}; most overloaded GPU in "
              f"layer {balances[k].hottest_layer}." for k in worst]
    if t > scoring.SLOW_S:
        lines.append(f"Slower than {scoring.SLOW_S * 1e3:.0f} ms: a penalty of "
                     f"{scoring.penalty(t):.2f} points applies.")
    return "\n".join(lines)

"""The trusted EPLB evaluator: predictive rebalancing over a workload's windows.

For each window k but the last, the candidate's `rebalance_experts` is called on window k
only, and its placement is scored on window k + 1: the candidate never sees the load it is
judged on before it has committed to a placement. Every output is validated (placement.py)
and balancedness is computed here (balance.py).

Time is measured on this side of the sandbox, net of the transport cost, over PASSES passes
through the windows (timing.py). No process of the candidate sees a window twice, and none
sees a window after it has answered for it: every pass runs in a fresh sandbox of the
program (same source, harness and limits; the sandbox the runner started is closed unused,
see `evaluate`), each closed before the next one starts, and sandboxes share no files,
memory or namespaces. A process starts with one warm-up call (imports, caches, the heap;
not scored) on a window of its own, unrelated to the workload (workload.warmup_window). So
a program cannot recognise a window it has seen and answer with what it learnt of the
window that came next, nor answer a pass from a cache. The passes are alike in every way a
process can observe (the same inputs in the same order, the same steps around them), so a
program cannot tell which pass it is in and, say, spend time on a better placement in only
one of them. Every pass is validated; the score is that of the fastest pass (the smallest
median call time, see timing.py): its balancedness with its time, so that a program whose
passes differ anyway (at random, say) cannot combine the time of a fast pass with the
balancedness of slower, better ones. The per-window figures and the feedback describe that
pass. The problem's sandbox harness (harness.py) keeps the candidate process's freed memory between
calls, as in a long-running server.

The workload is the seeded synthetic trace (workload.py) unless the problem option `trace`
(`--option trace=PATH`) names a real trace file, read by the evaluator process (never the
sandbox); a missing or malformed file is a UserError.
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from adrs.evaluators.eplb import scoring, timing
from adrs.evaluators.eplb.balance import Balance, measure
from adrs.evaluators.eplb.placement import Instance, InvalidPlacement, check
from adrs.evaluators.eplb.workload import Windows, load_trace, synthetic_windows, warmup_window
from adrs.sandbox.candidate import Candidate, CandidateFault, sibling
from adrs.types import EvalResult

TRACE_OPTION = "trace"
SYNTHETIC_SEED = 0
FUNCTION = "rebalance_experts"
PASSES = 5
WORST_SHOWN = 3
WARMUP_SEED = 1_000  # every process warms up on warmup_window(windows[0], WARMUP_SEED)
STDERR_TAIL_CHARS = 2000  # as much as the runner keeps of a candidate's stderr


class Caller(Protocol):
    """One process of the candidate: adrs.sandbox.candidate.Candidate, started."""

    def call(self, name: str, *args: object, timeout_s: float | None = None) -> object: ...

    def close(self) -> None: ...

    @property
    def cleanup_error(self) -> str | None: ...


Spawn = Callable[[], Caller]  # a fresh, started process of the candidate program


class Transport(Protocol):
    """timing.Echo or timing.NoEcho."""

    def warm_up(self, args: list[object], specs: list[timing.Spec]) -> None: ...

    def round_trip(self, args: list[object], specs: list[timing.Spec]) -> float: ...


@dataclass(frozen=True)
class Pass:
    """One pass through the windows: a Balance and a call and echo time per placement."""

    balances: tuple[Balance, ...]
    call_times: tuple[float, ...]
    echo_times: tuple[float, ...]


class FreshSandboxes:
    """Starts new sandboxes of one candidate program (its source, harness and limits), each
    with what is left of the evaluation's time budget (`adrs.sandbox.candidate.sibling`);
    keeps them, closed, for their stderr."""

    def __init__(self, candidate: Candidate) -> None:
        self._template = candidate
        self.started: list[Candidate] = []

    def __call__(self) -> Candidate:
        fresh = sibling(self._template)
        self.started.append(fresh)
        fresh.start()  # closes itself and raises CandidateFault if the program fails to load
        return fresh

    def stderr_tail(self, last: bool) -> str:
        """What the first (or the last) sandbox printed to stderr, its tail."""
        if not self.started:
            return ""
        return self.started[-1 if last else 0].stderr_tail(STDERR_TAIL_CHARS)


def evaluate(candidate: Candidate, options: Mapping[str, Any] | None = None) -> EvalResult:
    """Score the candidate on the configured workload (see the module docstring).

    The runner's sandbox has loaded the program (so it loads) and is closed unused: every
    pass runs in a sandbox started here, in the same way, so that none differs from the
    others (a sandbox started by the runner waits longer for its first call). stderr is
    that of the first pass, or of the pass that failed.
    """
    path = (options or {}).get(TRACE_OPTION)
    windows = load_trace(path) if path else synthetic_windows(SYNTHETIC_SEED)
    sandboxes = FreshSandboxes(candidate)
    candidate.close()
    try:
        raw = evaluate_windows(sandboxes, windows)
    except CandidateFault as fault:
        return EvalResult.invalid(str(fault), stderr=sandboxes.stderr_tail(last=True))
    if not raw.get("valid", True):
        return EvalResult.invalid(str(raw["error"]), stderr=sandboxes.stderr_tail(last=True))
    return EvalResult(valid=True, score=float(raw["score"]), metrics=raw["metrics"],
                      feedback=str(raw["feedback"]), stderr=sandboxes.stderr_tail(last=False))


def evaluate_windows(spawn: Spawn, windows: Windows, inst: Instance | None = None,
                     subtract_transport: bool = True, passes: int = PASSES) -> dict[str, Any]:
    """Score the candidate on `windows` [K >= 2, layers, experts] over `passes` passes, each
    in a process of its own from `spawn`, closed before the next one starts."""
    if len(windows) < 2:
        raise ValueError(f"an EPLB workload needs at least 2 windows, got {len(windows)}")
    inst = inst or Instance(layers=windows.shape[1], experts=windows.shape[2])
    warmup = _args(warmup_window(windows[0], WARMUP_SEED), inst)
    runs: list[Pass] = []
    with timing.Echo() if subtract_transport else timing.NoEcho() as echo:
        # The echo's own first calls are slow: done before any process of the candidate
        # exists, with the reply shapes of the interface, so no pass waits for them.
        echo.warm_up(list(warmup), _expected_specs(inst))
        for index in range(passes):
            where = "" if index == 0 else f" (timing pass {index})"
            try:
                process = spawn()
            except CandidateFault as fault:
                raise _in_pass(fault, index) from None
            try:
                run = _pass(process, echo, windows, warmup, inst)
            except CandidateFault as fault:
                raise _in_pass(fault, index) from None
            finally:
                process.close()
            if process.cleanup_error is not None:
                return {"valid": False, "error": "the sandbox could not be cleaned up after "
                        f"the program ran ({process.cleanup_error}){where}; its result is void"}
            if isinstance(run, str):
                return {"valid": False, "error": run.replace(":", where + ":", 1)}
            runs.append(run)
    return _result(runs)


def _in_pass(fault: CandidateFault, index: int) -> CandidateFault:
    """The fault, saying which pass it happened in when it was not the first."""
    if index == 0:
        return fault
    return CandidateFault(f"in timing pass {index} (a fresh process of the program): {fault}")


def _expected_specs(inst: Instance) -> list[timing.Spec]:
    """(shape, dtype) of the reply the interface describes (log2phy at its widest)."""
    L, E = inst.layers, inst.experts
    return [((L, inst.replicas), "<i8"), ((L, E, inst.max_replicas), "<i8"), ((L, E), "<i8")]


def _pass(process: Caller, echo: Transport, windows: Windows, warmup: tuple[object, ...],
          inst: Instance) -> Pass | str:
    """The warm-up call (not scored), then for each window a placement from it, scored on
    the next window; the error text if a placement is invalid."""
    reply = process.call(FUNCTION, *warmup)
    echo.round_trip(list(warmup), timing.reply_specs(reply))  # not counted: as in every pass
    balances: list[Balance] = []
    calls: list[float] = []
    echoes: list[float] = []
    for k in range(len(windows) - 1):
        args = _args(windows[k], inst)
        raw, elapsed = timing.timed(functools.partial(process.call, FUNCTION, *args))
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
    """The score of the fastest pass: its balancedness with its time.

    Balancedness and time come from the same pass, so a program whose passes differ (it
    can draw a random number, or read which sandbox it is in) cannot take its time from a
    fast pass and its balancedness from slower, better ones. Every pass of a deterministic
    program has the same balancedness, so for it this is the mean over the passes.
    """
    calls = [r.call_times for r in runs]
    index = timing.fastest(calls)
    t = timing.algorithm_time(calls, [r.echo_times for r in runs])
    scored = runs[index].balances
    gpu = statistics.fmean(b.gpu for b in scored)
    slot = statistics.fmean(b.slot for b in scored)
    metrics: dict[str, float | int] = {
        "gpu_balancedness": round(gpu, 6), "slot_balancedness": round(slot, 6),
        "t_ms": round(t * 1e3, 4),
        "call_ms": round(timing.best_median(calls) * 1e3, 4),
        "transport_ms": round(timing.best_median([r.echo_times for r in runs]) * 1e3, 4),
        "speed_points": round(scoring.speed_points(t), 4),
        "penalty": round(scoring.penalty(t), 4), "windows": len(scored), "passes": len(runs),
        "scored_pass": index}
    for k, b in enumerate(scored):
        metrics[f"gpu_w{k:02d}"] = round(b.gpu, 4)
        metrics[f"slot_w{k:02d}"] = round(b.slot, 4)
    return {"score": scoring.score(gpu, t), "metrics": metrics,
            "feedback": _feedback(scored, gpu, slot, t)}


def _feedback(balances: tuple[Balance, ...], gpu: float, slot: float, t: float) -> str:
    worst = sorted(range(len(balances)), key=lambda k: balances[k].gpu)[:WORST_SHOWN]
    lines = [f"Mean GPU balancedness {gpu:.4f}, slot balancedness {slot:.4f}, "
             f"algorithm time {t * 1e3:.3f} ms per call (median of the fastest pass, "
             f"transport excluded)."]
    lines += [f"Worst: placement from window {k} scored on window {k + 1}: GPU "
              f"{balances[k].gpu:.4f}, slot {balances[k].slot:.4f}; most overloaded GPU in "
              f"layer {balances[k].hottest_layer}." for k in worst]
    if t > scoring.SLOW_S:
        lines.append(f"Slower than {scoring.SLOW_S * 1e3:.0f} ms: a penalty of "
                     f"{scoring.penalty(t):.2f} points applies.")
    return "\n".join(lines)

"""EPLB: the initial program against a vectorized placement, through the real sandbox.

Prints, per program, the trusted evaluator's figures (median over `--repeats` evaluations):
algorithm time t (transport excluded), the raw call time, the transport time, GPU and slot
balancedness and the score; then the speed ratio, of the medians and of the best of the
repeats. For reference it also prints each program's in-process CPU time per call (no
sandbox; smallest of 5 per-pass medians), the workload generation time, and what the
trusted side costs per window (validation plus load simulation).

Usage: python benchmarks/eplb_speed.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from pathlib import Path
from types import ModuleType

from adrs.evaluation.runner import run_job
from adrs.evaluators.eplb.balance import measure
from adrs.evaluators.eplb.placement import Instance, check
from adrs.evaluators.eplb.workload import synthetic_windows
from adrs.problem.spec import eval_job, load_problem
from adrs.run.session import config_layers

REPO = Path(__file__).resolve().parents[1]
PROGRAMS = {"initial": REPO / "problems" / "eplb" / "initial_program.py",
            "vectorized": REPO / "tests" / "problems" / "eplb_vectorized_program.py"}
FIGURES = ("t_ms", "call_ms", "transport_ms", "gpu_balancedness", "slot_balancedness")


def evaluate(path: Path) -> dict[str, float]:
    problem = load_problem("eplb")
    result = run_job(eval_job(problem, config_layers(problem, None, {}), path.read_text()))
    assert result.valid and result.score is not None, result.error
    return {"score": result.score, **{k: float(result.metrics[k]) for k in FIGURES}}


def _module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("eplb_program", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def trusted_cost_ms() -> float:
    """Median time of validating and simulating one placement on one window."""
    windows = synthetic_windows(0)
    out = _module(PROGRAMS["initial"]).rebalance_experts(windows[0], 288, 8, 4, 32)
    inst = Instance(layers=windows.shape[1], experts=windows.shape[2])
    times = []
    for _ in range(20):
        start = time.perf_counter()
        placement = check(out, inst)
        measure(windows[1], placement.phy2log, placement.logcnt, inst.gpus)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def cpu_ms(path: Path, passes: int = 5) -> float:
    """In-process CPU time per call: the smallest per-pass median over the windows."""
    windows = synthetic_windows(0)
    rebalance = _module(path).rebalance_experts
    rebalance(windows[0], 288, 8, 4, 32)
    medians = []
    for _ in range(passes):
        times = []
        for window in windows[:-1]:
            start = time.process_time()
            rebalance(window, 288, 8, 4, 32)
            times.append(time.process_time() - start)
        medians.append(statistics.median(times))
    return min(medians) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    repeats = parser.parse_args().repeats
    start = time.perf_counter()
    synthetic_windows.__wrapped__(0)
    print(f"workload generation: {time.perf_counter() - start:.3f} s")
    print(f"trusted validation + simulation per window: {trusted_cost_ms():.3f} ms")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in PROGRAMS}
    for _ in range(repeats):  # interleaved, so both see the same machine load
        for name, path in PROGRAMS.items():
            runs[name].append(evaluate(path))
    medians = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
               for name, rs in runs.items()}
    for name, m in medians.items():
        print(f"{name:>10}: score {m['score']:.3f}  t {m['t_ms']:.3f} ms  call "
              f"{m['call_ms']:.3f} ms  transport {m['transport_ms']:.3f} ms  GPU "
              f"{m['gpu_balancedness']:.4f}  slot {m['slot_balancedness']:.4f}")
    ratio = medians["initial"]["t_ms"] / medians["vectorized"]["t_ms"]
    best = {name: min(r["t_ms"] for r in rs) for name, rs in runs.items()}
    print("t per repeat (ms): " + "; ".join(
        f"{name} " + ", ".join(f"{r['t_ms']:.3f}" for r in rs) for name, rs in runs.items()))
    print(f"speed-up of the vectorized placement (t): {ratio:.1f}x of the medians, "
          f"{best['initial'] / best['vectorized']:.1f}x of the best repeats")
    cpu = {name: cpu_ms(path) for name, path in PROGRAMS.items()}
    print(f"in-process CPU time per call: initial {cpu['initial']:.3f} ms, vectorized "
          f"{cpu['vectorized']:.3f} ms: {cpu['initial'] / cpu['vectorized']:.1f}x")


if __name__ == "__main__":
    main()

"""TXN: the cost of pricing one transaction appended to a scheduled prefix.

Incremental: `Timeline.makespan_with(txn)` on the timeline of the prefix (what the greedy
programs call), against from scratch: `makespan(txns, prefix + [t])` (what the reference
`get_opt_seq_cost` does on every call). Transactions are W1-like (16 operations each);
the prefix length grows, so the incremental cost should stay flat and the from-scratch
cost grow linearly with it. Also times the initial program on the three generated
workloads and, when given, on the paper's file.

Usage: python benchmarks/txn.py [--prefixes 10 50 100 200 400] [--workloads PATH]
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

from adrs.evaluators.txn import model
from adrs.evaluators.txn.workloads import (
    HotKeys,
    Workload,
    generate_workloads,
    hot_keys,
    load_workloads,
)

INITIAL = Path(__file__).resolve().parents[1] / "problems" / "txn" / "initial_program.py"


def per_call_us(fn: Callable[[], object], min_time_s: float = 0.2) -> float:
    """Microseconds per call of `fn`, repeated for at least `min_time_s`."""
    calls, started = 0, time.perf_counter()
    while True:
        for _ in range(20):
            fn()
        calls += 20
        elapsed = time.perf_counter() - started
        if elapsed >= min_time_s:
            return 1e6 * elapsed / calls


def _probes(txns: list[model.Txn], prefix: list[int],
            timeline: model.Timeline) -> tuple[Callable[[], object], Callable[[], object]]:
    """Pricing one of the last 20 transactions after `prefix`: incrementally, from scratch."""
    cycle = iter(range(1 << 62))
    first = len(txns) - 20

    def incremental() -> object:
        return timeline.makespan_with(txns[first + next(cycle) % 20])

    def scratch() -> object:
        return model.makespan(txns, [*prefix, first + next(cycle) % 20])

    return incremental, scratch


def pricing(prefixes: list[int]) -> None:
    texts = hot_keys(random.Random(1), HotKeys(txns=max(prefixes) + 20))
    txns = model.parse_workload(texts)
    print(f"{'prefix':>7} {'incremental us':>15} {'from scratch us':>16} {'ratio':>7}")
    for length in prefixes:
        prefix = list(range(length))
        timeline = model.Timeline()
        for index in prefix:
            timeline.append(txns[index])
        incremental, scratch = _probes(txns, prefix, timeline)
        inc, full = per_call_us(incremental), per_call_us(scratch)
        print(f"{length:>7} {inc:>15.2f} {full:>16.1f} {full / inc:>7.0f}")


def initial_program(workloads: tuple[Workload, ...], label: str) -> None:
    sys.modules["harness"] = model  # what the sandbox provides
    spec = importlib.util.spec_from_file_location("txn_initial", INITIAL)
    assert spec is not None and spec.loader is not None
    program = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(program)
    started = time.perf_counter()
    spans = [model.makespan(w.txns, program.get_best_schedule(list(w.texts), 2.0))
             for w in workloads]
    elapsed = time.perf_counter() - started
    print(f"initial program on {label}: makespans {spans} total {sum(spans)} "
          f"(sequential {sum(w.sequential_makespan for w in workloads)}), {elapsed:.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefixes", type=int, nargs="+", default=[10, 50, 100, 200, 400])
    parser.add_argument("--workloads", type=Path, help="the paper's workloads.json")
    args = parser.parse_args()
    pricing(args.prefixes)
    initial_program(generate_workloads(0), "generated workloads (seed 0)")
    if args.workloads:
        initial_program(load_workloads(args.workloads), str(args.workloads))


if __name__ == "__main__":
    main()

"""CPU time per sandboxed evaluation, machine-wide: what the evaluations cost the cores.

benchmarks/sandbox.py times evaluations; this counts the CPU they take in every process
(the trusted side, the zygote, the sandbox's own processes, the standby launched in the
background) and in the kernel (forks, namespaces, page faults, exits), from the busy
time of /proc/stat around a loop of sequential evaluations on an otherwise idle machine.
Two jobs: a trivial candidate (one call: the sandbox's life cycle alone) and the toy's
initial program (its harness, 100 lockstep round trips). Linux only.

Usage (as benchmarks/sandbox.py, through the loopback-only wrapper here):
    ../shared/bin/offline python benchmarks/sandbox_cpu.py [--evaluations 200]
For where the time goes, run it under `perf record -a -g` and read `perf report`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sandbox import in_process_ms, make_job, toy_job

from adrs.evaluation.runner import EvalJob


def busy_s() -> float:
    """Seconds of CPU the whole machine has spent busy (not idle, not waiting on I/O)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def report(name: str, job: EvalJob, n: int, score: float | None) -> None:
    in_process_ms(job, 5, score)  # the zygote, a standby, the evaluator loaded
    time.sleep(0.2)  # the standby launched by the warm-up is ready
    busy, started = busy_s(), time.perf_counter()
    in_process_ms(job, n, score, warmups=0)
    wall, cpu = time.perf_counter() - started, busy_s() - busy
    print(f"{name:<8} {n / wall:6.1f} eval/s sequential; {cpu / n * 1000:5.1f} ms of CPU per "
          f"evaluation, machine-wide ({cpu / wall:.2f} cores busy)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report("trivial", make_job(Path(tmp)), args.evaluations, 2.0)
    report("toy", toy_job(), args.evaluations, None)


if __name__ == "__main__":
    main()

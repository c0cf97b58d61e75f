"""Time saved by cascade evaluation on broken and weak candidates.

A synthetic problem in the shape of the bundled ones: the candidate answers one call per
simulated tick, the full evaluation simulates 40 scenarios, the quick stage 2 of them with
a threshold. Each kind of candidate (good, weak, slow and weak, broken at its first call) is
evaluated with and without the cascade, in this process, sequentially. A good candidate pays
the quick stage on top (about 5% here); a broken one fails at once either way.

Usage: python benchmarks/cascade.py [--repeats 5]
Prints milliseconds per evaluation for each kind, with and without the cascade.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from adrs.evaluation.cascade import CascadeStage
from adrs.evaluation.runner import EvalJob, run_job
from adrs.sandbox.candidate import Limits

EVALUATOR = """import math

def _simulate(candidate, scenarios):
    cost = 0.0
    for s in range(scenarios):
        loads = [50 + 30 * math.sin((t + 7 * s) / 8) for t in range(100)]
        for t, load in enumerate(loads):
            capacity = candidate.call("provision", loads[max(0, t - 5):t])
            cost += capacity + 8 * max(0.0, load - capacity)
    oracle = sum(50 + 30 * math.sin((t + 7 * s) / 8)
                 for s in range(scenarios) for t in range(100))
    return {"score": 100 * oracle / cost}

def evaluate_quick(candidate):
    return _simulate(candidate, 2)

def evaluate(candidate):
    return _simulate(candidate, 40)
"""
CANDIDATES = {
    "good": "def provision(h):\n    return 1.2 * max(h) if h else 80.0\n",
    "weak": "def provision(h):\n    return 200.0\n",
    "slow and weak": "import time\ndef provision(h):\n    time.sleep(0.0005)\n"
                     "    return 200.0\n",
    "broken": "def provision(h):\n    return h[-1] * 1.1\n",
}
CASCADE = (CascadeStage("evaluator.py:evaluate_quick", threshold=60.0),)


def mean_ms(job: EvalJob, repeats: int) -> tuple[float, str]:
    times, result = [], run_job(job)
    for _ in range(repeats):
        started = time.perf_counter()
        result = run_job(job)
        times.append((time.perf_counter() - started) * 1000)
    error = (result.error or "").splitlines()[0]
    verdict = f"score {result.score:.1f}" if result.valid else error[:70]
    return statistics.mean(times), verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "evaluator.py").write_text(EVALUATOR)
        for kind, source in CANDIDATES.items():
            row = []
            for cascade in ((), CASCADE):
                job = EvalJob(tmp, "evaluator.py:evaluate", source, Limits(timeout_s=60.0),
                              cascade=cascade)
                row.append(mean_ms(job, args.repeats))
            (full, _), (gated, verdict) = row
            print(f"{kind:<15} without cascade {full:7.1f} ms   with cascade {gated:7.1f} ms  "
                  f"({full / gated:4.1f}x)   {verdict}")


if __name__ == "__main__":
    main()

"""llm-serve fidelity and speed: the serving capacity of the two shipped schedulers, and the
time of one evaluation.

Capacity (as in Sarathi-Serve, OSDI'24) = the highest Poisson arrival rate at which the
P99 time between tokens over all tokens stays within the strict 100 ms SLO and the median
TTFT within 2 s, found by bisection on one seeded trace per dataset (the same requests at
every rate). Sarathi-Serve reports up to 2.6x the capacity of vLLM for Mistral-7B on one
A100; the bar here is a ratio within a factor of 2 of that (1.3 to 5.2).

    python benchmarks/llm_serve_capacity.py [REQUESTS]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from adrs.evaluators.llm_serve.costmodel import MISTRAL_7B_A100
from adrs.evaluators.llm_serve.evaluate import configured, run
from adrs.evaluators.llm_serve.lockstep import LocalPort, simulate
from adrs.evaluators.llm_serve.metrics import gaps
from adrs.evaluators.llm_serve.scenarios import scenario
from adrs.evaluators.llm_serve.workloads import ARXIV, CHAT, Lengths, Workload, arrivals

ROOT = Path(__file__).resolve().parents[1] / "problems" / "llm-serve"
PROGRAMS = {"vLLM (initial)": ROOT / "initial_program.py", "Sarathi-Serve": ROOT / "sarathi.py"}
TBT_SLO, TTFT_MEDIAN = 0.1, 2.0
STEPS = 8


def keeps_slo(program: Path, lengths: Lengths, rate: float, n: int) -> bool:
    rng = np.random.default_rng(7)
    prompts, outputs = lengths.draw(rng, n)
    times = arrivals(np.random.default_rng(8), n, 1.0, False) / rate
    work = Workload(f"{lengths.name}@{rate:.3f}", times, prompts, outputs)
    (outcome,) = simulate(LocalPort(program), [scenario(work.name, "capacity", "-", work)],
                          MISTRAL_7B_A100)
    _, gap = gaps(outcome)
    ttft = np.where(np.isnan(outcome.first_token), np.inf, outcome.first_token - times)
    return bool(outcome.done.all() and gap.size and np.percentile(gap, 99) <= TBT_SLO
                and np.median(ttft) <= TTFT_MEDIAN)


def capacity(program: Path, lengths: Lengths, n: int) -> float:
    lo, hi = 0.02, 8.0
    for _ in range(STEPS):
        mid = (lo * hi) ** 0.5
        lo, hi = (mid, hi) if keeps_slo(program, lengths, mid, n) else (lo, mid)
    return lo


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    for lengths in (CHAT, ARXIV):
        caps = {name: capacity(path, lengths, n) for name, path in PROGRAMS.items()}
        vllm, sarathi = caps.values()
        print(f"{lengths.name:6s} ({n} requests): capacity vLLM {vllm:.3f} req/s, "
              f"Sarathi-Serve {sarathi:.3f} req/s, ratio {sarathi / vllm:.2f} "
              f"(published: up to 2.6)")
    for name, path in PROGRAMS.items():
        start = time.process_time()
        result = run(LocalPort(path), configured(None))
        print(f"one evaluation of {name}: {time.process_time() - start:.2f} s CPU, "
              f"score {result['score']:.2f}")


if __name__ == "__main__":
    main()

"""The scored scenarios: two datasets x two arrival kinds x three loads, each with its own
seeded requests, or the user's trace alone.

Loads are set around the capacity of the reference scheduler (Sarathi-Serve, token budget
512) under the SLOs below, measured by benchmarks/llm_serve_capacity.py: `low` is below the
initial program's capacity, `mid` near the reference's, `high` beyond it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adrs.evaluators.llm_serve.simulator import Scenario
from adrs.evaluators.llm_serve.workloads import ARXIV, CHAT, Lengths, Workload, generate

TRACE_OPTION = "trace"
TTFT_S = 2.0  # TTFT target: this plus TTFT_PER_TOKEN_S per prompt token
TTFT_PER_TOKEN_S = 0.25e-3
TBT_S = 0.1  # the strict P99 TBT target of Sarathi-Serve for Mistral-7B
REQUESTS = {"chat": 120, "arxiv": 60}
RATES: dict[str, dict[str, float]] = {  # requests/s
    "chat": {"low": 0.8, "mid": 2.0, "high": 3.0},
    "arxiv": {"low": 0.25, "mid": 0.6, "high": 0.9},
}


def scenario(name: str, group: str, load: str, workload: Workload) -> Scenario:
    return Scenario(name, group, load, workload, TTFT_S, TTFT_PER_TOKEN_S, TBT_S)


def synthetic(lengths: Lengths, bursty: bool, load: str, rate: float, n: int) -> Scenario:
    group = f"{lengths.name}/{'bursty' if bursty else 'poisson'}"
    name = f"{group}/{load}"
    return scenario(name, group, load, generate(name, lengths, n, rate, bursty))


def bundled() -> list[Scenario]:
    out = []
    for lengths in (CHAT, ARXIV):
        for bursty in (False, True):
            for load, rate in RATES[lengths.name].items():
                out.append(synthetic(lengths, bursty, load, rate, REQUESTS[lengths.name]))
    return out


def trace_path(options: Mapping[str, Any] | None) -> str | None:
    value = (options or {}).get(TRACE_OPTION)
    return str(value).strip() or None if value is not None else None

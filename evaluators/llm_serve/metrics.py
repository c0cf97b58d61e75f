"""SLO attainment and the serving metrics of one simulated scenario.

A request meets its SLO when it is done, its time to first token (from arrival) is at most
`ttft_s + ttft_per_token_s x prompt tokens`, and the 99th percentile (nearest rank) of its
times between tokens is at most `tbt_s` (a gap after a preemption counts). Goodput is the
share of requests that meet it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from adrs.evaluators.llm_serve.costmodel import MISTRAL_7B_A100
from adrs.evaluators.llm_serve.simulator import Outcome


@dataclass(frozen=True)
class Report:
    """One scenario's figures (seconds, tokens/s, shares in 0..1)."""

    name: str
    goodput: float
    done: float
    ttft_p50: float
    ttft_p99: float
    tbt_p50: float
    tbt_p99: float
    throughput: float
    preemptions: int
    kv_util: float
    ttft_ok: float
    tbt_ok: float


def gaps(outcome: Outcome) -> tuple[np.ndarray, np.ndarray]:
    """Every time between two tokens of one request: (request, gap)."""
    req, times = outcome.token_times
    order = np.argsort(req, kind="stable")
    req, times = req[order], times[order]
    same = req[1:] == req[:-1]
    return req[1:][same], np.diff(times)[same]


def request_p99(outcome: Outcome, req: np.ndarray, gap: np.ndarray) -> np.ndarray:
    """Per request, the nearest-rank 99th percentile of its gaps (0 without gaps)."""
    n = outcome.first_token.size
    out = np.zeros(n)
    if not gap.size:
        return out
    order = np.lexsort((gap, req))
    req, gap = req[order], gap[order]
    counts = np.bincount(req, minlength=n)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    has = np.flatnonzero(counts)
    rank = np.ceil(0.99 * counts[has]).astype(np.int64) - 1
    out[has] = gap[starts[has] + rank]
    return out


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q, method="higher")) if values.size else math.inf


def report(outcome: Outcome) -> Report:
    s = outcome.scenario
    w = s.workload
    ttft = outcome.first_token - w.arrivals
    served = np.isfinite(ttft)
    req, gap = gaps(outcome)
    p99 = request_p99(outcome, req, gap)
    ttft_ok = served & (ttft <= s.ttft_s + s.ttft_per_token_s * w.prompts)
    tbt_ok = p99 <= s.tbt_s
    meets = outcome.done & ttft_ok & tbt_ok
    span = max(outcome.end_s - float(w.arrivals[0]), 1e-9)
    blocks = MISTRAL_7B_A100.gpu_blocks
    ttft_all = np.where(served, ttft, np.inf)  # an unserved request's TTFT is infinite
    return Report(s.name, float(meets.mean()), float(outcome.done.mean()),
                  _pct(ttft_all, 50), _pct(ttft_all, 99), _pct(gap, 50), _pct(gap, 99),
                  outcome.token_times[0].size / span, outcome.preemptions,
                  outcome.kv_used_block_s / (span * blocks), float(ttft_ok.mean()),
                  float(tbt_ok.mean()))

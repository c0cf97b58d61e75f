"""The llm-serve evaluator: simulate every scenario against the candidate's scheduler and
score its SLO attainment.

Score = 100 x the mean over scenarios of goodput (the share of requests meeting their TTFT
and P99 TBT targets, metrics.py). Metrics: goodput, TTFT and TBT percentiles, throughput,
preemptions and KV utilisation per scenario, and their means. A decision that breaks a rule
(decisions.py, simulator.py) makes the program invalid with the rule, the scenario and the
clock. With the problem option `trace` (a CSV of arrival_s,prompt_tokens,output_tokens)
the score is the goodput on that trace alone.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from adrs.evaluators.harness_port import SandboxPort
from adrs.evaluators.llm_serve.costmodel import MISTRAL_7B_A100
from adrs.evaluators.llm_serve.decisions import PolicyError
from adrs.evaluators.llm_serve.lockstep import PolicyPort, simulate
from adrs.evaluators.llm_serve.metrics import Report, report
from adrs.evaluators.llm_serve.scenarios import bundled, scenario, trace_path
from adrs.evaluators.llm_serve.simulator import Scenario
from adrs.evaluators.llm_serve.workloads import load_trace

WORST_SHOWN = 4


@functools.cache
def _trace(path: str) -> tuple[Scenario, ...]:
    return (scenario(f"trace/{load_trace(path).name}", "trace", "trace", load_trace(path)),)


def configured(options: Mapping[str, Any] | None) -> Sequence[Scenario]:
    path = trace_path(options)
    return _trace(path) if path else _bundled()


@functools.cache
def _bundled() -> tuple[Scenario, ...]:
    return tuple(bundled())


def _ms(seconds: float) -> float:
    return round(1000 * seconds, 1) if np.isfinite(seconds) else 1e9


def metrics(reports: Sequence[Report]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "goodput": round(float(np.mean([r.goodput for r in reports])), 4),
        "ttft_ok": round(float(np.mean([r.ttft_ok for r in reports])), 4),
        "tbt_ok": round(float(np.mean([r.tbt_ok for r in reports])), 4),
        "preemptions": int(sum(r.preemptions for r in reports)),
        "kv_util": round(float(np.mean([r.kv_util for r in reports])), 4),
        "scenarios": len(reports)}
    for r in reports:
        out.update({f"goodput[{r.name}]": round(r.goodput, 4),
                    f"ttft_p50_ms[{r.name}]": _ms(r.ttft_p50),
                    f"ttft_p99_ms[{r.name}]": _ms(r.ttft_p99),
                    f"tbt_p50_ms[{r.name}]": _ms(r.tbt_p50),
                    f"tbt_p99_ms[{r.name}]": _ms(r.tbt_p99),
                    f"tokens_per_s[{r.name}]": round(r.throughput, 1),
                    f"preemptions[{r.name}]": r.preemptions,
                    f"kv_util[{r.name}]": round(r.kv_util, 4)})
    return out


def feedback(reports: Sequence[Report]) -> str:
    worst = sorted(reports, key=lambda r: r.goodput)[:WORST_SHOWN]
    parts = [f"{r.name}: {100 * r.goodput:.0f}% (TTFT ok {100 * r.ttft_ok:.0f}%, TBT ok "
             f"{100 * r.tbt_ok:.0f}%, P99 TBT {_ms(r.tbt_p99):g} ms, median TTFT "
             f"{_ms(r.ttft_p50):g} ms, {r.preemptions} preemptions)" for r in worst]
    mean = 100 * float(np.mean([r.goodput for r in reports]))
    return (f"Mean goodput {mean:.1f}% of requests within SLO over {len(reports)} "
            f"scenarios. Lowest: " + "; ".join(parts) + ".")


def run(port: PolicyPort, scenarios: Sequence[Scenario]) -> dict[str, Any]:
    try:
        outcomes = simulate(port, scenarios, MISTRAL_7B_A100)
    except PolicyError as exc:
        return {"valid": False, "error": str(exc)}
    reports = [report(o) for o in outcomes]
    return {"score": 100 * float(np.mean([r.goodput for r in reports])),
            "metrics": metrics(reports), "feedback": feedback(reports)}


def evaluate(candidate: Any, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """llm-serve: the bundled scenarios, or the trace the option `trace` names."""
    return run(SandboxPort(candidate), configured(options))

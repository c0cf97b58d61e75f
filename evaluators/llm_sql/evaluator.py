"""Trusted evaluator of the LLM-SQL problem: reorder table rows and fields for prefix hits.

For each of the five tables the candidate's `reorder(columns, rows, merge_groups)` is called
once in its sandbox and timed from here; its output is validated against the input table
(validate.py: every row a distinct input row's cells in any order, each merge group fused
into one cell in any member order) and its prefix hit rate computed here, under the metric
the problem options choose (metric.py: the paper's by default, or `metric=lru`, a bounded
prefix cache with LRU eviction; the feedback's first line says which). Score (the ADRS
paper's evaluator), with H the mean hit rate (a fraction) and R the mean runtime per table
in seconds:

    score = 0.95 * H + 0.05 * (12 - min(12, R)) / 12

`lb_score` is the leaderboard's 0-100 form: 0.95 * clip((H - B) / (1 - B), 0, 1) * 100 +
0.05 * (10 - min(10, R)) / 10 * 100, where B is the mean hit rate of the original order.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from adrs.evaluators.llm_sql.datasets import DATA_OPTION, real_or_synthetic
from adrs.evaluators.llm_sql.metric import PAPER, Metric, metric_from_options
from adrs.evaluators.llm_sql.table import Table, merged
from adrs.evaluators.llm_sql.validate import Expected, InvalidOutput, check_output

FUNCTION = "reorder"
HIT_WEIGHT = 0.95
RUNTIME_CAP_S = 12.0
LB_RUNTIME_CAP_S = 10.0


@dataclass(frozen=True)
class Prepared:
    """A table as sent to the candidate, its rows indexed for validation, the metric, and
    the hit rate of its original order (merged cells last, members in the merge group's
    order) under that metric."""

    table: Table
    expected: Expected
    baseline_hit: float
    metric: Metric = PAPER


@dataclass(frozen=True)
class Outcome:
    """One table's result."""

    name: str
    hit: float
    runtime_s: float
    baseline_hit: float


def prepare(table: Table, metric: Metric = PAPER) -> Prepared:
    return Prepared(table, Expected(table), metric.rate(merged(table)[1]), metric)


@cache
def _prepared(data_dir: str | None, metric: Metric) -> tuple[Prepared, ...]:
    return tuple(prepare(t, metric)
                 for t in real_or_synthetic(Path(data_dir) if data_dir else None))


def evaluate(candidate: Any, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Score the candidate on the bundled tables, or on the real CSV files found in the
    folder the problem option `data_dir` names (one per dataset name), under the metric the
    options `metric`, `cache_tokens` and `block_tokens` choose (a bad value: UserError)."""
    metric = metric_from_options(options)
    data_dir = str((options or {}).get(DATA_OPTION) or "") or None
    return evaluate_tables(candidate, _prepared(data_dir, metric))


def run_table(candidate: Any, prepared: Prepared) -> Outcome:
    """Call the candidate on one table, validate its output, measure its hit rate.

    Raises InvalidOutput for a contract violation (CandidateFault propagates)."""
    table = prepared.table
    started = time.perf_counter()
    output = candidate.call(FUNCTION, list(table.columns), [list(r) for r in table.rows],
                            [list(g) for g in table.merge_groups])
    runtime = time.perf_counter() - started
    rows = check_output(prepared.expected, output)
    return Outcome(table.name, prepared.metric.rate(rows), runtime, prepared.baseline_hit)


def evaluate_tables(candidate: Any, tables: tuple[Prepared, ...]) -> dict[str, Any]:
    outcomes = []
    for prepared in tables:
        try:
            outcomes.append(run_table(candidate, prepared))
        except InvalidOutput as exc:
            return {"valid": False, "error": f"{FUNCTION}() on table {prepared.table.name!r}: "
                    f"{exc}"}
    return summarise(outcomes, tables[0].metric if tables else PAPER)


def paper_score(hit: float, runtime_s: float) -> float:
    """The ADRS paper's combined score from the mean hit rate and mean runtime."""
    return HIT_WEIGHT * hit + (1 - HIT_WEIGHT) * (RUNTIME_CAP_S - min(RUNTIME_CAP_S,
                                                                      runtime_s)) / RUNTIME_CAP_S


def leaderboard_score(hit: float, runtime_s: float, baseline: float) -> float:
    """The 0-100 form: hit rate normalised between the original order and 1."""
    norm = min(1.0, max(0.0, (hit - baseline) / (1 - baseline))) if baseline < 1 else 0.0
    speed = (LB_RUNTIME_CAP_S - min(LB_RUNTIME_CAP_S, runtime_s)) / LB_RUNTIME_CAP_S
    return 100 * (HIT_WEIGHT * norm + (1 - HIT_WEIGHT) * speed)


def summarise(outcomes: list[Outcome], metric: Metric = PAPER) -> dict[str, Any]:
    count = len(outcomes)
    hit = sum(o.hit for o in outcomes) / count
    runtime = sum(o.runtime_s for o in outcomes) / count
    baseline = sum(o.baseline_hit for o in outcomes) / count
    metrics: dict[str, float] = {
        "hit_rate": round(hit, 6), "runtime_s": round(runtime, 4),
        "baseline_hit_rate": round(baseline, 6),
        "lb_score": round(leaderboard_score(hit, runtime, baseline), 4)}
    for o in outcomes:
        metrics[f"hit_rate_{o.name}"] = round(o.hit, 6)
        metrics[f"runtime_s_{o.name}"] = round(o.runtime_s, 4)
    return {"score": paper_score(hit, runtime), "metrics": metrics,
            "feedback": feedback(outcomes, metric)}


def feedback(outcomes: list[Outcome], metric: Metric = PAPER) -> str:
    weakest = min(outcomes, key=lambda o: o.hit)
    slowest = max(outcomes, key=lambda o: o.runtime_s)
    lines = [f"Metric in force: {metric.describe()}.",
             f"Weakest table: {weakest.name} (hit rate {weakest.hit:.2%}; its original "
             f"order gives {weakest.baseline_hit:.2%}). Slowest: {slowest.name} "
             f"({slowest.runtime_s:.2f} s)."]
    lines += [f"- {o.name}: hit rate {o.hit:.2%} (original order {o.baseline_hit:.2%}), "
              f"{o.runtime_s:.2f} s" for o in outcomes]
    return "\n".join(lines)

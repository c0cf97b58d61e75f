"""LLM-SQL: time the hit-rate computation and validation (issue: <= 1 s on 30,000 rows), and
reproduce the published beer.csv figures through the trusted scorer.

Run: python benchmarks/llm_sql_hitrate.py           (best of 3 timings of each step)
     python benchmarks/llm_sql_hitrate.py --beer     (../shared/data/llm_sql/beer.csv)
     python benchmarks/llm_sql_hitrate.py --beer PATH
     python benchmarks/llm_sql_hitrate.py --beer --metric lru --cache-tokens 16384
                                                     [--block-tokens 16]

With --beer the real table is loaded as the evaluator loads a `data_dir` table; the original
order is the evaluator's baseline, and the GGR figure is the initial program's output
validated and scored by the evaluator (`run_table`), as a candidate's answer would be.
Published (PROBLEMS.md 4.5, upstream evaluator and GGR): original order 14.43%, GGR 70.74%.
With --metric lru it also scores GGR under the problem option metric=lru at the given cache
and block size (the evaluator's own metric object), and prints sorted and shuffled (seed 0)
row orders, of the original field layout and of GGR's, under both metrics.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from adrs.errors import UserError
from adrs.evaluators.harness_port import load_module
from adrs.evaluators.llm_sql.datasets import MERGE_GROUPS, beer
from adrs.evaluators.llm_sql.evaluator import prepare, run_table
from adrs.evaluators.llm_sql.hitrate import hit_rate
from adrs.evaluators.llm_sql.metric import (
    DEFAULT_BLOCK_TOKENS,
    DEFAULT_CACHE_TOKENS,
    PAPER,
    Metric,
    metric_from_options,
)
from adrs.evaluators.llm_sql.table import Table, load_csv, merged
from adrs.evaluators.llm_sql.validate import Expected, check_output

REPO = Path(__file__).resolve().parents[1]
INITIAL = REPO / "problems" / "llm-sql" / "initial_program.py"
REAL_BEER = REPO.parent / "shared" / "data" / "llm_sql" / "beer.csv"
PUBLISHED = {"original order": 14.43, "GGR": 70.74}


def best_of(runs: int, step: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return min(times)


def timings(metric: Metric) -> None:
    table = beer(rows=30_000)
    _, rows = merged(table)
    output = [list(reversed(r)) for r in rows]
    chars = sum(len("".join(r)) for r in rows)
    print(f"30,000 synthetic beer rows, {chars:,} characters")
    print(f"hit rate:   {best_of(3, lambda: hit_rate(output)):.3f} s")
    if metric is not PAPER:
        print(f"lru metric: {best_of(3, lambda: metric.rate(output)):.3f} s")
    expected = Expected(table)
    print(f"validation: {best_of(3, lambda: check_output(expected, output)):.3f} s "
          f"(indexing the input once: {best_of(3, lambda: Expected(table)):.3f} s)")


class InProcess:
    """The sandbox handle's `call`, on a module loaded in this process."""

    def __init__(self, module: ModuleType) -> None:
        self.module = module

    def call(self, name: str, *args: Any) -> Any:
        return getattr(self.module, name)(*args)


def initial_program() -> ModuleType:
    return load_module(INITIAL, "llm_sql_initial")


class Recording(InProcess):
    """InProcess that keeps the candidate's answer."""

    answer: Any = None

    def call(self, name: str, *args: Any) -> Any:
        self.answer = super().call(name, *args)
        return self.answer


def beer_figures(table: Table, metric: Metric = PAPER) -> tuple[dict[str, float], Any]:
    """Hit rates (percent) of the original order and of GGR on the real beer table under
    `metric`, GGR's runtime, and GGR's answer."""
    prepared = prepare(table, metric)
    candidate = Recording(initial_program())
    outcome = run_table(candidate, prepared)
    return ({"original order": 100 * prepared.baseline_hit, "GGR": 100 * outcome.hit,
             "GGR runtime (s)": outcome.runtime_s}, candidate.answer)


def row_orders(table: Table, ggr: list[list[str]], metric: Metric) -> None:
    """Sorted and shuffled rows, same field orders, under the paper's metric and `metric`."""
    layout = [list(r) for r in merged(table)[1]]
    orders = {"original layout, rows sorted": sorted(layout),
              "original layout, rows shuffled": shuffled(layout),
              "GGR, rows sorted (its answer)": sorted(ggr),
              "GGR, rows shuffled": shuffled(ggr)}
    print(f"{'row order':32s} {'paper':>9s} {'lru':>9s}")
    for name, rows in orders.items():
        print(f"{name:32s} {100 * hit_rate(rows):8.4f}% {100 * metric.rate(rows):8.4f}%")


def shuffled(rows: list[list[str]]) -> list[list[str]]:
    out = rows[:]
    random.Random(0).shuffle(out)
    return out


def metric_of(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Metric:
    """The evaluator's metric for these flags; a bad value: one line, exit 2."""
    try:
        return metric_from_options({"metric": args.metric, "cache_tokens": args.cache_tokens,
                                    "block_tokens": args.block_tokens})
    except UserError as exc:
        parser.error(str(exc))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beer", nargs="?", const=REAL_BEER, type=Path, metavar="PATH",
                        help="print the beer.csv hit rates against the published ones")
    parser.add_argument("--metric", choices=("paper", "lru"), default="paper")
    parser.add_argument("--cache-tokens", type=int, default=DEFAULT_CACHE_TOKENS)
    parser.add_argument("--block-tokens", type=int, default=DEFAULT_BLOCK_TOKENS)
    args = parser.parse_args()
    metric = metric_of(parser, args)
    if args.beer is None:
        timings(metric)
        return
    table = load_csv(args.beer, "beer", MERGE_GROUPS["beer"])
    figures, _ = beer_figures(table)
    groups = " + ".join(MERGE_GROUPS["beer"][0])
    print(f"{args.beer} (merge group {groups})")
    for name, published in PUBLISHED.items():
        print(f"{name:15s} {figures[name]:8.4f}%   published {published:.2f}%   "
              f"difference {figures[name] - published:+.4f} points")
    print(f"GGR runtime     {figures['GGR runtime (s)']:8.2f} s")
    if metric is PAPER:
        return
    under, ggr = beer_figures(table, metric)
    print(f"\nmetric=lru, cache_tokens={args.cache_tokens}, block_tokens={args.block_tokens}"
          f" (4 characters a token):")
    print(f"original order  {under['original order']:8.4f}%")
    print(f"GGR             {under['GGR']:8.4f}%")
    row_orders(table, ggr, metric)


if __name__ == "__main__":
    main()

"""LLM-SQL: time the hit-rate computation and validation (issue: <= 1 s on 30,000 rows), and
reproduce the published beer.csv figures through the trusted scorer.

Run: python benchmarks/llm_sql_hitrate.py           (best of 3 timings of each step)
     python benchmarks/llm_sql_hitrate.py --beer     (../shared/data/llm_sql/beer.csv)
     python benchmarks/llm_sql_hitrate.py --beer PATH

With --beer the real table is loaded as the evaluator loads a `data_dir` table; the original
order is the evaluator's baseline, and the GGR figure is the initial program's output
validated and scored by the evaluator (`run_table`), as a candidate's answer would be.
Published (PROBLEMS.md 4.5, upstream evaluator and GGR): original order 14.43%, GGR 70.74%.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from adrs.evaluators.llm_sql.datasets import MERGE_GROUPS, beer
from adrs.evaluators.llm_sql.evaluator import prepare, run_table
from adrs.evaluators.llm_sql.hitrate import hit_rate
from adrs.evaluators.llm_sql.table import load_csv, merged
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


def timings() -> None:
    table = beer(rows=30_000)
    _, rows = merged(table)
    output = [list(reversed(r)) for r in rows]
    chars = sum(len("".join(r)) for r in rows)
    print(f"30,000 synthetic beer rows, {chars:,} characters")
    print(f"hit rate:   {best_of(3, lambda: hit_rate(output)):.3f} s")
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
    spec = importlib.util.spec_from_file_location("llm_sql_initial", INITIAL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def beer_figures(path: Path) -> dict[str, float]:
    """Hit rates (percent) of the original order and of GGR on the real beer table."""
    prepared = prepare(load_csv(path, "beer", MERGE_GROUPS["beer"]))
    outcome = run_table(InProcess(initial_program()), prepared)
    return {"original order": 100 * prepared.baseline_hit, "GGR": 100 * outcome.hit,
            "GGR runtime (s)": outcome.runtime_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beer", nargs="?", const=REAL_BEER, type=Path, metavar="PATH",
                        help="print the beer.csv hit rates against the published ones")
    args = parser.parse_args()
    if args.beer is None:
        timings()
        return
    figures = beer_figures(args.beer)
    groups = " + ".join(MERGE_GROUPS["beer"][0])
    print(f"{args.beer} (merge group {groups})")
    for name, published in PUBLISHED.items():
        print(f"{name:15s} {figures[name]:8.4f}%   published {published:.2f}%   "
              f"difference {figures[name] - published:+.4f} points")
    print(f"GGR runtime     {figures['GGR runtime (s)']:8.2f} s")


if __name__ == "__main__":
    main()

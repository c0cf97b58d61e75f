"""Time the LLM-SQL hit-rate computation and validation on 30,000 rows (issue: <= 1 s).

Run: python benchmarks/llm_sql_hitrate.py   (prints the best of 3 timings of each step)
"""

from __future__ import annotations

import time
from collections.abc import Callable

from adrs.evaluators.llm_sql.datasets import beer
from adrs.evaluators.llm_sql.hitrate import hit_rate
from adrs.evaluators.llm_sql.table import merged
from adrs.evaluators.llm_sql.validate import check_output


def best_of(runs: int, step: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    table = beer(rows=30_000)
    _, rows = merged(table)
    output = [list(reversed(r)) for r in rows]
    chars = sum(len("".join(r)) for r in rows)
    print(f"30,000 synthetic beer rows, {chars:,} characters")
    print(f"hit rate:   {best_of(3, lambda: hit_rate(output)):.3f} s")
    print(f"validation: {best_of(3, lambda: check_output(rows, output)):.3f} s")


if __name__ == "__main__":
    main()

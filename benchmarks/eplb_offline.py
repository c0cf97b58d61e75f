"""EPLB: does an offline (no LLM) `adrs run eplb` improve on the initial program?

Runs `adrs run eplb --iterations N --seed S` into a run folder, writes its best program,
prints what the mutations changed (the diff against the initial program), then evaluates
the initial and the best program `--repeats` times each, interleaved, through the trusted
evaluator, and prints every score, GPU balancedness and t, and the median gain. A gain
that holds in every repeat and comes with a higher balancedness is not timing noise.

Usage (Ray needs the loopback-only namespace here):
  /work/shared/bin/offline python benchmarks/eplb_offline.py [--seed 1] [--iterations 50]
"""

from __future__ import annotations

import argparse
import difflib
import statistics
import tempfile
from pathlib import Path

from adrs.cli.main import main as adrs
from adrs.code.program import split
from adrs.evaluation.runner import run_job
from adrs.problem.spec import eval_job, load_problem
from adrs.run.session import config_layers


def evaluate(source: str) -> tuple[float, float, float]:
    """(score, GPU balancedness, t in ms) of one trusted evaluation."""
    problem = load_problem("eplb")
    result = run_job(eval_job(problem, config_layers(problem, None, {}), source))
    assert result.valid and result.score is not None, result.error
    return (result.score, float(result.metrics["gpu_balancedness"]),
            float(result.metrics["t_ms"]))


def changes(initial: str, best: str) -> list[str]:
    """The changed lines of the evolve blocks, unified-diff style, without the context."""
    old, new = "".join(split(initial).evolve), "".join(split(best).evolve)
    return [line for line in difflib.unified_diff(old.splitlines(), new.splitlines(), n=0,
                                                  lineterm="")
            if line[:1] in "+-" and line[:3] not in ("+++", "---")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--run-dir", type=Path, default=None)
    args = parser.parse_args()
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="eplb-offline-")) / "run"
    assert adrs(["run", "eplb", "--iterations", str(args.iterations), "--seed",
                 str(args.seed), "--run-dir", str(run_dir)]) == 0
    best_path = run_dir / "best_program.py"
    assert adrs(["best", str(run_dir), "-o", str(best_path)]) == 0
    initial, best = load_problem("eplb").initial_code, best_path.read_text()
    print("the best program's changes to the evolve block:")
    print("\n".join(f"  {line}" for line in changes(initial, best)) or "  (none)")
    runs: dict[str, list[tuple[float, float, float]]] = {"initial": [], "best": []}
    for _ in range(args.repeats):  # interleaved, so both see the same machine load
        runs["initial"].append(evaluate(initial))
        runs["best"].append(evaluate(best))
    for name, results in runs.items():
        print(f"{name:>8}: " + "; ".join(f"score {s:.3f} GPU {g:.4f} t {t:.2f} ms"
                                         for s, g, t in results))
    gain = statistics.median(b[0] - i[0] for i, b in zip(runs["initial"], runs["best"],
                                                           strict=True))
    worst = min(b[0] for b in runs["best"]) - max(i[0] for i in runs["initial"])
    print(f"median score gain {gain:+.3f}; worst best-repeat minus best initial-repeat "
          f"{worst:+.3f}")


if __name__ == "__main__":
    main()

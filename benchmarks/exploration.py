"""How often the initial program is still the parent once something better exists.

Runs real offline runs (the built-in mutator, real evaluators, local backend) of 40 calls
each (41 candidates, the initial included) on cbl and txn for a few seeds, then reads each
run's store and prints, per run, the share of prompts whose current program (parent) is the
initial program among the candidates launched after the first improvement was applied
(candidate id >= first improving id + pipeline depth: earlier ones could not see it).

`--legacy` turns the progress-aware exploration off (archive keys seed_stalled_islands,
retire_initial and behaviour_dedup false), which reproduces the behaviour before issue 16,
so one command prints both sides:

    /work/shared/bin/offline .venv/bin/python benchmarks/exploration.py [--legacy] \
        [--seeds 0 1 2] [--problems cbl txn] [--keep DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from adrs.engine.archive_view import load_config, score_of
from adrs.store.database import RunStore

CLI = "import sys; from adrs.cli.main import main; sys.exit(main())"
LEGACY = ("archive:\n  seed_stalled_islands: false\n  retire_initial: false\n"
          "  behaviour_dedup: false\n")


@dataclass(frozen=True)
class Share:
    problem: str
    seed: int
    first_improvement: int | None
    counted: int
    initial_parent: int

    @property
    def ratio(self) -> float:
        return self.initial_parent / self.counted if self.counted else 0.0


def run(problem: str, seed: int, run_dir: Path, calls: int, legacy: bool) -> None:
    command = [sys.executable, "-c", CLI, "run", problem, "--iterations",
               str(calls + 1), "--backend", "local", "--workers", "2", "--seed", str(seed),
               "--run-dir", str(run_dir)]
    if legacy:
        config = run_dir.parent / f"{run_dir.name}.yaml"
        config.write_text(LEGACY, encoding="utf-8")
        command += ["-c", str(config)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def share(problem: str, seed: int, run_dir: Path) -> Share:
    """The initial-as-parent count after the run's first improvement was applied."""
    depth = load_config(run_dir).pipeline_depth
    store = RunStore.open(run_dir, readonly=True)
    try:
        records = list(store.records())
    finally:
        store.close()
    initial = score_of(records[0])
    assert initial is not None, "the initial program is invalid"
    first = next((r.id for r in records if (s := score_of(r)) is not None and s > initial),
                 None)
    if first is None:
        return Share(problem, seed, None, 0, 0)
    later = [r for r in records if r.id >= first + depth]
    return Share(problem, seed, first, len(later),
                 sum(1 for r in later if r.parent_ids[:1] == (0,)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", default=["cbl", "txn"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--calls", type=int, default=40, help="LLM calls (candidates - 1)")
    parser.add_argument("--legacy", action="store_true",
                        help="exploration as before issue 16 (the 'before' figures)")
    parser.add_argument("--keep", type=Path, help="keep the run folders under this folder")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="adrs-exploration-"))
    base.mkdir(parents=True, exist_ok=True)
    total_counted = total_initial = 0
    print(f"{'legacy' if args.legacy else 'current'} exploration, {args.calls} calls per run")
    for problem in args.problems:
        for seed in args.seeds:
            run_dir = base / f"{problem}-s{seed}{'-legacy' if args.legacy else ''}"
            run(problem, seed, run_dir, args.calls, args.legacy)
            s = share(problem, seed, run_dir)
            total_counted += s.counted
            total_initial += s.initial_parent
            print(f"{problem:4} seed {seed}: first improvement #{s.first_improvement}, "
                  f"initial program is the parent of {s.initial_parent}/{s.counted} later "
                  f"prompts ({s.ratio:.0%})")
    overall = total_initial / total_counted if total_counted else 0.0
    print(f"overall: {total_initial}/{total_counted} = {overall:.1%} (target <= 10%)")


if __name__ == "__main__":
    main()

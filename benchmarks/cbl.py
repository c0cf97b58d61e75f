"""Time one `cbl` evaluation (1,080 simulations) of the initial program.

Prints the wall time of the simulations in process (policies driven by the harness code
directly, a fresh program module per group) and through the real sandbox (one sandbox per
group of runs that cannot inform one another, one call per sandbox and tick), the number
of groups, and the mean cost. Give an unpacked real trace archive as the argument to time
the real traces; `--repeat N` runs N times and prints the median (the machine is shared).

    python benchmarks/cbl.py [TRACE_DIR] [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from adrs.evaluation.runner import EvalJob, run_job
from adrs.evaluators.cbl.evaluate import run_single
from adrs.evaluators.cbl.lockstep import LocalPrograms
from adrs.evaluators.cbl.scenarios import TRACE_DIR_OPTION, single_region, trace_dir
from adrs.sandbox.candidate import Limits

PROBLEM = Path(__file__).resolve().parents[1] / "problems" / "cbl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace_dir", nargs="?", help="unpacked real trace archive")
    parser.add_argument("--repeat", type=int, default=1, help="runs; the median is printed")
    args = parser.parse_args()
    options = {TRACE_DIR_OPTION: str(Path(args.trace_dir).resolve())} if args.trace_dir else {}
    root = trace_dir(options)
    single_region(root)  # load or generate the traces once (cached), outside the timing
    job = EvalJob(problem_root=str(PROBLEM), evaluator="adrs.evaluators.cbl.evaluate:evaluate",
                  source=(PROBLEM / "initial_program.py").read_text(encoding="utf-8"),
                  limits=Limits(timeout_s=120), harness="../../evaluators/cbl/harness.py",
                  options=options)
    local_s, sandbox_s = [], []
    for _ in range(max(args.repeat, 1)):
        started = time.perf_counter()
        local = run_single(LocalPrograms(PROBLEM / "initial_program.py"), root)
        local_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        sandboxed = run_job(job)
        sandbox_s.append(time.perf_counter() - started)
    print(f"traces: {root or 'synthetic'}, {local['metrics']['processes']} processes")
    print(f"in process: {statistics.median(local_s):.2f} s, mean cost "
          f"${local['metrics']['avg_cost']:.2f}")
    print(f"sandbox:    {statistics.median(sandbox_s):.2f} s, mean cost "
          f"${sandboxed.metrics['avg_cost']:.2f}, valid {sandboxed.valid}")
    if len(sandbox_s) > 1:
        print(f"sandbox runs: {', '.join(f'{s:.2f}' for s in sandbox_s)}")


if __name__ == "__main__":
    main()

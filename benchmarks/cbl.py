"""Time one `cbl` evaluation (1,080 simulations) of the initial program.

Prints the wall time of the simulations in process (policies driven by the harness code
directly) and through the real sandbox (one RPC per tick), and the mean cost. Give an
unpacked real trace archive as the argument to time the real traces.

    python benchmarks/cbl.py [TRACE_DIR]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from adrs.evaluation.runner import EvalJob, run_job
from adrs.evaluators.cbl.evaluate import run_single
from adrs.evaluators.cbl.lockstep import LocalPort, load_program
from adrs.evaluators.cbl.scenarios import TRACE_DIR_OPTION, single_region, trace_dir
from adrs.sandbox.candidate import Limits

PROBLEM = Path(__file__).resolve().parents[1] / "problems" / "cbl"


def main() -> None:
    options = {TRACE_DIR_OPTION: str(Path(sys.argv[1]).resolve())} if len(sys.argv) > 1 else {}
    root = trace_dir(options)
    single_region(root)  # load or generate the traces once (cached), outside the timing
    started = time.perf_counter()
    local = run_single(LocalPort(load_program(PROBLEM / "initial_program.py")), root)
    in_process = time.perf_counter() - started
    job = EvalJob(problem_root=str(PROBLEM), evaluator="adrs.evaluators.cbl.evaluate:evaluate",
                  source=(PROBLEM / "initial_program.py").read_text(encoding="utf-8"),
                  limits=Limits(timeout_s=120), harness="../../evaluators/cbl/harness.py",
                  options=options)
    started = time.perf_counter()
    sandboxed = run_job(job)
    through_sandbox = time.perf_counter() - started
    print(f"traces: {root or 'synthetic'}")
    print(f"in process: {in_process:.2f} s, mean cost ${local['metrics']['avg_cost']:.2f}")
    print(f"sandbox:    {through_sandbox:.2f} s, mean cost "
          f"${sandboxed.metrics['avg_cost']:.2f}, valid {sandboxed.valid}")


if __name__ == "__main__":
    main()

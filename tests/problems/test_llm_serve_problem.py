"""The bundled llm-serve problem: loads, its initial program scores the same twice in the
real sandbox, and a bad trace option stops the CLI with one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from adrs.evaluation.runner import EvalJob, run_job
from adrs.problem.spec import load_problem
from adrs.sandbox.candidate import Limits

REPO = Path(__file__).resolve().parents[2]
ROOT = REPO / "problems" / "llm-serve"


def test_problem_loads_with_its_harness_and_option() -> None:
    problem = load_problem("llm-serve")
    assert problem.spec.evaluator == "adrs.evaluators.llm_serve.evaluate:evaluate"
    assert problem.spec.harness is not None
    harness = (problem.root / problem.spec.harness).resolve()
    assert harness == (REPO / "evaluators" / "llm_serve" / "harness.py").resolve()
    assert problem.spec.options == {"trace": None}
    assert "schedule(self, replica)" in problem.task


def test_task_statement_names_only_what_the_harness_offers() -> None:
    """Every replica and request attribute the task statement names exists."""
    task = load_problem("llm-serve").task
    source = (REPO / "evaluators" / "llm_serve" / "harness.py").read_text()
    for name in ("now", "epoch", "free_blocks", "free_swap_blocks", "decode_seqs",
                 "decode_new_blocks", "decode_context_tokens", "blocks_needed", "waiting",
                 "running", "swapped", "prefill_left", "in_prefill", "preemptions", "target",
                 "prompt_tokens", "generated", "computed", "arrival", "swap_in", "pause"):
        assert f"`{name}" in task or f".{name}" in task, name
        assert name in source, name


def test_initial_program_in_the_sandbox_is_valid_and_seeded() -> None:
    problem = load_problem("llm-serve")
    job = EvalJob(str(ROOT), problem.spec.evaluator, problem.initial_code,
                  Limits(timeout_s=60), harness=problem.spec.harness)
    first, second = run_job(job), run_job(job)
    assert first.valid, first.error
    assert first.score == second.score and first.metrics == second.metrics
    assert first.score is not None and 40 < first.score < 70
    assert first.metrics["scenarios"] == 12


def test_a_bad_trace_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "trace.csv"
    bad.write_text("when,prompt,output\n1,2,3\n")
    proc = subprocess.run([sys.executable, "-m", "adrs", "eval", "llm-serve",
                           str(ROOT / "sarathi.py"), "--option", f"trace={bad}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "arrival_s,prompt_tokens,output_tokens" in lines[0]


PROBE = '''
import gc
import sys


class Scheduler:
    def schedule(self, replica):
        raise NotImplementedError


# EVOLVE-BLOCK-START
class Probe(Scheduler):
    """Fails the evaluation if anything of the trusted side is reachable in its process."""

    def schedule(self, r):
        found = [m for m in sys.modules if m.startswith("adrs.evaluators")]
        found += [type(o).__name__ for o in gc.get_objects()
                  if type(o).__name__ in ("Simulation", "Workload", "Scenario", "Outcome")]
        found += [m for m in sys.modules if m == "numpy" or m.startswith("numpy.")][:1]
        if found:
            raise RuntimeError("trusted state reachable: " + ", ".join(sorted(set(found))))
        for q in r.waiting:
            r.prefill(q, q.prefill_left)
# EVOLVE-BLOCK-END
'''


def test_the_simulator_is_not_reachable_from_the_sandbox(tmp_path: Path) -> None:
    """In the candidate's process there is no simulator module, no simulator object and no
    numpy array of lengths: the policy sees only what the harness builds from messages."""
    trace = tmp_path / "trace.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n0,100,5\n0.1,200,7\n")
    problem = load_problem("llm-serve")
    job = EvalJob(str(ROOT), problem.spec.evaluator, PROBE, Limits(timeout_s=60),
                  harness=problem.spec.harness, options={"trace": str(trace)})
    result = run_job(job)
    assert result.valid, result.error
    leaky = PROBE.replace('"Outcome")', '"Outcome", "Request")')  # the harness's own views
    result = run_job(EvalJob(str(ROOT), problem.spec.evaluator, leaky, Limits(timeout_s=60),
                             harness=problem.spec.harness, options={"trace": str(trace)}))
    assert not result.valid and "trusted state reachable: Request" in str(result.error)

"""Evaluation of candidate programs: sandbox, codec, runner and backends.

Trust boundary: candidates run in a sandboxed child process (sandbox.py, child.py) and
answer calls with plain data only (codec.py); the trusted evaluator runs in this process or
a worker (runner.py), and backends run evaluations concurrently (backends.py).
"""

from adrs.evaluation.backends import EvalBackend, LocalBackend, ThreadBackend
from adrs.evaluation.runner import EvalJob, load_evaluator, run_job
from adrs.sandbox.candidate import Candidate, CandidateFault, Limits, protections

__all__ = ["Candidate", "CandidateFault", "EvalBackend", "EvalJob", "Limits", "LocalBackend",
           "ThreadBackend", "load_evaluator", "protections", "run_job"]

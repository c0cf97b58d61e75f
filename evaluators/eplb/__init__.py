"""Trusted evaluator of the EPLB problem (MoE expert-parallelism load balancing).

Modules: workload (traces and the synthetic generator), placement (validation), balance (the
load simulator), timing (trusted timing), scoring (the score formula), evaluate (the loop).
"""

from adrs.evaluators.eplb.evaluate import evaluate, evaluate_windows

__all__ = ["evaluate", "evaluate_windows"]

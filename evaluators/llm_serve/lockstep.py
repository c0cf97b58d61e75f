"""Drive every scenario of an evaluation in lockstep against the candidate's schedulers.

Scenarios draw their requests from independent seeds, so none can inform another and all
share one process: each step, one call carries every scenario's news (clock, free blocks,
arrivals, finished ids) and brings back every batch. The simulator, the clock and the
output lengths stay in this (trusted) process.
`SandboxPort` talks to the candidate's sandbox (the harness is loaded there); `LocalPort`
runs a trusted program file in this process through a private copy of the harness (tests
and benchmarks: the same code path minus the pipe).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from adrs.evaluators.harness_port import load_module
from adrs.evaluators.llm_serve.costmodel import BLOCK_TOKENS, CostModel
from adrs.evaluators.llm_serve.decisions import parse_reply
from adrs.evaluators.llm_serve.simulator import Outcome, Scenario, Simulation

HARNESS_PATH = Path(__file__).with_name("harness.py")
MAX_STEPS = 200_000  # a bound on one evaluation's iterations per scenario
_COUNTER = itertools.count()


class PolicyPort(Protocol):
    """The schedulers of one process: `start` creates one per config; `step` sends one
    message (harness.py's layout) and returns the reply (uint32 words as bytes)."""

    def start(self, configs: list[dict[str, Any]]) -> None: ...

    def step(self, message: bytes) -> object: ...


class LocalPort:
    """A trusted program file imported afresh, with a private harness (trusted code only)."""

    def __init__(self, path: Path) -> None:
        n = next(_COUNTER)
        self.program = load_module(path, f"_adrs_llm_serve_program_{n}")
        self.harness = load_module(HARNESS_PATH, f"_adrs_llm_serve_harness_{n}")

    def start(self, configs: list[dict[str, Any]]) -> None:
        self.harness.create(self.harness.policy_class(self.program), configs)

    def step(self, message: bytes) -> object:
        return self.harness.step(message)


def configs(model: CostModel, count: int) -> list[dict[str, Any]]:
    config = {"total_blocks": model.gpu_blocks, "swap_blocks": model.swap_blocks,
              "block_size": BLOCK_TOKENS, "max_batch_tokens": model.max_batch_tokens,
              "max_seqs": model.max_seqs, "max_model_len": model.max_model_len}
    return [dict(config) for _ in range(count)]


def simulate(port: PolicyPort, scenarios: Sequence[Scenario], model: CostModel) -> list[Outcome]:
    """Run every scenario to its end; a broken rule raises PolicyError, a fault of the
    program CandidateFault."""
    sim = Simulation(scenarios, model)
    port.start(configs(model, len(scenarios)))
    for step in range(MAX_STEPS):
        asked, message = sim.observe(step)
        if not asked:
            break
        sim.decide(asked, parse_reply(port.step(message), len(asked)))
    outcomes: list[Outcome] = sim.outcomes()
    return outcomes

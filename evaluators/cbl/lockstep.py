"""Run every scenario of an evaluation in lockstep against a set of policies.

The policies live behind a `PolicyPort`: the sandboxed candidate (one RPC per tick carries
every scenario's observation and brings back every decision) or, for tests and
benchmarks, policy objects in this process driven by the same harness code.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from adrs.evaluators.cbl.simulator import Outcome, PolicyError, Scenario, Simulation

HARNESS_PATH = Path(__file__).with_name("harness.py")


class PolicyPort(Protocol):
    """Where the policies run. `step` returns [decisions, regions], one byte per id."""

    def start(self, configs: list[dict[str, Any]]) -> None: ...

    def step(self, message: dict[str, Any]) -> object: ...


class SandboxPort:
    """The candidate's policies, in its sandbox (the problem's harness is loaded there)."""

    def __init__(self, candidate: Any) -> None:
        self.candidate = candidate

    def start(self, configs: list[dict[str, Any]]) -> None:
        self.candidate.call("harness.start", configs)

    def step(self, message: dict[str, Any]) -> object:
        return self.candidate.call("harness.step", message)


def load_harness(name: str = "_adrs_cbl_harness") -> ModuleType:
    """A private copy of the harness module in this process (its state is per module)."""
    spec = importlib.util.spec_from_file_location(name, HARNESS_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class LocalPort:
    """Policies of an already imported program module, run in this process (trusted code
    only: tests and benchmarks). Same code path as the sandbox, minus the pipe."""

    def __init__(self, program: ModuleType) -> None:
        self.program = program
        self.harness = load_harness(f"_adrs_cbl_harness_{id(self)}")

    def start(self, configs: list[dict[str, Any]]) -> None:
        kinds = getattr(self.program, "ClusterType", None)
        types = tuple(kinds(v) for v in range(3)) if kinds is not None else (0, 1, 2)
        self.harness.create(self.harness.policy_class(self.program), types, configs)

    def step(self, message: dict[str, Any]) -> object:
        return self.harness.step(message)


def load_program(path: Path, name: str | None = None) -> ModuleType:
    """Import a policy program file as a module (trusted programs only)."""
    module_name = name or f"_adrs_cbl_program_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def _as_codes(reply: object, n: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    ok = isinstance(reply, list | tuple) and len(reply) == 2 \
        and all(isinstance(part, bytes) and len(part) == n for part in reply)
    if not ok:
        raise PolicyError(f"the harness replied {type(reply).__name__} instead of two byte "
                          f"strings of length {n}: do not replace harness.step")
    assert isinstance(reply, list | tuple)
    return (np.frombuffer(reply[0], np.uint8).astype(np.int64),
            np.frombuffer(reply[1], np.uint8).astype(np.int64))


def simulate(port: PolicyPort, scenarios: Sequence[Scenario],
             reference_accounting: bool = False) -> tuple[list[Outcome], Simulation]:
    """Simulate every scenario to its end; one port.step per tick."""
    sim = Simulation(scenarios, reference_accounting)
    port.start(sim.configs())
    tick = 0
    while sim.running:
        obs = sim.observe(tick)
        if obs.ids.size:
            requests, regions = _as_codes(port.step(obs.message), obs.ids.size)
            sim.decide(obs, requests, regions)
        tick += 1
    return sim.outcomes(), sim

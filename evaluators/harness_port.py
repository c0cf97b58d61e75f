"""The trusted side's handle on a lockstep harness loaded into a candidate's sandbox.

Lockstep evaluators (cbl, llm-serve) load a harness module next to the candidate's program;
the harness holds one policy object per scenario and answers a whole step of every
scenario in one call. `SandboxPort` is that conversation: `start` hands the harness the
scenarios' configurations, `step` one encoded message and returns the decoded reply.
A candidate's fault raises CandidateFault (adrs/sandbox/candidate.py). `load_module`
imports a trusted program or harness file afresh, for the in-process ports of tests and
benchmarks (never a candidate's code: that runs only in its sandbox).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from adrs.sandbox.candidate import Candidate


class SandboxPort:
    """The candidate's policies, in its sandbox (the harness is loaded there)."""

    def __init__(self, candidate: Candidate) -> None:
        self.candidate = candidate

    def start(self, configs: list[dict[str, Any]]) -> None:
        self.candidate.call("harness.start", configs)

    def step(self, message: bytes) -> object:
        return self.candidate.call("harness.step", message)


def load_module(path: Path, name: str) -> ModuleType:
    """Import the file `path` as a fresh module `name` (trusted files only)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module

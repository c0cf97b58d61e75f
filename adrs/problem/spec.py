"""Problem plug-ins: a folder with problem.yaml, an initial program, a task statement and
a README.

The task statement (`task:` in problem.yaml, TASK.md in the bundled problems) is what every
LLM prompt shows: the contract, the scoring, the constraints, hints. The README is for
users: how to run the problem, its options and data, where it comes from. A problem that
names no `task` file uses its README as the task statement (folders written before the two
were separated keep working, but then everything in the README reaches the LLM).

A problem is named by a path to its folder, by the name of a bundled problem, or by the
name of a problem an installed package registers in the entry-point group `adrs.problems`
(the entry point resolves to the folder's path, or to a callable returning it).
"""

from __future__ import annotations

import importlib.resources
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Literal

from adrs.code.features import FeatureDim
from adrs.code.program import split
from adrs.config.run_config import RunConfig, read_yaml
from adrs.config.schema import build
from adrs.errors import UserError
from adrs.evaluation.cascade import CascadeStage
from adrs.evaluation.runner import EvalJob
from adrs.problem.options import merged_options

ENTRY_POINT_GROUP = "adrs.problems"


@dataclass(frozen=True)
class ProblemSpec:
    """The contents of problem.yaml."""

    name: str
    description: str
    evaluator: str
    initial_program: str = "initial_program.py"
    readme: str = "README.md"  # for users: how to run it, options, data, provenance
    task: str | None = None  # the task statement the LLM sees; None: the README is it
    harness: str | None = None
    cascade: tuple[CascadeStage, ...] = ()  # cheap gates before `evaluator` (cascade.py)
    features: tuple[FeatureDim, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    # the evaluator's switches and their defaults (adrs/problem_options.py)
    options: Mapping[str, Any] = field(default_factory=dict)
    # who computes the score: `trusted` (the evaluator, outside the sandbox) or
    # `self-scored` (an imported peer evaluator that runs inside the sandbox with the
    # candidate, which could forge it; adrs/problem/importer.py)
    trust: Literal["trusted", "self-scored"] = "trusted"

    def __post_init__(self) -> None:
        if ":" not in self.evaluator:
            raise ValueError(f"'evaluator' must look like 'module:function' or "
                             f"'file.py:function', got {self.evaluator!r}")

    @property
    def task_file(self) -> str:
        """The file holding the task statement: `task`, else the README."""
        return self.task if self.task is not None else self.readme


@dataclass(frozen=True)
class Problem:
    """A loaded, validated problem."""

    root: Path
    spec: ProblemSpec
    task: str  # the task statement, as every prompt shows it
    initial_code: str

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def task_path(self) -> Path:
        return self.root / self.spec.task_file

    @property
    def readme_path(self) -> Path:
        """The README for users (it may not exist: only the task statement is required)."""
        return self.root / self.spec.readme

    @property
    def task_is_readme(self) -> bool:
        """Whether the README doubles as the task statement (no separate `task` file)."""
        return self.spec.task_file == self.spec.readme

    @property
    def self_scored(self) -> bool:
        """Whether the score is computed inside the sandbox (see ProblemSpec.trust)."""
        return self.spec.trust == "self-scored"


def bundled_root() -> Path:
    """The folder holding the problems that ship with adrs."""
    return Path(str(importlib.resources.files("adrs.problems")))


def discover() -> dict[str, Path]:
    """Every problem adrs knows by name: bundled ones, then installed plug-ins."""
    found = {p.name: p for p in sorted(bundled_root().iterdir())
             if (p / "problem.yaml").is_file()}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        target = ep.load()
        found.setdefault(ep.name, Path(str(target() if callable(target) else target)))
    return found


def locate(ref: str) -> Path:
    """Turn a problem name or folder path into the folder's path.

    A bare name (no path separator) means a known problem first, so an unrelated folder
    that happens to share the name in the working directory does not shadow it.
    """
    path = Path(ref).expanduser()
    looks_like_path = os.sep in ref or ref.startswith(".")
    if path.is_dir() and (looks_like_path or (path / "problem.yaml").is_file()):
        return path.resolve()
    known = discover()
    if ref in known:
        return known[ref]
    if path.is_dir():
        return path.resolve()
    raise UserError(f"no problem named '{ref}' and no such folder: run 'adrs problems list' "
                    f"(known: {', '.join(sorted(known))})")


def load_problem(ref: str) -> Problem:
    """Load and validate a problem folder; every defect is one clear UserError."""
    root = locate(ref)
    spec = build(ProblemSpec, read_yaml(root / "problem.yaml", "problem file"),
                 str(root / "problem.yaml"))
    initial = _read(root, spec.initial_program, "initial program")
    try:
        split(initial)
    except UserError as exc:
        raise UserError(f"{root / spec.initial_program}: {exc}") from None
    task = _read(root, spec.task_file, "task statement")
    if spec.harness is not None:
        _read(root, spec.harness, "harness module")
    return Problem(root=root, spec=spec, task=task, initial_code=initial)


def _read(root: Path, name: str, what: str) -> str:
    path = root / name
    if not path.is_file():
        raise UserError(f"problem folder '{root}' has no {what} '{name}': create it or fix "
                        "the name in problem.yaml")
    return path.read_text(encoding="utf-8")


def eval_job(problem: Problem, config: RunConfig, source: str) -> EvalJob:
    """The evaluation of `source` on `problem` under `config`: evaluator, harness, cascade
    stages, limits and the merged problem options. Raises UserError for unknown options."""
    spec = problem.spec
    return EvalJob(problem_root=str(problem.root), evaluator=spec.evaluator, source=source,
                   limits=config.evaluation.limits,
                   harness=None if spec.harness is None else str(problem.root / spec.harness),
                   cascade=spec.cascade,
                   options=merged_options(spec.options, config.problem_options, problem.name))

"""Run configuration: defaults <- problem.yaml `defaults` <- config file <- command line.

Every layer is plain data merged key by key; the result is validated once into frozen
dataclasses. Unknown keys, wrong types and missing files are errors, never defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from adrs.config.archive import ArchiveConfig
from adrs.config.llm import ModelConfig, check_llm
from adrs.config.schema import build, merge, to_plain
from adrs.errors import UserError
from adrs.sandbox.candidate import Limits


@dataclass(frozen=True)
class StopConfig:
    """When a run stops launching new candidates (the first condition met wins)."""

    iterations: int = 100
    max_wall_s: float | None = None
    target_score: float | None = None
    patience: int | None = None
    budget_usd: float | None = None

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ValueError("'iterations' must be at least 1")
        if self.patience is not None and self.patience < 1:
            raise ValueError("'patience' must be at least 1 candidate (or null to disable)")


@dataclass(frozen=True)
class LLMConfig:
    """Where proposals come from. `offline` is the built-in mutator that needs no model;
    `litellm` calls `models`; `manual` asks a person through files in the run folder;
    `replay` answers from a file written by `record` (see adrs/llm_setup.py)."""

    mode: Literal["offline", "litellm", "manual", "replay"] = "offline"
    proposals_in_flight: int = 4
    diff_probability: float = 0.6
    crossover_probability: float = 0.1
    repair_attempts: int = 2
    recent_attempts: int = 4
    models: tuple[ModelConfig, ...] = ()
    ensemble: Literal["weighted", "adaptive"] = "weighted"
    timeout_s: float = 120.0
    max_retries: int = 4
    retry_backoff_s: float = 1.0
    record: str | None = None
    replay: str | None = None
    manual_poll_s: float = 0.5

    def __post_init__(self) -> None:
        if self.proposals_in_flight < 1:
            raise ValueError("'proposals_in_flight' must be at least 1")
        if not 0.0 <= self.diff_probability + self.crossover_probability <= 1.0:
            raise ValueError("'diff_probability' + 'crossover_probability' must be in [0, 1]")
        check_llm(self)


@dataclass(frozen=True)
class ReevaluateConfig:
    """Noise-aware selection: how a new best is evaluated again (adrs/engine/reevaluation.py).

    A candidate that would become the run's best is evaluated again, in fresh sandboxes,
    before it is applied; its score becomes the mean of its evaluations. `probe`
    "every_best": each new best is re-evaluated once, and `count` times in all when the
    two scores differ (once any program was found noisy, every later best `count` times
    at once). "first_best": only the first best (the initial program) is probed; if its
    scores agree the evaluator counts as deterministic and later bests are taken at face
    value, which misses programs that are noisy on their own (timing-sized searches).
    `count` 0 turns re-evaluation off.
    """

    count: int = 2
    probe: Literal["every_best", "first_best"] = "every_best"

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError("'count' must be at least 0 (0 turns re-evaluation off)")


@dataclass(frozen=True)
class EvaluationConfig:
    """How candidates are evaluated: backend, parallel workers and sandbox limits.

    `ray` starts an embedded local Ray, or joins the cluster at `ray_address` ("auto" or
    "HOST:PORT"); `local` is a process pool, `thread` threads (cheap evaluators). An
    embedded Ray starts in the background `ray_start_delay_s` after the first evaluation;
    until it is up, candidates run in worker processes forked from the run's process (its
    threads where it cannot fork safely), each in its sandbox.
    """

    backend: Literal["ray", "local", "thread"] = "ray"
    workers: int = 2
    ray_address: str | None = None
    ray_start_delay_s: float = 10.0
    limits: Limits = field(default_factory=Limits)
    reevaluate: ReevaluateConfig = field(default_factory=ReevaluateConfig)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError("'workers' must be at least 1")
        if self.ray_address is not None and self.backend != "ray":
            raise ValueError("'ray_address' needs backend 'ray'")
        if self.ray_start_delay_s < 0:
            raise ValueError("'ray_start_delay_s' must be at least 0")


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs besides the problem. Stored, as resolved, in the run folder."""

    seed: int = 0
    deterministic: bool = True
    stop: StopConfig = field(default_factory=StopConfig)
    archive: ArchiveConfig = field(default_factory=ArchiveConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    # over the problem's `options` defaults; see adrs/problem_options.py
    problem_options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def pipeline_depth(self) -> int:
        """Candidates in flight at once: proposals plus evaluations."""
        return self.llm.proposals_in_flight + self.evaluation.workers


def read_yaml(path: Path, what: str) -> dict[str, Any]:
    """Read a YAML mapping, turning every failure into one clear line."""
    if not path.is_file():
        raise UserError(f"{what} '{path}' does not exist: check the path")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"{what} '{path}' is not valid YAML{where}: fix its syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{what} '{path}' must hold a mapping of keys to values")
    return data


def resolve(layers: list[tuple[str, Mapping[str, Any]]]) -> RunConfig:
    """Merge the layers (lowest priority first) and validate the result.

    Each layer is validated on its own first, so an error names the file it came from.
    """
    merged: dict[str, Any] = {}
    for name, layer in layers:
        build(RunConfig, layer, name)
        merged = merge(merged, layer)
    return build(RunConfig, merged, "configuration")


def dump(config: RunConfig) -> str:
    """The resolved configuration as YAML (what the run folder stores)."""
    return yaml.safe_dump(to_plain(config), sort_keys=False)


def load_resolved(path: Path) -> RunConfig:
    """Load a configuration previously written by `dump`."""
    return build(RunConfig, read_yaml(path, "run configuration"), str(path))

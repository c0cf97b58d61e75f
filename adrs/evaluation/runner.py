"""One evaluation: start the candidate in a sandbox, run the trusted evaluator on it.

`run_job` never raises for a fault of the candidate, nor for an exception of the evaluator
(an evaluator that crashes on a candidate's odd output must not stop a run): both become
invalid results. It raises only for faults of the system or of the problem set-up (an
evaluator or harness that cannot be found, no temporary directory, ...), and passes on a
UserError the evaluator raises (a bad problem option, such as a trace path that does not
exist, is the user's to fix, not the candidate's fault).

The evaluator gets the job's problem options as a second argument, `evaluate(candidate,
options)`, when it takes one; an evaluator of one parameter is called `evaluate(candidate)`.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import math
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from adrs.errors import UserError
from adrs.evaluation.cascade import CascadeStage, gate
from adrs.sandbox import isolation
from adrs.sandbox.candidate import Candidate, CandidateFault, Limits
from adrs.sandbox.standby import STANDBY
from adrs.types import EvalResult, MetricValue

Evaluator = Callable[..., object]  # (candidate) or (candidate, options)

RESULT_KEYS = frozenset({"valid", "score", "metrics", "feedback", "error"})
STDERR_TAIL_CHARS = 2000
TRACEBACK_LINES = 20

_evaluators: dict[tuple[str, str], Evaluator] = {}
_evaluators_lock = threading.Lock()


@dataclass(frozen=True)
class EvalJob:
    """Everything one evaluation needs; plain values, so it can be sent to a worker.

    `evaluator` is "package.module:function" or "file.py:function" (a path relative to
    `problem_root`). `harness` is a Python file (relative to `problem_root` or absolute)
    loaded in the sandbox after the candidate, as module `harness`. `cascade` stages run
    first, each in its own sandbox with the same limits, and may stop the evaluation
    (see cascade.py). `options` are the problem options (plain data), given to the
    evaluator and to every cascade stage that takes a second parameter.
    """

    problem_root: str
    evaluator: str
    source: str
    limits: Limits = field(default_factory=Limits)
    harness: str | None = None
    cascade: tuple[CascadeStage, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)


def run_job(job: EvalJob) -> EvalResult:
    """Evaluate `job.source` with its problem's evaluator; see the module docstring."""
    stages = [(stage, load_evaluator(job.problem_root, stage.evaluator))
              for stage in job.cascade]
    evaluate = load_evaluator(job.problem_root, job.evaluator)
    harness = _harness_path(job)
    started = time.monotonic()
    for number, (stage, stage_evaluate) in enumerate(stages, 1):
        stopped = gate(stage, number, _run_once(stage_evaluate, job, harness))
        if stopped is not None:
            return replace(stopped, duration_s=time.monotonic() - started)
    result = _run_once(evaluate, job, harness)
    return replace(result, duration_s=time.monotonic() - started)


def prepare(job: EvalJob) -> None:
    """Make this process ready to evaluate `job`'s candidates without evaluating one: its
    evaluators loaded, the machine probed, the zygote started and a sandbox launched for
    its limits and harness. A fresh worker (a Ray worker) would otherwise do all of it on
    its first job's critical path. Raises what loading the evaluators raises."""
    for stage in job.cascade:
        load_evaluator(job.problem_root, stage.evaluator)
    load_evaluator(job.problem_root, job.evaluator)
    isolation.warm()
    STANDBY.prepare(job.limits, _harness_path(job))


def _run_once(evaluate: Evaluator, job: EvalJob, harness: str | None) -> EvalResult:
    """One evaluator on the candidate in a fresh sandbox; stderr tail attached.

    A fault of the trusted side while the sandbox is started, read or killed (no
    temporary directory left, a kill that failed, ...) makes this candidate invalid with
    the reason; the run goes on. Its cgroup and working directory are freed after the
    verdict, in the background (adrs/sandbox/sweeper.py).
    """
    candidate = Candidate(job.source, job.limits, harness, release_later=True)
    try:
        with candidate:
            result = _evaluate(evaluate, candidate, job.options)
    except CandidateFault as fault:  # the program did not load
        result = EvalResult.invalid(str(fault))
    except UserError:
        raise
    except Exception as exc:  # the trusted side failed around this candidate
        result = EvalResult.invalid(f"the sandbox failed on the trusted side: "
                                    f"{type(exc).__name__}: {exc}")
    if candidate.cleanup_error is not None:
        result = EvalResult.invalid(f"the sandbox could not be cleaned up after the program "
                                    f"ran ({candidate.cleanup_error}); its result is void",
                                    metrics=result.metrics)
    return replace(result, stderr=result.stderr or candidate.stderr_tail(STDERR_TAIL_CHARS))


def _harness_path(job: EvalJob) -> str | None:
    if job.harness is None:
        return None
    path = Path(job.problem_root) / job.harness
    if not path.is_file():
        raise UserError(f"harness file '{path}' does not exist: check the problem's 'harness'")
    return str(path)


def _evaluate(evaluate: Evaluator, candidate: Candidate,
              options: Mapping[str, Any]) -> EvalResult:
    try:
        raw = evaluate(candidate, dict(options)) if takes_options(evaluate) \
            else evaluate(candidate)
    except CandidateFault as fault:
        return EvalResult.invalid(str(fault))
    except UserError:
        raise  # the user's set-up is wrong (a bad option ...): stop, whatever the candidate
    except Exception as exc:
        if candidate.fault is not None:  # the evaluator failed because the candidate did
            return EvalResult.invalid(str(candidate.fault))
        return _evaluator_error(exc)
    return normalise(raw)


def _evaluator_error(exc: Exception) -> EvalResult:
    """The short form for the LLM; the traceback (trusted files and lines) for the author."""
    lines = "".join(traceback.format_exception(exc)).splitlines()[-TRACEBACK_LINES:]
    return EvalResult.invalid(f"evaluator error: {type(exc).__name__}: {exc}",
                              trace="\n".join(lines))


def takes_options(evaluate: Evaluator) -> bool:
    """Whether `evaluate` accepts a second positional argument (the problem options)."""
    try:
        params = list(inspect.signature(evaluate).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature: the simple form
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in params)


# --------------------------------------------------------------------------- normalising
def normalise(raw: object) -> EvalResult:
    """An evaluator's return value as an EvalResult; a malformed one is an invalid result."""
    if isinstance(raw, EvalResult):
        return raw
    if not isinstance(raw, Mapping):
        return EvalResult.invalid(f"evaluator returned {type(raw).__name__}; expected an "
                                  "EvalResult or a mapping")
    unknown = sorted(str(key) for key in raw if key not in RESULT_KEYS)
    if unknown:
        return EvalResult.invalid(f"evaluator returned unknown keys {unknown}; allowed keys "
                                  f"are {sorted(RESULT_KEYS)}")
    metrics = _metrics(raw.get("metrics") or {})
    if isinstance(metrics, str):
        return EvalResult.invalid(metrics)
    feedback = str(raw.get("feedback") or "")
    error = raw.get("error")
    if not raw.get("valid", True):
        return EvalResult.invalid(str(error or "the evaluator marked the program invalid"),
                                  feedback=feedback, metrics=metrics)
    score = _score(raw.get("score"))
    if isinstance(score, str):
        return EvalResult.invalid(score, feedback=feedback, metrics=metrics)
    return EvalResult(valid=True, score=score, metrics=metrics, feedback=feedback,
                      error=None if error is None else str(error))


def _score(value: object) -> float | str:
    """The score as a finite float, or the error message."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        value = _numpy_item(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"evaluator returned no numeric score (got {type(value).__name__})"
    if not math.isfinite(value):
        return f"evaluator returned a non-finite score ({value})"
    return float(value)


def _metrics(value: object) -> dict[str, MetricValue] | str:
    """Metrics as a dict of plain values, or the error message."""
    if not isinstance(value, Mapping):
        return f"evaluator returned metrics of type {type(value).__name__}; expected a mapping"
    metrics: dict[str, MetricValue] = {}
    for key, item in value.items():
        item = _numpy_item(item)
        if not isinstance(key, str) or not isinstance(item, bool | int | float | str):
            return (f"evaluator returned metric {key!r} of type {type(item).__name__}; "
                    "metrics must be str -> bool, int, float or str")
        metrics[key] = item
    return metrics


def _numpy_item(value: object) -> object:
    """A numpy scalar as the Python number it holds; anything else unchanged."""
    item = getattr(value, "item", None)
    if type(value).__module__ == "numpy" and getattr(value, "shape", None) == () \
            and callable(item):
        return item()
    return value


# ------------------------------------------------------------------------------ loading
def load_evaluator(problem_root: str, ref: str) -> Evaluator:
    """The evaluator function named by `ref`, loaded once per process.

    Raises UserError (one line) if the module, file or function does not exist, or if the
    module fails to import.
    """
    key = (os.path.abspath(problem_root), ref)
    with _evaluators_lock:
        evaluator = _evaluators.get(key)
        if evaluator is None:
            evaluator = _evaluators[key] = _load(*key)
    return evaluator


def _load(problem_root: str, ref: str) -> Evaluator:
    target, _, name = ref.rpartition(":")
    if not target or not name.isidentifier():
        raise UserError(f"evaluator {ref!r} must look like 'package.module:function' or "
                        "'file.py:function'")
    is_file = target.endswith(".py") or "/" in target or os.sep in target
    module = _load_file(problem_root, target) if is_file else _import(target)
    evaluator = getattr(module, name, None)
    if not callable(evaluator):
        raise UserError(f"evaluator {ref!r}: '{target}' has no function {name!r}")
    return evaluator  # type: ignore[no-any-return]


def _import(module_name: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"cannot import evaluator module '{module_name}': {exc}") from None
    except Exception as exc:
        raise UserError(f"evaluator module '{module_name}' failed to import: "
                        f"{type(exc).__name__}: {exc}") from None


def _load_file(problem_root: str, relative: str) -> ModuleType:
    path = Path(problem_root, relative).resolve()
    if not path.is_file():
        raise UserError(f"evaluator file '{path}' does not exist: check the evaluator of "
                        "the problem")
    name = "_adrs_evaluator_" + hashlib.sha256(str(path).encode()).hexdigest()[:16]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"evaluator file '{path}' cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    # Helpers next to the evaluator (a simulator module ...) are importable; appended, so
    # they never shadow installed packages.
    if str(path.parent) not in sys.path:
        sys.path.append(str(path.parent))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise UserError(f"evaluator file '{path}' failed to import: {type(exc).__name__}: "
                        f"{exc}") from None
    return module

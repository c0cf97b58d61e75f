"""Problem authoring: `adrs problems new` (scaffold a working folder) and `adrs problems
check` (validate a folder end to end, evaluating its initial program once; with
`--adversarial`, then run the kit of exploit programs of adrs/problem/adversarial.py).

Every defect `check_problem` finds is one UserError naming the file and the fix; the steps
run in the order a user would repair them (files, YAML, task statement, program, evaluator,
evaluation). An evaluator that raises on the initial program adds its traceback (the
runner keeps it in the result's trace, which no prompt shows) below that line: the author
needs the file and the line, which the one-line error lacks.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adrs.cli import scaffold_templates as tpl
from adrs.code.features import BUILTIN_FEATURES
from adrs.config.run_config import RunConfig
from adrs.errors import UserError
from adrs.evaluation.runner import load_evaluator, run_job
from adrs.problem.adversarial import AdversarialReport, ProbeOutcome, run_kit
from adrs.problem.spec import Problem, eval_job, load_problem, locate
from adrs.run.session import config_layers
from adrs.types import EvalResult

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
# What only users need: the command line, problem options (their names are added per
# problem) and where data lives. A task statement that mentions them wastes prompt space and
# may mislead the model; they belong in the README.
USER_ONLY = (r"--option\b", r"\bproblem_options\b",
             r"\badrs (?:run|eval|resume|show|best|runs|problems|doctor|dashboard)\b",
             r"/path/to\b", r"\.\./shared\b")
EVALUATOR_ERROR = "evaluator error: "  # how the runner reports an evaluator that raised


@dataclass(frozen=True)
class CheckReport:
    """What `check_problem` verified, in order, and the initial program's result."""

    problem: Problem
    steps: tuple[str, ...]
    result: EvalResult


def scaffold(name: str, parent: Path) -> Path:
    """Write a working problem folder `parent/name` and return its path.

    Refuses a bad name or an existing non-empty folder (UserError), so nothing is overwritten.
    """
    if not NAME_PATTERN.match(name):
        raise UserError(f"problem name {name!r} is not valid: use lowercase letters, digits, "
                        "'-' and '_', starting with a letter (for example 'batch_flush')")
    root = parent / name
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise UserError(f"'{root}' already exists: choose another name or --dir")
    root.mkdir(parents=True, exist_ok=True)
    values = {"name": name, "title": name.replace("_", " ").replace("-", " ").capitalize(),
              **tpl.PARAMETERS}
    files = {"problem.yaml": tpl.PROBLEM_YAML, "TASK.md": tpl.TASK, "README.md": tpl.README,
             "initial_program.py": tpl.INITIAL_PROGRAM, "evaluator.py": tpl.EVALUATOR}
    for filename, template in files.items():
        (root / filename).write_text(template.format(**values), encoding="utf-8")
    return root


def check_problem(ref: str, options: Mapping[str, Any] | None = None) -> CheckReport:
    """Validate the problem folder (or name) `ref` and score its initial program once,
    with the problem options `options` over the problem's defaults."""
    return _check(ref, options)[0]


def check_adversarial(ref: str, options: Mapping[str, Any] | None = None,
                      progress: Callable[[ProbeOutcome], None] | None = None,
                      checked: Callable[[CheckReport], None] | None = None
                      ) -> tuple[CheckReport, AdversarialReport]:
    """`check_problem`, then every probe of the adversarial kit against the problem (the
    check's evaluation of the initial program is the first baseline). `checked` sees the
    check's report before the probes start, `progress` each probe's outcome as it comes."""
    report, config = _check(ref, options)
    if checked is not None:
        checked(report)
    job = eval_job(report.problem, config, report.problem.initial_code)
    return report, run_kit(report.problem, job, first=report.result, progress=progress)


def _check(ref: str, options: Mapping[str, Any] | None) -> tuple[CheckReport, RunConfig]:
    root = locate(ref)
    if not (root / "problem.yaml").is_file():
        raise UserError(f"'{root}' has no problem.yaml: create one (see "
                        "docs/writing-a-problem.md) or scaffold with 'adrs problems new'")
    problem = load_problem(str(root))
    steps = [f"problem.yaml: name '{problem.name}', evaluator '{problem.spec.evaluator}'",
             _check_task(problem)]
    _check_syntax(problem)
    steps.append(f"{problem.spec.initial_program}: parses, has evolve blocks")
    config = config_layers(problem, None, {"problem_options": dict(options or {})})
    steps.append("features and defaults: valid run configuration")
    load_evaluator(str(problem.root), problem.spec.evaluator)
    steps.append(f"evaluator '{problem.spec.evaluator}': importable and callable")
    result = run_job(eval_job(problem, config, problem.initial_code))
    if not result.valid:
        raise UserError(_rejection(problem, result))
    steps.append(f"initial program: valid, score {result.score:.6g} "
                 f"in {result.duration_s:.2f} s")
    _check_feature_metrics(problem, result)
    return CheckReport(problem=problem, steps=tuple(steps), result=result), config


def user_only_mentions(text: str, options: Mapping[str, Any] | None = None
                       ) -> list[tuple[int, str]]:
    """(line number, text) of each mention in a task statement of what only users need:
    adrs commands, `--option`, a problem option set by name (`trace_dir=`), a data path."""
    patterns = [*USER_ONLY, *(rf"\b{re.escape(key)}=" for key in options or {})]
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for pattern in patterns:
            match = re.search(pattern, line)
            if match:
                found.append((number, match.group(0)))
    return found


def _check_task(problem: Problem) -> str:
    """The task statement is not empty and holds only what the model needs; the README."""
    spec, task_path = problem.spec, problem.task_path
    if not problem.task.strip():
        raise UserError(f"{task_path}: the task statement is empty: describe the contract, "
                        "the scoring and the constraints the model must respect")
    mentions = user_only_mentions(problem.task, spec.options)
    if mentions:
        line, text = mentions[0]
        where = (f"keep it in {spec.readme} for users and put the task statement in "
                 "TASK.md ('task: TASK.md' in problem.yaml)" if problem.task_is_readme
                 else f"move it to {spec.readme}")
        raise UserError(f"{task_path}, line {line}: the task statement mentions '{text}', "
                        f"which only users need (every LLM prompt shows this file): {where}")
    if problem.task_is_readme:
        return (f"{spec.task_file}: the task statement, and also the user documentation "
                f"(all of it reaches the LLM: 'task: TASK.md' in problem.yaml separates them)")
    if not problem.readme_path.is_file():
        raise UserError(f"problem folder '{problem.root}' has no README '{spec.readme}' for "
                        "users: write one (how to run the problem, its options and data) or "
                        "fix 'readme' in problem.yaml")
    return f"{spec.task_file}: the task statement the LLM sees; {spec.readme}: for users"


def _rejection(problem: Problem, result: EvalResult) -> str:
    """Why the initial program is invalid; with the traceback when the evaluator raised."""
    error = result.error or ""
    if EVALUATOR_ERROR in error and result.trace.strip():
        raised = error.replace(EVALUATOR_ERROR, "", 1)
        return (f"the evaluator '{problem.spec.evaluator}' raised on the initial program "
                f"({raised}): fix the evaluator; its traceback:\n{result.trace.rstrip()}")
    return (f"{problem.root / problem.spec.initial_program}: the evaluator rejects the initial "
            f"program ({error}): fix the program or the evaluator")


def _check_syntax(problem: Problem) -> None:
    path = problem.root / problem.spec.initial_program
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(problem.initial_code, filename=str(path))
    except SyntaxError as exc:
        raise UserError(f"{path}, line {exc.lineno}: {exc.msg}: fix the initial program's "
                        "syntax") from None


def _check_feature_metrics(problem: Problem, result: EvalResult) -> None:
    """A feature named after a metric the evaluator never returns would bin everything at 0."""
    for dim in problem.spec.features:
        if dim.name in BUILTIN_FEATURES or dim.name in result.metrics:
            continue
        known = ", ".join(sorted([*BUILTIN_FEATURES, *result.metrics]))
        raise UserError(f"{problem.root / 'problem.yaml'}: feature '{dim.name}' is neither a "
                        f"built-in feature nor a metric of the evaluator (available: {known})")

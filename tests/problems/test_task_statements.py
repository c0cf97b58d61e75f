"""Every bundled problem separates the task statement (what the LLM sees) from its README
(what users need: flags, options, data, provenance)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from adrs.cli.authoring import user_only_mentions
from adrs.evaluation.runner import run_job
from adrs.evaluators.cbl.evaluate import run_multi, run_single
from adrs.evaluators.cbl.lockstep import LocalPrograms
from adrs.evaluators.txn.evaluator import evaluate_workloads
from adrs.evaluators.txn.workloads import generate_workloads
from adrs.problem.spec import bundled_root, eval_job, load_problem
from adrs.run.session import config_layers
from adrs.sandbox.candidate import Candidate, Limits

BUNDLED = sorted(p.name for p in bundled_root().iterdir() if (p / "problem.yaml").is_file())
# Where data lives, which only a user can act on.
DATA_PATHS = (r"/path/to\b", r"\bshared/data\b", r"\.tar\.gz\b", r"\b\w+\.(?:csv|json)\b",
              r"\bbenchmarks/", r"\breal_traces\b")


def test_every_bundled_problem_is_checked() -> None:
    assert {"toy", "eplb", "cbl", "cbl-multi", "llm-sql", "txn", "llm-serve"} <= set(BUNDLED)


@pytest.mark.parametrize("name", BUNDLED)
def test_the_task_statement_holds_only_what_the_model_needs(name: str) -> None:
    problem = load_problem(name)
    assert problem.spec.task == "TASK.md" and problem.task.strip()
    task = problem.task
    assert "--option" not in task and "adrs run" not in task
    assert user_only_mentions(task, problem.spec.options) == []
    for pattern in DATA_PATHS:
        assert not re.search(pattern, task), (name, pattern)
    # An option's name (trace_dir, data_dir) is for users; a plain word (trace) may appear.
    assert not [option for option in problem.spec.options if "_" in option and option in task]


@pytest.mark.parametrize("name", BUNDLED)
def test_the_readme_documents_the_options_for_users(name: str) -> None:
    problem = load_problem(name)
    readme = problem.readme_path.read_text(encoding="utf-8")
    assert f"adrs run {name}" in readme or f"adrs problems check {name}" in readme
    for option in problem.spec.options:
        assert f"--option {option}=" in readme, (name, option)
    assert readme.strip() != problem.task.strip()


# The problems whose statements define their limits and metrics (issue 16).
EXPLAINED = ("cbl", "cbl-multi", "txn", "eplb", "llm-sql", "llm-serve")


@pytest.mark.parametrize("name", EXPLAINED)
def test_the_task_statement_states_the_evaluations_time_limit(name: str) -> None:
    problem = load_problem(name)
    timeout = problem.spec.defaults["evaluation"]["limits"]["timeout_s"]
    assert f"must finish within {timeout:g} s" in problem.task \
        or f"the whole evaluation after {timeout:g} s" in problem.task


def family(key: str) -> str:
    """A metric's name without its subject: `room[W1]` -> `room`, `gpu_w03` -> `gpu_wNN`."""
    return re.sub(r"_w\d\d$", "_wNN", key.split("[")[0])


def _cbl(name: str) -> Callable[[], dict[str, Any]]:
    program = LocalPrograms(load_problem(name).root / "initial_program.py")
    if name == "cbl":
        return lambda: run_single(program, None)
    return lambda: run_multi(program, None, reference=False)


def _txn() -> dict[str, Any]:
    problem = load_problem("txn")
    assert problem.spec.harness is not None
    with Candidate(problem.initial_code, Limits(timeout_s=30),
                   harness=str(problem.root / problem.spec.harness)) as candidate:
        result: dict[str, Any] = evaluate_workloads(candidate, generate_workloads(0))
    return result


@pytest.mark.parametrize(("name", "evaluate"), [
    ("cbl", _cbl("cbl")), ("cbl-multi", _cbl("cbl-multi")), ("txn", _txn)])
def test_the_task_statement_defines_every_metric(
        name: str, evaluate: Callable[[], dict[str, Any]]) -> None:
    task = load_problem(name).task
    named = set(re.findall(r"`(\w+)[`\[]", task)) | {"avg_cost_T70h", "avg_cost_T92h"}
    assert sorted({family(k) for k in evaluate()["metrics"]} - named) == []


def _sandboxed(name: str) -> Callable[[], dict[str, Any]]:
    """The initial program's metrics through the sandbox, as `adrs eval` gets them."""
    def evaluate() -> dict[str, Any]:
        problem = load_problem(name)
        config = config_layers(problem, None, {})
        result = run_job(eval_job(problem, config, problem.initial_code))
        assert result.valid, result.error
        return dict(result.metrics)
    return evaluate


def named_in(task: str) -> Callable[[str], bool]:
    """Whether a metric key is named in backticks: itself, its family (`room` for
    `room[W1]`), or a placeholder form such as `hit_rate_<table>` for `hit_rate_beer`."""
    names = set(re.findall(r"`(\w+)[`\[]", task))
    stems = set(re.findall(r"`(\w+?)_<\w+>`", task))
    return lambda key: family(key) in names or any(key.startswith(f"{s}_") for s in stems)


@pytest.mark.parametrize("name", ["llm-sql", "llm-serve"])
def test_the_task_statement_names_every_metric_reported_in_the_sandbox(name: str) -> None:
    named = named_in(load_problem(name).task)
    assert sorted(k for k in _sandboxed(name)() if not named(k)) == []

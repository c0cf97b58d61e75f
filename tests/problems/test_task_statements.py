"""Every bundled problem separates the task statement (what the LLM sees) from its README
(what users need: flags, options, data, provenance)."""

from __future__ import annotations

import re

import pytest

from adrs.cli.authoring import user_only_mentions
from adrs.problem.spec import bundled_root, load_problem

BUNDLED = sorted(p.name for p in bundled_root().iterdir() if (p / "problem.yaml").is_file())
# Where data lives, which only a user can act on.
DATA_PATHS = (r"/path/to\b", r"\bshared/data\b", r"\.tar\.gz\b", r"\b\w+\.(?:csv|json)\b",
              r"\bbenchmarks/", r"\breal_traces\b")


def test_every_bundled_problem_is_checked() -> None:
    assert {"toy", "eplb", "cbl", "cbl-multi", "llm-sql", "txn"} <= set(BUNDLED)


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

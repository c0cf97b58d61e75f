"""The parts of a compact prompt: metric tables and lines (prompt_metrics), definitions shown
once and an attempt's changed definitions (prompt_code); and the size of a cbl prompt."""

from __future__ import annotations

import random
from pathlib import Path

from adrs.engine.mutator import ProposalContext
from adrs.engine.prompt_code import changes, condense, definitions
from adrs.engine.prompt_metrics import number, split, table, versus
from adrs.engine.prompts import PromptRenderer
from adrs.types import EvalResult, MetricValue, Program

ROOT = Path(__file__).resolve().parents[2]
FAMILIES = ("cost", "idle_h", "od_h", "preemptions", "restarts", "room", "spot_h")
SCENARIOS = tuple(f"us-west-2{zone}_{gpu}_1 T={t}h d={d}h" for zone in "ab"
                  for gpu in ("k80", "v100") for t in (52, 70, 92) for d in (0.02, 0.2, 0.4))


def cbl_metrics(shift: float) -> dict[str, MetricValue]:
    """Metrics shaped like the cbl evaluator's: 36 scenarios x 7 families and scalars."""
    rng = random.Random(7)
    metrics: dict[str, MetricValue] = {"avg_cost": 94.58 + shift, "cost_std": 40.47,
                                       "lb_score": 52.3, "runs": 1080}
    for scenario in SCENARIOS:
        for family in FAMILIES:
            value = rng.uniform(0, 140)
            metrics[f"{family}[{scenario}]"] = round(value + (shift if family == "cost"
                                                              and "v100" in scenario else 0), 2)
    return metrics


def test_split_separates_scalars_from_the_scenario_grid() -> None:
    parts = split({"b": 1, "cost[x y]": 2.0, "a": "z", "room[x y]": 3.0, "cost[w v]": 4.0})
    assert parts.scalars == {"a": "z", "b": 1}
    assert parts.families == ("cost", "room") and parts.scenarios == ("w v", "x y")
    assert parts.grid[("x y", "room")] == 3.0


def test_numbers_are_short_and_never_in_exponent_form_for_large_values() -> None:
    assert [number(v) for v in (46325.922, 1.23456, 0.000012345, 3, True, None)] == [
        "46326", "1.235", "1.234e-05", "3", "True", "-"]


def test_the_table_has_a_row_per_scenario_and_the_best_program_beside() -> None:
    text = table(cbl_metrics(0.0), cbl_metrics(-5.0), "Program 2 (#9)")
    lines = text.split("\n")
    assert lines[0].startswith("Metrics (best: Program 2 (#9)): avg_cost=94.58 (best 89.58), "
                               "cost_std=40.47, lb_score=52.3, runs=1080")
    assert lines[1] == "Per scenario (36):"
    assert lines[2].split() == ["scenario", "cost", "best_cost", *FAMILIES[1:]]
    assert lines[3] == "us-west-2a_k80_1:"  # rows grouped by the scenario's first word
    assert sum(1 for line in lines if line.startswith("T=")) == 36
    assert table({}, None, "") == ""
    assert "best" not in table(cbl_metrics(0.0), None, "")


def test_versus_is_one_line_with_counts_and_the_largest_changes() -> None:
    line = versus(cbl_metrics(-5.0), cbl_metrics(0.0))
    assert "\n" not in line and len(line) < 400
    assert line.startswith("vs the current program: avg_cost 89.58 (-5)")
    assert "scenarios lower/higher of 36: cost 18/0" in line
    examples = line.split("largest cost changes: ")[1].split(", ")
    assert len(examples) == 3 and all("v100" in e and e.endswith(" -5") for e in examples)
    assert versus(cbl_metrics(0.0), cbl_metrics(0.0)) == ""


CODE = '''import math

LIMIT = 3


def helper(x):
    return x + 1


class Policy:
    """Doc."""

    NAME = "p"

    def step(self, x):
        return helper(x) * LIMIT
'''


def test_definitions_cut_classes_into_members() -> None:
    found = definitions(CODE)
    assert found is not None
    assert [d.key for d in found][1:] == ["LIMIT", "helper", "class Policy", "Policy.NAME",
                                          "Policy.step"]
    assert definitions("def broken(:\n") is None


def test_condense_shows_each_definition_once() -> None:
    shown: dict[str, str] = {}
    condense(CODE, shown, "the current program")
    other = CODE.replace("return x + 1", "return x + 2")
    text = condense(other, shown, "Program 1")
    assert "def helper(x):\n    return x + 2" in text
    assert "# LIMIT: as in the current program" in text
    assert "    # step: as in the current program" in text and "class Policy:" in text
    third = condense(other, shown, "Program 2")
    assert "# helper: as in Program 1" in third
    assert condense("def broken(:\n", shown, "x") == "def broken(:\n"


def test_changes_give_whole_definitions_and_removed_names() -> None:
    attempt = CODE.replace("LIMIT = 3", "LIMIT = 4").replace(
        "def helper(x):\n    return x + 1\n", "")
    found = changes(CODE, attempt)
    assert found is not None
    assert [d.key for d in found.changed] == ["LIMIT"] and found.removed == ("helper",)
    assert changes(CODE, "def broken(:\n") is None


def test_a_cbl_shaped_prompt_stays_within_the_budget() -> None:
    """The real cbl task and program, cbl-shaped metrics, five inspirations and four
    attempts: the prompt fits 15,000 characters and keeps the current program whole."""
    initial = (ROOT / "problems" / "cbl" / "initial_program.py").read_text()
    task = (ROOT / "problems" / "cbl" / "TASK.md").read_text()

    def program(pid: int, shift: float, constant: str) -> Program:
        code = initial.replace("2 * self.restart_overhead", constant)
        return Program(id=pid, code=code, parent_ids=(0,), edit_kind="diff",
                       result=EvalResult(valid=True, score=-104.6 - shift,
                                         metrics=cbl_metrics(shift), feedback="Mean cost."))

    parent = program(10, 0.0, "2 * self.restart_overhead")
    others = tuple(program(20 + i, i - 2.5, f"{i + 3} * self.restart_overhead")
                   for i in range(9))
    ctx = ProposalContext(parent=parent, inspirations=others[:5], mate=None, island=0,
                          rng=random.Random(0), task=task, attempts=others[5:])
    prompt = PromptRenderer().render("diff", ctx)
    size = len(prompt.system) + len(prompt.user)
    print(f"cbl-shaped prompt: {size} characters")
    assert size <= 15_000
    assert parent.code.strip() in prompt.user and task.strip() in prompt.user
    assert "### Program 1: top program (#20" in prompt.user  # the best inspiration first


def test_measured_times_come_last_in_a_versus_line() -> None:
    """A runtime that changed five-fold still follows a makespan that changed by 1%: times
    differ on every evaluation and would otherwise lead (and reorder) the line."""
    line = versus({"runtime_s": 0.5, "makespan": 420, "same": 3},
                  {"runtime_s": 0.1, "makespan": 415, "same": 3})
    assert line == "vs the current program: makespan 420 (+5); runtime_s 0.5 (+0.4)"

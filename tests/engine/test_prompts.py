"""Tests of adrs.prompts: golden prompts for the toy problem, optional parts and bounds.

The golden files in tests/golden/ hold the exact prompts rendered for a fixed context. After a
deliberate change to the templates or the renderer, rewrite them with

    ADRS_UPDATE_GOLDEN=1 PYTHONPATH=. pytest tests/test_prompts.py

and read the diff of tests/golden/ before committing it.
"""

from __future__ import annotations

import os
import random
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from adrs.code.program import evolve_blocks
from adrs.engine.mutator import ProposalContext
from adrs.engine.prompts import (
    KINDS,
    PromptKind,
    PromptRenderer,
    PromptTemplateError,
    RenderedPrompt,
    default_template_dir,
)
from adrs.types import EvalResult, Program

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parents[1] / "golden"
TOY = ROOT / "problems" / "toy"
INITIAL = (TOY / "initial_program.py").read_text()
UPDATE = os.environ.get("ADRS_UPDATE_GOLDEN") == "1"


def with_block(block: str) -> str:
    """The toy program with its evolve block replaced."""
    return INITIAL.replace(evolve_blocks(INITIAL)[0], block.lstrip("\n"))


def toy_result(score: float, cost: float, violations: float, worst: float) -> EvalResult:
    return EvalResult(valid=True, score=score, metrics={
        "cost": cost, "oracle_cost": 22056.692, "violation_rate": violations},
        feedback=f"Most expensive series: #1 (cost {worst}); SLO violated on "
                 f"{violations:.0%} of ticks.")


PEAK = with_block('''
WINDOW = 4


def provision(history: list[float]) -> float:
    """Provision for the peak of the last few ticks."""
    if not history:
        return 10.0
    return max(history[-WINDOW:])
''')

EWMA = with_block('''
ALPHA = 0.1
SPREAD = 0.5


def provision(history: list[float]) -> float:
    """Exponentially weighted mean plus a multiple of the mean absolute deviation."""
    if not history:
        return 10.0
    mean = history[0]
    deviation = 0.0
    for load in history[1:]:
        deviation = (1 - ALPHA) * deviation + ALPHA * abs(load - mean)
        mean = (1 - ALPHA) * mean + ALPHA * load
    return mean + SPREAD * deviation
''')

TRACEBACK = '''Traceback (most recent call last):
  File "<candidate>", line 14, in provision
    level = sum(recent) / len(recent)
ZeroDivisionError: division by zero'''


def golden_context() -> ProposalContext:
    """The initial toy program with two inspirations, a mate and two attempts (newest first:
    one that failed, one that improved)."""
    parent = Program(id=0, code=INITIAL, result=toy_result(47.61198708576161, 46325.922, 0.53,
                                                           18038.8))
    top = Program(id=8, code=INITIAL.replace("HEADROOM = 1.0\nMARGIN = 0.0",
                                             "HEADROOM = 1.25\nMARGIN = 4.0"),
                  result=toy_result(57.862963703580434, 38118.842, 0.15333333333333332,
                                    15235.3), parent_ids=(0,), edit_kind="diff")
    diverse = Program(id=5, code=EWMA, result=toy_result(47.07848415087522, 46850.897,
                                                         0.3233333333333333, 17430.0),
                      parent_ids=(0,), edit_kind="rewrite")
    mate = Program(id=6, code=PEAK, result=toy_result(55.27526536795754, 39903.367,
                                                      0.2633333333333333, 15644.9), island=1,
                   parent_ids=(0,), edit_kind="rewrite")
    failed = Program(id=12, code=INITIAL.replace("history[-WINDOW:]", "history[-WINDOW:-1]"),
                     result=EvalResult.invalid("provision raised ZeroDivisionError: division "
                                               "by zero", stderr=TRACEBACK),
                     parent_ids=(0,), edit_kind="diff")
    improved = Program(id=9, code=INITIAL.replace("HEADROOM = 1.0", "HEADROOM = 1.1"),
                       result=toy_result(53.0647361627155, 41565.63, 0.38, 16372.7),
                       parent_ids=(0,), edit_kind="diff")
    return ProposalContext(parent=parent, inspirations=(top, diverse), mate=mate, island=0,
                           rng=random.Random(0), task=(TOY / "TASK.md").read_text(),
                           attempts=(failed, improved))


def as_text(prompt: RenderedPrompt) -> str:
    return f"===== system =====\n{prompt.system}\n===== user =====\n{prompt.user}\n"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"{path} is missing: run with ADRS_UPDATE_GOLDEN=1 to create it"
    assert all(line == line.rstrip() for line in text.split("\n")), "trailing blanks"
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("kind", KINDS)
def test_prompts_match_the_golden_files(kind: PromptKind) -> None:
    check_golden(f"prompt_{kind}.txt", as_text(PromptRenderer().render(kind, golden_context())))


def test_repair_prompt_matches_the_golden_file() -> None:
    error = ("the SEARCH text was not found in the EVOLVE-BLOCK regions:\n"
             "    return level * HEADROOM\n"
             "Copy the SEARCH lines exactly from the current program.")
    check_golden("prompt_repair.txt", PromptRenderer().render_repair(error) + "\n")


def test_the_prompt_shows_what_the_llm_needs() -> None:
    ctx = golden_context()
    user = PromptRenderer().render("diff", ctx).user
    assert ctx.task.strip() in user and ctx.parent.code.strip() in user
    assert "## Current program (score 47.612)" in user
    assert ("Metrics (best: Program 1 (#8)): cost=46326 (best 38119), oracle_cost=22057, "
            "violation_rate=0.53 (best 0.1533)") in user
    assert "### Program 1: top program (#8, score 57.863)" in user
    assert "### Program 2: diverse program (#5, score 47.0785)" in user
    assert "vs the current program: violation_rate 0.1533 (-0.3767); cost 38119 (-8207)" \
        in user
    assert "### Attempt 1 (#12, diff): failed" in user and "ZeroDivisionError" in user
    assert "### Attempt 2 (#9, diff): score 53.0647 (+5.453 vs the current program)" in user
    assert "changed (the rest as in the current program):\n```python\nHEADROOM = 1.1\n```" \
        in user
    assert "<<<<<<< SEARCH" in user and "```python\n# EVOLVE-BLOCK-START" not in user
    # The answer format is stated at the top too, before the task.
    assert user.index("SEARCH/REPLACE blocks") < user.index("## Task")
    # Shared code appears once: Program 1 only changed constants; EWMA has its own provision.
    assert "# provision: as in the current program" in user
    assert "# WINDOW: as in the current program" in user and "ALPHA = 0.1" in user


def test_each_kind_asks_for_its_own_answer_format() -> None:
    renderer, ctx = PromptRenderer(), golden_context()
    diff, rewrite, crossover = (renderer.render(kind, ctx).user for kind in KINDS)
    assert ">>>>>>> REPLACE" in diff and ">>>>>>> REPLACE" not in rewrite
    assert "complete new program" in rewrite and "complete new program" in crossover
    assert "## Parent B (score 55.2753)" in crossover and "max(history[-WINDOW:])" in crossover
    assert "max(history[-WINDOW:])" not in diff


def bare_context(**changes: Any) -> ProposalContext:
    parent = Program(id=0, code=INITIAL, result=EvalResult(valid=True, score=47.6))
    values: dict[str, Any] = {"parent": parent, "inspirations": (), "mate": None, "island": 0,
                              "rng": random.Random(0), "task": "Make it fast.", "attempts": ()}
    return ProposalContext(**(values | changes))


def test_empty_optional_parts_leave_no_heading_and_no_gap() -> None:
    user = PromptRenderer().render("diff", bare_context()).user
    assert "## Current program (score 47.6)\n\n```python\n" in user
    assert "# EVOLVE-BLOCK-END\n```\n\n## What to do\n" in user
    assert "Other programs" not in user and "Recent attempts" not in user
    assert "Metrics" not in user and "feedback:" not in user


def test_code_with_braces_and_dollars_is_inserted_verbatim() -> None:
    code = INITIAL.replace("MARGIN = 0.0", 'MARGIN = 0.0\nNAMES = {"a": "${task} $x {0}"}')
    parent = Program(id=0, code=code, result=EvalResult(valid=True, score=1.0))
    user = PromptRenderer().render("rewrite", bare_context(parent=parent)).user
    assert 'NAMES = {"a": "${task} $x {0}"}' in user


def test_metrics_are_sorted_and_compact() -> None:
    result = EvalResult(valid=True, score=2.0, metrics={"zeta": 1.23456789, "alpha": 3,
                                                        "mode": "lru", "ok": True})
    parent = Program(id=0, code=INITIAL, result=result)
    user = PromptRenderer().render("diff", bare_context(parent=parent)).user
    assert "Metrics: alpha=3, mode=lru, ok=True, zeta=1.235\n" in user


def test_long_evaluator_texts_keep_their_tail_and_the_prompt_stays_bounded() -> None:
    stderr = "".join(f"noise line {n}\n" for n in range(20000)) + "THE LAST WORDS"
    result = EvalResult.invalid("boom", stderr=stderr, feedback="x" * 50000)
    parent = Program(id=0, code=INITIAL, result=result)
    user = PromptRenderer(max_text_chars=1000).render("diff", bare_context(parent=parent)).user
    assert "THE LAST WORDS" in user and "noise line 0\n" not in user
    assert "earlier characters omitted" in user
    assert "## Current program (score invalid)" in user
    assert len(user) < len(PromptRenderer().render("diff", bare_context()).user) + 2500


def test_attempts_are_capped_and_a_failed_proposal_without_code_shows_no_code() -> None:
    failed = Program(id=3, code="", result=EvalResult.invalid("no applicable edit"))
    attempts = tuple(Program(id=i, code=INITIAL.replace("1.0", f"1.{i}"),
                             result=EvalResult(valid=True, score=40.0 + i)) for i in range(1, 9))
    user = PromptRenderer(max_attempts=3).render(
        "diff", bare_context(attempts=(failed, *attempts))).user
    assert user.count("### Attempt ") == 3
    assert "### Attempt 1 (#3, initial): failed\n\nError: no applicable edit\n\n### Attempt 2" \
        in user
    assert "### Attempt 2 (#1, initial): score 41 (-6.6 vs the current program)" in user


def test_an_attempt_shows_every_changed_definition_whole_never_a_cut_diff() -> None:
    long_body = "".join(f"    x{n} = {n}\n" for n in range(150))
    parent_code = INITIAL.replace("MARGIN = 0.0\n", "MARGIN = 0.0\n\n\ndef helper():\n"
                                  + long_body + "    return 0\n")
    attempt = Program(id=1, code=parent_code.replace("x149 = 149", "x149 = -1").replace(
        "WINDOW = 1", "WINDOW = 2"), result=EvalResult(valid=True, score=1.0))
    parent = Program(id=0, code=parent_code, result=EvalResult(valid=True, score=47.6))
    user = PromptRenderer().render("diff", bare_context(parent=parent,
                                                        attempts=(attempt,))).user
    assert "more diff lines" not in user
    section = user[user.index("### Attempt 1"):]
    assert "WINDOW = 2" in section and "    x0 = 0\n" in section and "x149 = -1" in section
    assert "def provision" not in section  # unchanged: not repeated


def test_each_program_appears_once_and_a_dominated_initial_program_not_at_all() -> None:
    ctx = golden_context()
    initial = Program(id=0, code=INITIAL, result=ctx.parent.result)  # edit kind "initial"
    parent = ctx.inspirations[0]  # the current program is #8 now
    listed_attempt = Program(id=5, code=EWMA, result=ctx.inspirations[1].result,
                             parent_ids=(8,), edit_kind="rewrite")
    user = PromptRenderer().render("diff", replace(
        ctx, parent=parent, inspirations=(parent, initial, ctx.inspirations[1],
                                          ctx.inspirations[1]),
        attempts=(listed_attempt,))).user
    assert user.count("### Program ") == 1 and "### Program 1: diverse program (#5" in user
    assert user.count("ALPHA = 0.1") == 1
    assert "### Attempt 1 (#5, rewrite)" in user and "The same program as Program 1 above." \
        in user


def test_the_prompt_budget_leaves_out_whole_items_and_says_so() -> None:
    ctx = golden_context()
    full = PromptRenderer().render("diff", ctx)
    assert "Left out" not in full.user
    size = len(full.system) + len(full.user)
    tight = PromptRenderer(max_chars=size - 300).render("diff", ctx)
    assert len(tight.system) + len(tight.user) <= size - 300
    assert "Left out to keep this message short" in tight.user
    assert "### Program 1: top program (#8" in tight.user  # the best one is kept first
    assert tight.user.count("### ") < full.user.count("### ")
    # The core, and the best program when it beats the current one, are never left out;
    # every other item keeps one line: what it was and how it fared.
    bare = PromptRenderer(max_chars=10).render("diff", ctx).user
    assert ctx.parent.code.strip() in bare and ctx.task.strip() in bare
    assert "### Program 1: top program (#8" in bare and bare.count("### ") == 1
    lines = bare.split("Left out to keep this message short")[1].split("\n\n")[0]
    listed = [line for line in lines.splitlines() if line.startswith("- ")]
    shown = full.user.count("### Program") + full.user.count("### Attempt") - 1
    assert len(listed) == shown
    assert all(len(line) < 300 for line in listed)


def test_repair_prompt_carries_the_error_tail() -> None:
    message = PromptRenderer(max_text_chars=200).render_repair("start " + "y" * 5000 + " end")
    assert message.startswith("Your previous answer could not be applied")
    assert "y end" in message and "start" not in message and len(message) < 800


def test_crossover_needs_a_mate_and_kinds_are_checked() -> None:
    renderer = PromptRenderer()
    with pytest.raises(ValueError, match="mate"):
        renderer.render("crossover", bare_context())
    with pytest.raises(ValueError, match="unknown prompt kind 'patch'"):
        renderer.render("patch", bare_context())  # type: ignore[arg-type]


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    shutil.copytree(default_template_dir(), tmp_path / "prompts")
    return tmp_path / "prompts"


def test_a_placeholder_without_a_value_is_a_clear_error(templates: Path) -> None:
    (templates / "diff.txt").write_text("Task: ${task}\n${budget}\n")
    with pytest.raises(PromptTemplateError, match=r"diff\.txt uses \$\{budget\}"):
        PromptRenderer(templates).render("diff", bare_context())
    assert PromptRenderer(templates).render("rewrite", bare_context()).user


def test_a_missing_or_malformed_template_is_a_clear_error(templates: Path) -> None:
    (templates / "system.txt").unlink()
    with pytest.raises(PromptTemplateError, match=r"system\.txt cannot be read"):
        PromptRenderer(templates).render("diff", bare_context())
    (templates / "repair.txt").write_text("Costs $5: ${error}\n")
    with pytest.raises(PromptTemplateError, match=r"write '\$\$'"):
        PromptRenderer(templates).render_repair("boom")


def test_a_custom_template_folder_is_used(templates: Path) -> None:
    (templates / "repair.txt").write_text("Again, please: ${error} (costs $$0)\n")
    assert PromptRenderer(templates).render_repair("bad") == "Again, please: bad (costs $0)"

"""Tests of adrs.engine.mutator: the offline mutator's contract; it really climbs the toy."""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import random
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from adrs.code.program import evolve_blocks, split
from adrs.engine.mutator import Mutator, OfflineMutator, Proposal, ProposalContext
from adrs.errors import EditError
from adrs.types import EvalResult, LLMUsage, Program

ROOT = Path(__file__).resolve().parents[2]
TOY = (ROOT / "problems" / "toy" / "initial_program.py").read_text()

# Two blocks, one indented inside a method; comments, unicode and every operator kind.
RICH = '''"""A program with two evolve blocks, one of them indented inside a method."""
import math

# EVOLVE-BLOCK-START
LIMIT = 3  # tuned by hand
RATE = 0.25


def pick(xs: list[float]) -> float:
    # prefer the largest value below the limit
    best = 0.0
    for x in xs:
        if x < LIMIT and x >= best:
            best = x * RATE + 1
    return best
# EVOLVE-BLOCK-END


class Policy:
    name = "π-policy"

    def score(self, x: float) -> float:
        # EVOLVE-BLOCK-START
        y = x ** 2 - 0.5  # ünïcode comment
        total = 0
        total += y / 2.0
        return total if total > 1 else -1.5
        # EVOLVE-BLOCK-END


def helper(a: int) -> int:
    return a * 2 + 7 if a < 10 else a
'''


def program(code: str, pid: int = 1, score: float = 1.0) -> Program:
    if score == float("-inf"):
        return Program(id=pid, code=code, result=EvalResult.invalid("broken"))
    return Program(id=pid, code=code, result=EvalResult(valid=True, score=score))


def context(parent: Program, seed: object, *, mate: Program | None = None,
            inspirations: tuple[Program, ...] = ()) -> ProposalContext:
    return ProposalContext(parent=parent, inspirations=inspirations, mate=mate, island=0,
                           rng=random.Random(str(seed)), task="", attempts=())


def propose(ctx: ProposalContext, mutator: Mutator | None = None) -> Proposal:
    return asyncio.run((mutator or OfflineMutator()).propose(ctx))


def proposals(code: str, count: int, **kwargs: Any) -> list[Proposal]:
    parent = program(code)
    mutator = OfflineMutator()

    async def run() -> list[Proposal]:
        return [await mutator.propose(context(parent, seed, **kwargs)) for seed in range(count)]

    return asyncio.run(run())


@pytest.mark.parametrize("code", [TOY, RICH], ids=["toy", "rich"])
def test_text_outside_the_blocks_never_changes_and_every_proposal_parses(code: str) -> None:
    fixed = split(code).fixed
    for proposal in proposals(code, 300):
        assert split(proposal.code).fixed == fixed
        ast.parse(proposal.code)
        assert proposal.code != code


def test_comments_inside_the_blocks_survive() -> None:
    comments = [line.strip() for block in evolve_blocks(RICH) for line in block.splitlines()
                if "#" in line]
    for proposal in proposals(RICH, 200):
        for comment in comments:
            assert comment.split("#", 1)[1] in proposal.code


def test_same_seed_gives_the_same_proposal_and_seeds_differ() -> None:
    parent, mate = program(RICH), program(RICH.replace("LIMIT = 3", "LIMIT = 9"), pid=4)
    first = [propose(context(parent, seed, mate=mate)) for seed in range(30)]
    again = [propose(context(parent, seed, mate=mate)) for seed in range(30)]
    assert first == again
    assert len({p.code for p in first}) > 20


def test_a_proposal_describes_itself_and_costs_nothing() -> None:
    for proposal in proposals(TOY, 50):
        assert proposal.edit_kind == "offline" and proposal.prompt is None
        assert proposal.usage == LLMUsage()
        assert 1 <= len(proposal.notes) <= 3
        assert proposal.response == "; ".join(proposal.notes)
    notes = {note for p in proposals(TOY, 200) for note in p.notes}
    assert any(re.fullmatch(r"HEADROOM: 1\.0 -> [0-9.e+-]+", note) for note in notes)
    assert any(re.fullmatch(r"swapped '[*/+-]' for '[*/+-]' at line \d+", n) for n in notes)


def test_every_operator_kind_is_used() -> None:
    notes = " ".join(p.response for p in proposals(RICH, 300))
    for token in ["<", "<=", ">", ">="]:
        assert f"for '{token}' at line" in notes
    for old, new in [("+", "-"), ("-", "+"), ("*", "/"), ("/", "*")]:
        assert f"swapped '{old}' for '{new}'" in notes
    assert "LIMIT: 3 -> " in notes and "RATE: 0.25 -> " in notes
    assert "constant at line 24: 0.5 -> " in notes  # inside the indented block


def constant(code: str, name: str) -> Any:
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == name:
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} not assigned")


def test_constants_keep_their_type_and_sign() -> None:
    windows, headrooms = set(), set()
    for proposal in proposals(TOY, 300):
        window, headroom = constant(proposal.code, "WINDOW"), constant(proposal.code, "HEADROOM")
        assert type(window) is int and window >= 1
        assert type(headroom) is float and headroom > 0
        windows.add(window)
        headrooms.add(headroom)
    assert len(windows) > 2 and len(headrooms) > 20


MATE_BLOCK = '''
def provision(history: list[float]) -> float:
    """Peak of the last ticks."""
    return max(history[-4:], default=10.0)
'''


def test_crossover_takes_a_same_named_definition_from_the_mate() -> None:
    mate = program(TOY.replace(evolve_blocks(TOY)[0], MATE_BLOCK), pid=7)
    crossed = [p for p in proposals(TOY, 100, mate=mate) if "crossover" in p.response]
    assert crossed, "no crossover in 100 proposals"
    for proposal in crossed:
        assert "crossover: 'provision' from program 7" in proposal.notes
        assert "max(history[-4:], default=10.0)" in proposal.code
        assert split(proposal.code).fixed == split(TOY).fixed


def test_crossover_reindents_a_definition_from_a_differently_indented_block() -> None:
    parent = "def f(x):\n    # EVOLVE-BLOCK-START\n    total = 0\n    # EVOLVE-BLOCK-END\n"
    donor = ("class C:\n    def f(self, x):\n        # EVOLVE-BLOCK-START\n"
             "        total = (\n            0.5 * x\n        )\n        # EVOLVE-BLOCK-END\n")
    crossed = [p for p in proposals(parent, 40, mate=program(donor, pid=3))
               if p.notes == ("crossover: 'total' from program 3",)]
    assert crossed
    assert all("\n    total = (\n        0.5 * x\n    )\n" in p.code for p in crossed)


def test_nothing_to_change_is_an_edit_error() -> None:
    code = 'x = 1\n# EVOLVE-BLOCK-START\ndef f():\n    return "same"\n# EVOLVE-BLOCK-END\n'
    with pytest.raises(EditError, match="nothing to change"):
        propose(context(program(code), 0))


def test_a_parent_that_does_not_parse_is_an_edit_error() -> None:
    code = "# EVOLVE-BLOCK-START\nX = (1\n# EVOLVE-BLOCK-END\n"
    with pytest.raises(EditError, match="does not parse"):
        propose(context(program(code), 0))


# --- a (1+1) hill climber on the toy problem, scored by the trusted evaluator -----------------


def load_toy_evaluator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("toy_evaluator", ROOT / "evaluators/toy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class InProcessCandidate:
    """A stand-in for the sandboxed candidate handle: runs the program's functions in-process."""

    def __init__(self, code: str) -> None:
        self.namespace: dict[str, Any] = {}
        exec(compile(code, "<candidate>", "exec"), self.namespace)

    def call(self, name: str, *args: Any) -> Any:
        return self.namespace[name](*args)


def score(evaluator: ModuleType, code: str) -> float:
    try:
        verdict = evaluator.evaluate(InProcessCandidate(code))
    except Exception:  # a broken candidate: what the sandbox would report as invalid
        return float("-inf")
    return float(verdict["score"]) if "score" in verdict else float("-inf")


def test_hill_climbing_with_the_offline_mutator_improves_the_toy() -> None:
    evaluator = load_toy_evaluator()
    best = program(TOY, pid=0, score=score(evaluator, TOY))
    assert best.score == pytest.approx(47.6, abs=0.1)
    mutator = OfflineMutator()

    async def climb() -> Program:
        parent = best
        for step in range(1, 151):
            proposal = await mutator.propose(context(parent, f"climb:{step}"))
            child = program(proposal.code, pid=step, score=score(evaluator, proposal.code))
            parent = child if child.score >= parent.score else parent
        return parent

    assert asyncio.run(climb()).score > 55.0

"""The LLM mutator with a scripted client: edit kinds, repairs, usage accounting."""

from __future__ import annotations

import asyncio
import random

import pytest

from adrs.config.run_config import LLMConfig
from adrs.engine.mutator import ProposalContext
from adrs.llm.mutator import LLMMutator, LLMRequest, ProposalError, ScriptedClient
from adrs.problem.spec import load_problem
from adrs.types import EvalResult, Program

TOY = load_problem("toy")
PARENT = Program(id=3, code=TOY.initial_code, result=EvalResult(True, 47.6))
GOOD_DIFF = "<<<<<<< SEARCH\nHEADROOM = 1.0\n=======\nHEADROOM = 1.2\n>>>>>>> REPLACE\n"


def context(seed: int = 0, mate: Program | None = None) -> ProposalContext:
    return ProposalContext(parent=PARENT, inspirations=(), mate=mate, island=0,
                           rng=random.Random(seed), task=TOY.task, candidate_id=5)


def test_a_good_diff_is_applied_in_one_attempt() -> None:
    client = ScriptedClient(lambda r: GOOD_DIFF)
    proposal = asyncio.run(LLMMutator(client, LLMConfig()).propose(context()))
    assert "HEADROOM = 1.2" in proposal.code and proposal.attempts == 1
    assert proposal.usage.calls == 1 and proposal.response == GOOD_DIFF
    assert proposal.prompt is not None and "HEADROOM = 1.0" in proposal.prompt
    assert client.history[0].candidate_id == 5 and client.history[0].attempt == 0


def test_an_unusable_reply_is_sent_back_with_the_error() -> None:
    replies = iter(["<<<<<<< SEARCH\nNOPE = 1\n=======\nX = 2\n>>>>>>> REPLACE\n", GOOD_DIFF])
    client = ScriptedClient(lambda r: next(replies))
    proposal = asyncio.run(LLMMutator(client, LLMConfig()).propose(context()))
    assert proposal.attempts == 2 and proposal.usage.calls == 2
    repair = client.history[1].messages
    assert [m.role for m in repair] == ["system", "user", "assistant", "user"]
    assert "NOPE = 1" in repair[-1].content


def test_repairs_are_bounded_and_their_cost_is_kept() -> None:
    client = ScriptedClient(lambda r: "no code here")
    mutator = LLMMutator(client, LLMConfig(repair_attempts=2))
    with pytest.raises(ProposalError) as info:
        asyncio.run(mutator.propose(context()))
    assert len(client.history) == 3
    assert info.value.attempts == 3 and info.value.usage.calls == 3


@pytest.mark.parametrize(("diff", "cross", "expected"), [
    (1.0, 0.0, {"diff"}), (0.0, 0.0, {"rewrite"}), (0.0, 1.0, {"crossover"}),
    (0.5, 0.0, {"diff", "rewrite"}),
])
def test_edit_kinds_follow_the_configured_mix(diff: float, cross: float,
                                              expected: set[str]) -> None:
    mutator = LLMMutator(ScriptedClient(lambda r: GOOD_DIFF),
                         LLMConfig(diff_probability=diff, crossover_probability=cross))
    mate = Program(id=9, code=TOY.initial_code, result=EvalResult(True, 40.0))
    kinds = {mutator.choose_kind(context(seed, mate)) for seed in range(200)}
    assert kinds == expected


def test_crossover_needs_a_mate() -> None:
    mutator = LLMMutator(ScriptedClient(lambda r: GOOD_DIFF),
                         LLMConfig(diff_probability=0.0, crossover_probability=1.0))
    assert {mutator.choose_kind(context(seed)) for seed in range(50)} == {"rewrite"}


def test_scripted_client_sees_the_request() -> None:
    seen: list[LLMRequest] = []
    client = ScriptedClient(lambda r: seen.append(r) or GOOD_DIFF)
    asyncio.run(LLMMutator(client, LLMConfig()).propose(context()))
    assert seen == client.history

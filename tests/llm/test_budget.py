"""The budget guard reserves by prompt length, so a run of growing prompts stays near it."""

from __future__ import annotations

import asyncio

import pytest

from adrs.llm.budget import BudgetGuard
from adrs.llm.mutator import CallRefused, LLMReply, LLMRequest, LLMUsage, Message


class PricedByLength:
    """Costs one cent per prompt character; a call finishes when its gate opens."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.gate = asyncio.Event()

    async def complete(self, request: LLMRequest) -> LLMReply:
        self.started.append(request.candidate_id)
        await self.gate.wait()
        chars = sum(len(m.content) for m in request.messages)
        return LLMReply("x", LLMUsage(cost_usd=0.01 * chars))


def ask(cid: int, chars: int) -> LLMRequest:
    return LLMRequest((Message("user", "p" * chars),), cid, 0)


def test_a_longer_prompt_reserves_more_than_the_dearest_call_so_far() -> None:
    async def scenario() -> tuple[list[int], float]:
        inner = PricedByLength()
        guard = BudgetGuard(inner, budget_usd=1.0)
        inner.gate.set()
        await guard.complete(ask(0, 10))  # $0.10: the dearest call so far
        inner.gate.clear()
        first = asyncio.create_task(guard.complete(ask(1, 100)))  # reserves $1.00, not $0.10
        second = asyncio.create_task(guard.complete(ask(2, 100)))
        await asyncio.sleep(0.05)
        held_back = list(inner.started)
        inner.gate.set()
        await first
        with pytest.raises(CallRefused):
            await second  # held back while #1 ran; then $1.10 spent is past the budget
        return held_back, guard.spent_usd

    started, spent = asyncio.run(scenario())
    assert started == [0, 1]
    assert spent == pytest.approx(1.1)

"""Call slots: at most `proposals_in_flight` LLM calls at once."""

from __future__ import annotations

import asyncio

from adrs.llm.mutator import LLMReply, LLMRequest, Message
from adrs.llm.setup import CallSlots


class Counting:
    """Answers after a short wait; counts the calls running at once."""

    def __init__(self) -> None:
        self.running = self.most = 0
        self.started: list[float] = []

    async def complete(self, request: LLMRequest) -> LLMReply:
        self.running += 1
        self.most = max(self.most, self.running)
        self.started.append(asyncio.get_running_loop().time())
        await asyncio.sleep(0.05)
        self.running -= 1
        return LLMReply(str(request.candidate_id))


def test_at_most_the_slots_run_at_once_and_every_call_is_answered() -> None:
    async def scenario() -> tuple[Counting, list[str]]:
        inner = Counting()
        slots = CallSlots(inner, 2)
        replies = await asyncio.gather(*(slots.complete(
            LLMRequest((Message("user", "p"),), cid, 0)) for cid in range(6)))
        return inner, [r.text for r in replies]

    inner, texts = asyncio.run(scenario())
    assert texts == [str(cid) for cid in range(6)]
    assert inner.most == 2 and len(inner.started) == 6

"""The LLM budget: refuse new calls once the dollars spent reach `stop.budget_usd`.

The controller stops launching candidates once the *stored* cost reaches the budget, but
several proposals are in flight by then. This guard counts every call as it completes, and
reserves for each call in flight an estimate of its cost: the dearest call seen so far, or
more for a longer prompt (the highest cost per prompt character seen, times this prompt's
characters, since prompts grow as a run goes on). A call starts
only while spent + reserved < budget (else it waits for a call in flight to finish, or is
refused once the spent dollars reach the budget). The controller stops launching once the
spent dollars reach the budget, so a run ends within about one call's cost above it.
Spending already stored (a resumed run) arrives through `observe`.
"""

from __future__ import annotations

import asyncio

from adrs.engine.archive import AddStatus
from adrs.llm.mutator import CallRefused, LLMClient, LLMReply, LLMRequest
from adrs.store.database import CandidateRecord


class BudgetGuard:
    """An LLMClient wrapper that holds back calls while the dollars spent plus those
    reserved for calls in flight reach the budget, and refuses them (CallRefused) once the
    dollars spent do."""

    def __init__(self, inner: LLMClient, budget_usd: float) -> None:
        self._inner, self.budget_usd = inner, budget_usd
        self._stored = 0.0
        self._unstored: dict[int, float] = {}  # completed calls of candidates not yet stored
        self._reserved = 0.0
        self._largest_call = 0.0
        self._per_char = 0.0  # the highest cost per prompt character seen
        self._changed = asyncio.Condition()

    @property
    def spent_usd(self) -> float:
        """Dollars of every completed call, stored or not."""
        return self._stored + sum(self._unstored.values())

    async def complete(self, request: LLMRequest) -> LLMReply:
        async with self._changed:
            while self.spent_usd + self._reserved >= self.budget_usd:
                if self.spent_usd >= self.budget_usd:
                    raise CallRefused(f"the LLM budget of ${self.budget_usd:g} is spent")
                await self._changed.wait()  # a call in flight may leave room for this one
            estimate = self._estimate(request)
            self._reserved += estimate
        reply: LLMReply | None = None
        try:
            reply = await self._inner.complete(request)
            return reply
        finally:
            async with self._changed:
                self._reserved -= estimate
                if reply is not None:
                    self._charge(request, reply.usage.cost_usd)
                self._changed.notify_all()

    def _estimate(self, request: LLMRequest) -> float:
        return max(self._largest_call, self._per_char * prompt_chars(request))

    def _charge(self, request: LLMRequest, cost: float) -> None:
        cid = request.candidate_id
        self._unstored[cid] = self._unstored.get(cid, 0.0) + cost
        self._largest_call = max(self._largest_call, cost)
        self._per_char = max(self._per_char, cost / max(1, prompt_chars(request)))

    def observe(self, record: CandidateRecord, status: AddStatus | None) -> None:
        self._unstored.pop(record.id, None)
        self._stored += record.usage.cost_usd


def prompt_chars(request: LLMRequest) -> int:
    return sum(len(m.content) for m in request.messages)

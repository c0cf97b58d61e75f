"""The LLM budget: refuse new calls once the dollars spent reach `stop.budget_usd`.

The controller stops launching candidates once the *stored* cost reaches the budget, but
several proposals are in flight by then. This guard counts every call as it completes, and
reserves the cost of the dearest call seen so far for each call in flight, so a call starts
only while spent + reserved < budget: the run stops within about one call's cost of the
budget. Spending already stored (a resumed run) arrives through `observe`.
"""

from __future__ import annotations

from adrs.archive import AddStatus
from adrs.llm import CallRefused, LLMClient, LLMReply, LLMRequest
from adrs.store import CandidateRecord


class BudgetGuard:
    """An LLMClient wrapper that refuses calls (CallRefused) once the budget is committed."""

    def __init__(self, inner: LLMClient, budget_usd: float) -> None:
        self._inner, self.budget_usd = inner, budget_usd
        self._stored = 0.0
        self._unstored: dict[int, float] = {}  # completed calls of candidates not yet stored
        self._reserved = 0.0
        self._largest_call = 0.0

    @property
    def committed_usd(self) -> float:
        """Stored + completed + reserved for the calls in flight."""
        return self._stored + sum(self._unstored.values()) + self._reserved

    async def complete(self, request: LLMRequest) -> LLMReply:
        if self.committed_usd >= self.budget_usd:
            raise CallRefused(f"the LLM budget of ${self.budget_usd:g} is spent")
        estimate = self._largest_call
        self._reserved += estimate
        try:
            reply = await self._inner.complete(request)
        finally:
            self._reserved -= estimate
        cost = reply.usage.cost_usd
        cid = request.candidate_id
        self._unstored[cid] = self._unstored.get(cid, 0.0) + cost
        self._largest_call = max(self._largest_call, cost)
        return reply

    def observe(self, record: CandidateRecord, status: AddStatus | None) -> None:
        self._unstored.pop(record.id, None)
        self._stored += record.usage.cost_usd

"""llm-serve reference: Sarathi-Serve's stall-free batching with chunked prefills
(Agrawal et al., OSDI'24), token budget 512."""

from __future__ import annotations

from typing import Any


class Scheduler:
    """The policy's base: one object per simulated replica; the simulator calls
    schedule(replica) once per iteration (the task statement has the contract)."""

    def schedule(self, replica: Any) -> None:
        raise NotImplementedError


# EVOLVE-BLOCK-START
class SarathiServe(Scheduler):
    """Every iteration: all running decodes first (preempting the newest by recompute if
    their blocks do not fit), then chunks of prompts already started, then new prompts in
    arrival order, while the batch stays within TOKEN_BUDGET tokens."""

    TOKEN_BUDGET = 512
    MAX_NUM_SEQS = 256
    WATERMARK = 0.01

    def schedule(self, r: Any) -> None:
        free, evicted = self.decode(r)
        budget = self.TOKEN_BUDGET - r.decode_seqs
        for q in r.running:  # prompts already started
            if budget <= 0:
                return
            if q.in_prefill and q not in evicted:
                tokens = min(q.prefill_left, budget)
                blocks = r.blocks_needed(q, tokens)
                if blocks > free:
                    return
                r.prefill(q, tokens)
                budget -= tokens
                free -= blocks
        seqs = len(r.running)
        reserve = self.WATERMARK * r.total_blocks
        for q in r.waiting:
            if budget <= 0 or seqs >= self.MAX_NUM_SEQS:
                return
            tokens = min(q.prefill_left, budget)
            blocks = r.blocks_needed(q, tokens)
            if blocks > free - reserve:
                return
            r.prefill(q, tokens)
            budget -= tokens
            free -= blocks
            seqs += 1

    def decode(self, r: Any) -> tuple[int, set[Any]]:
        """Preempt the newest until every decode's block fits; the blocks left free and
        the requests preempted."""
        need = r.decode_new_blocks
        free = r.free_blocks
        evicted = set()
        for victim in r.running[::-1]:
            if need <= free:
                break
            r.preempt(victim)
            evicted.add(victim)
            free += victim.blocks
            if not victim.in_prefill and victim.computed % r.block_size == 0:
                need -= 1
        return free - need, evicted
# EVOLVE-BLOCK-END

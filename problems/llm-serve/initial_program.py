"""llm-serve: vLLM's default scheduler (v0.4): FCFS, prefill first, preempt the newest by
recompute."""

from __future__ import annotations

from typing import Any


class Scheduler:
    """The policy's base: one object per simulated replica; the simulator calls
    schedule(replica) once per iteration (the task statement has the contract)."""

    def schedule(self, replica: Any) -> None:
        raise NotImplementedError


# EVOLVE-BLOCK-START
class VllmDefault(Scheduler):
    """Admit waiting prompts first, whole (no chunking), in arrival order while blocks and
    the token budget allow; such an iteration runs prefills only. Otherwise decode every
    running request, preempting the newest (recompute) until the new blocks fit."""

    MAX_NUM_SEQS = 256
    MAX_BATCHED_TOKENS = 16384.0  # prompt tokens per prefill iteration
    MAX_CHUNK = 16384.0  # prompt tokens of one request per iteration (no chunking)
    WATERMARK = 0.01  # share of blocks kept free when admitting
    DELAY_FACTOR = 0.0  # wait this many last-prompt latencies before the next prompts

    def __init__(self) -> None:
        self.last_now = 0.0
        self.last_was_prompt = False
        self.prompt_latency = 0.0

    def schedule(self, r: Any) -> None:
        if self.last_was_prompt:
            self.prompt_latency = r.now - self.last_now
        self.last_now = r.now
        self.last_was_prompt = self.admit(r)
        if not self.last_was_prompt:
            self.decode(r)

    def admit(self, r: Any) -> bool:
        budget = self.MAX_BATCHED_TOKENS
        free = r.free_blocks - self.WATERMARK * r.total_blocks
        chosen = []
        for q in r.running:  # prompts already started go on first
            if q.in_prefill:
                tokens = max(1, int(min(q.prefill_left, self.MAX_CHUNK)))
                chosen.append((q, tokens))
                budget -= tokens
                free -= r.blocks_needed(q, tokens)
        if r.waiting and self.passed_delay(r):
            seqs = len(r.running)
            for q in r.waiting:
                tokens = max(1, int(min(q.prefill_left, self.MAX_CHUNK)))
                blocks = r.blocks_needed(q, tokens)
                if (tokens > budget and chosen) or seqs >= self.MAX_NUM_SEQS or blocks > free:
                    break
                chosen.append((q, tokens))
                budget -= tokens
                free -= blocks
                seqs += 1
        if not chosen:
            return False
        for q, tokens in chosen:
            r.prefill(q, tokens)
        for q in r.running:  # a prompt iteration runs no decodes
            if not q.in_prefill:
                r.pause(q)
        return True

    def passed_delay(self, r: Any) -> bool:
        waited = r.now - r.waiting[0].arrival
        return not r.running or waited > self.DELAY_FACTOR * self.prompt_latency

    def decode(self, r: Any) -> None:
        need = r.decode_new_blocks
        free = r.free_blocks
        victims = r.running[::-1]  # newest first
        for victim in victims:
            if need <= free:
                break
            r.preempt(victim)
            free += victim.blocks
            if not victim.in_prefill and victim.computed % r.block_size == 0:
                need -= 1
# EVOLVE-BLOCK-END

"""llm-serve: vLLM's default scheduler (v0.4): FCFS, prefill first, preempt the newest by
recompute; vLLM's `enable_chunked_prefill` mode is here too, off as in vLLM."""

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
    running request, preempting the newest (recompute) until the new blocks fit.

    ENABLE_CHUNKED_PREFILL > 0 switches to vLLM's chunked-prefill policy (its
    `enable_chunked_prefill` flag, off by default; Scheduler._schedule_chunked_prefill):
    one token budget per iteration, CHUNKED_BATCHED_TOKENS (the max_num_batched_tokens
    vLLM picks when the flag is on and none is given: 512), spent on 1. every running
    decode (preempting the newest when their blocks do not fit), 2. the next chunk of each
    prompt already started, 3. new prompts in arrival order, each chunked to what is left
    of the budget; decodes and prompt chunks share the iteration. (vLLM 0.5.5+ queues
    decodes ahead of partial prefills, as here; swapped requests come before new ones, and
    this policy swaps none.)"""

    ENABLE_CHUNKED_PREFILL = 0
    CHUNKED_BATCHED_TOKENS = 512.0  # token budget per iteration with chunked prefill
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
        if self.ENABLE_CHUNKED_PREFILL > 0:
            self.chunked(r)
            return
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

    def decode(self, r: Any) -> tuple[int, list[Any]]:
        """Preempt the newest (recompute) until every decode's new block fits; the blocks
        left free after the decodes, and the requests preempted."""
        need = r.decode_new_blocks
        free = r.free_blocks
        evicted = []
        for victim in r.running[::-1]:  # newest first
            if need <= free:
                break
            r.preempt(victim)
            evicted.append(victim)
            free += victim.blocks
            if not victim.in_prefill and victim.computed % r.block_size == 0:
                need -= 1
        return free - need, evicted

    def chunked(self, r: Any) -> None:
        """vLLM's chunked-prefill iteration: decodes, then started prompts, then new ones,
        within CHUNKED_BATCHED_TOKENS."""
        free, evicted = self.decode(r)
        budget = int(self.CHUNKED_BATCHED_TOKENS) - r.decode_seqs
        for q in r.running:  # prompts already started: their next chunk
            if q.in_prefill and q not in evicted and budget > 0:
                tokens = min(q.prefill_left, budget)
                blocks = r.blocks_needed(q, tokens)
                if blocks > free:
                    return
                r.prefill(q, tokens)
                budget -= tokens
                free -= blocks
        seqs = len(r.running) - len(evicted)
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
# EVOLVE-BLOCK-END

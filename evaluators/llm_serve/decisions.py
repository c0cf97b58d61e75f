"""The policy's decisions for one iteration, read from the harness's reply and checked
against the rules before anything is applied.

Reply layout (harness.py packs it): little-endian uint32 words; per scenario asked, in the
order asked: the number of prefill chunks P and of actions A, then P pairs (request id,
tokens), then A pairs (request id, action code).

Any decision the rules forbid is a fault of the program (PolicyError: the evaluation is
invalid, with the rule, the scenario and the clock), never silently dropped: a scheduler
that asks for KV blocks it does not have would crash a real engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from adrs.evaluators.llm_serve.simulator import Simulation

PREEMPT_RECOMPUTE, PREEMPT_SWAP, SWAP_IN, PAUSE = range(4)
ACTION_NAMES = ("preempt (recompute)", "preempt (swap)", "swap in", "pause")
MAX_WORDS = 1 << 22


class PolicyError(ValueError):
    """The program broke a rule of the simulator; the message says which, where, when."""


@dataclass(frozen=True)
class Batch:
    """One scenario's decisions: prefill (request id, tokens), actions (request id, code)."""

    prefill: tuple[tuple[int, int], ...]
    actions: tuple[tuple[int, int], ...]


def parse_reply(reply: object, count: int) -> list[Batch]:
    """The batches of `count` scenarios from the harness's reply (PolicyError if it is
    not the layout above)."""
    if not isinstance(reply, bytes) or len(reply) % 4 or len(reply) > 4 * MAX_WORDS:
        raise PolicyError(f"the harness replied {type(reply).__name__} of the wrong size: "
                          "do not replace harness.step")
    words = np.frombuffer(reply, "<u4").tolist()
    batches: list[Batch] = []
    at = 0
    for _ in range(count):
        if at + 2 > len(words):
            raise PolicyError("the harness's reply is truncated: do not replace harness.step")
        p, a = words[at], words[at + 1]
        end = at + 2 + 2 * (p + a)
        if end > len(words):
            raise PolicyError("the harness's reply is truncated: do not replace harness.step")
        body = words[at + 2:end]
        pairs = list(zip(body[::2], body[1::2], strict=True))
        batches.append(Batch(tuple(pairs[:p]), tuple(pairs[p:])))
        at = end
    if at != len(words):
        raise PolicyError("the harness's reply is too long: do not replace harness.step")
    return batches


def check_batch(sim: Simulation, s: int, batch: Batch) -> None:
    """PolicyError unless every decision of `batch` is allowed in scenario `s` now."""
    from adrs.evaluators.llm_serve.simulator import RUNNING, SWAPPED, WAITING

    where = f"scenario {sim.scenarios[s].name} at t={sim.clock[s]:.3f} s"
    lo, n = int(sim.base[s]), int(sim.base[s + 1] - sim.base[s])
    seen: set[int] = set()

    def request(rid: int, what: str) -> int:
        if rid >= n or sim.state[lo + rid] not in (WAITING, RUNNING, SWAPPED):
            raise PolicyError(f"{where}: {what} of request {rid}, which is not waiting, "
                              "running or swapped")
        if rid in seen:
            raise PolicyError(f"{where}: request {rid} appears twice in one batch (one "
                              "decision per request and iteration)")
        seen.add(rid)
        return lo + rid

    swap = 0
    for rid, code in batch.actions:
        if code >= len(ACTION_NAMES):
            raise PolicyError(f"{where}: unknown action code {code}")
        g = request(rid, ACTION_NAMES[code])
        state = int(sim.state[g])
        wanted = SWAPPED if code == SWAP_IN else RUNNING
        if state != wanted:
            raise PolicyError(f"{where}: {ACTION_NAMES[code]} of request {rid}, which is not "
                              f"{'swapped' if wanted == SWAPPED else 'running'}")
        if code == PAUSE and sim.computed[g] < sim.target[g]:
            raise PolicyError(f"{where}: pause of request {rid}, which is still in prefill "
                              "(a request in prefill runs only when given a chunk)")
        swap += int(sim.blocks[g]) if code == PREEMPT_SWAP else 0
    if swap > sim.free_swap[s]:
        raise PolicyError(f"{where}: swapping out {swap} blocks but only "
                          f"{int(sim.free_swap[s])} swap blocks are free: preempt by "
                          "recompute instead")
    _check_prefill(sim, s, batch, where, request)


def _check_prefill(sim: Simulation, s: int, batch: Batch, where: str, request: object) -> None:
    from adrs.evaluators.llm_serve.simulator import RUNNING, WAITING

    assert callable(request)
    admitted = 0
    for rid, tokens in batch.prefill:
        g = request(rid, "a prefill chunk")
        state = int(sim.state[g])
        left = int(sim.target[g] - sim.computed[g])
        if state not in (WAITING, RUNNING) or left <= 0:
            raise PolicyError(f"{where}: a prefill chunk for request {rid}, which is not "
                              "waiting nor running its prefill")
        if not 1 <= tokens <= left:
            raise PolicyError(f"{where}: a chunk of {tokens} tokens for request {rid}; it "
                              f"has {left} prompt tokens left to compute (give 1..{left})")
        admitted += state == WAITING
    lo, hi = int(sim.base[s]), int(sim.base[s + 1])
    running = int((sim.state[lo:hi] == RUNNING).sum())
    if running + admitted > sim.model.max_seqs:
        raise PolicyError(f"{where}: {running + admitted} requests would hold KV on the GPU; "
                          f"the limit is {sim.model.max_seqs}")

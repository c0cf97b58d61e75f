"""Sandbox side of llm-serve: holds one scheduler object and one replica view per scenario.

Loaded inside the sandbox as module `harness`, after the candidate (module `candidate`).
It never sees an output length or a future arrival: each step the trusted simulator sends,
per scenario asked, its clock, free blocks, the decode set's totals, the requests that
arrived and the ids of those that finished; this module keeps the views the policies read
(`Replica`, `Request`), asks each policy for its batch and replies with every decision.
It imports nothing from adrs. The task statement (problems/llm-serve/TASK.md) documents
everything a policy may read here.

Protocol (plain data):
- start(configs): one dict per scenario (total_blocks, swap_blocks, block_size,
  max_batch_tokens, max_seqs, max_model_len); creates the policies.
- step(message): bytes: the step (uint32), then per scenario asked: SCENARIO, its arrivals
  (ARRIVAL each), its finished ids (uint32 each). Returns uint32 words: per scenario asked,
  P, A, then P (id, tokens) pairs, then A (id, action) pairs.

Decoding is counted lazily: a request that finished its prefill decodes one token in every
iteration until it is paused, preempted or done, so its counters follow from the replica's
iteration number (`epoch`) without touching it each step.
"""

from __future__ import annotations

import bisect
import struct
from array import array
from typing import Any

STEP = struct.Struct("<I")
SCENARIO = struct.Struct("<HIIIIIIdQ")  # simulator.py packs the same layouts
ARRIVAL = struct.Struct("<IdI")
PREEMPT_RECOMPUTE, PREEMPT_SWAP, SWAP_IN, PAUSE = range(4)

_policies: list[Any] = []
_replicas: list[Replica] = []


class Request:
    """One request as the scheduler sees it (read-only for the policy)."""

    __slots__ = ("_comp", "_gen", "_live", "_mark", "_replica", "arrival", "preemptions",
                 "prompt_tokens", "rid", "target")

    def __init__(self, replica: Replica, rid: int, arrival: float, prompt: int) -> None:
        self._replica = replica
        self.rid = rid
        self.arrival = arrival
        self.prompt_tokens = prompt
        self.target = prompt  # tokens to compute before decoding
        self.preemptions = 0
        self._gen = self._comp = self._mark = 0
        self._live = False

    @property
    def generated(self) -> int:
        """Output tokens produced so far."""
        return self._gen + (self._replica.epoch - self._mark if self._live else 0)

    @property
    def computed(self) -> int:
        """Tokens whose KV is cached (the context a decode reads)."""
        return self._comp + (self._replica.epoch - self._mark if self._live else 0)

    @property
    def blocks(self) -> int:
        """KV blocks held (on the GPU, or in swap space while swapped)."""
        return -(-self.computed // self._replica.block_size)

    @property
    def in_prefill(self) -> bool:
        return self._comp < self.target

    @property
    def prefill_left(self) -> int:
        """Tokens still to compute before this request decodes (0 once it decodes)."""
        return max(self.target - self._comp, 0)

    def _fold(self) -> None:
        if self._live:
            done = self._replica.epoch - self._mark
            self._gen += done
            self._comp += done
            self._mark = self._replica.epoch

    def __repr__(self) -> str:
        return (f"Request(rid={self.rid}, prompt={self.prompt_tokens}, computed="
                f"{self.computed}, generated={self.generated})")


class Replica:
    """One replica's state now, and the calls that build this iteration's batch."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.total_blocks: int = config["total_blocks"]
        self.swap_blocks: int = config["swap_blocks"]
        self.block_size: int = config["block_size"]
        self.max_batch_tokens: int = config["max_batch_tokens"]
        self.max_seqs: int = config["max_seqs"]
        self.max_model_len: int = config["max_model_len"]
        self.now = 0.0
        self.epoch = 0  # iterations run so far
        self.free_blocks = self.total_blocks
        self.free_swap_blocks = self.swap_blocks
        self.decode_seqs = 0
        self.decode_new_blocks = 0
        self.decode_context_tokens = 0
        self.waiting: list[Request] = []  # arrival order
        self.running: list[Request] = []  # admission order
        self.swapped: list[Request] = []
        self._by_id: dict[int, Request] = {}
        self._prefill: list[tuple[Request, int]] = []
        self._actions: list[tuple[Request, int]] = []

    # ------------------------------------------------------------ the policy's calls
    def prefill(self, request: Request, tokens: int) -> None:
        """Compute `tokens` more prompt tokens of `request` this iteration (admits it if it
        is waiting)."""
        self._prefill.append((request, int(tokens)))

    def preempt(self, request: Request, swap: bool = False) -> None:
        """Evict a running request: drop its KV (recompute later) or move it to swap."""
        self._actions.append((request, PREEMPT_SWAP if swap else PREEMPT_RECOMPUTE))

    def swap_in(self, request: Request) -> None:
        """Bring a swapped request back; it decodes in this iteration."""
        self._actions.append((request, SWAP_IN))

    def pause(self, request: Request) -> None:
        """Keep a decoding request out of this iteration (it keeps its KV)."""
        self._actions.append((request, PAUSE))

    def blocks_needed(self, request: Request, tokens: int) -> int:
        """New KV blocks `request` needs to cache `tokens` more tokens."""
        have = request.computed
        size = self.block_size
        return -(-(have + tokens) // size) - -(-have // size)

    # -------------------------------------------------------------- the harness's side
    def _observe(self, now: float, free: int, swap: int, seqs: int, blocks: int, ctx: int,
                 arrivals: list[tuple[int, float, int]], finished: tuple[int, ...]) -> None:
        self.now, self.free_blocks, self.free_swap_blocks = now, free, swap
        self.decode_seqs, self.decode_new_blocks, self.decode_context_tokens = seqs, blocks, ctx
        for rid in finished:
            done = self._by_id.pop(rid)
            self.running.remove(done)
        for rid, arrival, prompt in arrivals:
            request = Request(self, rid, arrival, prompt)
            self._by_id[rid] = request
            self.waiting.append(request)

    def _apply(self) -> list[int]:
        """Apply the decisions to the views (as the simulator does) and return them."""
        words = [len(self._prefill), len(self._actions)]
        for request, tokens in self._prefill:
            words += (request.rid, tokens)
        for request, code in self._actions:
            words += (request.rid, code)
            self._act(request, code)
        for request, tokens in self._prefill:
            self._chunk(request, tokens)
        self._prefill.clear()
        self._actions.clear()
        self.epoch += 1
        return words

    def _act(self, r: Request, code: int) -> None:
        r._fold()
        if code == PAUSE:
            r._mark = self.epoch + 1
            return
        if code == SWAP_IN:
            self.swapped.remove(r)
            self.running.append(r)
            r._live, r._mark = True, self.epoch
            return
        self.running.remove(r)
        r._live = False
        r.preemptions += 1
        if code == PREEMPT_SWAP:
            self.swapped.append(r)
            return
        r._comp = 0
        r.target = r.prompt_tokens + r._gen
        bisect.insort(self.waiting, r, key=lambda q: (q.arrival, q.rid))

    def _chunk(self, r: Request, tokens: int) -> None:
        if r._comp == 0:  # a waiting request: admitted by its first chunk
            self.waiting.remove(r)
            self.running.append(r)
        r._comp += tokens
        if r._comp >= r.target:
            r._gen += 1
            r._live, r._mark = True, self.epoch + 1


def policy_class(module: Any) -> Any:
    """The one scheduler class of the candidate: a leaf subclass of its `Scheduler`."""
    base = getattr(module, "Scheduler", None)
    if not isinstance(base, type):
        raise TypeError("the program must define the Scheduler base class (keep the code "
                        "outside the EVOLVE-BLOCK)")
    found = [c for c in vars(module).values() if isinstance(c, type) and issubclass(c, base)
             and c is not base and c.__module__ == module.__name__]
    leaves = [c for c in found if not any(o is not c and issubclass(o, c) for o in found)]
    if len(leaves) != 1:
        names = ", ".join(c.__name__ for c in leaves) or "none"
        raise TypeError(f"define exactly one scheduler class deriving from Scheduler "
                        f"(found: {names})")
    return leaves[0]


def create(cls: Any, configs: list[dict[str, Any]]) -> None:
    """One fresh scheduler and replica view per scenario."""
    _policies.clear()
    _replicas.clear()
    for config in configs:
        _replicas.append(Replica(config))
        _policies.append(cls())


def start(configs: list[dict[str, Any]]) -> None:
    import candidate  # the sandbox loads it before this module

    create(policy_class(candidate), configs)


def step(message: bytes) -> bytes:
    """Ask every listed scenario's scheduler for this iteration's batch."""
    view = memoryview(message)
    at = STEP.size
    words: list[int] = []
    while at < len(view):
        s, n_arr, n_fin, free, swap, seqs, blocks, now, ctx = SCENARIO.unpack_from(view, at)
        at += SCENARIO.size
        arrivals = list(ARRIVAL.iter_unpack(view[at:at + n_arr * ARRIVAL.size]))
        at += n_arr * ARRIVAL.size
        finished = struct.unpack_from(f"<{n_fin}I", view, at)
        at += 4 * n_fin
        replica = _replicas[s]
        replica._observe(now, free, swap, seqs, blocks, ctx, arrivals, finished)
        _policies[s].schedule(replica)
        words += replica._apply()
    return array("I", words).tobytes()

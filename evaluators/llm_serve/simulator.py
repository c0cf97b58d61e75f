"""The trusted replica simulator: every scenario of an evaluation, vectorised over their
requests, one scheduling iteration per scenario and step.

Per request: state (FUTURE, WAITING, RUNNING, SWAPPED, DONE), `computed` (tokens whose KV is
cached), `target` (tokens to compute before decoding: the prompt, or prompt + generated
after a recompute), `generated` (output tokens so far), `blocks` (KV blocks held, on the GPU
or in swap). Output lengths stay here: the policy learns that a request ended only after it
did (`observe` reports it as finished).

One iteration of a scenario, given the policy's decisions (checked by `decisions.py`):
1. preemptions (recompute: the KV is dropped and the request waits again with target =
   prompt + generated; swap: its blocks move to swap space), swap-ins, pauses;
2. prefill chunks (a waiting request is admitted by its first chunk);
3. every running request whose prefill is complete and that is not paused decodes one
   token; a chunk that completes a prefill also yields one token;
4. the iteration's time (costmodel.py) advances the scenario's clock; every token produced
   is stamped with the new clock; a request that reached its output length is done and
   frees its blocks.
An iteration with nothing to run waits until the next arrival or IDLE_S, whichever is
first. A scenario ends when every request is done or at its horizon (DRAIN_S after the last
arrival); requests not done by then miss their SLO.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from adrs.evaluators.llm_serve.costmodel import BLOCK_TOKENS, CostModel, blocks_for
from adrs.evaluators.llm_serve.decisions import (
    PAUSE,
    PREEMPT_RECOMPUTE,
    PREEMPT_SWAP,
    SWAP_IN,
    Batch,
    PolicyError,
    check_batch,
)
from adrs.evaluators.llm_serve.workloads import Workload

FUTURE, WAITING, RUNNING, SWAPPED, DONE = range(5)
IDLE_S = 0.05
DRAIN_S = 120.0
STEP = struct.Struct("<I")
# id, arrivals, finished, free blocks, free swap, decode seqs, their new blocks, clock, and
# the context tokens the decodes read (harness.py unpacks the same layouts)
SCENARIO = struct.Struct("<HIIIIIIdQ")
ARRIVAL = struct.Struct("<IdI")  # request id, arrival time, prompt tokens


@dataclass(frozen=True)
class Scenario:
    """A workload and its SLOs: TTFT <= ttft_s + ttft_per_token_s x prompt, and the
    request's P99 time between tokens <= tbt_s."""

    name: str
    group: str  # the dataset and arrival kind ("chat/poisson")
    load: str  # "low", "mid", "high" (or "trace")
    workload: Workload
    ttft_s: float
    ttft_per_token_s: float
    tbt_s: float


@dataclass(frozen=True)
class Outcome:
    """What one scenario's simulation recorded, for the score (metrics.py)."""

    scenario: Scenario
    first_token: np.ndarray  # per request, NaN if none
    token_times: tuple[np.ndarray, np.ndarray]  # (request, time) of every output token
    done: np.ndarray  # per request
    preemptions: int
    end_s: float
    kv_used_block_s: float
    iterations: int


class Simulation:
    """All scenarios of one evaluation. `observe` builds the step's message for the
    policies and says which scenarios are asked; `decide` checks and applies their
    reply (a PolicyError for a decision the rules forbid)."""

    def __init__(self, scenarios: Sequence[Scenario], model: CostModel) -> None:
        self.scenarios = list(scenarios)
        self.model = model
        sizes = [s.workload.size for s in scenarios]
        self.base = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.scen = np.repeat(np.arange(len(sizes)), sizes)
        self.arrival = np.concatenate([s.workload.arrivals for s in scenarios])
        self.prompt = np.concatenate([s.workload.prompts for s in scenarios]).astype(np.int64)
        self.output = np.concatenate([s.workload.outputs for s in scenarios]).astype(np.int64)
        total = int(self.base[-1])
        self.state = np.zeros(total, np.int64)
        self.computed = np.zeros(total, np.int64)
        self.target = self.prompt.copy()
        self.generated = np.zeros(total, np.int64)
        self.blocks = np.zeros(total, np.int64)
        self.first_token = np.full(total, np.nan)
        self.preempted = np.zeros(total, np.int64)
        count = len(scenarios)
        self.clock = np.zeros(count)
        self.horizon = np.array([s.workload.arrivals[-1] + DRAIN_S for s in scenarios])
        self.delivered = np.zeros(count, np.int64)
        self.finished = np.zeros(count, np.int64)
        self.free_gpu = np.full(count, model.gpu_blocks, np.int64)
        self.free_swap = np.full(count, model.swap_blocks, np.int64)
        self.running = np.ones(count, bool)
        self.iterations = np.zeros(count, np.int64)
        self.kv_block_s = np.zeros(count)
        self.news: list[list[int]] = [[] for _ in range(count)]  # rids done, to report
        self.tokens: list[tuple[np.ndarray, np.ndarray]] = []

    # ------------------------------------------------------------------------ observe
    def _deliver(self, s: int) -> tuple[int, int]:
        """Arrivals up to the clock become waiting; the range of their global indices."""
        lo, hi = int(self.base[s]), int(self.base[s + 1])
        start = lo + int(self.delivered[s])
        end = lo + int(np.searchsorted(self.arrival[lo:hi], self.clock[s], "right"))
        if end > start:
            self.state[start:end] = WAITING
            self.delivered[s] = end - lo
        return start, end

    def _ready(self, s: int) -> tuple[int, int] | None:
        """Deliver arrivals (skipping idle time to the next one); None if it has ended."""
        if self.clock[s] > self.horizon[s]:
            return None
        start, end = self._deliver(s)
        n = int(self.base[s + 1] - self.base[s])
        if self.delivered[s] - self.finished[s] > 0:
            return start, end
        if self.delivered[s] == n:
            return None
        self.clock[s] = self.arrival[self.base[s] + self.delivered[s]]
        return self._deliver(s)

    def observe(self, step: int) -> tuple[list[int], bytes]:
        """The scenarios asked this step and the message for their policies: the step,
        then per scenario its record, its new arrivals and the ids of requests done."""
        asked: list[int] = []
        parts = [STEP.pack(step)]
        seqs, blocks, ctx = self._decode_totals()
        for s in np.flatnonzero(self.running).tolist():
            span = self._ready(s)
            if span is None:
                self.running[s] = False
                continue
            asked.append(s)
            news = self.news[s]
            lo = int(self.base[s])
            parts.append(SCENARIO.pack(s, span[1] - span[0], len(news), int(self.free_gpu[s]),
                                       int(self.free_swap[s]), seqs[s], blocks[s],
                                       float(self.clock[s]), ctx[s]))
            parts.extend(ARRIVAL.pack(g - lo, float(self.arrival[g]), int(self.prompt[g]))
                         for g in range(*span))
            parts.append(struct.pack(f"<{len(news)}I", *news))
            self.news[s] = []
        return asked, b"".join(parts)

    def _decode_totals(self) -> tuple[list[int], list[int], list[int]]:
        """Per scenario: the requests ready to decode, the new blocks their next token
        needs, and the context tokens they read."""
        count = len(self.scenarios)
        ready = np.flatnonzero((self.state == RUNNING) & (self.computed >= self.target))
        scen, context = self.scen[ready], self.computed[ready]
        edge = scen[context % BLOCK_TOKENS == 0]
        return (np.bincount(scen, minlength=count).tolist(),
                np.bincount(edge, minlength=count).tolist(),
                np.bincount(scen, context, count).astype(np.int64).tolist())

    # ------------------------------------------------------------------------- decide
    def decide(self, asked: Sequence[int], batches: Sequence[Batch]) -> None:
        """Check every asked scenario's batch, then run one iteration of each."""
        pf_g: list[int] = []
        pf_c: list[int] = []
        moved = np.zeros(len(self.scenarios), np.int64)
        paused: list[int] = []
        for s, batch in zip(asked, batches, strict=True):
            check_batch(self, s, batch)
            lo = int(self.base[s])
            for rid, code in batch.actions:
                moved[s] += self._act(s, lo + rid, code, paused)
            for rid, tokens in batch.prefill:
                pf_g.append(lo + rid)
                pf_c.append(tokens)
        self._iterate(np.asarray(asked, np.int64), np.asarray(pf_g, np.int64),
                      np.asarray(pf_c, np.int64), moved, np.asarray(paused, np.int64))

    def _act(self, s: int, g: int, code: int, paused: list[int]) -> int:
        """Apply one action; the blocks it moves over PCIe."""
        held = int(self.blocks[g])
        if code == PAUSE:
            paused.append(g)
            return 0
        if code == SWAP_IN:
            self.state[g] = RUNNING
            self.free_swap[s] += held
            self.free_gpu[s] -= held
            return held
        self.free_gpu[s] += held
        self.preempted[g] += 1
        if code == PREEMPT_SWAP:
            self.state[g] = SWAPPED
            self.free_swap[s] -= held
            return held
        assert code == PREEMPT_RECOMPUTE
        self.state[g] = WAITING
        self.blocks[g] = self.computed[g] = 0
        self.target[g] = self.prompt[g] + self.generated[g]
        return 0

    def decoding(self, paused: np.ndarray) -> np.ndarray:
        """Global indices of the requests that decode this iteration."""
        mask = (self.state == RUNNING) & (self.computed >= self.target)
        mask[paused] = False
        return np.flatnonzero(mask)

    def _iterate(self, asked: np.ndarray, pf_g: np.ndarray, pf_c: np.ndarray,
                 moved: np.ndarray, paused: np.ndarray) -> None:
        count = len(self.scenarios)
        dec = self.decoding(paused)
        dec_s = self.scen[dec]
        k = self.computed[pf_g]
        pf_s = self.scen[pf_g]
        new_pf = blocks_for(k + pf_c) - self.blocks[pf_g]
        new_dec = blocks_for(self.computed[dec] + 1) - self.blocks[dec]
        need = (np.bincount(pf_s, new_pf, count) + np.bincount(dec_s, new_dec, count))
        short = np.flatnonzero(need > self.free_gpu)
        if short.size:
            raise PolicyError(self._short(int(short[0]), int(need[short[0]]), dec_s))
        tokens = np.bincount(pf_s, pf_c, count) + np.bincount(dec_s, minlength=count)
        too_many = np.flatnonzero(tokens > self.model.max_batch_tokens)
        if too_many.size:
            s = int(too_many[0])
            raise PolicyError(f"{self._where(s)}: the batch holds {int(tokens[s])} tokens "
                              f"(prefill tokens + decodes); the limit is "
                              f"{self.model.max_batch_tokens}")
        seqs = np.bincount(pf_s, minlength=count) + np.bincount(dec_s, minlength=count)
        pairs = np.bincount(pf_s, pf_c * (k + pf_c / 2), count)
        kv = np.bincount(pf_s, k, count) + np.bincount(dec_s, self.computed[dec], count)
        dt = self.model.iteration_many(tokens, seqs, pairs, kv, moved)
        self._idle(asked, dt, seqs + moved)
        self.free_gpu -= need.astype(np.int64)
        self._advance(pf_g, pf_c, dec, asked, dt)

    def _idle(self, asked: np.ndarray, dt: np.ndarray, work: np.ndarray) -> None:
        """An empty iteration waits for the next arrival, at most IDLE_S."""
        for s in asked[work[asked] == 0].tolist():
            nxt = int(self.base[s] + self.delivered[s])
            wait = IDLE_S
            if nxt < self.base[s + 1]:
                wait = min(wait, float(self.arrival[nxt] - self.clock[s]))
            dt[s] = max(wait, 1e-6)

    def _advance(self, pf_g: np.ndarray, pf_c: np.ndarray, dec: np.ndarray,
                 asked: np.ndarray, dt: np.ndarray) -> None:
        used = self.model.gpu_blocks - self.free_gpu[asked]
        self.kv_block_s[asked] += used * dt[asked]
        self.iterations[asked] += 1
        self.clock[asked] += dt[asked]
        self.state[pf_g] = RUNNING
        self.computed[pf_g] += pf_c
        self.blocks[pf_g] = blocks_for(self.computed[pf_g])
        self.computed[dec] += 1
        self.blocks[dec] = blocks_for(self.computed[dec])
        full = pf_g[self.computed[pf_g] >= self.target[pf_g]]
        produced = np.concatenate([dec, full])
        self.generated[produced] += 1
        now = self.clock[self.scen[produced]]
        first = produced[np.isnan(self.first_token[produced])]
        self.first_token[first] = self.clock[self.scen[first]]
        self.tokens.append((produced, now))
        self._finish(produced[self.generated[produced] >= self.output[produced]])

    def _finish(self, ended: np.ndarray) -> None:
        if not ended.size:
            return
        self.state[ended] = DONE
        scen = self.scen[ended]
        self.free_gpu += np.bincount(scen, self.blocks[ended],
                                     len(self.scenarios)).astype(np.int64)
        self.blocks[ended] = 0
        self.finished += np.bincount(scen, minlength=len(self.scenarios))
        for g, s in zip(ended.tolist(), scen.tolist(), strict=True):
            self.news[s].append(g - int(self.base[s]))

    # ------------------------------------------------------------------------ reports
    def _where(self, s: int) -> str:
        return f"scenario {self.scenarios[s].name} at t={self.clock[s]:.3f} s"

    def _short(self, s: int, need: int, dec_s: np.ndarray) -> str:
        decodes = int((dec_s == s).sum())
        return (f"{self._where(s)}: the batch needs {need} new KV blocks ({decodes} decodes "
                f"included, {BLOCK_TOKENS} tokens per block) but only {int(self.free_gpu[s])}"
                " are free: preempt running requests or prefill fewer tokens")

    def outcomes(self) -> list[Outcome]:
        req = np.concatenate([t[0] for t in self.tokens]) if self.tokens else np.zeros(0, int)
        times = np.concatenate([t[1] for t in self.tokens]) if self.tokens else np.zeros(0)
        out = []
        for s, scenario in enumerate(self.scenarios):
            lo, hi = int(self.base[s]), int(self.base[s + 1])
            mine = (req >= lo) & (req < hi)
            out.append(Outcome(scenario, self.first_token[lo:hi].copy(),
                               (req[mine] - lo, times[mine]), self.state[lo:hi] == DONE,
                               int(self.preempted[lo:hi].sum()), float(self.clock[s]),
                               float(self.kv_block_s[s]), int(self.iterations[s])))
        return out

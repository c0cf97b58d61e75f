"""Assembling the LLM proposer of a run from its configuration.

The client stack, outermost first: budget guard (when `stop.budget_usd` is set), recorder
(when `llm.record` is set), then the source: an ensemble of model clients (the openai
client for `openai/...` models, litellm for the others: `model_client`), the manual
client, or a replay of a recording. `ManagedMutator` adds the two optional hooks the
controller calls: `observe(record, status)` for every applied record (live or replayed on
resume), which feeds the adaptive ensemble and the budget, and `spent_usd`; and `close()`,
which the session calls once the run ends (closes the recording; a replay says on stderr
how many prompts differed from the recording in figures only).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from adrs.config.llm import ModelConfig, mode_problem
from adrs.config.run_config import RunConfig
from adrs.engine.archive import AddStatus
from adrs.engine.mutator import Mutator, OfflineMutator, Proposal, ProposalContext
from adrs.errors import UserError
from adrs.llm.budget import BudgetGuard
from adrs.llm.client import CallSettings, Halt, LiteLLMClient
from adrs.llm.ensemble import Arm, Ensemble
from adrs.llm.manual import MANUAL_DIR, ManualClient
from adrs.llm.mutator import LLMClient, LLMMutator, LLMReply, LLMRequest
from adrs.llm.openai_client import (
    OpenAIClient,
    openai_compatible,
    openai_key_status,
)
from adrs.llm.preload import preload
from adrs.llm.provider import import_litellm, key_status
from adrs.llm.replay import RecordingClient, ReplayClient
from adrs.store.database import CandidateRecord

Observe = Callable[[CandidateRecord, AddStatus | None], None]
Close = Callable[[], None]


class ManagedMutator:
    """An LLMMutator plus the state that learns from stored records (ensemble, budget)."""

    def __init__(self, mutator: LLMMutator, observers: list[Observe],
                 guard: BudgetGuard | None, closers: tuple[Close, ...] = ()) -> None:
        self._mutator, self._observers, self._guard = mutator, observers, guard
        self._closers = closers
        self.description = mutator.description

    async def propose(self, ctx: ProposalContext) -> Proposal:
        return await self._mutator.propose(ctx)

    def observe(self, record: CandidateRecord, status: AddStatus | None) -> None:
        for observe in self._observers:
            observe(record, status)

    def close(self) -> None:
        """End of the run: the recording is closed, a replay reports its drift."""
        for close in self._closers:
            close()

    @property
    def spent_usd(self) -> float:
        """Dollars of every completed call, stored or not (0 without a budget)."""
        return 0.0 if self._guard is None else self._guard.spent_usd


def build_mutator(config: RunConfig, run_dir: Path) -> Mutator:
    """The proposer `config.llm` asks for; the offline mutator when mode is 'offline'."""
    llm = config.llm
    if llm.mode == "offline":
        return OfflineMutator()
    problem = mode_problem(llm)
    if problem is not None:
        raise UserError(problem)
    observers: list[Observe] = []
    source, description = _source(config, run_dir, observers)
    closers: list[Close] = [source.close] if isinstance(source, ReplayClient) else []
    client: LLMClient = CallSlots(source, llm.proposals_in_flight)
    if llm.record is not None:
        recorder = RecordingClient(client, Path(llm.record))
        client = recorder
        closers.append(recorder.close)
        description += f"; recording exchanges to {llm.record}"
    guard = None
    if config.stop.budget_usd is not None:
        guard = BudgetGuard(client, config.stop.budget_usd)
        client = guard
        observers.append(guard.observe)
        description += f"; budget ${config.stop.budget_usd:g}"
    mutator = LLMMutator(client, llm, description=description)
    return ManagedMutator(mutator, observers, guard, tuple(closers))


class CallSlots:
    """An LLMClient that lets at most `slots` calls through at once (`proposals_in_flight`).

    The controller keeps proposals plus evaluations in flight, so more candidates may be
    proposing than there are slots: each renders its prompt before it waits here, and the
    moment a call returns the next one is sent (prompt rendering is off the critical path).
    """

    def __init__(self, inner: LLMClient, slots: int) -> None:
        self._inner, self._slots = inner, asyncio.Semaphore(slots)

    async def complete(self, request: LLMRequest) -> LLMReply:
        async with self._slots:
            return await self._inner.complete(request)


def model_client(model: ModelConfig, settings: CallSettings, halt: Halt) -> LLMClient:
    """The client of one model: the openai client for `openai/...` models, litellm for
    every other provider. Checks the key first (a missing key stops the run before the
    first call, as `adrs doctor` says) and starts importing the library meanwhile."""
    if openai_compatible(model):
        openai_key_status(model)
        client = OpenAIClient(model, settings, halt)
        client.prepare()  # imports httpx and builds its client on a thread
        return client
    preload("litellm", import_litellm)
    key_status(model)
    return LiteLLMClient(model, settings, halt)


def _source(config: RunConfig, run_dir: Path,
            observers: list[Observe]) -> tuple[LLMClient, str]:
    llm = config.llm
    if llm.mode == "manual":
        folder = run_dir / MANUAL_DIR
        return ManualClient(folder, llm.manual_poll_s), (
            f"manual mode: answer each {folder}/<candidate>-<attempt>.prompt.md with a "
            "<candidate>-<attempt>.response.md next to it")
    if llm.mode == "replay":
        assert llm.replay is not None  # checked by the config
        return ReplayClient(Path(llm.replay)), f"replaying LLM exchanges from {llm.replay}"
    settings = CallSettings(llm.timeout_s, llm.max_retries, llm.retry_backoff_s)
    halt = Halt()  # one final failure and no model gets another request
    arms = [Arm(m.name, m.weight, model_client(m, settings, halt)) for m in llm.models]
    ensemble = Ensemble(arms, mode=llm.ensemble, seed=config.seed,
                        depth=config.pipeline_depth, deterministic=config.deterministic)
    observers.append(ensemble.observe)
    names = ", ".join(f"{m.name} (weight {m.weight:g})" for m in llm.models)
    return ensemble, (f"LLM {llm.ensemble} ensemble of {names}; "
                      f"{llm.proposals_in_flight} proposals in flight")

"""The LLM seam: a client protocol, the mutator that prompts it, and a scripted client.

The mutator chooses the edit kind (diff, full rewrite or crossover) with the candidate's own
random generator, renders the prompt, asks the client, applies the edit, and sends an edit
that cannot be applied back to the LLM with the error, for a bounded number of repairs.
Every attempt is counted and its usage summed.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from adrs.code.edits import apply_edit
from adrs.code.syntax import parse
from adrs.config.run_config import LLMConfig
from adrs.engine.mutator import Proposal, ProposalContext
from adrs.engine.prompts import PromptRenderer
from adrs.errors import EditError
from adrs.types import LLMUsage

PromptKind = Literal["diff", "rewrite", "crossover"]


@dataclass(frozen=True)
class Message:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class LLMRequest:
    """One chat completion request. `candidate_id` and `attempt` identify it for replay;
    `sampled_after` is the candidate's sampling point (every lower id was applied), when
    known: what a model choice may depend on without depending on timing."""

    messages: tuple[Message, ...]
    candidate_id: int
    attempt: int
    sampled_after: int | None = None


@dataclass(frozen=True)
class LLMReply:
    text: str
    usage: LLMUsage = field(default_factory=LLMUsage)


class LLMClient(Protocol):
    """Turns a request into a reply.

    Raises for faults of the system only (an unreachable endpoint after retries, a bad key);
    a reply that is not a usable edit is returned as is and judged by the mutator.
    """

    async def complete(self, request: LLMRequest) -> LLMReply: ...


class ScriptedClient:
    """A client whose replies come from a function of the request: for tests and benchmarks.

    `history` keeps every request in the order received.
    """

    def __init__(self, script: Callable[[LLMRequest], str], model: str = "scripted") -> None:
        self._script, self._model = script, model
        self.history: list[LLMRequest] = []

    async def complete(self, request: LLMRequest) -> LLMReply:
        self.history.append(request)
        text = self._script(request)
        chars = sum(len(m.content) for m in request.messages)
        return LLMReply(text, LLMUsage(model=self._model, prompt_tokens=chars // 4,
                                       completion_tokens=len(text) // 4, calls=1))


class LLMMutator:
    """A Mutator that proposes children by prompting an LLM client."""

    def __init__(self, client: LLMClient, config: LLMConfig,
                 renderer: PromptRenderer | None = None, description: str = "LLM") -> None:
        self._client, self._config = client, config
        self._renderer = renderer or PromptRenderer()
        self.description = description

    def choose_kind(self, ctx: ProposalContext) -> PromptKind:
        # Without a mate the crossover share goes to diff and rewrite in their own ratio.
        full = self._config.crossover_probability
        cross = full if ctx.mate is not None else 0.0
        draw = ctx.rng.random() * (1.0 - full + cross)
        if draw < cross:
            return "crossover"
        if draw < cross + self._config.diff_probability:
            return "diff"
        return "rewrite"

    async def propose(self, ctx: ProposalContext) -> Proposal:
        kind = self.choose_kind(ctx)
        prompt = self._renderer.render(kind, ctx)
        messages: tuple[Message, ...] = (Message("system", prompt.system),
                                         Message("user", prompt.user))
        usage, error = LLMUsage(), ""
        for attempt in range(1 + self._config.repair_attempts):
            try:
                reply = await self._client.complete(LLMRequest(
                    messages, ctx.candidate_id, attempt, ctx.sampled_after))
            except CallRefused as exc:  # e.g. the budget is spent: keep what was spent
                raise ProposalError(str(exc), usage, attempt) from None
            usage = usage + reply.usage
            try:
                applied = apply_edit(ctx.parent.code, reply.text)
                _check_syntax(applied.code)
            except EditError as exc:
                error = str(exc)
                messages = (*messages, Message("assistant", reply.text),
                            Message("user", self._renderer.render_repair(error)))
                continue
            return Proposal(code=applied.code, edit_kind=kind, prompt=_transcript(messages),
                            response=reply.text, usage=usage, attempts=attempt + 1,
                            notes=applied.notes)
        raise ProposalError(error, usage, 1 + self._config.repair_attempts)


class CallRefused(EditError):
    """A client declined to make a call (for example: the LLM budget is spent). The
    proposal fails, keeping the usage of its earlier attempts; the run goes on or stops."""


class ProposalError(EditError):
    """No applicable edit after every repair attempt; carries what the attempts cost."""

    def __init__(self, message: str, usage: LLMUsage, attempts: int) -> None:
        super().__init__(f"no applicable edit after {attempts} attempts; last error: {message}")
        self.usage, self.attempts = usage, attempts


def _check_syntax(code: str) -> None:
    """Reject code that does not compile before it costs an evaluation; the LLM repairs it."""
    tree = parse(code)  # parsed once for every reader of the new program (syntax.py)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(code if tree is None else tree, "<candidate>", "exec")
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None)
        where = f" at line {line}" if line else ""
        raise EditError(f"the edited program does not compile{where}: "
                        f"{getattr(exc, 'msg', exc)}; return valid Python") from None


def _transcript(messages: Sequence[Message]) -> str:
    return "\n\n".join(f"[{m.role}]\n{m.content}" for m in messages)

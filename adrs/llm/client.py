"""A client for one model through litellm: timeouts, retries with backoff, usage and cost.

`RetryingClient` is the call loop every model client shares; `LiteLLMClient` sends through
litellm (any provider), adrs/llm/openai_client.py over plain httpx (`openai/` models:
OpenAI-compatible endpoints, a quarter of litellm's CPU per call). litellm is imported on the first
call only (it costs seconds and ~160 MB), in the process that calls the LLM; `setup` starts
that import in the background as soon as the run's proposer is built. Retryable failures
(429, 408, 409, 5xx, timeouts, dropped connections) are retried with exponential backoff;
a final one (a bad key, an unknown model, missing credentials, a malformed request:
adrs/llm/failures.py) raises `LLMRejected` at once: a
UserError, so the run stops with one line and exit code 2. The clients of one run share a
`Halt`: once a call failed for good, no client sends another request (calls in flight
finish). The key is read from the environment for every call, never stored by adrs (the
library's connection holds it), and removed from every error message.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from adrs.config.llm import ModelConfig
from adrs.errors import UserError
from adrs.llm.failures import describe_failure, retryable
from adrs.llm.mutator import LLMReply, LLMRequest, Message
from adrs.llm.prices import Prices, litellm_prices
from adrs.llm.provider import MissingKey, import_litellm, read_key
from adrs.types import LLMUsage

__all__ = ["CallSettings", "Halt", "LLMRejected", "LLMUnavailable", "LiteLLMClient",
           "MissingKey", "RetryingClient", "import_litellm", "read_key", "to_chat"]

MAX_BACKOFF_S = 30.0


class LLMRejected(UserError):
    """The endpoint refused the request for a reason retrying cannot fix."""


class LLMUnavailable(UserError):
    """The endpoint kept failing with retryable errors until the retries ran out."""


class Halt:
    """Shared by the clients of one run: the first call that fails for good stops the
    run, so from then on no client sends a request (each raises LLMRejected at once)."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def trip(self, reason: str) -> None:
        self.reason = self.reason or reason

    def check(self) -> None:
        if self.reason is not None:
            raise LLMRejected(f"not sent, the run is stopping: {self.reason}")


@dataclass(frozen=True)
class CallSettings:
    """How calls are made, from the `llm` section of the run configuration."""

    timeout_s: float = 120.0
    max_retries: int = 4
    retry_backoff_s: float = 1.0


def to_chat(messages: Sequence[Message]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


class RetryingClient:
    """The call loop of an LLMClient for one configured model: the key read for every
    request, retries with backoff, a final failure trips the run's `Halt`. Subclasses send
    one request (`_send`), raising the library's exception on failure."""

    def __init__(self, model: ModelConfig, settings: CallSettings,
                 halt: Halt | None = None) -> None:
        self.model, self._settings = model, settings
        self._halt = halt or Halt()

    async def complete(self, request: LLMRequest) -> LLMReply:
        try:
            return await self._complete(request)
        except UserError as exc:  # final for this run: no client sends another request
            self._halt.trip(str(exc))
            raise

    async def _complete(self, request: LLMRequest) -> LLMReply:
        attempt = 0
        while True:
            self._halt.check()  # before every request, retries included
            key = read_key(self.model)
            try:
                return await self._send(request, key)
            except UserError:
                raise
            except Exception as exc:
                if not retryable(exc):
                    raise LLMRejected(describe_failure(self.model, exc, key, retried=0)) \
                        from None
                if attempt >= self._settings.max_retries:
                    raise LLMUnavailable(describe_failure(self.model, exc, key,
                                                          retried=attempt)) from None
                await asyncio.sleep(backoff(self._settings.retry_backoff_s, attempt))
                attempt += 1

    async def _send(self, request: LLMRequest, key: str | None) -> LLMReply:
        raise NotImplementedError

    def _usage(self, response: Any, cost: Callable[[int, int], float]) -> LLMReply:
        """The reply's text and usage from an OpenAI-shaped response."""
        choices = getattr(response, "choices", None) or []
        text = (choices[0].message.content or "") if choices else ""
        usage = getattr(response, "usage", None)
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion = int(getattr(usage, "completion_tokens", 0) or 0)
        return LLMReply(text, LLMUsage(model=self.model.name, prompt_tokens=prompt,
                                       completion_tokens=completion,
                                       cost_usd=cost(prompt, completion), calls=1))


class LiteLLMClient(RetryingClient):
    """An LLMClient for one configured model, through litellm (any provider).

    The model's prices are looked up once (configured, else litellm's price map) and
    every call's cost computed from its token counts, instead of litellm's per-call cost
    lookup."""

    def __init__(self, model: ModelConfig, settings: CallSettings,
                 halt: Halt | None = None) -> None:
        super().__init__(model, settings, halt)
        self._prices: Prices | None = None

    async def _send(self, request: LLMRequest, key: str | None) -> LLMReply:
        litellm = import_litellm()
        response = await litellm.acompletion(**self._arguments(request, key))
        if self._prices is None:
            self._prices = litellm_prices(litellm, self.model)
        return self._usage(response, self._prices.cost)

    def _arguments(self, request: LLMRequest, key: str | None) -> dict[str, Any]:
        m = self.model
        args: dict[str, Any] = {
            "model": m.name, "messages": to_chat(request.messages),
            "temperature": m.temperature, "max_tokens": m.max_tokens,
            # Our loop is the only retry loop: litellm's and the openai client's are off.
            "timeout": self._settings.timeout_s, "num_retries": 0, "max_retries": 0}
        if m.top_p is not None:
            args["top_p"] = m.top_p
        if m.api_base is not None:
            args["api_base"] = m.api_base
        if key is not None:
            args["api_key"] = key
        return args


def backoff(base_s: float, attempt: int) -> float:
    """Exponential backoff with jitter (jitter spreads retries of concurrent calls)."""
    delay: float = min(MAX_BACKOFF_S, base_s * 2.0 ** attempt)
    return delay * (0.5 + random.random() / 2)

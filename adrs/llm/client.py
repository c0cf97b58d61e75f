"""A client for one model through litellm: timeouts, retries with backoff, usage and cost.

litellm is imported on the first call only (it costs seconds and ~160 MB), in the process
that calls the LLM. Retryable failures (429, 408, 409, 5xx, timeouts, dropped connections)
are retried with exponential backoff; any other failure (a bad key, an unknown model, a
malformed request) raises `LLMRejected` at once: a UserError, so the run stops with one
line and exit code 2. The key is read from the environment for every call, never stored,
and removed from every error message.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from adrs.config.llm import ModelConfig
from adrs.errors import UserError
from adrs.llm.mutator import LLMReply, LLMRequest, Message
from adrs.types import LLMUsage

RETRYABLE_STATUS = frozenset({408, 409, 429})
MAX_BACKOFF_S = 30.0
_MESSAGE_CHARS = 200


class LLMRejected(UserError):
    """The endpoint refused the request for a reason retrying cannot fix."""


class LLMUnavailable(UserError):
    """The endpoint kept failing with retryable errors until the retries ran out."""


class MissingKey(UserError):
    """The environment variable that should hold a model's key is not set."""


@dataclass(frozen=True)
class CallSettings:
    """How calls are made, from the `llm` section of the run configuration."""

    timeout_s: float = 120.0
    max_retries: int = 4
    retry_backoff_s: float = 1.0


def import_litellm() -> ModuleType:
    """Import litellm with its bundled price map (otherwise it fetches one from the net)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    return litellm


def read_key(model: ModelConfig) -> str | None:
    """The key of `model` from its environment variable (None: litellm's own default)."""
    if model.api_key_env is None:
        return None
    key = os.environ.get(model.api_key_env)
    if not key:
        raise MissingKey(f"model '{model.name}': environment variable {model.api_key_env} "
                         "is not set: export it with the API key (or fix llm.models "
                         "api_key_env)")
    return key


def to_chat(messages: Sequence[Message]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


class LiteLLMClient:
    """An LLMClient for one configured model."""

    def __init__(self, model: ModelConfig, settings: CallSettings) -> None:
        self.model, self._settings = model, settings

    async def complete(self, request: LLMRequest) -> LLMReply:
        litellm = import_litellm()
        attempt = 0
        while True:
            key = read_key(self.model)
            try:
                response = await litellm.acompletion(**self._arguments(request, key))
            except Exception as exc:
                if not retryable(exc):
                    raise LLMRejected(describe_failure(self.model, exc, key, retried=0)) \
                        from None
                if attempt >= self._settings.max_retries:
                    raise LLMUnavailable(describe_failure(self.model, exc, key,
                                                          retried=attempt)) from None
                await asyncio.sleep(backoff(self._settings.retry_backoff_s, attempt))
                attempt += 1
                continue
            return self._reply(litellm, response)

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

    def _reply(self, litellm: ModuleType, response: Any) -> LLMReply:
        choices = getattr(response, "choices", None) or []
        text = (choices[0].message.content or "") if choices else ""
        usage = getattr(response, "usage", None)
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion = int(getattr(usage, "completion_tokens", 0) or 0)
        cost = call_cost(litellm, self.model, response, prompt, completion)
        return LLMReply(text, LLMUsage(model=self.model.name, prompt_tokens=prompt,
                                       completion_tokens=completion, cost_usd=cost, calls=1))


def call_cost(litellm: ModuleType, model: ModelConfig, response: Any, prompt: int,
              completion: int) -> float:
    """Configured prices win; else litellm's bundled price map; else 0 (unknown price)."""
    if model.price_in is not None and model.price_out is not None:
        return prompt * model.price_in + completion * model.price_out
    try:
        return float(litellm.completion_cost(completion_response=response))
    except Exception:  # litellm raises for models missing from its price map
        return 0.0


def status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def retryable(exc: BaseException) -> bool:
    """Rate limits, server errors, timeouts and dropped connections are worth a retry."""
    import openai

    if isinstance(exc, openai.APITimeoutError | openai.APIConnectionError | TimeoutError):
        return True
    status = status_of(exc)
    return status is not None and (status in RETRYABLE_STATUS or status >= 500)


def backoff(base_s: float, attempt: int) -> float:
    """Exponential backoff with jitter (jitter spreads retries of concurrent calls)."""
    delay: float = min(MAX_BACKOFF_S, base_s * 2.0 ** attempt)
    return delay * (0.5 + random.random() / 2)


def describe_failure(model: ModelConfig, exc: BaseException, key: str | None, *,
                     retried: int) -> str:
    """One line naming the model, what failed and the fix, with the key removed."""
    status = status_of(exc)
    what = f"{status} {type(exc).__name__}" if status else type(exc).__name__
    detail = " ".join(str(exc).split())
    if key:
        detail = detail.replace(key, "***")
    detail = detail[:_MESSAGE_CHARS]
    where = f" at {model.api_base}" if model.api_base else ""
    if retried:
        return (f"model '{model.name}'{where} kept failing ({what}) after {retried} retries: "
                f"{detail}; check the endpoint or raise llm.max_retries")
    fix = _fix(model, status)
    return f"model '{model.name}'{where} rejected the request ({what}): {detail}; {fix}"


def _fix(model: ModelConfig, status: int | None) -> str:
    if status in (401, 403):
        env = model.api_key_env or "the provider's key variable"
        return f"check the key in {env}"
    if status == 404:
        return "check the model name (litellm form 'provider/model') and api_base"
    return "check the model's settings in llm.models"

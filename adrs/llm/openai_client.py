"""A client for OpenAI-compatible endpoints through the openai package, without litellm.

Models named `openai/<name>` (OpenAI itself, or any OpenAI-compatible server at `api_base`)
go through `openai.AsyncOpenAI`, with its plain `post` to /chat/completions and the JSON
read here: measured on the loopback server (benchmarks/engine_overhead.py --client), a
quarter of litellm's CPU per call, and 0.6 ms less than the client's typed
`chat.completions.create`; its import takes a fraction of litellm's
(benchmarks/startup.py). Every other provider stays on litellm
(adrs/llm/client.py). Same call loop, same failures (adrs/llm/failures.py reads the
openai client's exceptions as it reads litellm's), same key policy: read from the
environment before every request; the connection's client holds it, as litellm's own
client cache does, and is remade when the key changes. The key variable of a model
without `api_key_env` is OPENAI_API_KEY, as for litellm.
"""

from __future__ import annotations

import asyncio
import os
import threading
from types import ModuleType
from typing import Any

from adrs.config.llm import ModelConfig
from adrs.llm.client import CallSettings, Halt, RetryingClient, to_chat
from adrs.llm.mutator import LLMReply, LLMRequest
from adrs.llm.prices import Prices, bundled_prices
from adrs.llm.provider import KeyStatus, MissingKey, read_key
from adrs.types import LLMUsage

PREFIX = "openai/"
COMPLETIONS = "/chat/completions"
KEY_VARIABLE = "OPENAI_API_KEY"
_lock = threading.Lock()


def openai_compatible(model: ModelConfig) -> bool:
    """Whether `model` is sent through the openai client (`openai/<name>`)."""
    return model.name.startswith(PREFIX) and len(model.name) > len(PREFIX)


def openai_key_status(model: ModelConfig) -> KeyStatus:
    """`provider.key_status` for an `openai/` model, without importing litellm."""
    if model.api_key_env is not None:
        read_key(model)
        return KeyStatus(False, f"{model.name}: key variable {model.api_key_env} is set")
    if os.environ.get(KEY_VARIABLE):
        return KeyStatus(False, f"{model.name}: provider key variables are set")
    if model.api_base is not None:
        return KeyStatus(False, f"{model.name}: {KEY_VARIABLE} not set, no api_key_env: "
                         f"calling {model.api_base} without a key (a local server may "
                         "need none)")
    raise MissingKey(f"model '{model.name}': {KEY_VARIABLE} is not set: export it with the "
                     "API key, or name the variable that holds the key in the model's "
                     "api_key_env")


def import_openai() -> ModuleType:
    import openai

    return openai


class OpenAIClient(RetryingClient):
    """An LLMClient for one `openai/<name>` model, through `openai.AsyncOpenAI`."""

    def __init__(self, model: ModelConfig, settings: CallSettings,
                 halt: Halt | None = None) -> None:
        super().__init__(model, settings, halt)
        self._name = model.name[len(PREFIX):]
        self._prices: Prices | None = None
        self._client: Any = None
        self._made_for: tuple[object, str | None] | None = None  # (event loop, key)

    async def _send(self, request: LLMRequest, key: str | None) -> LLMReply:
        client = await self._connection(key)
        m = self.model
        body: dict[str, Any] = {"model": self._name, "messages": to_chat(request.messages),
                                "temperature": m.temperature, "max_tokens": m.max_tokens}
        if m.top_p is not None:
            body["top_p"] = m.top_p
        # The client's plain POST: its typed `chat.completions.create` spends a third more
        # CPU per call converting the request and the response (measured, see module doc).
        data = await client.post(COMPLETIONS, body=body, cast_to=object,
                                 options={"timeout": self._settings.timeout_s})
        if self._prices is None:
            self._prices = bundled_prices(m)
        return self._parse(data, self._prices)

    def _parse(self, data: Any, prices: Prices) -> LLMReply:
        """The reply's text and usage from the response's JSON (absent parts: empty)."""
        choice = _first(_field(data, "choices"))
        text = _field(_field(choice, "message"), "content")
        usage = _field(data, "usage")
        prompt = _count(_field(usage, "prompt_tokens"))
        completion = _count(_field(usage, "completion_tokens"))
        return LLMReply(text if isinstance(text, str) else "", LLMUsage(
            model=self.model.name, prompt_tokens=prompt, completion_tokens=completion,
            cost_usd=prices.cost(prompt, completion), calls=1))

    async def _connection(self, key: str | None) -> Any:
        """The AsyncOpenAI client of this event loop and key (the first one imports the
        openai package off the event loop)."""
        made_for: tuple[object, str | None] = (asyncio.get_running_loop(), key)
        if self._client is None or self._made_for != made_for:
            self._client = await asyncio.to_thread(self._make, key)
            self._made_for = made_for
        return self._client

    def _make(self, key: str | None) -> Any:
        """A new AsyncOpenAI client (off the event loop: it may still import)."""
        openai = _imported()
        # Our loop is the only retry loop: the client's own retries are off.
        return openai.AsyncOpenAI(
            api_key=key or os.environ.get(KEY_VARIABLE), base_url=base_url(self.model),
            max_retries=0, timeout=self._settings.timeout_s)


def base_url(model: ModelConfig) -> str | None:
    """The endpoint: the model's `api_base`, else OPENAI_API_BASE (the variable litellm
    reads, so a setup that worked through litellm keeps working), else the openai
    library's own default (OPENAI_BASE_URL, or OpenAI itself)."""
    return model.api_base or os.environ.get("OPENAI_API_BASE") or None


def _imported() -> ModuleType:
    with _lock:
        return import_openai()


def _field(value: Any, name: str) -> Any:
    return value.get(name) if isinstance(value, dict) else None


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else None


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0

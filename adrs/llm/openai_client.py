"""A client for OpenAI-compatible endpoints over HTTP, without litellm.

Models named `openai/<name>` (OpenAI itself, or any OpenAI-compatible server at `api_base`)
are sent as one POST to `<base>/chat/completions`, with the JSON read here, through one
client kept alive per event loop (the key goes in each request's headers): adrs's own
HTTP/1.1 client for a plain-HTTP endpoint with no proxy set (adrs/llm/http1.py: a local
server imports nothing more and costs less CPU per call), else `httpx.AsyncClient`. A run
builds an httpx client ahead, on a thread (`prepare`): making one costs tens of
milliseconds (httpx's import, a TLS context with the CA bundle), which the first request
would otherwise wait for. httpx is what the openai package and
litellm use underneath; going to it directly saves the openai package's import (about
0.4 s of start-up before the first request, benchmarks/startup.py) and its typed
conversions (measured on the loopback server, benchmarks/engine_overhead.py --client: a
quarter of litellm's CPU per call). Every other provider stays on litellm
(adrs/llm/client.py). Same call loop and key policy: the key is read from the environment
before every request; the key variable of a model without `api_key_env` is
OPENAI_API_KEY, as for litellm, and, as with the openai package, a request is never sent
without a key (set any value for a server that needs none). Failures: an HTTP error
status raises `EndpointError` (its `status_code` is what adrs/llm/failures.py reads),
timeouts and dropped connections raise httpx's own errors, a reply that is not JSON is a
server fault (502). adrs's HTTP/1.1 client raises TimeoutError and OSErrors instead
(adrs/llm/failures.py reads both kinds).
"""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import Future
from types import ModuleType
from typing import Any

from adrs.config.llm import ModelConfig
from adrs.llm.client import CallSettings, Halt, RetryingClient, to_chat
from adrs.llm.http1 import Http1Client, plain_http
from adrs.llm.mutator import LLMReply, LLMRequest
from adrs.llm.prices import Prices, bundled_prices
from adrs.llm.provider import KeyStatus, MissingKey, read_key
from adrs.types import LLMUsage

PREFIX = "openai/"
COMPLETIONS = "/chat/completions"
KEY_VARIABLE = "OPENAI_API_KEY"
OPENAI_URL = "https://api.openai.com/v1"
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


def import_httpx() -> ModuleType:
    import httpx

    return httpx


class EndpointError(Exception):
    """The endpoint answered with an error status (or with something that is not JSON)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


class MissingCredentials(Exception):
    """No key to send: neither the model's key variable nor OPENAI_API_KEY is set."""


class OpenAIClient(RetryingClient):
    """An LLMClient for one `openai/<name>` model, over httpx."""

    def __init__(self, model: ModelConfig, settings: CallSettings,
                 halt: Halt | None = None) -> None:
        super().__init__(model, settings, halt)
        self._name = model.name[len(PREFIX):]
        self._prices: Prices | None = None
        self._loop: object = None  # the event loop `_client` serves
        self._client: asyncio.Future[Any] | None = None
        self._prepared: Future[Any] | None = None  # built ahead, for the first loop

    async def _send(self, request: LLMRequest, key: str | None) -> LLMReply:
        key = key or os.environ.get(KEY_VARIABLE)
        if not key:
            raise MissingCredentials(f"missing credentials: {KEY_VARIABLE} is not set")
        client = await self._connection()
        m = self.model
        body: dict[str, Any] = {"model": self._name, "messages": to_chat(request.messages),
                                "temperature": m.temperature, "max_tokens": m.max_tokens}
        if m.top_p is not None:
            body["top_p"] = m.top_p
        response = await client.post(COMPLETIONS, json=body,
                                     headers={"Authorization": f"Bearer {key}"})
        data = _json(response)
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

    def prepare(self) -> None:
        """Start building the httpx client on a daemon thread (see the module docstring);
        the endpoint is read now. Calls made meanwhile wait for it, off the event loop.
        A plain-HTTP endpoint's client is made at once: it imports nothing."""
        if self._prepared is None and self._client is None:
            future: Future[Any] = Future()
            self._prepared = future
            if plain_http(base_url(self.model)):
                _build(self._make, future)
                return
            threading.Thread(target=_build, args=(self._make, future), daemon=True,
                             name="adrs-httpx-client").start()

    async def _connection(self) -> Any:
        """The HTTP client of this event loop (adrs's own or httpx's, see `_make`): the
        prepared one for the first loop, else one built off the loop now. Calls that
        overlap share one build."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            prepared, self._prepared = self._prepared, None
            self._loop = loop
            self._client = (asyncio.wrap_future(prepared) if prepared is not None
                            else loop.run_in_executor(None, self._make))
        return await self._client

    def _make(self) -> Any:
        base = base_url(self.model).rstrip("/")
        if plain_http(base):  # no httpx to import, less CPU per call (adrs/llm/http1.py)
            return Http1Client(base, self._settings.timeout_s)
        httpx = _imported()
        # Plain HTTP never uses TLS (redirects are not followed): no CA bundle to load.
        tls = {} if base.lower().startswith("https:") else {"verify": False}
        return httpx.AsyncClient(base_url=base, timeout=self._settings.timeout_s, **tls)


def _build(make: Any, future: Future[Any]) -> None:
    try:
        future.set_result(make())
    except BaseException as exc:  # the first call raises it
        future.set_exception(exc)


def base_url(model: ModelConfig) -> str:
    """The endpoint: the model's `api_base`, else OPENAI_API_BASE (the variable litellm
    reads), else OPENAI_BASE_URL (the openai package's), else OpenAI itself."""
    return (model.api_base or os.environ.get("OPENAI_API_BASE")
            or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL)


def _json(response: Any) -> Any:
    """The response's JSON; EndpointError for an error status or a body that is not JSON."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.status_code >= 400:
        error = _field(data, "error")
        message = _field(error, "message") if isinstance(error, dict) else error
        raise EndpointError(response.status_code,
                            str(message or response.text[:500] or response.reason_phrase))
    if data is None:
        raise EndpointError(502, "the endpoint's reply is not JSON: "
                            f"{response.text[:200]!r}")
    return data


def _imported() -> ModuleType:
    with _lock:
        return import_httpx()


def _field(value: Any, name: str) -> Any:
    return value.get(name) if isinstance(value, dict) else None


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else None


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0

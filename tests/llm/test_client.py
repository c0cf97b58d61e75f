"""One model against a local server: retries and rejections (through litellm and through
the openai client alike), usage."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from typing import Any

import pytest
from openai_server import FakeOpenAI, Reply

from adrs.config.llm import ModelConfig
from adrs.llm.client import (
    CallSettings,
    Halt,
    LiteLLMClient,
    LLMRejected,
    LLMUnavailable,
    MissingKey,
    RetryingClient,
    import_litellm,
)
from adrs.llm.failures import clip, describe_failure, retryable, scrub
from adrs.llm.mutator import LLMRequest, Message
from adrs.llm.openai_client import OpenAIClient

REQUEST = LLMRequest((Message("system", "be brief"), Message("user", "say hi")), 3, 0)


# The call loop, its failures and key policy are shared: both clients face the same faults.
CLIENTS = pytest.mark.parametrize("client_class", [LiteLLMClient, OpenAIClient],
                                  ids=["litellm", "openai"])


def call(script: Any, monkeypatch: pytest.MonkeyPatch, retries: int = 3,
         key: str = "secret-key-value", client_class: type[RetryingClient] = LiteLLMClient,
         **model: Any) -> tuple[Any, FakeOpenAI]:
    monkeypatch.setenv("CLIENT_KEY", key)
    server = FakeOpenAI(script)
    with server.running():
        model.setdefault("api_key_env", "CLIENT_KEY")
        config = ModelConfig("openai/m", api_base=server.url, **model)
        client = client_class(config, CallSettings(1.0, retries, 0.01))
        try:
            return asyncio.run(client.complete(REQUEST)), server
        except Exception as exc:
            return exc, server


@CLIENTS
@pytest.mark.parametrize("fault", [Reply(429), Reply(503), Reply(502),
                                   Reply(text="late", delay_s=2.0)])
def test_retryable_faults_are_retried(fault: Reply, client_class: type[RetryingClient],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    reply, server = call(lambda b, n: fault if n == 0 else Reply(text="hi"), monkeypatch,
                         client_class=client_class)
    assert reply.text == "hi" and reply.usage.calls == 1
    assert len(server.seen) == 2


@CLIENTS
@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_other_faults_stop_at_once(status: int, client_class: type[RetryingClient],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    exc, server = call(lambda b, n: Reply(status), monkeypatch, client_class=client_class)
    assert isinstance(exc, LLMRejected) and len(server.seen) == 1
    assert "openai/m" in str(exc) and "secret-key-value" not in str(exc)


@CLIENTS
def test_retries_run_out(client_class: type[RetryingClient],
                         monkeypatch: pytest.MonkeyPatch) -> None:
    exc, server = call(lambda b, n: Reply(503), monkeypatch, retries=2,
                       client_class=client_class)
    assert isinstance(exc, LLMUnavailable) and len(server.seen) == 3
    assert "after 2 retries" in str(exc)


def test_usage_and_configured_price(monkeypatch: pytest.MonkeyPatch) -> None:
    reply, server = call(lambda b, n: Reply(text="hello there"), monkeypatch,
                         price_in=0.5, price_out=2.0)
    seen = server.ok()[0]
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (
        seen.prompt_tokens, seen.completion_tokens)
    assert reply.usage.cost_usd == seen.prompt_tokens * 0.5 + seen.completion_tokens * 2.0
    assert seen.authorization == "Bearer secret-key-value"


def test_a_missing_key_variable_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_KEY", raising=False)
    client = LiteLLMClient(ModelConfig("openai/m", api_key_env="NOPE_KEY"), CallSettings())
    with pytest.raises(MissingKey, match="NOPE_KEY is not set"):
        asyncio.run(client.complete(REQUEST))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------- final failures, fail fast


def test_missing_credentials_are_final_and_name_the_variable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """litellm reports a missing OPENAI_API_KEY as a 500: it must not be retried."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    started = time.monotonic()
    exc, server = call(lambda b, n: Reply(text="hi"), monkeypatch, retries=3,
                       api_key_env=None)
    assert isinstance(exc, LLMRejected), exc
    assert "OPENAI_API_KEY" in str(exc) and "api_key_env" in str(exc)
    assert not server.seen and time.monotonic() - started < 5.0


@pytest.mark.parametrize("make", [
    lambda ll: ll.AuthenticationError(message="bad key", llm_provider="openai", model="m"),
    lambda ll: ll.NotFoundError(message="no such model", llm_provider="openai", model="m"),
    lambda ll: ll.BadRequestError(message="LLM Provider NOT provided", llm_provider="x",
                                  model="m"),
    lambda ll: ll.InternalServerError(message="OpenAIException - Missing credentials. "
                                      "Please pass an `api_key`", llm_provider="openai",
                                      model="m"),
    lambda ll: ll.APIConnectionError(message="The api_key client option must be set",
                                     llm_provider="openai", model="m")])
def test_final_whatever_the_status_code(make: Any) -> None:
    exc = make(import_litellm())
    for status in (getattr(exc, "status_code", None), 500, 503):
        exc.status_code = status  # litellm's code does not decide
        assert not retryable(exc), (type(exc).__name__, status)


def test_transient_litellm_errors_stay_retryable() -> None:
    litellm = import_litellm()
    assert retryable(litellm.InternalServerError(message="OpenAIException - Connection "
                                                 "error.", llm_provider="openai", model="m"))
    assert retryable(litellm.RateLimitError(message="slow down", llm_provider="openai",
                                            model="m"))


def test_a_final_failure_stops_every_client_of_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once model a's key is rejected, model b neither retries nor sends anything new."""
    monkeypatch.setenv("CLIENT_KEY", "secret-key-value")

    def script(body: dict[str, Any], number: int) -> Reply:
        return Reply(401, delay_s=0.1) if body["model"] == "a" else Reply(503)

    server = FakeOpenAI(script)
    with server.running():
        halt = Halt()
        clients = [LiteLLMClient(ModelConfig(f"openai/{name}", api_base=server.url,
                                             api_key_env="CLIENT_KEY"),
                                 CallSettings(3.0, 3, 2.0), halt) for name in "ab"]

        async def both() -> list[Any]:
            return await asyncio.gather(*(c.complete(REQUEST) for c in clients),
                                        return_exceptions=True)

        first = asyncio.run(both())
        later = asyncio.run(both())
    assert all(isinstance(e, LLMRejected) for e in first + later), first + later
    assert "401" in str(first[0]) and "not sent" in str(first[1])
    # b's first request got a 503; its retry, due 1-2 s later, was never sent.
    assert sorted((s.model, s.status) for s in server.seen) == [("a", 401), ("b", 503)]


@CLIENTS
def test_an_unreachable_endpoint_says_so(client_class: type[RetryingClient],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIENT_KEY", "k" * 12)
    base = f"http://127.0.0.1:{closed_port()}/v1"
    client = client_class(ModelConfig("openai/m", api_base=base, api_key_env="CLIENT_KEY"),
                          CallSettings(2.0, 1, 0.01))
    with pytest.raises(LLMUnavailable) as info:
        asyncio.run(client.complete(REQUEST))
    message = str(info.value)
    assert f"unreachable at {base} (connection refused) after 1 retries" in message
    assert "500" not in message and "rejected" not in message


# ------------------------------------------------------------------ the key in messages

HOSTILE_KEYS = ["x", "e", "O", "AI", "-", ".", "a+b", "(x)", "Op", "on"]


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_short_keys_are_scrubbed_only_where_they_stand_alone(
        key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    exc, server = call(lambda b, n: Reply(401), monkeypatch, key=key)
    message = str(exc)
    assert server.seen[0].authorization == f"Bearer {key}"
    assert "OpenAIException" in message and "AuthenticationError" in message, message
    assert "Incorrect API key provided: ***" in message, message
    alone = rf"(?<![A-Za-z0-9_\-]){re.escape(key)}(?![A-Za-z0-9_\-])"
    assert not re.search(alone, message), message


def test_scrub() -> None:
    assert scrub("OpenAIException: key x, 'x'.", "x") == "OpenAIException: key ***, '***'."
    assert scrub("a SECRETKEY1 and xxSECRETKEY1yy", "SECRETKEY1") == "a *** and xx***yy"
    assert scrub("key sk-a b-c here", "sk-a  b-c\n") == "key *** here"  # whitespace runs
    assert scrub("nothing", "") == "nothing" and scrub("a b", " ") == "a b"
    assert scrub("1.5 and .", ".") == "1.5 and ***"


def test_messages_are_cut_at_a_word_boundary() -> None:
    words = " ".join(f"word{i}" for i in range(100))
    cut = clip(words)
    assert len(cut) <= 200 and cut.endswith("...")
    assert set(cut[:-3].split()) <= set(words.split())
    assert clip("x" * 300) == "..." and clip("short") == "short"
    line = describe_failure(ModelConfig("openai/m"), ValueError(words), None, retried=0)
    detail = line.split("(ValueError): ", 1)[1].split("...;", 1)[0]
    assert set(detail.split()) <= set(words.split()), line

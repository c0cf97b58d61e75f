"""One model through litellm against a local server: retries, rejections, usage."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from openai_server import FakeOpenAI, Reply

from adrs.config.llm import ModelConfig
from adrs.llm.client import (
    CallSettings,
    LiteLLMClient,
    LLMRejected,
    LLMUnavailable,
    MissingKey,
)
from adrs.llm.mutator import LLMRequest, Message

REQUEST = LLMRequest((Message("system", "be brief"), Message("user", "say hi")), 3, 0)


def call(script: Any, monkeypatch: pytest.MonkeyPatch, retries: int = 3,
         **model: Any) -> tuple[Any, FakeOpenAI]:
    monkeypatch.setenv("CLIENT_KEY", "secret-key-value")
    server = FakeOpenAI(script)
    with server.running():
        config = ModelConfig("openai/m", api_base=server.url, api_key_env="CLIENT_KEY",
                             **model)
        client = LiteLLMClient(config, CallSettings(1.0, retries, 0.01))
        try:
            return asyncio.run(client.complete(REQUEST)), server
        except Exception as exc:
            return exc, server


@pytest.mark.parametrize("fault", [Reply(429), Reply(503), Reply(502),
                                   Reply(text="late", delay_s=2.0)])
def test_retryable_faults_are_retried(fault: Reply, monkeypatch: pytest.MonkeyPatch) -> None:
    reply, server = call(lambda b, n: fault if n == 0 else Reply(text="hi"), monkeypatch)
    assert reply.text == "hi" and reply.usage.calls == 1
    assert len(server.seen) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_other_faults_stop_at_once(status: int, monkeypatch: pytest.MonkeyPatch) -> None:
    exc, server = call(lambda b, n: Reply(status), monkeypatch)
    assert isinstance(exc, LLMRejected) and len(server.seen) == 1
    assert "openai/m" in str(exc) and "secret-key-value" not in str(exc)


def test_retries_run_out(monkeypatch: pytest.MonkeyPatch) -> None:
    exc, server = call(lambda b, n: Reply(503), monkeypatch, retries=2)
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

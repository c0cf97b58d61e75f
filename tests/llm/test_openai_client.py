"""The openai client for `openai/...` models: same loop, failures, usage and key policy as
the litellm client, against the real loopback server, and neither litellm nor the openai
package is loaded."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from openai_server import FakeOpenAI, Reply

from adrs.config.llm import ModelConfig
from adrs.llm.client import CallSettings, Halt, LLMRejected, MissingKey
from adrs.llm.mutator import LLMRequest, Message
from adrs.llm.openai_client import OpenAIClient, openai_compatible, openai_key_status
from adrs.llm.prices import bundled_prices
from adrs.llm.setup import model_client

REQUEST = LLMRequest((Message("system", "be brief"), Message("user", "say hi")), 3, 0)


def call(script: Any, monkeypatch: pytest.MonkeyPatch, retries: int = 3,
         **model: Any) -> tuple[Any, FakeOpenAI]:
    monkeypatch.setenv("CLIENT_KEY", "secret-key-value")
    server = FakeOpenAI(script)
    with server.running():
        model.setdefault("api_key_env", "CLIENT_KEY")
        client = OpenAIClient(ModelConfig("openai/m", api_base=server.url, **model),
                              CallSettings(1.0, retries, 0.01))
        try:
            return asyncio.run(client.complete(REQUEST)), server
        except Exception as exc:
            return exc, server


def test_openai_models_get_the_openai_client_and_others_litellm() -> None:
    halt, settings = Halt(), CallSettings()
    assert openai_compatible(ModelConfig("openai/gpt-4o-mini"))
    assert not openai_compatible(ModelConfig("anthropic/claude-x"))
    client = model_client(ModelConfig("openai/m", api_base="http://127.0.0.1:9/v1"),
                          settings, halt)
    assert isinstance(client, OpenAIClient)


def test_usage_price_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    reply, server = call(lambda b, n: Reply(text="hello there"), monkeypatch,
                         price_in=0.5, price_out=2.0)
    seen = server.ok()[0]
    assert reply.text == "hello there" and seen.model == "m"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (
        seen.prompt_tokens, seen.completion_tokens)
    assert reply.usage.cost_usd == seen.prompt_tokens * 0.5 + seen.completion_tokens * 2.0
    assert seen.authorization == "Bearer secret-key-value"


def test_missing_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(MissingKey, match="OPENAI_API_KEY is not set"):
        openai_key_status(ModelConfig("openai/gpt-4o-mini"))
    assert not openai_key_status(ModelConfig("openai/m", api_base="http://h/v1")).warn
    exc, server = call(lambda b, n: Reply(text="hi"), monkeypatch, api_key_env=None)
    assert isinstance(exc, LLMRejected) and "OPENAI_API_KEY" in str(exc) and not server.seen


def test_unpriced_models_use_the_bundled_price_map() -> None:
    assert bundled_prices(ModelConfig("openai/gpt-4o-mini")).prompt > 0
    assert bundled_prices(ModelConfig("openai/no-such-model")).cost(10, 10) == 0.0


def test_litellm_is_not_loaded(tmp_path: Path) -> None:
    """A call through the openai client, and a retried failure, import neither litellm
    nor the openai package (plain httpx)."""
    code = (
        "import asyncio, sys\n"
        "from openai_server import FakeOpenAI, Reply\n"
        "from adrs.config.llm import ModelConfig\n"
        "from adrs.llm.client import CallSettings\n"
        "from adrs.llm.mutator import LLMRequest, Message\n"
        "from adrs.llm.openai_client import OpenAIClient\n"
        "s = FakeOpenAI(lambda b, n: Reply(503) if n == 0 else Reply(text='ok'))\n"
        "with s.running():\n"
        "    c = OpenAIClient(ModelConfig('openai/m', api_base=s.url, price_in=0.0,\n"
        "                     price_out=0.0), CallSettings(2.0, 2, 0.01))\n"
        "    r = asyncio.run(c.complete(LLMRequest((Message('user', 'x'),), 1, 0)))\n"
        "print(r.text, 'litellm' in sys.modules, 'openai' in sys.modules)\n")
    tests = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": str(tests), "OPENAI_API_KEY": "k"},
                         timeout=60, cwd=tmp_path)
    assert out.stdout.split() == ["ok", "False", "False"], out.stderr


def test_openai_api_base_is_read_as_litellm_reads_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model without api_base goes to OPENAI_API_BASE (litellm's variable), so moving an
    openai/ model off litellm changes no one's endpoint."""
    monkeypatch.setenv("CLIENT_KEY", "secret-key-value")
    server = FakeOpenAI(lambda b, n: Reply(text="from the variable's endpoint"))
    with server.running():
        monkeypatch.setenv("OPENAI_API_BASE", server.url)
        client = OpenAIClient(ModelConfig("openai/m", api_key_env="CLIENT_KEY"),
                              CallSettings(1.0, 0, 0.01))
        reply = asyncio.run(client.complete(REQUEST))
    assert reply.text == "from the variable's endpoint" and len(server.ok()) == 1


def counting_make(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    made: list[int] = []
    make = OpenAIClient._make

    def counted(self: OpenAIClient) -> Any:
        made.append(1)
        return make(self)

    monkeypatch.setattr(OpenAIClient, "_make", counted)
    return made


@pytest.mark.parametrize("prepared", [True, False])
def test_one_client_per_loop_and_the_key_in_each_request(
        monkeypatch: pytest.MonkeyPatch, prepared: bool) -> None:
    """Prepared ahead (as a run does) or built by the first call, one httpx client serves
    overlapping first calls and later ones; the key is read for every request."""
    made = counting_make(monkeypatch)
    monkeypatch.setenv("CLIENT_KEY", "first-key")
    server = FakeOpenAI(lambda b, n: Reply(text=f"reply {n}"))

    async def three_calls(client: OpenAIClient) -> list[str]:
        both = await asyncio.gather(client.complete(REQUEST), client.complete(REQUEST))
        monkeypatch.setenv("CLIENT_KEY", "second-key")
        return [r.text for r in both] + [(await client.complete(REQUEST)).text]

    with server.running():
        client = OpenAIClient(ModelConfig("openai/m", api_base=server.url,
                                          api_key_env="CLIENT_KEY"),
                              CallSettings(5.0, 0, 0.01))
        if prepared:
            client.prepare()
            assert client._prepared is not None
            client._prepared.result(timeout=30)  # built before any call
            assert made == [1]
        texts = asyncio.run(three_calls(client))
    assert sorted(texts) == ["reply 0", "reply 1", "reply 2"]
    assert made == [1]
    assert [seen.authorization for seen in server.ok()] == [
        "Bearer first-key", "Bearer first-key", "Bearer second-key"]


def test_a_new_event_loop_gets_its_own_client(monkeypatch: pytest.MonkeyPatch) -> None:
    made = counting_make(monkeypatch)
    monkeypatch.setenv("CLIENT_KEY", "k")
    server = FakeOpenAI(lambda b, n: Reply(text="ok"))
    with server.running():
        client = OpenAIClient(ModelConfig("openai/m", api_base=server.url,
                                          api_key_env="CLIENT_KEY"),
                              CallSettings(5.0, 0, 0.01))
        client.prepare()
        for _ in range(2):  # a client's connections belong to the loop that made them
            assert asyncio.run(client.complete(REQUEST)).text == "ok"
    assert made == [1, 1]

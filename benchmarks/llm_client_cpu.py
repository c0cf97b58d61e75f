"""CPU time per LLM call of each client path, against the loopback scripted server.

The server (benchmarks/loopback.py) runs in its own process and answers at once, so this
process's CPU time per call is the client's alone: building the request, HTTP on
127.0.0.1, reading the response, usage and cost. Paths, for an unpriced model (its cost
comes from litellm's price map):
  litellm + completion_cost  what adrs did before: litellm.acompletion, then litellm's cost
                             lookup on every response
  LiteLLMClient              adrs's litellm client: prices looked up once per model
  OpenAIClient over httpx     adrs's client for openai/... models, without litellm, as it
                             goes to an HTTPS endpoint or through a proxy (httpx)
  OpenAIClient               the same to a plain-HTTP endpoint: adrs's own HTTP/1.1
                             client (adrs/llm/http1.py)

Usage: python benchmarks/llm_client_cpu.py [--calls 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loopback import serve

from adrs.config.llm import ModelConfig
from adrs.llm.client import CallSettings, LiteLLMClient, import_litellm, to_chat
from adrs.llm.mutator import LLMRequest, Message
from adrs.llm.openai_client import OpenAIClient

PROGRAM = "WINDOW = 1\nHEADROOM = 1.0\nMARGIN = 0.0\n" + "# padding\n" * 60
REQUEST = LLMRequest((Message("system", "You improve programs. " * 40),
                      Message("user", f"## Current program\n\n```python\n{PROGRAM}```\n")),
                     1, 0)


def paths(url: str) -> dict[str, Callable[[], Awaitable[object]]]:
    model = ModelConfig("openai/gpt-4o-mini", api_base=url, api_key_env="ADRS_BENCH_KEY")
    settings = CallSettings(timeout_s=30.0, max_retries=0)
    litellm_client, openai_client = LiteLLMClient(model, settings), OpenAIClient(model,
                                                                                 settings)
    over_httpx = _OverHttpx(model, settings)
    litellm = import_litellm()

    async def before() -> object:
        response = await litellm.acompletion(
            model=model.name, messages=to_chat(REQUEST.messages), api_base=url,
            api_key="sk-bench", timeout=30.0, num_retries=0, max_retries=0)
        return litellm.completion_cost(completion_response=response)

    return {"litellm + completion_cost": before,
            "LiteLLMClient": lambda: litellm_client.complete(REQUEST),
            "OpenAIClient over httpx": lambda: over_httpx.complete(REQUEST),
            "OpenAIClient": lambda: openai_client.complete(REQUEST)}


class _OverHttpx(OpenAIClient):
    """OpenAIClient with httpx's client for a plain-HTTP endpoint, as for HTTPS."""

    def _make(self) -> object:
        import httpx

        return httpx.AsyncClient(base_url=self.model.api_base or "",
                                 timeout=self._settings.timeout_s, verify=False)


async def cpu_per_call(call: Callable[[], Awaitable[object]], calls: int) -> float:
    for _ in range(10):  # warm: imports, connections, price lookups
        await call()
    start = time.process_time()
    for _ in range(calls):
        await call()
    return (time.process_time() - start) / calls * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    os.environ.setdefault("ADRS_BENCH_KEY", "sk-bench")
    with serve() as server:
        for name, call in paths(server.url).items():
            ms = asyncio.run(cpu_per_call(call, args.calls))
            print(f"{name:<26} {ms:6.3f} ms CPU per call", flush=True)


if __name__ == "__main__":
    main()

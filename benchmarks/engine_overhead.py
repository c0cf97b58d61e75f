"""Engine overhead per candidate: everything except the LLM call and the evaluation.

The LLM is a scripted client that answers instantly with a full rewrite (so prompt
rendering, edit application and hashing all run), and the evaluation backend scores each
program instantly in-process. What remains is the engine: selection, prompts, edits,
dedup, the archive, the SQLite store, the event log and the asyncio pipeline.

With `--client litellm` or `--client openai`, the LLM is the real client of that name
(adrs/llm/client.py, adrs/llm/openai_client.py) calling the scripted server of
benchmarks/loopback.py on 127.0.0.1, in its own process, which answers at once: the CPU
time of this process per candidate is then the engine plus the LLM client (the target is
5 ms), and the two clients can be compared.

Usage: python benchmarks/engine_overhead.py [--candidates 10000] [--window 1000]
           [--client scripted|litellm|openai]
Prints the time per candidate over the first and the last window, their ratio, and the
CPU time of this process per candidate.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import math
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path

from adrs.config.llm import ModelConfig
from adrs.config.run_config import RunConfig, dump, resolve
from adrs.engine.archive import Archive
from adrs.engine.controller import Controller
from adrs.evaluation.runner import EvalJob
from adrs.llm.client import CallSettings, LiteLLMClient
from adrs.llm.mutator import LLMClient, LLMMutator, LLMRequest, Message, ScriptedClient
from adrs.llm.openai_client import OpenAIClient
from adrs.problem.spec import load_problem
from adrs.store.database import EVENTS_NAME, RunStore
from adrs.store.events import CandidateEvaluated, DuplicateSkipped, Event, EventLog, ProposalFailed
from adrs.types import EvalResult

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loopback import serve

CONSTANT = re.compile(r"^MARGIN = .*$", re.MULTILINE)


class InstantBackend:
    """Scores a program at once from its constants: a trivial evaluator, no sandbox."""

    workers = 4

    def submit(self, job: EvalJob) -> concurrent.futures.Future[EvalResult]:
        future: concurrent.futures.Future[EvalResult] = concurrent.futures.Future()
        margin = float(CONSTANT.findall(job.source)[0].split("=")[1])
        future.set_result(EvalResult(True, -abs(margin - 7.0), {"margin": margin}))
        return future

    def close(self) -> None:
        pass


def script(initial: str) -> ScriptedClient:
    def reply(request: LLMRequest) -> str:
        value = random.Random(request.candidate_id).uniform(0.0, 20.0)
        return "```python\n" + CONSTANT.sub(f"MARGIN = {value!r}", initial) + "```\n"
    return ScriptedClient(reply)


class Clock:
    """Timestamps every completed candidate."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def __call__(self, event: Event) -> None:
        if isinstance(event, CandidateEvaluated | DuplicateSkipped | ProposalFailed):
            self.stamps.append(time.perf_counter())


def client(kind: str, initial: str, url: str | None) -> LLMClient:
    if kind == "scripted" or url is None:
        return script(initial)
    model = ModelConfig("openai/toy", api_base=url, api_key_env="ADRS_BENCH_KEY",
                        price_in=0.0, price_out=0.0)
    settings = CallSettings(timeout_s=30.0, max_retries=0)
    if kind == "litellm":
        return LiteLLMClient(model, settings)
    return OpenAIClient(model, settings)


def run(candidates: int, run_dir: Path, kind: str = "scripted",
        url: str | None = None) -> list[float]:
    problem = load_problem("toy")
    config: RunConfig = resolve([("bench", {"stop": {"iterations": candidates},
                                            "llm": {"mode": "offline"}})])
    store = RunStore.create(run_dir, dump(config), {"problem": "toy"})
    clock, log = Clock(), EventLog(run_dir / EVENTS_NAME)
    llm = client(kind, problem.initial_code, url)
    controller = Controller(problem=problem, config=config, store=store,
                            mutator=LLMMutator(llm, config.llm),
                            backend=InstantBackend(),
                            archive=Archive(config.archive, seed=config.seed),
                            observers=[log, clock])
    asyncio.run(controller.run())
    store.close()
    log.close()
    return clock.stamps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=1_000)
    parser.add_argument("--client", choices=["scripted", "litellm", "openai"],
                        default="scripted")
    args = parser.parse_args()
    os.environ.setdefault("ADRS_BENCH_KEY", "sk-bench")
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        url = None if args.client == "scripted" else stack.enter_context(serve()).url
        warm(args.client, url)
        cpu = time.process_time()
        stamps = run(args.candidates, Path(tmp) / "run", args.client, url)
        cpu = time.process_time() - cpu
    w = min(args.window, (len(stamps) - 1) // 2)  # two windows fit in a short run
    if w < 1:
        sys.exit("too few candidates for two windows: pass --candidates 3 or more")
    first = (stamps[w] - stamps[0]) / w * 1e3
    last = (stamps[-1] - stamps[-1 - w]) / w * 1e3
    bound = math.log(args.candidates) / math.log(w)
    print(f"candidates: {len(stamps)}")
    print(f"engine time per candidate, candidates 1-{w}: {first:.3f} ms (target <= 5 ms)")
    print(f"engine time per candidate, last {w}: {last:.3f} ms")
    print(f"growth last/first: {last / first:.2f} (logarithmic bound "
          f"log({args.candidates})/log({w}) = {bound:.2f})")
    print(f"CPU time of this process per candidate ({args.client} client): "
          f"{cpu / len(stamps) * 1e3:.3f} ms (target <= 5 ms)")


def warm(kind: str, url: str | None) -> None:
    """Import the client library and make one call before the clock starts."""
    if url is not None:
        request = LLMRequest((Message("user", "hi"),), 0, 0)
        asyncio.run(client(kind, "", url).complete(request))


if __name__ == "__main__":
    main()

"""Latency hiding: how close a whole `adrs run` comes to keeping its LLM calls busy.

A scripted OpenAI-compatible server (tests/openai_server.py) runs on 127.0.0.1 in this
process. Every request waits a delay before its answer (an edit of the toy's constants):
fixed, or drawn from an exponential distribution seeded by the request's arrival number,
so a deterministic and a non-deterministic run see the same sequence of delays. `adrs run
toy` runs as a child process through the real LLM client (adrs's openai client, since the
model is named openai/...), with one model at that server, adrs's default backend (an
embedded Ray, started 10 s in, with workers forked from adrs until then; or `--backend
thread` or `local`) and `deterministic` on or off.

With k proposals in flight no schedule can finish its calls sooner than
    ideal = (sum of the delays the server slept) / k,
so the raw ratio ideal / wall, with wall the child's whole life (interpreter start, imports,
initial evaluation, every call, the summary and exit), is the share of the wall clock in
which all k call slots were busy. 'net' divides by the span from the first request to the
last answer instead, leaving start-up and exit out.

Usage:
    ../shared/bin/offline .venv/bin/python benchmarks/latency_hiding.py [--calls 100]
        [--backend ray|local|thread] [--workers 2]
        [--scenario fixed:2 exp:2 exp:4] [--mean 0.5] [--seed 1] [--repeats 1]
Prints one line per run, and for each scenario the throughput of deterministic mode
relative to non-deterministic (ratio of busy shares, median over the repeats).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from openai_server import FakeOpenAI, Reply, good_diff  # noqa: E402


class DelayedScript:
    """Answers each request with an edit after a delay; stamps arrivals and answers."""

    def __init__(self, kind: str, mean_s: float, seed: int) -> None:
        self.kind, self.mean_s, self.seed = kind, mean_s, seed
        self.slept = 0.0
        self.first: float | None = None
        self.last: float = 0.0
        self._lock = threading.Lock()

    def delay(self, number: int) -> float:
        if self.kind == "fixed":
            return self.mean_s
        return random.Random(f"{self.seed}:{number}").expovariate(1.0 / self.mean_s)

    def __call__(self, body: dict[str, Any], number: int) -> Reply:
        delay = self.delay(number)
        with self._lock:
            self.first = self.first if self.first is not None else time.perf_counter()
            self.slept += delay
            self.last = max(self.last, time.perf_counter() + delay)
        return Reply(text=good_diff(body), delay_s=delay)


@dataclass(frozen=True)
class Outcome:
    calls: int
    ideal_s: float
    wall_s: float
    net_s: float
    first_request_s: float


def config_file(folder: Path, url: str, args: argparse.Namespace, in_flight: int,
                deterministic: bool) -> Path:
    path = folder / "run.yaml"
    path.write_text(
        f"seed: {args.seed}\ndeterministic: {str(deterministic).lower()}\n"
        f"stop: {{iterations: {args.calls + 1}}}\n"
        f"evaluation: {{backend: {args.backend}, workers: {args.workers}}}\n"
        f"llm:\n  mode: litellm\n  proposals_in_flight: {in_flight}\n  max_retries: 0\n"
        "  timeout_s: 60\n"
        f"  models: [{{name: openai/toy, api_base: '{url}', api_key_env: ADRS_BENCH_KEY, "
        "price_in: 0.0, price_out: 0.0}]\n")
    return path


def one_run(kind: str, in_flight: int, deterministic: bool, args: argparse.Namespace
            ) -> Outcome:
    script = DelayedScript(kind, args.mean, args.seed)
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI(script).running() as server:
        config = config_file(Path(tmp), server.url, args, in_flight, deterministic)
        env = {**os.environ, "ADRS_BENCH_KEY": "sk-bench"}
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "adrs", "run", "toy", "-c", str(config),
             "--run-dir", str(Path(tmp) / "run")], cwd=tmp, env=env,
            capture_output=True, text=True)
        wall = time.perf_counter() - start
        calls = len(server.ok())
    if done.returncode != 0 or script.first is None:
        raise SystemExit(f"adrs run failed (exit {done.returncode}):\n{done.stdout[-2000:]}"
                         f"{done.stderr[-2000:]}")
    return Outcome(calls=calls, ideal_s=script.slept / in_flight, wall_s=wall,
                   net_s=script.last - script.first, first_request_s=script.first - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100, help="candidates after the initial")
    parser.add_argument("--backend", default="ray", choices=["ray", "local", "thread"],
                        help="adrs's evaluation backend (default: adrs's own default, an "
                             "embedded Ray that starts 10 s in, with forked workers until "
                             "then)")
    parser.add_argument("--workers", type=int, default=2, help="evaluation workers")
    parser.add_argument("--scenario", nargs="+", default=["fixed:2", "exp:2", "exp:4"],
                        help="KIND:IN_FLIGHT, KIND one of fixed, exp")
    parser.add_argument("--mean", type=float, default=0.5, help="delay (mean) in seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1, help="pairs of runs per scenario")
    args = parser.parse_args()
    print(f"adrs run toy, {args.calls} candidates, --backend {args.backend}, "
          f"{args.workers} workers, "
          f"delay {args.mean} s (fixed or exponential mean)")
    print(f"{'scenario':<10} {'determ.':<8} {'calls':>5} {'ideal s':>8} {'wall s':>8} "
          f"{'raw':>6} {'net':>6} {'1st req s':>9} {'gap/call ms':>11}")
    for scenario in args.scenario:
        kind, in_flight = scenario.split(":")
        raw, net = [], []
        for _ in range(args.repeats):  # on and off interleaved, so load drifts hit both
            runs = {d: one_run(kind, int(in_flight), d, args) for d in (True, False)}
            for deterministic, o in runs.items():
                # Idle slot time between an answer and the next request, per call.
                gap_ms = 1000 * (o.net_s - o.ideal_s) * int(in_flight) / o.calls
                print(f"{scenario:<10} {'on' if deterministic else 'off':<8} {o.calls:>5} "
                      f"{o.ideal_s:8.2f} {o.wall_s:8.2f} {o.ideal_s / o.wall_s:6.1%} "
                      f"{o.ideal_s / o.net_s:6.1%} {o.first_request_s:9.2f} {gap_ms:11.1f}",
                      flush=True)
            on, off = runs[True], runs[False]
            # Throughput: delay served per second of wall (the call counts differ).
            raw.append((on.ideal_s / on.wall_s) / (off.ideal_s / off.wall_s))
            net.append((on.ideal_s / on.net_s) / (off.ideal_s / off.net_s))
        print(f"{scenario:<10} throughput, deterministic / non-deterministic (median of "
              f"{args.repeats}): raw {statistics.median(raw):.1%}, net "
              f"{statistics.median(net):.1%}", flush=True)


if __name__ == "__main__":
    main()

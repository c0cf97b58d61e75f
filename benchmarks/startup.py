"""Time to the first LLM request after `adrs run`, per phase, and the time to exit.

A scripted OpenAI-compatible server (tests/openai_server.py) runs on 127.0.0.1 in this
process and answers at once with an edit of the toy's constants. `adrs run toy` runs as a
child process with one model `openai/toy` at that server, and this script timestamps:
the start of the child, the arrival of its first LLM request, its final summary line
("stopped: ...") and its exit. The phases that make up start-up are then timed one by one,
each in a fresh interpreter: importing the CLI, importing litellm (other providers),
importing httpx (what `openai/` models use) and, for comparison, the openai package,
starting an embedded Ray, and evaluating the toy's initial program once.

Usage (anything that starts Ray runs in a loopback-only namespace):
    ../shared/bin/offline .venv/bin/python benchmarks/startup.py [--backend ray]
        [--iterations 20] [--repeats 3] [--no-phases]
Prints the median over the repeats of each figure (targets: first request <= 1.0 s,
exit <= 0.2 s after the summary).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from openai_server import FakeOpenAI, Reply, good_diff  # noqa: E402

PHASES = {
    "import adrs.cli.main": "import adrs.cli.main",
    "import litellm": "import os; os.environ['LITELLM_LOCAL_MODEL_COST_MAP'] = 'True'; "
                      "import litellm",
    "import httpx (openai/ models)": "import httpx",
    "import openai (not used)": "import openai",
    "embedded ray.init (2 CPUs)":
        "from adrs.evaluation.ray_backend import RayBackend; RayBackend(2).close()",
    "initial program of toy, once": (
        "from adrs.problem.spec import load_problem, eval_job\n"
        "from adrs.config.run_config import resolve\n"
        "from adrs.evaluation.runner import run_job\n"
        "p = load_problem('toy'); import time; t = time.perf_counter()\n"
        "run_job(eval_job(p, resolve([]), p.initial_code))\n"
        "print(time.perf_counter() - t)"),
}


class FirstRequest:
    """The server's script: answers at once, and stamps the first request's arrival."""

    def __init__(self) -> None:
        self.first: float | None = None
        self._lock = threading.Lock()

    def __call__(self, body: dict[str, Any], number: int) -> Reply:
        with self._lock:
            if self.first is None:
                self.first = time.perf_counter()
        return Reply(text=good_diff(body))


def config_file(folder: Path, url: str, backend: str, iterations: int) -> Path:
    path = folder / "run.yaml"
    path.write_text(
        f"stop: {{iterations: {iterations}}}\n"
        f"evaluation: {{backend: {backend}, workers: 2}}\n"
        "llm:\n  mode: litellm\n  proposals_in_flight: 2\n  max_retries: 0\n"
        f"  models: [{{name: openai/toy, api_base: '{url}', api_key_env: ADRS_BENCH_KEY, "
        "price_in: 0.0, price_out: 0.0}]\n")
    return path


def one_run(backend: str, iterations: int) -> dict[str, float]:
    """Seconds from the child's start to its first request, its summary and its exit."""
    script = FirstRequest()
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI(script).running() as server:
        config = config_file(Path(tmp), server.url, backend, iterations)
        env = {**os.environ, "ADRS_BENCH_KEY": "sk-bench"}
        start = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-m", "adrs", "run", "toy", "-c", str(config),
             "--run-dir", str(Path(tmp) / "run")], cwd=tmp, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        summary = None
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith("stopped:"):
                summary = time.perf_counter()
        code = child.wait()
        end = time.perf_counter()
    if code != 0 or script.first is None or summary is None:
        raise SystemExit(f"adrs run failed (exit {code}): see `adrs run` by hand")
    return {"first request": script.first - start, "final summary": summary - start,
            "exit after summary": end - summary}


def phase(code: str) -> float:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, cwd=ROOT).stdout.strip()
    wall = time.perf_counter() - start
    return float(out.splitlines()[-1]) if out else wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="ray", choices=["ray", "local", "thread"])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-phases", action="store_true")
    args = parser.parse_args()
    runs = [one_run(args.backend, args.iterations) for _ in range(args.repeats)]
    print(f"adrs run toy --backend {args.backend}, {args.iterations} candidates, "
          f"median of {args.repeats}:")
    for name in runs[0]:
        print(f"  {name:<22} {statistics.median(r[name] for r in runs):7.3f} s")
    if args.no_phases:
        return
    print("phases alone (a fresh interpreter each, wall incl. interpreter start):")
    for name, code in PHASES.items():
        print(f"  {name:<30} {statistics.median(phase(code) for _ in range(args.repeats)):7.3f} s")


if __name__ == "__main__":
    main()

"""adrs and OpenEvolve side by side: the same toy, the same scripted LLM server, wall time.

Installs OpenEvolve from PyPI into a throwaway virtual environment (kept at --venv for the
next time), then runs, interleaved, `openevolve-run` and `adrs run` (default backend, full
sandboxing) on the toy autoscaler (problems/toy) for --calls LLM calls each, against the
scripted OpenAI-compatible server of benchmarks/loopback.py on 127.0.0.1 (a SEARCH/REPLACE
edit of the current program's constants for every request, after --delay seconds).

Same toy: OpenEvolve's evaluator (written to the work folder) loads adrs's trusted toy
evaluator (evaluators/toy.py, standard library only) and hands it the candidate module in
place of a sandbox handle, so both systems compute the same score; OpenEvolve runs the
candidate in its worker process, adrs in a sandboxed child. Same load: OpenEvolve with
`parallel_evaluations: 2` (2 worker processes); adrs with 2 proposals in flight and 2
evaluation workers. Wall time is from starting the command to its exit; the server counts
the LLM calls each made (adrs: --calls proposals, plus its repairs of malformed replies).

Usage (optional in CI: it needs PyPI once; anything starting Ray runs in a loopback-only
namespace):
    ../shared/bin/offline .venv/bin/python benchmarks/openevolve_side_by_side.py \\
        [--calls 100] [--repeats 3] [--delay 0.0] [--venv /tmp/adrs-openevolve-venv] \\
        [--openevolve openevolve==0.4.0] [--adrs-backend ray|local|thread]
Install OpenEvolve first, outside the namespace, if the namespace has no network:
    .venv/bin/python benchmarks/openevolve_side_by_side.py --install-only
Prints each run's wall time, the machine's CPU time while it ran (busy time of all cores
from /proc/stat: the system's every process and the kernel's work for them, and the
scripted server, which serves both alike), its LLM calls, when the server saw the first
request (from the command's start) and the pace after it (time between the 10th and the
90th percentile request, per request), the medians, and the ratio adrs / OpenEvolve.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loopback import Loopback, serve
from sandbox_cpu import busy_s

ROOT = Path(__file__).resolve().parent.parent

OE_EVALUATOR = '''"""OpenEvolve evaluator of the toy: adrs's trusted toy evaluator on the module."""
import importlib.util

def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

class _Module:
    """What adrs's evaluator calls: candidate.call(name, *args)."""
    def __init__(self, module):
        self.module = module
    def call(self, name, *args, timeout_s=None):
        return getattr(self.module, name)(*args)

TOY = _load(%(toy)r, "adrs_toy_evaluator")

def evaluate(program_path):
    try:
        result = TOY.evaluate(_Module(_load(program_path, "candidate")))
    except Exception as exc:
        return {"combined_score": -1e9, "error": str(exc)}
    if not result.get("valid", True):
        return {"combined_score": -1e9, "error": result.get("error", "")}
    return {"combined_score": float(result["score"])}
'''

OE_CONFIG = """max_iterations: {calls}
random_seed: {seed}
log_level: WARNING
llm:
  api_base: "{url}"
  api_key: sk-bench
  models: [{{name: toy, weight: 1.0}}]
  timeout: 30
  retries: 0
  retry_delay: 0
evaluator:
  parallel_evaluations: 2
  cascade_evaluation: false
  timeout: 20
"""

ADRS_CONFIG = """seed: {seed}
stop: {{iterations: {candidates}}}
evaluation: {{workers: 2}}
llm:
  mode: litellm
  proposals_in_flight: 2
  max_retries: 0
  models: [{{name: openai/toy, api_base: "{url}", api_key_env: ADRS_BENCH_KEY,
            price_in: 0.0, price_out: 0.0}}]
"""


def install(venv: Path, requirement: str) -> Path:
    """The openevolve-run of `venv`, installing `requirement` there first if needed."""
    runner = venv / "bin" / "openevolve-run"
    if not runner.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", requirement], check=True)
    return runner


@dataclass(frozen=True)
class Run:
    wall_s: float
    cpu_s: float  # the machine's busy CPU meanwhile
    calls: int
    first_s: float  # from the command's start to the server's first request
    pace_ms: float  # per request, between the 10th and the 90th percentile request


def run_of(times: tuple[float, float, float], server: Loopback) -> Run:
    wall, cpu, started = times
    arrivals = server.arrivals
    low, high = len(arrivals) // 10, len(arrivals) * 9 // 10
    first = arrivals[0] - started if arrivals else math.nan
    pace = (arrivals[high] - arrivals[low]) / (high - low) * 1000 if high > low else math.nan
    return Run(wall, cpu, server.calls, first, pace)


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, float]:
    """Wall seconds of `command`, CPU seconds the machine was busy meanwhile, and the
    epoch second it started."""
    started = time.time()
    busy, start = busy_s(), time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - start, busy_s() - busy
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise SystemExit(f"{command[0]} failed (exit {done.returncode}):\n" + "\n".join(tail))
    return wall, cpu, started


def run_openevolve(runner: Path, work: Path, calls: int, seed: int, delay_s: float) -> Run:
    (work / "initial_program.py").write_text(
        (ROOT / "problems" / "toy" / "initial_program.py").read_text())
    (work / "evaluator.py").write_text(OE_EVALUATOR % {"toy": str(ROOT / "evaluators" /
                                                                   "toy.py")})
    with serve(delay_s) as server:
        (work / "oe.yaml").write_text(OE_CONFIG.format(calls=calls, seed=seed,
                                                       url=server.url))
        times = timed([str(runner), "initial_program.py", "evaluator.py", "--config",
                      "oe.yaml", "--iterations", str(calls), "--output", "out"], work,
                     {**os.environ, "OPENAI_API_KEY": "sk-bench"})
    return run_of(times, server)


def run_adrs(work: Path, calls: int, seed: int, delay_s: float,
             backend: str | None = None) -> Run:
    with serve(delay_s) as server:
        (work / "adrs.yaml").write_text(ADRS_CONFIG.format(seed=seed, candidates=calls + 1,
                                                           url=server.url))
        flags = ["--backend", backend] if backend else []
        times = timed([sys.executable, "-m", "adrs", "run", "toy", "-c", "adrs.yaml",
                      "--run-dir", "run", *flags], work,
                      {**os.environ, "ADRS_BENCH_KEY": "sk-bench"})
    return run_of(times, server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--venv", type=Path, default=Path(tempfile.gettempdir()) /
                        "adrs-openevolve-venv")
    parser.add_argument("--openevolve", default="openevolve==0.4.0")
    parser.add_argument("--install-only", action="store_true")
    parser.add_argument("--adrs-backend", choices=["ray", "local", "thread"],
                        help="adrs's evaluation backend (default: adrs's own default)")
    args = parser.parse_args()
    runner = install(args.venv, args.openevolve)
    if args.install_only:
        return
    runs: dict[str, list[Run]] = {"openevolve": [], "adrs": []}
    for repeat in range(args.repeats):
        order = ["openevolve", "adrs"] if repeat % 2 == 0 else ["adrs", "openevolve"]
        for name in order:
            with tempfile.TemporaryDirectory() as tmp:
                run = (run_adrs(Path(tmp), args.calls, repeat, args.delay,
                                args.adrs_backend) if name == "adrs"
                       else run_openevolve(runner, Path(tmp), args.calls, repeat, args.delay))
            runs[name].append(run)
            print(f"repeat {repeat}: {name:<10} {run.wall_s:6.2f} s wall, {run.cpu_s:5.2f} s "
                  f"machine CPU, {run.calls} LLM calls, first at {run.first_s:.3f} s, then "
                  f"{run.pace_ms:.1f} ms per call", flush=True)

    def median(name: str, field: str) -> float:
        return statistics.median(getattr(run, field) for run in runs[name])

    for field, what in (("first_s", "first request (s)"), ("pace_ms", "ms per call after it")):
        print(f"median {what}: OpenEvolve {median('openevolve', field):.3f}, "
              f"adrs {median('adrs', field):.3f}")
    oe, adrs = median("openevolve", "wall_s"), median("adrs", "wall_s")
    oe_cpu, adrs_cpu = median("openevolve", "cpu_s"), median("adrs", "cpu_s")
    print(f"median machine CPU: OpenEvolve {oe_cpu:.2f} s, adrs {adrs_cpu:.2f} s; "
          f"ratio {adrs_cpu / oe_cpu:.2f}")
    print(f"median wall, {args.calls} calls, delay {args.delay:g} s: OpenEvolve {oe:.2f} s, "
          f"adrs {adrs:.2f} s; ratio adrs/OpenEvolve {adrs / oe:.2f} (goal <= 1.0)")


if __name__ == "__main__":
    main()

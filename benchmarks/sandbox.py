"""Sandbox overhead and evaluation throughput for a trivial candidate.

The candidate answers one call (`f(x) = x + 1`) and the evaluator scores it, so everything
measured is the cost of the sandbox (start the child under its namespaces and limits, lock
it down, load the program, one call, kill and clean up) and of the backend around it.

Usage (Ray needs the loopback-only wrapper here):
    ../shared/bin/offline python benchmarks/sandbox.py [--evaluations 60] [--no-ray]
Prints milliseconds per evaluation done in this process, through the Popen path (an
interpreter started per sandbox), through the zygote (adrs/sandbox/zygote.py) with each
sandbox launched when the evaluation asks for it, and through the active path (the zygote
where it works, with the next sandbox launched in the background while one evaluation
runs: adrs/sandbox/standby.py), then evaluations per second
through the local backend and through Ray with 1 and 2 workers, and the 1 -> 2 scaling.
Also: microseconds per call round trip in a started sandbox (a 50-float list argument, a
float back), and milliseconds per evaluation of the toy's initial program (problems/toy
with its harness: start, 100 lockstep round trips, clean-up).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from adrs.evaluation.backends import EvalBackend, LocalBackend
from adrs.evaluation.runner import EvalJob, run_job
from adrs.sandbox.candidate import Candidate, Limits
from adrs.sandbox.isolation import protections
from adrs.sandbox.standby import STANDBY
from adrs.sandbox.zygote import ZYGOTE_CLIENT

EVALUATOR = "def evaluate(candidate):\n    return {'score': float(candidate.call('f', 1))}\n"
CANDIDATE = "def f(x):\n    return x + 1\n"
TARGET_MS = 20.0
TOY = Path(__file__).resolve().parents[1] / "problems" / "toy"


def make_job(root: Path) -> EvalJob:
    (root / "trivial.py").write_text(EVALUATOR)
    return EvalJob(str(root), "trivial.py:evaluate", CANDIDATE, Limits(timeout_s=10.0))


def in_process_ms(job: EvalJob, n: int, score: float | None = 2.0,
                  warmups: int = 3) -> list[float]:
    """Milliseconds of each sequential evaluation in this process (after `warmups`); each
    must be valid, with `score` unless it is None."""
    for _ in range(warmups):
        run_job(job)
    times = []
    for _ in range(n):
        started = time.perf_counter()
        result = run_job(job)
        times.append((time.perf_counter() - started) * 1000)
        assert result.valid and score in (None, result.score), result
    return times


def round_trip_us(n: int) -> float:
    """Median microseconds per call, over batches of calls in one started sandbox."""
    history = [float(i) + 0.5 for i in range(50)]
    batches = []
    with Candidate("def f(history):\n    return 1.0\n", Limits(timeout_s=60.0)) as candidate:
        for _ in range(100):
            candidate.call("f", history)
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(n):
                candidate.call("f", history)
            batches.append((time.perf_counter() - started) * 1e6 / n)
    return statistics.median(batches)


def toy_job() -> EvalJob:
    """The toy's initial program, with its harness."""
    return EvalJob(str(TOY), "adrs.evaluators.toy:evaluate",
                   (TOY / "initial_program.py").read_text(), Limits(timeout_s=10.0),
                   harness="harness.py")


def toy_ms(n: int) -> float:
    """Median milliseconds per toy evaluation of its initial program, with its harness."""
    return statistics.median(in_process_ms(toy_job(), n, score=None))


def print_overhead(path: str, times: list[float]) -> None:
    median = statistics.median(times)
    print(f"sandbox overhead in this process, {path}: median {median:.1f} ms, "
          f"min {min(times):.1f} ms, p90 {statistics.quantiles(times, n=10)[-1]:.1f} ms per "
          f"evaluation (target <= {TARGET_MS:.0f} ms: "
          f"{'met' if median <= TARGET_MS else 'NOT met'})")


def throughput(make: Callable[[int], EvalBackend], workers: int, job: EvalJob,
               n: int) -> float:
    """Evaluations per second with `workers` in flight, after one warm-up per worker."""
    backend = make(workers)
    try:
        for future in [backend.submit(job) for _ in range(2 * workers)]:
            future.result()
        started = time.perf_counter()
        results = [future.result() for future in [backend.submit(job) for _ in range(n)]]
        elapsed = time.perf_counter() - started
    finally:
        backend.close()
    assert all(result.valid for result in results)
    return n / elapsed


def report(name: str, make: Callable[[int], EvalBackend], job: EvalJob, n: int) -> None:
    one = throughput(make, 1, job, n)
    two = throughput(make, 2, job, n)
    print(f"{name:<6} 1 worker: {one:6.1f} eval/s ({1000 / one:5.1f} ms each)   "
          f"2 workers: {two:6.1f} eval/s   scaling 1->2: {two / one:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=60)
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray backend")
    args = parser.parse_args()
    active = [name for name, on in protections().items() if on]
    print(f"protections: {', '.join(active)}")
    with tempfile.TemporaryDirectory() as tmp:
        job = make_job(Path(tmp))
        ZYGOTE_CLIENT.enabled = False
        print_overhead("Popen path (fallback)", in_process_ms(job, args.evaluations))
        ZYGOTE_CLIENT.enabled = True
        STANDBY.drain()
        STANDBY.enabled = False
        print_overhead("zygote, each sandbox launched on demand",
                       in_process_ms(job, args.evaluations))
        toy_on_demand = toy_ms(args.evaluations)
        STANDBY.enabled = True
        print_overhead("active path (zygote, standby sandboxes)",
                       in_process_ms(job, args.evaluations))
        print(f"call round trip: median {round_trip_us(1000):.0f} us; toy evaluation: "
              f"median {toy_ms(args.evaluations):.1f} ms (each sandbox launched on demand: "
              f"{toy_on_demand:.1f} ms)")
        report("local", LocalBackend, job, args.evaluations)
        if not args.no_ray:
            import ray

            from adrs.evaluation.ray_backend import RayBackend

            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            try:
                report("ray", RayBackend, job, args.evaluations)
            finally:
                ray.shutdown()


if __name__ == "__main__":
    main()

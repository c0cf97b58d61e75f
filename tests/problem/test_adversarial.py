"""The adversarial kit (adrs/problem/adversarial.py) against real sandboxed evaluations of
small problems written here: one clean, and one per leak the kit must catch."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from adrs.cli.authoring import check_adversarial
from adrs.problem import probe_payload as payload
from adrs.problem.adversarial import (
    MEMOIZE,
    OVERLAP,
    PERSIST,
    PROBES,
    REPLAY,
    SELF_SCORE,
    TIMING,
    TRUSTED,
    AdversarialReport,
    parse_trace,
    probe_program,
)
from adrs.sandbox.candidate import protections

FORECAST = '''"""Forecast the next value of a series from its past values."""

# EVOLVE-BLOCK-START
WINDOW = 4


def predict(history):
    recent = history[-WINDOW:]
    return sum(recent) / len(recent)
# EVOLVE-BLOCK-END
'''

SERIES = '''
import math
import random


def series(seed, n):
    """A seeded random walk with noise, rounded: the workload."""
    rng = random.Random(seed)
    level, out = 20.0 + 30.0 * seed, []
    for _ in range(n):
        level += rng.gauss(0.0, 1.0)
        out.append(round(level + rng.gauss(0.0, 0.5), 4))
    return out


def number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) \\
            or not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}")
    return float(value)
'''

# Clean: each series is shown only its own past, once per tick, in one pass.
CLEAN = SERIES + '''

def evaluate(candidate):
    error, count = 0.0, 0
    for seed in range(3):
        values = series(seed, 120)
        for t in range(8, len(values)):
            error += abs(number(candidate.call("predict", values[:t])) - values[t])
            count += 1
    return {"score": -error / count}
'''

# Replay + memoize: the same input twice; the second answer is judged against the first.
MEMO_PROGRAM = '''"""Estimate the mean of a list of numbers."""

import random

# EVOLVE-BLOCK-START
SAMPLE = 8
_rng = random.Random(0)


def estimate(values):
    """The mean of a random sample of SAMPLE values (fast, a little noisy)."""
    picked = _rng.sample(values, min(SAMPLE, len(values)))
    return sum(picked) / len(picked)
# EVOLVE-BLOCK-END
'''
MEMO = SERIES + '''

def evaluate(candidate):
    rng = random.Random(7)
    error = drift = 0.0
    for _ in range(20):
        values = [round(rng.gauss(100.0, 15.0), 3) for _ in range(64)]
        first = number(candidate.call("estimate", values))
        second = number(candidate.call("estimate", values))  # asked again: is it stable?
        error += abs(first - sum(values) / len(values))
        drift += abs(second - first)
    return {"score": 100.0 - error / 20 - 5.0 * drift / 20}
'''

# Overlap: windows of one series at shifted offsets, out of order, to one process.
SHIFTED = SERIES + '''

def evaluate(candidate):
    values = series(0, 400)
    starts = (240, 40, 160, 0, 200, 80, 120, 280)
    error = sum(abs(number(candidate.call("predict", values[s:s + 100])) - values[s + 100])
                for s in starts)
    return {"score": -error / len(starts)}
'''

# Trusted data: the harness generates the whole series in the sandbox and keeps it.
FUTURE_HARNESS = '''"""Loaded in the sandbox: makes the workload here and keeps it all (a leak)."""

import random

import candidate

SERIES = []


def setup(seed, n):
    rng = random.Random(seed)
    level = 20.0 + 30.0 * seed
    SERIES.clear()
    for _ in range(n):
        level += rng.gauss(0.0, 1.0)
        SERIES.append(round(level + rng.gauss(0.0, 0.5), 4))


def step(t):
    return candidate.predict(SERIES[:t])
'''
FUTURE = SERIES + '''

def evaluate(candidate):
    values = series(0, 200)
    candidate.call("harness.setup", 0, 200)
    error = sum(abs(number(candidate.call("harness.step", t)) - values[t])
                for t in range(8, 200))
    return {"score": -error / 192}
'''

# Self-score: the evaluator takes a `score` the program returns.
SELF_PROGRAM = '''"""Estimate the mean of a list of numbers."""

# EVOLVE-BLOCK-START
def solve(values):
    return {"estimate": sorted(values)[len(values) // 2]}
# EVOLVE-BLOCK-END
'''
SELF = SERIES + '''

def evaluate(candidate):
    rng = random.Random(3)
    total = 0.0
    for _ in range(10):
        values = [rng.uniform(0.0, 10.0) for _ in range(40)]
        reply = candidate.call("solve", values)
        if "score" in reply:  # the leak: a score the program reports about itself
            total += number(reply["score"])
        else:
            total -= abs(number(reply["estimate"]) - sum(values) / len(values))
    return {"score": total / 10}
'''

PROBLEMS = {
    "clean": (FORECAST, CLEAN, None),
    "memo": (MEMO_PROGRAM, MEMO, None),
    "shifted": (FORECAST, SHIFTED, None),
    "future": (FORECAST, FUTURE, FUTURE_HARNESS),
    "selfscore": (SELF_PROGRAM, SELF, None),
}


def write_problem(parent: Path, name: str) -> Path:
    program, evaluator, harness = PROBLEMS[name]
    root = parent / name
    root.mkdir()
    (root / "initial_program.py").write_text(program)
    (root / "evaluator.py").write_text(evaluator)
    (root / "README.md").write_text(f"# {name}\n\nA test problem of the adversarial kit.\n")
    lines = [f"name: {name}", "description: adversarial kit test", "evaluator: "
             "evaluator.py:evaluate", "defaults: {evaluation: {limits: {timeout_s: 30}}}"]
    if harness is not None:
        (root / "harness.py").write_text(harness)
        lines.append("harness: harness.py")
    (root / "problem.yaml").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, AdversarialReport]:
    """One run of the kit per problem, shared by the tests below."""
    parent = tmp_path_factory.mktemp("problems")
    found = {name: check_adversarial(str(write_problem(parent, name)))[1]
             for name in PROBLEMS}
    found["toy"] = check_adversarial("toy")[1]
    return found


# Where the sandbox cannot hide the host's files and /tmp (no lockdown), the trusted-data
# and persistent-state probes rightly leak on every problem: only the others are compared.
PROTECTIONS = protections()
MACHINE_PROBES = () if PROTECTIONS["private_filesystem"] and PROTECTIONS["ipc_namespace"] \
    else (TRUSTED, PERSIST)


def held_except(report: AdversarialReport, *leaked: str) -> None:
    expected = {name: "leaked" if name in leaked else "held" for name in PROBES
                if name not in MACHINE_PROBES}
    statuses = {k: v for k, v in report.statuses().items() if k not in MACHINE_PROBES}
    assert statuses == expected, "\n".join(report.lines())


def test_a_clean_problem_holds_against_every_probe(reports: dict[str, AdversarialReport]) -> None:
    report = reports["clean"]
    held_except(report)
    assert not report.leaked and [o.name for o in report.outcomes] == list(PROBES)
    replay = report.outcome(REPLAY).evidence
    assert replay.startswith("no input reached a process twice (336 calls in 1 process")
    if not MACHINE_PROBES:
        assert report.outcome(PERSIST).evidence.startswith("the second evaluation found")
    assert "score claimed in every reply" in report.outcome(SELF_SCORE).evidence
    assert report.baseline[0] == report.baseline[1] and report.noise > 0


def test_the_bundled_toy_problem_holds(reports: dict[str, AdversarialReport]) -> None:
    held_except(reports["toy"])
    assert reports["toy"].lines()[0].startswith("held     input replay: no input reached")


def test_repeated_inputs_are_replayed_and_memoized(reports: dict[str, AdversarialReport]) -> None:
    report = reports["memo"]
    held_except(report, REPLAY, MEMOIZE)
    replay = report.outcome(REPLAY)
    assert replay.evidence.startswith("call 2 (estimate) repeats call 1 exactly")
    assert "20 exact and 0 near repeats in 40 calls" in replay.evidence
    assert replay.line.startswith("LEAKED   input replay: call 2 (estimate)")
    memo = report.outcome(MEMOIZE)
    assert memo.evidence.startswith("20 calls answered from memory; score ")
    assert memo.findings[0] == ("call 2 (estimate) answered with the reply to call 1 (its "
                                "input repeats exactly)")


def test_shifted_windows_of_one_series_overlap(reports: dict[str, AdversarialReport]) -> None:
    report = reports["shifted"]
    held_except(report, OVERLAP)
    evidence = report.outcome(OVERLAP).evidence
    # Call 2 showed [40, 140), then call 4 asks for the value after [0, 100): call 2 held
    # its 40 next values. Likewise calls 1 and 5, 3 and 7; call 8 comes last: no leak.
    assert evidence == ("call 4 (predict) args[0] (100 values) and call 2 (predict) args[0] "
                        "(100 values) agree over 60 values at offsets 40 apart: the second "
                        "holds 40 values past the end of the first (3 overlaps found in 8 "
                        "calls in 1 process)")


def test_a_future_kept_by_the_harness_is_found(reports: dict[str, AdversarialReport]) -> None:
    report = reports["future"]
    held_except(report, TRUSTED)
    evidence = report.outcome(TRUSTED).evidence
    assert evidence.startswith("harness.SERIES (200 values) continues the input predict "
                               "args[0] (")
    assert "past its end by" in evidence


def test_a_score_the_program_claims_is_caught(reports: dict[str, AdversarialReport]) -> None:
    report = reports["selfscore"]
    held_except(report, SELF_SCORE)
    evidence = report.outcome(SELF_SCORE).evidence
    assert evidence.startswith("a score claimed in every reply; score 1e+09 vs baseline")
    timing = report.outcome(TIMING).evidence
    assert "work at import; score" in timing and "a daemon thread" in timing


def test_the_probe_program_is_the_initial_program_plus_the_payload() -> None:
    source = probe_program(FORECAST, {"mode": "replay"})
    assert source.startswith(FORECAST.rstrip()) and "module.install({'mode': 'replay'})" in source
    compile(source, "candidate.py", "exec")


def test_probe_lines_parse_into_a_trace() -> None:
    stderr = ("noise\nADRS-PROBE ab12 start mode=replay\n"
              "ADRS-PROBE ab12 find replay call 3 (f) repeats call 1 exactly\n"
              "ADRS-PROBE ab12 stat mode=replay calls=3 exact=1          \n")
    trace = parse_trace(stderr)
    assert trace.found("replay") == ("call 3 (f) repeats call 1 exactly",)
    assert trace.total("calls") == 3 and trace.total("exact") == 1 and not trace.errors


def test_windows_without_information_are_not_indexed() -> None:
    """window_bits bounds the chance that an independent series holds the same window."""
    rng = random.Random(0)
    noise = payload.encode_series([rng.random() for _ in range(64)])
    ramp = payload.encode_series([float(i) for i in range(64)])
    flips = payload.encode_series([i // 64 % 2 for i in range(256)])
    busy = payload.encode_series([rng.random() < 0.5 for _ in range(256)])
    assert noise is not None and ramp is not None and flips is not None and busy is not None
    # 32 distinct values, 31 distinct steps: the smaller of 32 log2 32 and 31 log2 31 bits
    assert payload.window_bits(noise[0], 0, 32, False) == pytest.approx(31 * math.log2(31))
    assert payload.window_bits(ramp[0], 0, 32, False) == 0.0  # its steps never change
    assert flips[1] and payload.window_bits(flips[0], 0, 256, True) < 32.0  # 3 changes
    assert payload.window_bits(busy[0], 0, 256, True) > 200.0

"""Which scenarios share a process: windows that could inform one another never do."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest

from adrs.evaluators.cbl.partition import MARGIN_S, conflict, partition
from adrs.evaluators.cbl.scenarios import multi_region, single_region
from adrs.evaluators.cbl.simulator import Job, Scenario
from adrs.evaluators.cbl.traces import Origin, Trace, read_origin, windows

H = 3600.0
JOB = Job(2 * H, 4 * H, 0.1 * H)
DATA = (Path(__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()


def recording(series: str, ticks: int = 200, clock: str = "clock") -> Trace:
    bits = bytes(random.Random(series).getrandbits(1) for _ in range(ticks))
    return Trace(series, H, bits, 1.0, Origin(clock, series, 0.0))


def single(*traces: Trace) -> list[Scenario]:
    return [Scenario("g", JOB, (t,)) for t in traces]


def shared_groups(scenarios: list[Scenario], margin_s: float = MARGIN_S) -> list[list[int]]:
    groups = partition(scenarios, margin_s)
    assert sorted(i for g in groups for i in g) == list(range(len(scenarios)))
    for group in groups:  # no conflict inside a group
        assert not any(conflict(scenarios[a], scenarios[b], margin_s)
                       for a in group for b in group if a < b)
    return groups


def test_overlapping_windows_of_one_recording_are_kept_apart() -> None:
    a, b, c = windows(recording("env"), [0, 10, 100], 20)  # 0-20 h, 10-30 h, 100-120 h
    assert conflict(*single(a, b)) and not conflict(*single(a, c))
    assert shared_groups(single(a, b, c)) == [[0, 2], [1]]


def test_windows_closer_than_the_margin_are_kept_apart() -> None:
    a, b = windows(recording("env"), [0, 22], 20)  # b starts 2 h after a ends
    assert conflict(*single(a, b), margin_s=6 * H)
    assert not conflict(*single(a, b), margin_s=0.0)
    assert MARGIN_S == 6 * H


def test_one_window_may_serve_several_jobs_and_environments_of_one_instant() -> None:
    # The same window under several jobs, and other recordings' windows of the same
    # instant: every policy sees the same instant, none a later one.
    (a,) = windows(recording("env_a"), [5], 20)
    (b,) = windows(recording("env_b"), [5], 20)
    jobs = [Scenario("g", Job(2 * H, t * H, d * H), (a,)) for t in (4, 8) for d in (0, 1)]
    assert shared_groups([*jobs, *single(b)]) == [[0, 1, 2, 3, 4]]
    (later,) = windows(recording("env_b"), [6], 20)  # one hour ahead of `a`
    assert conflict(*single(a, later))


def test_a_multi_region_run_shares_no_instant() -> None:
    # It chooses the region it observes: a neighbour on a window of the same instant
    # would show that region's present without the policy moving there.
    (a,) = windows(recording("region_a"), [0], 20)
    (b,) = windows(recording("region_b"), [0], 20)
    two = Scenario("two", JOB, (a, b))
    assert conflict(two, *single(a)) and conflict(two, *single(b))
    assert conflict(two, Scenario("other", JOB, (b, a)))
    assert shared_groups([two, *single(a, b)]) == [[0], [1, 2]]


def test_other_clocks_and_independent_draws_never_conflict() -> None:
    (a,) = windows(recording("env", clock="2022"), [0], 20)
    (b,) = windows(recording("env", clock="2023"), [3], 20)
    assert not conflict(*single(a, b))
    assert len(partition(single_region())) == 1  # default: every trace its own draw
    # Multi-region default: scenarios that use the same draw of a region are kept apart;
    # five of them use draw 0 of us-east-1a.
    scenarios = multi_region()
    assert sum("synthetic/us-east-1a_v100_1/0" in {t.name for t in s.traces}
               for s in scenarios) == 5
    assert len(shared_groups(scenarios)) == 5


def test_a_window_with_another_tick_length_runs_ahead() -> None:
    (a,) = windows(recording("env"), [0], 20)
    b = Trace("b", H / 2, a.unavailable, 1.0, a.origin)  # same start, half-hour ticks
    assert conflict(*single(a, b))


def test_unknown_origins_are_kept_apart_unless_the_very_same_trace() -> None:
    a = Trace("a.json", H, bytes(20), 1.0)
    b = Trace("b.json", H, bytes(20), 1.0)
    assert conflict(*single(a, b)) and not conflict(*single(a, a))
    (known,) = windows(recording("env"), [0], 20)
    assert not conflict(*single(a, known))
    assert shared_groups(single(a, a, b, known)) == [[0, 1, 3], [2]]


@pytest.mark.parametrize("seed", range(20))
def test_as_few_groups_as_the_most_windows_over_one_instant(seed: int) -> None:
    rng = random.Random(seed)
    series = [recording(f"env{k}", 400) for k in range(3)]
    traces = [w for rec in series for w in
              windows(rec, [rng.randrange(0, 300, 5) for _ in range(rng.randrange(1, 12))],
                      rng.randrange(5, 100))]
    scenarios = single(*traces)
    groups = shared_groups(scenarios, 0.0)
    # Lower bound: windows with pairwise different starts that all cover one instant.
    spans = {(t.origin.start_s, t.gap_s): t.origin.start_s + t.ticks * t.gap_s
             for t in traces if t.origin is not None}
    deepest = max(sum(1 for (s, _), e in spans.items() if s <= x < e)
                  for x in (s for s, _ in spans))
    assert len(groups) == deepest


def test_origins_of_the_archive_formats() -> None:
    single_file = {"original_trace": "data/real/ping_based/us-west-2a_k80_1.json",
                   "metadata": {"gap_seconds": 600, "start_time": 37, "end_time": 591}}
    assert read_origin(single_file, 600.0) == Origin(
        "data/real/ping_based", "data/real/ping_based/us-west-2a_k80_1.json", 37 * 600.0)
    multi_file = {"metadata": {"gap_seconds": 195, "start_time": "2023-03-07T19:36:08",
                               "source_file": "data/p/us-east-1a_v100_1.csv"}}
    origin = read_origin(multi_file, 195.0)
    assert origin is not None and origin.clock == "data/p"
    assert origin.start_s == 1678217768.0  # UTC
    assert read_origin({"metadata": {"gap_seconds": 600}}, 600.0) is None
    assert read_origin({**single_file, "metadata": {"start_time": "soon"}}, 600.0) is None


def unpack(archive: Path, into: Path) -> str:
    if not archive.is_file():
        pytest.skip(f"real traces not available: {archive} is missing (../shared/data)")
    subprocess.run(["tar", "-xzf", str(archive), "-C", str(into)], check=True,
                   capture_output=True)
    return str(into)


def test_real_single_region_windows(tmp_path: Path) -> None:
    root = unpack(DATA / "cant_be_late" / "real_traces.tar.gz", tmp_path)
    scenarios = single_region(root)
    origins = [s.traces[0].origin for s in scenarios]
    assert all(o is not None and o.clock == "data/real/ping_based" for o in origins)
    groups = shared_groups(scenarios)
    assert len(groups) == 17  # 16 without the margin: the most windows over one instant
    for group in groups:  # no window of a group overlaps another of its recording
        spans = {(o.series, o.start_s) for i in group if (o := origins[i]) is not None}
        for series, start in spans:
            assert not any(s == series and 0 < abs(t - start) < 554 * 600.0
                           for s, t in spans)


def test_real_multi_region_windows(tmp_path: Path) -> None:
    root = unpack(DATA / "cant_be_late_multi" / "real_traces.tar.gz", tmp_path)
    scenarios = multi_region(root)
    assert all(t.origin is not None for s in scenarios for t in s.traces)
    # Windows with the same index cover the same hours in every region; two pairs of
    # indices lie 3 and 4 h apart, within the margin.
    assert len(shared_groups(scenarios)) == 10

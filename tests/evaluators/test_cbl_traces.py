"""Synthetic traces match the calibration; real trace folders are found and selected."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from adrs.errors import UserError
from adrs.evaluators.cbl.calibration import MULTI_REGION, SINGLE_REGION, RunStats
from adrs.evaluators.cbl.scenarios import single_region, trace_dir
from adrs.evaluators.cbl.traces import (
    TraceError,
    evenly_spaced,
    real_single_region,
    renewal_bits,
    synthetic,
)


def run_lengths(bits: bytes) -> tuple[list[int], list[int]]:
    ups: list[int] = []
    downs: list[int] = []
    start = 0
    for i in range(1, len(bits) + 1):
        if i == len(bits) or bits[i] != bits[start]:
            (downs if bits[start] else ups).append(i - start)
            start = i
    return ups, downs


@pytest.mark.parametrize("env", ["us-west-2a_k80_1", "us-west-2b_k80_1", "us-west-2a_v100_1",
                                 "us-east-1a_v100_1"])
def test_synthetic_traces_follow_the_calibration(env: str) -> None:
    stats: RunStats = {**SINGLE_REGION, **MULTI_REGION}[env]
    bits = renewal_bits(stats, 200_000, random.Random(env))
    ups, downs = run_lengths(bits)
    availability = 1 - sum(bits) / len(bits)
    assert availability == pytest.approx(stats.availability, abs=0.03)
    assert sum(ups) / len(ups) == pytest.approx(stats.up_mean, rel=0.15)
    assert sum(downs) / len(downs) == pytest.approx(stats.down_mean, rel=0.15)
    assert min(ups) == min(downs) == 1  # runs as short as one tick, as in the real traces


def test_synthetic_traces_are_deterministic_and_distinct() -> None:
    stats = SINGLE_REGION["us-west-2a_v100_1"]
    a = synthetic("us-west-2a_v100_1", stats, 3, 554, 600.0)
    synthetic.cache_clear()
    assert synthetic("us-west-2a_v100_1", stats, 3, 554, 600.0) == a
    assert synthetic("us-west-2a_v100_1", stats, 4, 554, 600.0).unavailable != a.unavailable
    assert a.ticks == 554 and a.gap_s == 600.0


def test_evenly_spaced_matches_the_reference_selection() -> None:
    assert evenly_spaced(300, 30)[:6] == [0, 10, 21, 31, 41, 52]
    assert evenly_spaced(300, 30)[-1] == 299
    assert evenly_spaced(5, 30) == [0, 1, 2, 3, 4]


def test_real_folder_layout_and_lexicographic_selection(tmp_path: Path) -> None:
    folder = tmp_path / "real" / "ddl=x" / "real" / "env_a" / "traces" / "random_start"
    folder.mkdir(parents=True)
    for i in range(12):
        data = [i % 2] * (10 if i != 5 else 2)  # file 5 is too short
        (folder / f"{i}.json").write_text(json.dumps(
            {"metadata": {"gap_seconds": 600}, "data": data}))
    traces = real_single_region(str(tmp_path), "env_a", 3, 6 * 600.0, 0.5)
    # Listing order 0, 1, 10, 11, 2, 3, 4, 6, ...: first, middle and last usable file.
    assert [t.name for t in traces] == ["random_start/0.json", "random_start/3.json",
                                        "random_start/9.json"]
    assert all(t.spot_price == 0.5 for t in traces)


def test_missing_env_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match=r"real_traces\.tar\.gz"):
        real_single_region(str(tmp_path), "env_b", 3, 600.0, 0.5)


def test_trace_dir_option(tmp_path: Path) -> None:
    assert trace_dir(None) is None and trace_dir({"trace_dir": None}) is None
    assert trace_dir({"trace_dir": str(tmp_path)}) == str(tmp_path.resolve())
    with pytest.raises(TraceError, match="is not a folder") as caught:
        trace_dir({"trace_dir": str(tmp_path / "nope")})
    assert isinstance(caught.value, UserError)  # stops the run, not the candidate


def test_default_scenario_set_is_the_adrs_configuration() -> None:
    scenarios = single_region()
    assert len(scenarios) == 1080
    assert len({s.group for s in scenarios}) == 36
    assert {s.job.deadline_s / 3600 for s in scenarios} == {52, 70, 92}

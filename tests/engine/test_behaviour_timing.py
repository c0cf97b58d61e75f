"""Behavioural dedup leaves measured times out: two programs whose metrics differ only in
their runtimes are duplicates, one whose makespan differs is not (issue 15)."""

from __future__ import annotations

import pytest

from adrs.code.features import FeatureDim
from adrs.engine.archive import AddStatus, Archive, ArchiveConfig, is_measured_time
from adrs.types import EvalResult, MetricValue, Program

XY = (FeatureDim("code_length", bins=4), FeatureDim("complexity", bins=4))


def archive(features: tuple[FeatureDim, ...] = XY) -> Archive:
    return Archive(ArchiveConfig(islands=1, features=features, migration_interval=1000))


def prog(pid: int, score: float, **metrics: MetricValue) -> Program:
    return Program(id=pid, code=f"v = {pid}\n",
                   result=EvalResult(valid=True, score=score, metrics=metrics))


def txn(pid: int, makespan: int, runtime: float, score: float = -1.0) -> Program:
    return prog(pid, score, makespan=makespan, runtime_s=runtime,
                **{"runtime_s[W1]": runtime / 2, "makespan[W1]": makespan // 2})


@pytest.mark.parametrize("name", ["runtime_s", "runtime_s[W1]", "runtime_s_orders", "t_ms",
                                  "call_ms", "transport_ms", "wall_s[a]"])
def test_measured_time_names(name: str) -> None:
    assert is_measured_time(name)


@pytest.mark.parametrize("name", ["makespan", "makespan[W1]", "tokens_per_s[chat]",
                                  "passes", "speed_points", "avg_cost_T1h", "cost[trace_s]"])
def test_other_metric_names(name: str) -> None:
    assert not is_measured_time(name)


def test_runtimes_alone_do_not_tell_two_programs_apart() -> None:
    a = archive()
    assert a.add(txn(1, 1200, 0.031)) is AddStatus.NEW
    assert a.twin_of(txn(2, 1200, 0.047)) == 1
    assert a.add(txn(2, 1200, 0.047)) is AddStatus.BEHAVIOUR_DUPLICATE
    assert a.twin_of(txn(3, 1180, 0.031)) is None  # the makespan differs
    assert a.twin_of(txn(4, 1200, 0.031, score=-0.5)) is None  # the score is compared


def test_a_program_with_only_times_has_no_behaviour() -> None:
    a = archive()
    a.add(prog(1, 2.0, runtime_s=0.1, t_ms=3.0))
    assert a.twin_of(prog(2, 2.0, runtime_s=0.2, t_ms=4.0)) is None


def test_a_time_that_is_a_feature_is_compared() -> None:
    a = archive((FeatureDim("runtime_s", bins=4, lo=0.0, hi=1.0),))
    a.add(prog(1, 2.0, runtime_s=0.1, makespan=5))
    assert a.twin_of(prog(2, 2.0, runtime_s=0.6, makespan=5)) is None
    assert a.twin_of(prog(3, 2.0, runtime_s=0.1, makespan=5)) == 1

"""IslandGrid on its own: storage, placement without range updates, rankings, queries."""

from __future__ import annotations

import random

import pytest

from adrs.code.features import FeatureDim
from adrs.engine.islands import AddStatus, ArchiveStats, Elite, IslandGrid
from adrs.types import EvalResult, Program

XY = (FeatureDim("x", bins=10, lo=0.0, hi=10.0), FeatureDim("y", bins=10, lo=0.0, hi=10.0))


def prog(pid: int, score: float | None, x: float = 0.0, y: float = 0.0,
         island: int = 0) -> Program:
    metrics = {"x": x, "y": y}
    result = (EvalResult(valid=True, score=score, metrics=metrics) if score is not None
              else EvalResult.invalid("boom", metrics=metrics))
    return Program(id=pid, code="pass\n", result=result, island=island)


def ids(programs: list[Program]) -> list[int]:
    return [p.id for p in programs]


def test_add_counts_every_call_and_stores_valid_programs_only() -> None:
    grid = IslandGrid(2, XY)
    assert grid.add(prog(1, 1.0, x=1.0)) is AddStatus.NEW
    assert grid.add(prog(2, None, x=2.0)) is AddStatus.NOT_ADDED
    assert grid.add(prog(3, 2.0, x=1.5)) is AddStatus.IMPROVED
    assert grid.add(prog(4, 0.5, x=3.0, island=1)) is AddStatus.NEW
    assert grid.stats() == ArchiveStats(added=4, valid=3, cells_filled=2, cells_total=200,
                                        coverage=0.01, qd_score=2.5, best_score=2.0,
                                        best_id=3)


def test_add_rejects_unknown_islands_before_counting() -> None:
    grid = IslandGrid(2, XY)
    with pytest.raises(ValueError, match=r"island 2 does not exist: .* islands 0..1"):
        grid.add(prog(1, 1.0, island=2))
    with pytest.raises(ValueError, match="island -1 does not exist"):
        grid.ranked(-1)
    assert grid.stats().added == 0


def test_place_uses_the_given_features_and_leaves_ranges_alone() -> None:
    grid = IslandGrid(1, (FeatureDim("x", bins=2),))
    grid.add(prog(1, 1.0, x=0.0))
    grid.add(prog(2, 1.0, x=10.0))
    before = grid.binnings
    # The program's own metrics say x=500; the elite's cached features say 2.0.
    status = grid.place(0, Elite(prog(3, 5.0, x=500.0), (2.0,)))
    assert status is AddStatus.IMPROVED
    assert grid.binnings == before
    assert {cell: p.id for cell, p in grid.cells(0).items()} == {(0,): 3, (1,): 2}
    assert grid.stats().added == 2  # place is not an add() call
    assert grid.best is not None
    assert grid.best.id == 3


def test_ranked_and_all_elites_follow_every_change() -> None:
    grid = IslandGrid(2, XY)
    grid.add(prog(5, 1.0, x=1.0))
    grid.add(prog(3, 2.0, x=2.0))
    grid.add(prog(4, 2.0, x=3.0, island=1))
    assert [e.program.id for e in grid.ranked(0)] == [3, 5]
    assert ids(grid.all_elites()) == [3, 5, 4]  # island by island, best first
    grid.add(prog(6, 9.0, x=1.0, island=1))
    assert ids(grid.all_elites()) == [3, 5, 6, 4]
    grid.add(prog(7, 0.0, x=5.0))  # a new cell on island 0
    assert ids(grid.all_elites()) == [3, 5, 7, 6, 4]


def test_elites_of_all_islands_keep_one_copy_per_id() -> None:
    grid = IslandGrid(3, XY)
    program = prog(1, 4.0, x=1.0)
    grid.add(program)
    grid.place(2, Elite(prog(1, 4.0, x=1.0, island=2), (1.0, 0.0)))
    grid.add(prog(2, 4.0, x=2.0, island=1))
    assert [(p.id, p.island) for p in grid.elites()] == [(1, 0), (2, 1)]
    assert [(p.id, p.island) for p in grid.all_elites()] == [(1, 0), (2, 1), (1, 2)]


def test_the_grid_draws_no_random_number() -> None:
    grid = IslandGrid(2, (FeatureDim("x", bins=3),), qd_offset=-1.0)
    state = random.getstate()
    for pid in range(50):
        grid.add(prog(pid, float(pid % 7), x=float(pid * pid), island=pid % 2))
    grid.stats()
    grid.elites()
    assert random.getstate() == state


def test_cells_total_is_the_product_of_bins_per_island() -> None:
    dims = (FeatureDim("x", bins=3), FeatureDim("y", bins=4), FeatureDim("z", bins=5))
    assert IslandGrid(2, dims).stats().cells_total == 120
    assert IslandGrid(1, ()).stats().cells_total == 1

"""RingMigration on its own: call counting, the ring, snapshots, switched-off cases."""

from __future__ import annotations

from adrs.code.features import FeatureDim
from adrs.engine.islands import IslandGrid
from adrs.engine.migration import RingMigration
from adrs.types import EvalResult, Program

X = (FeatureDim("x", bins=10, lo=0.0, hi=10.0),)


def prog(pid: int, score: float, x: float, island: int = 0) -> Program:
    result = EvalResult(valid=True, score=score, metrics={"x": x})
    return Program(id=pid, code="pass\n", result=result, island=island)


def layout(grid: IslandGrid) -> list[list[tuple[int, int]]]:
    return [[(p.id, p.island) for p in grid.elites(i)] for i in range(grid.count)]


def test_after_add_migrates_on_every_interval_th_call() -> None:
    grid = IslandGrid(2, X)
    migration = RingMigration(grid, interval=3, size=1)
    for _ in range(8):
        migration.after_add()  # counts calls, whatever the grid holds
    assert migration.runs == 2


def test_each_island_sends_its_best_to_the_next_from_a_snapshot() -> None:
    grid = IslandGrid(3, X)
    grid.add(prog(1, 5.0, 1.0, island=0))
    grid.add(prog(2, 1.0, 2.0, island=0))
    grid.add(prog(3, 9.0, 3.0, island=1))
    migration = RingMigration(grid, interval=100, size=1)
    migration.migrate()
    # Island 1 sends 3 (its best before 1 landed), island 2 had nothing to send.
    assert layout(grid) == [[(1, 0), (2, 0)], [(3, 1), (1, 1)], [(3, 2)]]
    assert migration.runs == 1


def test_migrants_keep_their_cached_features() -> None:
    grid = IslandGrid(2, (FeatureDim("x", bins=2),))
    grid.add(prog(1, 3.0, 0.0))
    grid.add(prog(2, 1.0, 10.0, island=1))
    RingMigration(grid, interval=1, size=1).migrate()
    assert {cell: (p.id, p.island) for cell, p in grid.cells(1).items()} == {
        (0,): (1, 1), (1,): (2, 1)}


def test_one_island_or_size_zero_never_runs() -> None:
    grid = IslandGrid(1, X)
    grid.add(prog(1, 1.0, 1.0))
    single = RingMigration(grid, interval=1, size=2)
    single.after_add()
    assert single.runs == 0
    pair = IslandGrid(2, X)
    pair.add(prog(1, 1.0, 1.0))
    off = RingMigration(pair, interval=1, size=0)
    off.after_add()
    assert off.runs == 0
    assert layout(pair) == [[(1, 0)], []]

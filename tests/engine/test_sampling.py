"""Sampler on its own: it reads an IslandGrid, draws only from the rng it is handed."""

from __future__ import annotations

import random

import pytest

from adrs.code.features import FeatureDim
from adrs.engine.islands import IslandGrid
from adrs.engine.sampling import Sampler
from adrs.types import EvalResult, Program

X = (FeatureDim("x", bins=10, lo=0.0, hi=10.0),)


def prog(pid: int, score: float, x: float, island: int = 0) -> Program:
    result = EvalResult(valid=True, score=score, metrics={"x": x})
    return Program(id=pid, code="pass\n", result=result, island=island)


def sampler(grid: IslandGrid, exploit_ratio: float = 0.7, elite_pool: int = 5, top: int = 3,
            diverse: int = 2) -> Sampler:
    return Sampler(grid, exploit_ratio=exploit_ratio, elite_pool=elite_pool,
                   num_top_inspirations=top, num_diverse_inspirations=diverse)


def filled_grid(islands: int = 2) -> IslandGrid:
    grid = IslandGrid(islands, X)
    pid = 0
    for island in range(islands):
        for x in range(10):
            pid += 1
            grid.add(prog(pid, float(pid), float(x), island))
    return grid


def test_empty_grid_raises_lookup_error_and_bad_island_value_error() -> None:
    grid = IslandGrid(2, X)
    with pytest.raises(LookupError, match="holds no valid program"):
        sampler(grid).sample(0, random.Random(0))
    grid.add(prog(1, 1.0, 1.0))
    with pytest.raises(ValueError, match="island 2 does not exist"):
        sampler(grid).sample(2, random.Random(0))


def test_explore_only_is_uniform_over_the_island() -> None:
    grid = filled_grid(islands=1)
    rng = random.Random(2)
    counts = dict.fromkeys(range(1, 11), 0)
    for _ in range(5000):
        counts[sampler(grid, exploit_ratio=0.0).sample(0, rng).parent.id] += 1
    assert all(abs(n / 5000 - 0.1) < 0.02 for n in counts.values())


def test_exploit_only_stays_in_the_elite_pool() -> None:
    grid = filled_grid(islands=1)
    rng = random.Random(4)
    parents = {sampler(grid, exploit_ratio=1.0, elite_pool=2).sample(0, rng).parent.id
               for _ in range(500)}
    assert parents == {10, 9}


def test_no_inspirations_asked_none_given() -> None:
    grid = filled_grid()
    selection = sampler(grid, top=0, diverse=0).sample(1, random.Random(0))
    assert selection.inspirations == ()
    assert selection.mate is not None
    assert selection.mate.island == 0


def test_rng_draw_order_is_pinned() -> None:
    """Parent, diverse inspirations, then mate, each from the caller's rng: a change in
    the number or order of draws changes these ids (and every seeded run). The values
    are those of the archive before it was split into grid, sampler and migration."""
    grid = filled_grid()
    selections = [sampler(grid).sample(seed % 2, random.Random(seed)) for seed in range(4)]
    assert [(s.parent.id, [p.id for p in s.inspirations], s.mate and s.mate.id)
            for s in selections] == [(4, [10, 9, 8, 2, 14], 15), (17, [20, 19, 18, 8, 2], 7),
                                     (10, [9, 8, 7, 19, 5], 11), (19, [20, 18, 17, 11, 15], 8)]


def test_sampling_leaves_the_grid_and_the_global_rng_alone() -> None:
    grid = filled_grid()
    before = [grid.cells(i) for i in range(2)], grid.stats(), list(grid.all_elites())
    state = random.getstate()
    for seed in range(100):
        sampler(grid).sample(seed % 2, random.Random(seed))
    assert ([grid.cells(i) for i in range(2)], grid.stats(), grid.all_elites()) == before
    assert random.getstate() == state

"""Choosing what a mutation starts from: a parent, inspirations and a crossover mate.

`Sampler` reads an `IslandGrid` and never changes it. It draws only from the rng it is
handed, in a fixed order (parent, then diverse inspirations, then mate), so the same grid
and the same rng seed give the same `Selection`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from adrs.engine.islands import Elite, IslandGrid
from adrs.types import Program


@dataclass(frozen=True)
class Selection:
    """What one mutation starts from.

    ``mate`` is a second parent for crossover: an elite of another cell, taken from another
    island when one has elites; None when the archive holds no other program.
    """

    island: int
    parent: Program
    inspirations: tuple[Program, ...]
    mate: Program | None


def _draw(pool: Sequence[Program], accept: Callable[[Program], bool],
          rng: random.Random, tries: int = 8) -> Program | None:
    """A uniformly random accepted member of ``pool``; None when none is accepted.

    Rejection sampling keeps the usual case O(1); after ``tries`` misses the accepted
    members are listed (O(len(pool))), which only happens when few are accepted.
    """
    if not pool:
        return None
    for _ in range(tries):
        candidate = pool[rng.randrange(len(pool))]
        if accept(candidate):
            return candidate
    accepted = [candidate for candidate in pool if accept(candidate)]
    return accepted[rng.randrange(len(accepted))] if accepted else None


class Sampler:
    """Exploit/explore parent selection with top and diverse inspirations over ``grid``.

    With probability ``exploit_ratio`` the parent is one of the island's top ``elite_pool``
    elites weighted 1/(rank+1), otherwise a uniformly random elite of the island.
    """

    def __init__(self, grid: IslandGrid, *, exploit_ratio: float, elite_pool: int,
                 num_top_inspirations: int, num_diverse_inspirations: int) -> None:
        self.grid = grid
        self.exploit_ratio = exploit_ratio
        self.elite_pool = elite_pool
        self.num_top_inspirations = num_top_inspirations
        self.num_diverse_inspirations = num_diverse_inspirations

    def sample(self, island: int, rng: random.Random) -> Selection:
        """A parent from ``island``, inspirations and a crossover mate.

        An empty island falls back on the global best for its parent. Inspirations are
        the island's top ``num_top_inspirations`` elites other than the parent, then up to
        ``num_diverse_inspirations`` random elites of any island, ids never repeated.
        Draws only from ``rng``; the grid is left unchanged. Raises LookupError while the
        grid holds no valid program.
        """
        self.grid.check_island(island)
        best = self.grid.best
        if best is None:
            raise LookupError("the archive holds no valid program yet: add an evaluated, "
                              "valid program (the initial program) before sampling")
        ranked = self.grid.ranked(island)
        parent = self._pick_parent(ranked, rng) if ranked else best
        inspirations = self._inspirations(ranked, parent, rng)
        mate = self._pick_mate(island, parent, rng)
        return Selection(island=island, parent=parent, inspirations=inspirations, mate=mate)

    def _pick_parent(self, ranked: Sequence[Elite], rng: random.Random) -> Program:
        if rng.random() < self.exploit_ratio:
            pool = ranked[:self.elite_pool]
            weights = [1.0 / (rank + 1) for rank in range(len(pool))]
            return rng.choices(pool, weights=weights)[0].program
        return ranked[rng.randrange(len(ranked))].program

    def _inspirations(self, ranked: Sequence[Elite], parent: Program,
                      rng: random.Random) -> tuple[Program, ...]:
        """The island's best (parent excluded), then random elites of other cells."""
        chosen: list[Program] = []
        for elite in ranked:
            if len(chosen) >= self.num_top_inspirations:
                break
            if elite.program.id != parent.id:
                chosen.append(elite.program)
        taken = {parent.id, *(program.id for program in chosen)}
        for _ in range(self.num_diverse_inspirations):
            found = _draw(self.grid.all_elites(), lambda p: p.id not in taken, rng)
            if found is None:
                break
            taken.add(found.id)  # also rules out migrant copies of the same program
            chosen.append(found)
        return tuple(chosen)

    def _pick_mate(self, island: int, parent: Program, rng: random.Random) -> Program | None:
        """A uniformly random elite of another island; of this island if no other has one."""
        pool = self.grid.all_elites()
        mate = _draw(pool, lambda p: p.island != island and p.id != parent.id, rng)
        return mate if mate is not None else _draw(pool, lambda p: p.id != parent.id, rng)

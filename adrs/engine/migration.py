"""Moving elites between the islands of an `IslandGrid`: ring migration and the seeding of
stalled islands with a new best (`StalledSeeding`).

Every ``interval`` add() calls, whatever their verdicts, each island copies its top ``size``
elites into the next island of the ring (the last into the first). Migration draws no
random number: it is a pure function of the grid and of the number of calls.
"""

from __future__ import annotations

from dataclasses import replace

from adrs.engine.islands import Elite, IslandGrid
from adrs.types import Program


class RingMigration:
    """Counts add() calls on ``grid`` and migrates after every ``interval``-th one.

    ``size`` 0, or a single island, turns migration off (nothing is counted as run).
    """

    def __init__(self, grid: IslandGrid, *, interval: int, size: int) -> None:
        self.grid = grid
        self.interval = interval
        self.size = size
        self._calls = 0
        self._runs = 0

    @property
    def runs(self) -> int:
        """How many migrations have run so far."""
        return self._runs

    def after_add(self) -> None:
        """Count one add() call on the grid; migrate if it is an ``interval``-th one."""
        self._calls += 1
        if self._calls % self.interval == 0:
            self.migrate()

    def migrate(self) -> None:
        """Copy each island's top elites into the next island of the ring.

        Emigrants are chosen from a snapshot taken before any copy lands, so the result
        does not depend on the order islands are visited in.
        """
        count = self.grid.count
        if count < 2 or self.size == 0:
            return
        self._runs += 1
        emigrants = [self.grid.ranked(island)[:self.size] for island in range(count)]
        for source, elites in enumerate(emigrants):
            destination = (source + 1) % count
            for elite in elites:
                moved = replace(elite.program, island=destination)
                self.grid.place(destination, Elite(moved, elite.features))


class StalledSeeding:
    """Progress-driven seeding: each new global best that beats the initial program is
    copied into every island whose best elite still does not beat the initial program.

    With four islands that each start from the initial program alone and ring migration
    every 40 insertions, a 40-100 call run leaves most islands asking about the initial
    program again and again; this lets them start from the best found so far as soon as
    there is one, and leaves islands that made progress of their own untouched. Like ring
    migration it draws no random number: it depends only on the programs added.
    """

    def __init__(self, grid: IslandGrid) -> None:
        self.grid = grid
        self._initial: float | None = None  # the initial program's score, once added
        self._copies = 0

    @property
    def copies(self) -> int:
        """How many seed copies have been placed so far."""
        return self._copies

    def after_add(self, program: Program, previous_best: Program | None) -> None:
        """Seed stalled islands when `program` (just offered) became the global best."""
        if program.edit_kind == "initial" and program.result.valid and self._initial is None:
            self._initial = program.score
        best = self.grid.best
        if (self._initial is None or best is None or best.id != program.id
                or (previous_best is not None and previous_best.id == best.id)
                or not best.score > self._initial):
            return
        elite = self.grid.elite(best)
        if elite is None:
            return
        for island in range(self.grid.count):
            ranked = self.grid.ranked(island)
            if island != best.island and (not ranked
                                          or not ranked[0].program.score > self._initial):
                self.grid.place(island, Elite(replace(best, island=island), elite.features))
                self._copies += 1

"""Ring migration between the islands of an `IslandGrid`.

Every ``interval`` add() calls, whatever their verdicts, each island copies its top ``size``
elites into the next island of the ring (the last into the first). Migration draws no
random number: it is a pure function of the grid and of the number of calls.
"""

from __future__ import annotations

from dataclasses import replace

from adrs.engine.islands import Elite, IslandGrid


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

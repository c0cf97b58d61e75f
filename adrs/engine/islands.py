"""The storage half of the MAP-Elites archive: a grid of cells per island, one elite each.

Each island is a grid of cells (one per combination of feature bins) holding one elite: the
best valid program seen for that cell on that island. `IslandGrid` stores programs, keeps
the adaptive feature ranges and the per-island rankings, and answers every query; it draws
no random number. Choosing parents (`adrs.engine.sampling`) and moving elites between
islands (`adrs.engine.migration`) work on top of it.

Nothing here iterates over a set or depends on hash order, and every tie is broken by the
lower program id. `add` touches at most the cells of the grid (never the history of added
programs); the list of every island's elites is cached and rebuilt only after a change.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from adrs.code.features import Binning, FeatureDim, feature_values
from adrs.types import Program

Cell = tuple[int, ...]


class AddStatus(Enum):
    """What `Archive.add` did with a program."""

    NEW = "new"  # it filled an empty cell
    IMPROVED = "improved"  # it replaced a worse elite
    NOT_ADDED = "not_added"  # invalid, or not strictly better than the cell's elite
    # valid, but its metrics equal those of a program offered before: no archive place
    BEHAVIOUR_DUPLICATE = "behaviour_duplicate"


@dataclass(frozen=True)
class ArchiveStats:
    """Counters and quality-diversity measures; cells are counted over all islands."""

    added: int
    valid: int
    cells_filled: int
    cells_total: int
    coverage: float
    qd_score: float
    best_score: float | None
    best_id: int | None


@dataclass(frozen=True, slots=True)
class Elite:
    """A stored program and its feature vector."""

    program: Program
    features: tuple[float, ...]  # cached: re-binning and migration never recompute them


def _rank_key(elite: Elite) -> tuple[float, int]:
    return (-elite.program.score, elite.program.id)


def _beats(challenger: Program, incumbent: Program) -> bool:
    """Strictly higher score, or the same score and a lower id (the total order of ranks)."""
    if challenger.score != incumbent.score:
        return challenger.score > incumbent.score
    return challenger.id < incumbent.id


@dataclass
class _Island:
    """One grid of cells and its ranking (best first, ties by lower id), kept in step.

    Within an island rank keys are unique: one id has one feature vector, hence one cell.
    """

    cells: dict[Cell, Elite] = field(default_factory=dict)
    ranked: list[Elite] = field(default_factory=list)

    def place(self, cell: Cell, elite: Elite) -> AddStatus:
        """Store ``elite`` if its cell is empty or it scores strictly higher (ties keep)."""
        incumbent = self.cells.get(cell)
        if incumbent is not None:
            if not elite.program.score > incumbent.program.score:
                return AddStatus.NOT_ADDED
            self._unrank(incumbent)
        self.cells[cell] = elite
        bisect.insort(self.ranked, elite, key=_rank_key)
        return AddStatus.NEW if incumbent is None else AddStatus.IMPROVED

    def retire_initial(self, score: float) -> bool:
        """Drop the initial program's elite when it scores below ``score``; True if dropped.

        The initial program is the start, not an idea: once the island holds something
        better it would only ask the same question again as a parent or an inspiration.
        """
        for cell, elite in list(self.cells.items()):
            if elite.program.edit_kind == "initial" and elite.program.score < score:
                del self.cells[cell]
                self._unrank(elite)
                return True
        return False

    def _unrank(self, elite: Elite) -> None:
        index = bisect.bisect_left(self.ranked, _rank_key(elite), key=_rank_key)
        while self.ranked[index] is not elite:  # only if a caller reused an id
            index += 1
        del self.ranked[index]

    def rebin(self, binnings: Sequence[Binning], moved: Sequence[bool]) -> bool:
        """Recompute the elites' cells along the dimensions whose binning ``moved``;
        where elites collide the best one stays. Returns True when an elite was dropped.
        """
        elites = list(self.cells.values())
        new_cells = _recell(list(self.cells), elites, binnings, moved)
        if len(set(new_cells)) == len(new_cells):  # no collision: the usual, fast case
            self.cells = dict(zip(new_cells, elites, strict=True))
            return False
        cells: dict[Cell, Elite] = {}
        for cell, elite in zip(new_cells, elites, strict=True):
            other = cells.get(cell)
            if other is None or _beats(elite.program, other.program):
                cells[cell] = elite
        self.cells = cells
        kept = {id(elite) for elite in cells.values()}  # membership only, never iterated
        self.ranked = [elite for elite in self.ranked if id(elite) in kept]
        return True


def _recell(old_cells: list[Cell], elites: list[Elite], binnings: Sequence[Binning],
            moved: Sequence[bool]) -> list[Cell]:
    """The cells of ``elites`` under ``binnings``; unmoved dimensions keep their old bin.

    Works one dimension at a time, in bulk: this is the archive's hottest loop when an
    adaptive range widens often (for example code length creeping up).
    """
    if not binnings:
        return [()] * len(elites)
    columns = [binning.indices([elite.features[d] for elite in elites]) if moved[d]
               else [cell[d] for cell in old_cells] for d, binning in enumerate(binnings)]
    return list(zip(*columns, strict=True))


def _cell_of(features: Sequence[float], binnings: Sequence[Binning]) -> Cell:
    return tuple(b.index(v) for b, v in zip(binnings, features, strict=True))


class IslandGrid:
    """``count`` islands of cells over the feature dimensions ``dims``.

    Feed it with `add` in a fixed order; `place` stores an elite whose features are already
    known (migration uses it). ``qd_offset`` is subtracted from every score in the QD score.
    With ``retire_initial`` an island drops the initial program (edit kind "initial") as
    soon as it holds a program that scores higher (see `_Island.retire_initial`).
    """

    def __init__(self, count: int, dims: tuple[FeatureDim, ...], qd_offset: float = 0.0,
                 *, retire_initial: bool = False) -> None:
        self.count = count
        self.dims = dims
        self.qd_offset = qd_offset
        self.retire_initial = retire_initial
        self._islands = [_Island() for _ in range(count)]
        # Observed (min, max) per dimension over valid programs; None until one is seen.
        self._observed: list[tuple[float, float] | None] = [None] * len(dims)
        self._binnings = self._current_binnings()
        self._added = 0
        self._valid = 0
        self._best: Program | None = None
        self._all: list[Program] | None = None  # every island's ranking, island by island

    # ----------------------------------------------------------------- adding programs

    def add(self, program: Program, *, store: bool = True) -> AddStatus:
        """Offer ``program`` to the grid of ``program.island``.

        Invalid programs are counted and never stored; valid ones widen the adaptive
        ranges (re-binning every island if a range moved) before they are placed. With
        ``store`` False a valid program is only counted (a behavioural duplicate).
        """
        self.check_island(program.island)
        self._added += 1
        if not program.result.valid:
            return AddStatus.NOT_ADDED
        self._valid += 1
        if not store:
            return AddStatus.BEHAVIOUR_DUPLICATE
        features = feature_values(program, self.dims)
        self._observe(features)
        return self.place(program.island, Elite(program, features))

    def place(self, island: int, elite: Elite) -> AddStatus:
        """Store ``elite`` on ``island`` under the current binning; ranges are unchanged."""
        grid = self._islands[island]
        status = grid.place(_cell_of(elite.features, self._binnings), elite)
        if status is not AddStatus.NOT_ADDED:
            self._all = None
            if self.retire_initial and elite.program.edit_kind != "initial":
                grid.retire_initial(elite.program.score)
            if self._best is None or _beats(elite.program, self._best):
                self._best = elite.program
        return status

    def _observe(self, features: tuple[float, ...]) -> None:
        """Widen the adaptive ranges to cover ``features``; re-bin only if a range moved."""
        moved = False
        for i, value in enumerate(features):
            seen = self._observed[i]
            if seen is None or value < seen[0] or value > seen[1]:
                self._observed[i] = (value, value) if seen is None else (
                    min(seen[0], value), max(seen[1], value))
                moved = moved or self.dims[i].adaptive
        if not moved:
            return
        binnings = self._current_binnings()
        changed = [new != old for new, old in zip(binnings, self._binnings, strict=True)]
        self._binnings = binnings
        if not any(changed):
            return
        dropped = [island.rebin(binnings, changed) for island in self._islands if island.cells]
        if any(dropped):
            self._all = None

    def _current_binnings(self) -> tuple[Binning, ...]:
        return tuple(Binning.for_dim(dim, seen)
                     for dim, seen in zip(self.dims, self._observed, strict=True))

    def check_island(self, island: int) -> None:
        """Raise ValueError unless ``island`` is one of this grid's islands."""
        if not 0 <= island < self.count:
            raise ValueError(f"island {island} does not exist: this archive has islands "
                             f"0..{self.count - 1}")

    # ---------------------------------------------------------------------- queries

    @property
    def best(self) -> Program | None:
        """The best valid program stored (ties: lower id); None before any."""
        return self._best

    @property
    def binnings(self) -> tuple[Binning, ...]:
        """The current binning of each feature dimension (adaptive ranges included)."""
        return self._binnings

    def stats(self) -> ArchiveStats:
        scores = [elite.program.score for island in self._islands
                  for elite in island.cells.values()]
        total = self.count * math.prod(dim.bins for dim in self.dims)
        best = self._best
        return ArchiveStats(
            added=self._added, valid=self._valid, cells_filled=len(scores),
            cells_total=total, coverage=len(scores) / total,
            qd_score=math.fsum(score - self.qd_offset for score in scores),
            best_score=None if best is None else best.score,
            best_id=None if best is None else best.id)

    def elite(self, program: Program) -> Elite | None:
        """The stored elite of ``program`` on its island, or None when it holds no cell."""
        for elite in self.ranked(program.island):
            if elite.program.id == program.id:
                return elite
        return None

    def ranked(self, island: int) -> Sequence[Elite]:
        """The elites of ``island`` best first (ties: lower id). The grid's own list, not a
        copy: read it, never change it, and copy what must survive the next `place`."""
        self.check_island(island)
        return self._islands[island].ranked

    def all_elites(self) -> list[Program]:
        """Every island's ranking, island by island (cached; a program copied by migration
        appears once per island holding it). The grid's own list: read it only."""
        if self._all is None:
            self._all = [elite.program for island in self._islands
                         for elite in island.ranked]
        return self._all

    def elites(self, island: int | None = None) -> list[Program]:
        """Elites best first (ties: lower id). With no island, each program id appears
        once (the copy on the lowest-numbered island)."""
        if island is not None:
            return [elite.program for elite in self.ranked(island)]
        every = sorted(self.all_elites(), key=lambda p: (-p.score, p.id, p.island))
        seen: set[int] = set()
        unique: list[Program] = []
        for program in every:
            if program.id not in seen:
                seen.add(program.id)
                unique.append(program)
        return unique

    def cells(self, island: int) -> dict[Cell, Program]:
        """The filled cells of ``island`` (a copy, keys in sorted order)."""
        self.check_island(island)
        grid = self._islands[island].cells
        return {cell: grid[cell].program for cell in sorted(grid)}

    def bins_of(self, program: Program) -> Cell:
        """The cell ``program`` falls in under the current binning (ranges unchanged)."""
        return _cell_of(feature_values(program, self.dims), self._binnings)

"""MAP-Elites archive split into islands, with ring migration and parent sampling.

Each island is a grid of cells (one per combination of feature bins) holding one elite: the
best valid program seen for that cell on that island. The archive is a pure function of the
sequence of `Archive.add` calls and of the rngs handed to `Archive.sample`: nothing iterates
over a set or depends on hash order, and every tie is broken by the lower program id.

Cost: `add` and `sample` touch at most the cells of the archive (never the history of added
programs); per-island rankings are cached and rebuilt only after that island changed.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum

from adrs.code.features import Binning, FeatureDim, feature_values
from adrs.types import Program

Cell = tuple[int, ...]


@dataclass(frozen=True)
class ArchiveConfig:
    """Shape of the grid and the sampling knobs. Every field is checked on construction."""

    islands: int = 4
    features: tuple[FeatureDim, ...] = (FeatureDim("code_length"), FeatureDim("complexity"))
    migration_interval: int = 40
    migration_size: int = 2
    exploit_ratio: float = 0.7
    elite_pool: int = 5
    num_top_inspirations: int = 3
    num_diverse_inspirations: int = 2
    qd_offset: float = 0.0

    def __post_init__(self) -> None:
        # A list from a config file is accepted; the stored value is always a tuple.
        object.__setattr__(self, "features", tuple(self.features))
        _check_int("islands", self.islands, 1, "use islands=1 for a single population")
        _check_int("migration_interval", self.migration_interval, 1,
                   "it counts add() calls between migrations")
        _check_int("migration_size", self.migration_size, 0, "use 0 to disable migration")
        _check_int("elite_pool", self.elite_pool, 1, "it is how many top elites exploit from")
        _check_int("num_top_inspirations", self.num_top_inspirations, 0, "use 0 for none")
        _check_int("num_diverse_inspirations", self.num_diverse_inspirations, 0,
                   "use 0 for none")
        if not 0.0 <= self.exploit_ratio <= 1.0:
            raise ValueError(f"exploit_ratio must be between 0 and 1, got {self.exploit_ratio!r}"
                             "; for example 0.7 exploits 70% of the time")
        if not math.isfinite(self.qd_offset):
            raise ValueError(f"qd_offset must be a finite number, got {self.qd_offset!r}; "
                             "use a value at or below the worst expected score")
        self._check_features()

    def _check_features(self) -> None:
        for dim in self.features:
            if not isinstance(dim, FeatureDim):
                raise ValueError(f"features must be FeatureDim values, got {dim!r}; "
                                 "write for example FeatureDim('complexity', bins=8)")
        names = [dim.name for dim in self.features]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"feature names must be unique, {duplicates} appear twice; "
                             "remove the repeated dimension")

    @property
    def cells_per_island(self) -> int:
        return math.prod(dim.bins for dim in self.features)


def _check_int(name: str, value: object, minimum: int, hint: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}; {hint}")


class AddStatus(Enum):
    """What `Archive.add` did with a program."""

    NEW = "new"  # it filled an empty cell
    IMPROVED = "improved"  # it replaced a worse elite
    NOT_ADDED = "not_added"  # invalid, or not strictly better than the cell's elite


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


@dataclass(frozen=True, slots=True)
class _Elite:
    program: Program
    features: tuple[float, ...]  # cached: re-binning and migration never recompute them


def _rank_key(elite: _Elite) -> tuple[float, int]:
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

    cells: dict[Cell, _Elite] = field(default_factory=dict)
    ranked: list[_Elite] = field(default_factory=list)

    def place(self, cell: Cell, elite: _Elite) -> AddStatus:
        """Store ``elite`` if its cell is empty or it scores strictly higher (ties keep)."""
        incumbent = self.cells.get(cell)
        if incumbent is not None:
            if not elite.program.score > incumbent.program.score:
                return AddStatus.NOT_ADDED
            self._unrank(incumbent)
        self.cells[cell] = elite
        bisect.insort(self.ranked, elite, key=_rank_key)
        return AddStatus.NEW if incumbent is None else AddStatus.IMPROVED

    def _unrank(self, elite: _Elite) -> None:
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
        cells: dict[Cell, _Elite] = {}
        for cell, elite in zip(new_cells, elites, strict=True):
            other = cells.get(cell)
            if other is None or _beats(elite.program, other.program):
                cells[cell] = elite
        self.cells = cells
        kept = {id(elite) for elite in cells.values()}  # membership only, never iterated
        self.ranked = [elite for elite in self.ranked if id(elite) in kept]
        return True


def _recell(old_cells: list[Cell], elites: list[_Elite], binnings: Sequence[Binning],
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


def _cell_of(features: Sequence[float], binnings: Sequence[Binning]) -> Cell:
    return tuple(b.index(v) for b, v in zip(binnings, features, strict=True))


class Archive:
    """MAP-Elites islands. Feed it with `add` in a fixed order; draw work with `sample`.

    ``seed`` is kept for callers that derive rngs from it; the archive itself draws no
    random number outside `sample` (migration is deterministic).
    """

    def __init__(self, config: ArchiveConfig, seed: int = 0) -> None:
        self.config = config
        self.seed = seed
        self._dims = config.features
        self._islands = [_Island() for _ in range(config.islands)]
        # Observed (min, max) per dimension over valid programs; None until one is seen.
        self._observed: list[tuple[float, float] | None] = [None] * len(self._dims)
        self._binnings = self._current_binnings()
        self._added = 0
        self._valid = 0
        self._migrations = 0
        self._best: Program | None = None
        self._all: list[Program] | None = None  # every island's ranking, island by island

    # ----------------------------------------------------------------- adding programs

    def add(self, program: Program) -> AddStatus:
        """Offer ``program`` to the grid of ``program.island``; may trigger a migration.

        Invalid programs are counted and never stored. Migration runs after every
        ``migration_interval``-th call, whatever the verdicts were.
        """
        self._check_island(program.island)
        self._added += 1
        status = AddStatus.NOT_ADDED
        if program.result.valid:
            self._valid += 1
            features = feature_values(program, self._dims)
            self._observe(features)
            status = self._place(program.island, _Elite(program, features))
        if self._added % self.config.migration_interval == 0:
            self._migrate()
        return status

    def _place(self, island: int, elite: _Elite) -> AddStatus:
        status = self._islands[island].place(_cell_of(elite.features, self._binnings), elite)
        if status is not AddStatus.NOT_ADDED:
            self._all = None
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
                moved = moved or self._dims[i].adaptive
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
                     for dim, seen in zip(self._dims, self._observed, strict=True))

    def _migrate(self) -> None:
        """Copy each island's top elites into the next island of the ring.

        Emigrants are chosen from a snapshot taken before any copy lands, so the result
        does not depend on the order islands are visited in.
        """
        count = self.config.islands
        if count < 2 or self.config.migration_size == 0:
            return
        self._migrations += 1
        size = self.config.migration_size
        emigrants = [island.ranked[:size] for island in self._islands]
        for source, elites in enumerate(emigrants):
            destination = (source + 1) % count
            for elite in elites:
                moved = replace(elite.program, island=destination)
                self._place(destination, _Elite(moved, elite.features))

    # --------------------------------------------------------------------- sampling

    def sample(self, island: int, rng: random.Random) -> Selection:
        """A parent from ``island``, inspirations and a crossover mate.

        The parent is, with probability ``exploit_ratio``, one of the island's top
        ``elite_pool`` elites weighted 1/(rank+1), otherwise a uniformly random elite of
        the island; an empty island falls back on the global best. Inspirations are the
        island's top ``num_top_inspirations`` elites other than the parent, then up to
        ``num_diverse_inspirations`` random elites of any island, ids never repeated.
        Draws only from ``rng``; the archive is left unchanged. Raises LookupError while
        the archive holds no valid program.
        """
        self._check_island(island)
        if self._best is None:
            raise LookupError("the archive holds no valid program yet: add an evaluated, "
                              "valid program (the initial program) before sampling")
        ranked = self._islands[island].ranked
        parent = self._pick_parent(ranked, rng) if ranked else self._best
        inspirations = self._inspirations(ranked, parent, rng)
        mate = self._pick_mate(island, parent, rng)
        return Selection(island=island, parent=parent, inspirations=inspirations, mate=mate)

    def _pick_parent(self, ranked: list[_Elite], rng: random.Random) -> Program:
        if rng.random() < self.config.exploit_ratio:
            pool = ranked[:self.config.elite_pool]
            weights = [1.0 / (rank + 1) for rank in range(len(pool))]
            return rng.choices(pool, weights=weights)[0].program
        return ranked[rng.randrange(len(ranked))].program

    def _inspirations(self, ranked: list[_Elite], parent: Program,
                      rng: random.Random) -> tuple[Program, ...]:
        """The island's best (parent excluded), then random elites of other cells."""
        chosen: list[Program] = []
        for elite in ranked:
            if len(chosen) >= self.config.num_top_inspirations:
                break
            if elite.program.id != parent.id:
                chosen.append(elite.program)
        taken = {parent.id, *(program.id for program in chosen)}
        for _ in range(self.config.num_diverse_inspirations):
            found = _draw(self._all_elites(), lambda p: p.id not in taken, rng)
            if found is None:
                break
            taken.add(found.id)  # also rules out migrant copies of the same program
            chosen.append(found)
        return tuple(chosen)

    def _pick_mate(self, island: int, parent: Program, rng: random.Random) -> Program | None:
        """A uniformly random elite of another island; of this island if no other has one."""
        pool = self._all_elites()
        mate = _draw(pool, lambda p: p.island != island and p.id != parent.id, rng)
        return mate if mate is not None else _draw(pool, lambda p: p.id != parent.id, rng)

    def _all_elites(self) -> list[Program]:
        if self._all is None:
            self._all = [elite.program for island in self._islands
                         for elite in island.ranked]
        return self._all

    # ---------------------------------------------------------------------- queries

    def best(self) -> Program | None:
        """The best valid program stored (ties: lower id); None before any."""
        return self._best

    @property
    def migrations(self) -> int:
        """How many migrations have run so far."""
        return self._migrations

    @property
    def binnings(self) -> tuple[Binning, ...]:
        """The current binning of each feature dimension (adaptive ranges included)."""
        return self._binnings

    def stats(self) -> ArchiveStats:
        scores = [elite.program.score for island in self._islands
                  for elite in island.cells.values()]
        total = self.config.islands * self.config.cells_per_island
        best = self._best
        return ArchiveStats(
            added=self._added, valid=self._valid, cells_filled=len(scores),
            cells_total=total, coverage=len(scores) / total,
            qd_score=math.fsum(score - self.config.qd_offset for score in scores),
            best_score=None if best is None else best.score,
            best_id=None if best is None else best.id)

    def elites(self, island: int | None = None) -> list[Program]:
        """Elites best first (ties: lower id). With no island, each program id appears
        once (the copy on the lowest-numbered island)."""
        if island is not None:
            self._check_island(island)
            return [elite.program for elite in self._islands[island].ranked]
        every = sorted(self._all_elites(), key=lambda p: (-p.score, p.id, p.island))
        seen: set[int] = set()
        unique: list[Program] = []
        for program in every:
            if program.id not in seen:
                seen.add(program.id)
                unique.append(program)
        return unique

    def cells(self, island: int) -> dict[Cell, Program]:
        """The filled cells of ``island`` (a copy, keys in sorted order)."""
        self._check_island(island)
        grid = self._islands[island].cells
        return {cell: grid[cell].program for cell in sorted(grid)}

    def bins_of(self, program: Program) -> Cell:
        """The cell ``program`` falls in under the current binning (ranges unchanged)."""
        return _cell_of(feature_values(program, self._dims), self._binnings)

    def _check_island(self, island: int) -> None:
        if not 0 <= island < self.config.islands:
            raise ValueError(f"island {island} does not exist: this archive has islands "
                             f"0..{self.config.islands - 1}")

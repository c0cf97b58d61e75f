"""MAP-Elites archive split into islands, with ring migration and parent sampling.

`Archive` is what callers use; it composes three parts, each with one concern:

- `adrs.engine.islands.IslandGrid`: the cells of every island, one elite each, insertion
  with its `AddStatus`, adaptive feature ranges, statistics and queries;
- `adrs.engine.sampling.Sampler`: parent (exploit/explore), inspirations (top, diverse)
  and crossover mate, drawn from a caller's rng;
- `adrs.engine.migration.RingMigration`: every N add() calls, each island's best elites
  are copied into the next island;
- `adrs.engine.migration.StalledSeeding`: a new best that beats the initial program is
  copied into every island still stuck at the start (``seed_stalled_islands``).

Two rules keep a short run from circling the initial program: islands drop it once they
hold something better (``retire_initial``), and a valid program whose score and metrics
equal those of a program offered before is a behavioural duplicate (``behaviour_dedup``):
counted, never given a cell, and named by `Archive.twin_of` so callers can mark it.
Measured times are left out of that comparison, since they differ on every evaluation of the
same program: a metric whose name, before any ``[``, contains ``runtime`` or ends in ``_s``
or ``_ms`` (``runtime_s``, ``runtime_s[W1]``, ``runtime_s_orders``, ``t_ms``), rates
(``*_per_s``) excepted, unless it is a feature dimension of the grid. The score is always
compared, and a program left with no other metric has no behaviour to compare.

The archive is a pure function of the sequence of `Archive.add` calls and of the rngs handed
to `Archive.sample`: nothing iterates over a set or depends on hash order, and every tie is
broken by the lower program id.

Cost: `add` and `sample` touch at most the cells of the archive (never the history of added
programs); per-island rankings are kept in step and the list of all elites is cached.
"""

from __future__ import annotations

import random
import re
from dataclasses import replace

from adrs.code.features import Binning
from adrs.config.archive import ArchiveConfig
from adrs.engine.islands import AddStatus, ArchiveStats, Cell, IslandGrid
from adrs.engine.migration import RingMigration, StalledSeeding
from adrs.engine.sampling import Sampler, Selection
from adrs.store.database import CandidateRecord
from adrs.types import MetricValue, Program

Behaviour = tuple[float, tuple[tuple[str, MetricValue], ...]]

# A measured time, by the name's field part (before any "["): see the module docstring.
_MEASURED = re.compile(r"runtime|(?<!_per)_m?s$")

__all__ = ["AddStatus", "Archive", "ArchiveConfig", "ArchiveStats", "Cell", "Selection",
           "behaviour_marked", "is_measured_time"]


class Archive:
    """MAP-Elites islands. Feed it with `add` in a fixed order; draw work with `sample`.

    ``seed`` is kept for callers that derive rngs from it; the archive itself draws no
    random number outside `sample` (migration is deterministic). The parts are public
    (``grid``, ``sampler``, ``migration``) for callers that need one concern only.
    """

    def __init__(self, config: ArchiveConfig, seed: int = 0) -> None:
        self.config = config
        self.seed = seed
        self.grid = IslandGrid(config.islands, config.features, qd_offset=config.qd_offset,
                               retire_initial=config.retire_initial)
        self.sampler = Sampler(self.grid, exploit_ratio=config.exploit_ratio,
                               elite_pool=config.elite_pool,
                               num_top_inspirations=config.num_top_inspirations,
                               num_diverse_inspirations=config.num_diverse_inspirations)
        self.migration = RingMigration(self.grid, interval=config.migration_interval,
                                       size=config.migration_size)
        self.seeding = StalledSeeding(self.grid) if config.seed_stalled_islands else None
        self._behaviours: dict[Behaviour, int] = {}  # score and metrics -> first program id
        self._features = frozenset(f.name for f in config.features)  # always compared

    def add(self, program: Program) -> AddStatus:
        """Offer ``program`` to the grid of ``program.island``; may trigger a migration.

        Invalid programs are counted and never stored, nor are behavioural duplicates
        (`twin_of`). A new best may seed stalled islands; migration runs after every
        ``migration_interval``-th call, whatever the verdicts were.
        """
        previous_best = self.grid.best
        twin = self.twin_of(program)
        if twin is None and program.result.valid and self.config.behaviour_dedup:
            key = _behaviour(program, self._features)
            if key is not None:
                self._behaviours.setdefault(key, program.id)
        status = self.grid.add(program, store=twin is None)
        if self.seeding is not None:
            self.seeding.after_add(program, previous_best)
        self.migration.after_add()
        return status

    def twin_of(self, program: Program) -> int | None:
        """The id of an earlier program offered to the archive whose score and metrics all
        equal those of ``program`` (a behavioural duplicate); None when there is none, when
        ``program`` is invalid or has no metrics, or with ``behaviour_dedup`` off."""
        if not self.config.behaviour_dedup or not program.result.valid:
            return None
        key = _behaviour(program, self._features)
        twin = None if key is None else self._behaviours.get(key)
        return None if twin == program.id else twin

    def sample(self, island: int, rng: random.Random) -> Selection:
        """A parent from ``island``, inspirations and a crossover mate (see `Sampler`).

        The parent is, with probability ``exploit_ratio``, one of the island's top
        ``elite_pool`` elites weighted 1/(rank+1), otherwise a uniformly random elite of
        the island; an empty island falls back on the global best. Inspirations are the
        island's top ``num_top_inspirations`` elites other than the parent, then up to
        ``num_diverse_inspirations`` random elites of any island, ids never repeated.
        Draws only from ``rng``; the archive is left unchanged. Raises LookupError while
        the archive holds no valid program.
        """
        return self.sampler.sample(island, rng)

    def best(self) -> Program | None:
        """The best valid program stored (ties: lower id); None before any."""
        return self.grid.best

    @property
    def seed_copies(self) -> int:
        """How many copies of a new best stalled islands have received."""
        return 0 if self.seeding is None else self.seeding.copies

    @property
    def migrations(self) -> int:
        """How many migrations have run so far."""
        return self.migration.runs

    @property
    def binnings(self) -> tuple[Binning, ...]:
        """The current binning of each feature dimension (adaptive ranges included)."""
        return self.grid.binnings

    def stats(self) -> ArchiveStats:
        return self.grid.stats()

    def elites(self, island: int | None = None) -> list[Program]:
        """Elites best first (ties: lower id). With no island, each program id appears
        once (the copy on the lowest-numbered island)."""
        return self.grid.elites(island)

    def cells(self, island: int) -> dict[Cell, Program]:
        """The filled cells of ``island`` (a copy, keys in sorted order)."""
        return self.grid.cells(island)

    def bins_of(self, program: Program) -> Cell:
        """The cell ``program`` falls in under the current binning (ranges unchanged)."""
        return self.grid.bins_of(program)


def is_measured_time(name: str) -> bool:
    """Whether metric `name` is a measured time, which differs on every evaluation of the
    same program (``runtime_s``, ``runtime_s[W1]``, ``runtime_s_orders``, ``t_ms``; not
    ``tokens_per_s``)."""
    return _MEASURED.search(name.split("[", 1)[0]) is not None


def _behaviour(program: Program, features: frozenset[str]) -> Behaviour | None:
    """What two programs with the same behaviour share: the score and every metric but the
    measured times (those that are `features` kept); None without such metrics (a score
    alone says too little to call two programs the same)."""
    metrics = sorted((name, value) for name, value in program.result.metrics.items()
                     if name in features or not is_measured_time(name))
    if not metrics:
        return None
    return (program.score, tuple(metrics))


def behaviour_marked(record: CandidateRecord, archive: Archive) -> CandidateRecord:
    """`record` with a note naming its behavioural twin when `archive` will give it no
    place for that reason (the store and the dashboard show the note); else unchanged."""
    program = record.program()
    twin = None if program is None else archive.twin_of(program)
    if twin is None:
        return record
    note = f"behavioural duplicate of #{twin}: same score and metrics, no archive place"
    return record if note in record.notes else replace(record, notes=(*record.notes, note))

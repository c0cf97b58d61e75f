"""The `archive` section of a run's configuration: the grid's shape and sampling knobs."""

from __future__ import annotations

import math
from dataclasses import dataclass

from adrs.code.features import FeatureDim

__all__ = ["ArchiveConfig"]


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
    # Progress-aware exploration (issue 16): islands still at the start take each new best
    # that beats the initial program; an island drops the initial program once it holds a
    # better one; a valid program whose score and metrics equal an earlier one's takes no
    # archive place (it is stored, marked as a behavioural duplicate).
    seed_stalled_islands: bool = True
    retire_initial: bool = True
    behaviour_dedup: bool = True

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
        for name in ("seed_stalled_islands", "retire_initial", "behaviour_dedup"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
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



"""The run store's side tables: sampling points and re-evaluations.

They live in the run's SQLite file next to the candidates (adrs/store/database.py creates
them), but have their own readers and writers here so the store's main class stays small.
A store of an adrs version without a table, opened read-only, reads as empty.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True)
class Evaluation:
    """One of the evaluations of a re-evaluated candidate (adrs/engine/reevaluation.py):
    `n` 0 is its first evaluation, 1.. the re-evaluations, each in a fresh sandbox."""

    candidate_id: int
    code_hash: str
    n: int
    valid: bool
    score: float | None
    error: str | None = None
    duration_s: float = 0.0


class SideTables:
    """Launch points (adrs/engine/schedule.py) and re-evaluations
    (adrs/engine/reevaluation.py) of one run store; `RunStore.tables`."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def add_launch(self, candidate_id: int, sampled_after: int) -> None:
        """Record the sampling point of a launched candidate (adrs/engine/schedule.py):
        it was sampled from the archive once the candidates below `sampled_after` were
        applied. Committed before its proposal starts, so a killed run keeps it."""
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO launches VALUES (?, ?)",
                             (candidate_id, sampled_after))

    def launches(self) -> dict[int, int]:
        """Every recorded sampling point, by candidate id ({} for a store of an adrs version
        that recorded none, opened read-only)."""
        try:
            rows = self._db.execute("SELECT id, sampled_after FROM launches").fetchall()
        except sqlite3.OperationalError:  # no such table: an older store, read-only
            return {}
        return {int(row[0]): int(row[1]) for row in rows}

    def add_evaluation(self, ev: Evaluation) -> None:
        """Record one evaluation of a re-evaluated candidate, committed as it completes, so
        a resumed run reuses it instead of running it again."""
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO reevaluations VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (ev.candidate_id, ev.code_hash, ev.n, int(ev.valid), ev.score,
                              ev.error, ev.duration_s))

    def evaluations(self, candidate_id: int | None = None) -> list[Evaluation]:
        """The recorded evaluations of re-evaluated candidates (of `candidate_id` only, if
        given), by candidate and n; [] for a store of an adrs version without them."""
        where, args = ("WHERE candidate_id = ?", (candidate_id,)) if candidate_id is not None \
            else ("", ())
        try:
            rows = self._db.execute(
                "SELECT candidate_id, code_hash, n, valid, score, error, duration_s FROM "
                f"reevaluations {where} ORDER BY candidate_id, n", args).fetchall()
        except sqlite3.OperationalError:  # no such table: an older store, read-only
            return []
        return [Evaluation(int(r[0]), str(r[1]), int(r[2]), bool(r[3]), r[4], r[5],
                           float(r[6])) for r in rows]

"""Sampling points: from which state of the archive each candidate was sampled.

In deterministic mode a candidate's parent, inspirations, crossover mate and recent attempts
depend only on the seed, its id and its sampling point `sampled_after`: the archive (and
attempts memory) once the candidates with ids below `sampled_after` were applied, in id
order. A live run launches whenever there is room, so that no slow LLM call holds back the
candidates behind it, samples from everything applied so far and records that point here;
a replay or a resume samples each recorded candidate at its recorded point instead, whatever
the timing, so it rebuilds the same archive from the same responses.

The points are kept in the run store (table `launches`, written before a proposal starts, so
a killed run keeps the points of the candidates it had in flight) and, when the run records
its LLM exchanges (`llm.record`), in a file next to the recording, `<recording>.launches`
(one JSON object a line: {"id": ..., "sampled_after": ...}); a replay (`llm.replay`) reads
that file. A recording without one (an older adrs) replays with fresh points.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import IO

from adrs.config.run_config import RunConfig
from adrs.errors import UserError
from adrs.store.database import RunStore

SUFFIX = ".launches"
_log = logging.getLogger(__name__)


def points_path(recording: str | Path) -> Path:
    """The file of sampling points that goes with the LLM recording `recording`."""
    path = Path(recording)
    return path.with_name(path.name + SUFFIX)


def read_points(path: Path) -> dict[int, int]:
    """The points in `path` ({} when it does not exist); the last line for an id wins."""
    if not path.is_file():
        return {}
    points: dict[int, int] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            points[int(data["id"])] = int(data["sampled_after"])
        except (ValueError, KeyError, TypeError):
            raise UserError(f"'{path}' line {number} is not a sampling point: delete the file "
                            "to replay with fresh points, or record the run again") from None
    return points


class SamplingPoints:
    """The recorded sampling points of a run, and the log of new ones."""

    def __init__(self, store: RunStore, config: RunConfig) -> None:
        self._store = store
        self._replay = points_path(config.llm.replay) if config.llm.replay else None
        self._record_to = points_path(config.llm.record) if config.llm.record else None
        self._loaded: dict[int, int] | None = None  # read when the session starts
        self._file: IO[str] | None = None

    @property
    def _points(self) -> dict[int, int]:
        if self._loaded is None:
            self._loaded = read_points(self._replay) if self._replay else {}
            if self._replay and not self._loaded:
                _log.warning("no sampling points in '%s': the replay samples afresh, and may "
                             "ask prompts the recording does not hold", self._replay)
            self._loaded.update(self._store.tables.launches())  # this run's own, on resume
        return self._loaded

    def get(self, candidate_id: int) -> int | None:
        """The recorded point of `candidate_id`, if any."""
        return self._points.get(candidate_id)

    def pending(self, start: int) -> dict[int, list[int]]:
        """The recorded candidates with ids from `start` on, grouped by their point."""
        points = self._points
        by_point: dict[int, list[int]] = {}
        for cid in sorted(c for c in points if c >= start):
            by_point.setdefault(points[cid], []).append(cid)
        return by_point

    def log(self, candidate_id: int, sampled_after: int) -> None:
        """Record that `candidate_id` was sampled at `sampled_after` (store, recording)."""
        self._points[candidate_id] = sampled_after
        self._store.tables.add_launch(candidate_id, sampled_after)
        if self._record_to is None:
            return
        if self._file is None:
            self._record_to.parent.mkdir(parents=True, exist_ok=True)
            self._file = self._record_to.open("a", encoding="utf-8")
        self._file.write(json.dumps({"id": candidate_id, "sampled_after": sampled_after})
                         + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

"""The dashboard's data layer: follows a run store and derives what the screens show.

No Textual here. `RunData.refresh()` reads only the rows added since the previous call
(the store commits each candidate as it completes), so following a live run costs a small
query per poll. The MAP-Elites grid is rebuilt incrementally with `archive_view.add_to`,
which adds records the way resume replays them.
"""

from __future__ import annotations

import difflib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from adrs.engine import archive_view as view
from adrs.engine.archive import Archive
from adrs.engine.reevaluation import Noise, noise_of
from adrs.store.database import EVENTS_NAME, CandidateRecord, RunEnding
from adrs.store.side_tables import Evaluation

Predicate = Callable[[CandidateRecord], bool]


@dataclass(frozen=True)
class ModelUsage:
    """LLM usage of one model over the run ('offline' when no LLM proposed)."""

    model: str
    candidates: int
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


@dataclass(frozen=True)
class Fetched:
    """What one `RunData.fetch` read: the candidates stored since the last take, and the
    stored evaluations of those that were evaluated more than once."""

    records: list[CandidateRecord]
    evaluations: list[Evaluation]


@dataclass(frozen=True)
class HeatGrid:
    """One island's grid projected on its first two feature dimensions.

    `cells` maps (row, column) to (candidate id, score); with more than two dimensions
    the best elite of the projected cells is shown.
    """

    x_name: str
    y_name: str
    columns: int
    rows: int
    cells: dict[tuple[int, int], tuple[int, float]]
    x_range: tuple[float, float]
    y_range: tuple[float, float]


class RunData:
    """Everything the dashboard knows about one run, refreshed from its store."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.store = view.open_run(run_dir)
        self.config = view.load_config(run_dir)
        self.archive = Archive(self.config.archive, seed=self.config.seed)
        self.records: dict[int, CandidateRecord] = {}
        self.counts = view.Counts()  # the same counts as `adrs show` and `adrs runs`
        self.children: dict[int, list[int]] = {}
        self.best_steps: list[tuple[int, float]] = []  # (candidate id, new best score)
        self.noise: dict[int, Noise] = {}  # the re-evaluated candidates (`adrs show` alike)
        self._events = _EventTail(run_dir / EVENTS_NAME)
        # The store's connection is used by one thread at a time: `fetch` runs in the app's
        # worker thread, and closing the connection under a running query would crash.
        self._lock = threading.Lock()
        self._closed = False
        self._ending = self.store.ending()
        self.refresh()

    # ------------------------------------------------------------------ loading
    def refresh(self) -> list[CandidateRecord]:
        """Load the candidates stored since the last call; returns them (id order)."""
        return self.take(self.fetch())

    def fetch(self) -> Fetched:
        """Read the candidates stored since the last `take`, changing nothing here.

        The only part of a refresh that waits on the database, so the app runs it in a
        worker thread while the UI thread keeps drawing from the records already held.
        A candidate's re-evaluations are stored before it is (adrs/engine/reevaluation.py),
        so reading them after the candidates finds all of theirs.
        """
        with self._lock:
            if self._closed:
                return Fetched([], [])
            records = self.store.records_after(max(self.records, default=-1))
            if not records:
                return Fetched([], [])
            first = records[0].id  # re-evaluations are few: a handful per new best
            return Fetched(records, [e for e in self.store.tables.evaluations()
                                     if e.candidate_id >= first])

    def take(self, fetched: Fetched) -> list[CandidateRecord]:
        """Add what `fetch` read (those not held yet) and read the event log; returns them."""
        new = [record for record in fetched.records if record.id not in self.records]
        self.counts = view.counts(new, self.counts)
        by_id: dict[int, list[Evaluation]] = {}
        for ev in fetched.evaluations:
            by_id.setdefault(ev.candidate_id, []).append(ev)
        for record in new:
            self.records[record.id] = record
            noise = noise_of(by_id.get(record.id, ()), record.code_hash)
            if noise is not None:
                self.noise[record.id] = noise
            for parent in record.parent_ids:
                self.children.setdefault(parent, []).append(record.id)
            view.add_to(self.archive, record)
            score = view.score_of(record)
            if score is not None and (not self.best_steps or score > self.best_steps[-1][1]):
                self.best_steps.append((record.id, score))
        self._events.read()
        return new

    def close(self) -> None:
        """Close the store, after a `fetch` running in another thread has finished."""
        with self._lock:
            self._closed = True
            self.store.close()

    # ------------------------------------------------------------------ queries
    @property
    def ending(self) -> RunEnding:
        """How the run ended, or that it runs (`RunStore.ending`: a run whose process died
        reads "killed"); the last answer once the store is closed."""
        with self._lock:
            if not self._closed:
                self._ending = self.store.ending()
            return self._ending

    @property
    def problem(self) -> str:
        with self._lock:
            return self.store.meta("problem") or "?"

    @property
    def in_flight(self) -> int:
        """Candidates launched (event log) but not yet stored; 0 once the run stopped."""
        if self._events.stopped:
            return 0
        return len(self._events.launched - self.records.keys())

    def best(self) -> CandidateRecord | None:
        best_id = self.counts.best_id
        return None if best_id is None else self.records[best_id]

    def valid_points(self) -> list[tuple[int, float]]:
        """(id, score) of every valid candidate, for the chart's scatter."""
        return [(r.id, s) for r in self.records.values()
                if (s := view.score_of(r)) is not None]

    def failures(self) -> list[tuple[CandidateRecord, str]]:
        """Failed candidates with their reasons, newest first."""
        found = [(r, reason) for r in self.records.values()
                 if (reason := view.failure_reason(r)) is not None]
        return sorted(found, key=lambda item: -item[0].id)

    def usage_by_model(self) -> list[ModelUsage]:
        totals: dict[str, list[float]] = {}
        for record in self.records.values():
            u = record.usage
            row = totals.setdefault(u.model or "offline", [0, 0, 0, 0, 0.0])
            for i, value in enumerate((1, u.calls, u.prompt_tokens, u.completion_tokens,
                                       u.cost_usd)):
                row[i] += value
        return [ModelUsage(model, int(r[0]), int(r[1]), int(r[2]), int(r[3]), r[4])
                for model, r in sorted(totals.items(), key=lambda kv: -kv[1][4])]

    def lineage(self, candidate_id: int) -> list[int]:
        """Ids from the initial program down to `candidate_id`, along first parents."""
        chain = [candidate_id]
        seen = {candidate_id}
        while True:
            record = self.records.get(chain[-1])
            if record is None or not record.parent_ids or record.parent_ids[0] in seen:
                return chain[::-1]
            chain.append(record.parent_ids[0])
            seen.add(chain[-1])

    def diff(self, candidate_id: int) -> str:
        """Unified diff of the candidate's source against its first parent's."""
        record = self.records[candidate_id]
        if not record.parent_ids:
            return "(the initial program has no parent)"
        parent = self.records.get(record.parent_ids[0])
        if parent is None or parent.code is None or record.code is None:
            return "(no source to compare)"
        lines = difflib.unified_diff(
            parent.code.splitlines(keepends=True), record.code.splitlines(keepends=True),
            fromfile=f"#{parent.id}", tofile=f"#{record.id}")
        return "".join(lines) or "(identical to its parent)"

    def heat(self, island: int) -> HeatGrid:
        dims = self.config.archive.features
        binnings = self.archive.binnings
        cells: dict[tuple[int, int], tuple[int, float]] = {}
        for cell, program in self.archive.cells(island).items():
            key = (cell[1] if len(cell) > 1 else 0, cell[0] if cell else 0)
            held = cells.get(key)
            if held is None or program.score > held[1]:
                cells[key] = (program.id, program.score)
        return HeatGrid(
            x_name=dims[0].name if dims else "-", y_name=dims[1].name if len(dims) > 1 else "-",
            columns=binnings[0].bins if binnings else 1,
            rows=binnings[1].bins if len(binnings) > 1 else 1, cells=cells,
            x_range=(binnings[0].lo, binnings[0].hi) if binnings else (0.0, 0.0),
            y_range=(binnings[1].lo, binnings[1].hi) if len(binnings) > 1 else (0.0, 0.0))


def score_label(score: float, noise: Noise | None) -> str:
    """A score for a narrow place: "19.8", or "19.8 ×3" when it is the mean of 3 evaluations
    (a new best evaluated again); the program screen says how they spread."""
    return f"{score:.6g}" + ("" if noise is None else f" ×{noise.evaluations}")


class _EventTail:
    """Reads an event log incrementally (from the last offset), tolerating a cut last line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.launched: set[int] = set()
        self.stopped = False

    def read(self) -> None:
        if not self.path.is_file():
            return
        with self.path.open("rb") as file:
            file.seek(self.offset)
            chunk = file.read()
        end = chunk.rfind(b"\n") + 1  # a line still being written waits for the next read
        self.offset += end
        for line in chunk[:end].splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            kind = event.get("type")
            if kind == "CandidateLaunched":
                self.launched.add(int(event["id"]))
            elif kind == "RunStarted":
                self.stopped = False
            elif kind == "RunStopped":
                self.stopped = True


# ------------------------------------------------------------------------- filtering
_COMPARE = re.compile(r"^(score|gen|island|id)(<=|>=|<|>|=)(-?[0-9.]+)$")
_WORDS: dict[str, Predicate] = {
    "failed": lambda r: view.failure_reason(r) is not None,
    "valid": lambda r: view.score_of(r) is not None,
    "invalid": lambda r: r.status == "evaluated" and view.score_of(r) is None,
    "duplicate": lambda r: r.status == "duplicate",
    "proposal_failed": lambda r: r.status == "proposal_failed",
}
FILTER_HELP = ("words: failed valid invalid duplicate proposal_failed; kind:X model:X; "
               "score>X gen<=N island=N id>N; any other text searches errors and notes")


def parse_filter(text: str) -> Predicate:
    """A predicate for the table's filter box: every term must hold (AND).

    Raises ValueError naming the bad term, for the UI to show.
    """
    terms = [_term(word) for word in text.split()]
    return lambda record: all(term(record) for term in terms)


def _term(word: str) -> Predicate:
    lowered = word.lower()
    if lowered in _WORDS:
        return _WORDS[lowered]
    if lowered.startswith(("kind:", "model:")):
        key, _, value = lowered.partition(":")
        if key == "kind":
            return lambda r: r.edit_kind == value
        return lambda r: value in (r.usage.model or "offline").lower()
    match = _COMPARE.match(lowered)
    if match:
        return _comparison(*match.groups())
    if ":" in lowered or lowered[:1] in "<>=":
        raise ValueError(f"unknown filter term {word!r}; {FILTER_HELP}")
    return lambda r: lowered in _searchable(r)


def _comparison(field: str, op: str, number: str) -> Predicate:
    target = float(number)

    def value(r: CandidateRecord) -> float | None:
        return {"score": view.score_of(r), "gen": float(r.generation),
                "island": float(r.island), "id": float(r.id)}[field]

    def holds(r: CandidateRecord) -> bool:
        v = value(r)
        if v is None:
            return False
        return {"<": v < target, ">": v > target, "<=": v <= target, ">=": v >= target,
                "=": v == target}[op]

    return holds


def _searchable(record: CandidateRecord) -> str:
    parts = [view.failure_reason(record) or "", " ".join(record.notes), record.edit_kind,
             record.response or ""]
    if record.result is not None:
        parts.append(record.result.feedback)
    return " ".join(parts).lower()

"""The run store: one folder per run with the resolved config, a SQLite database holding
every candidate (committed as it completes) and an append-only event log.

Resume reads the database alone, so a killed run loses at most its in-flight candidates.

How a run ended is metadata of the store (`status`, `stop_reason`), written by the process
that runs it while it holds the run's lock (`hold_lock`); readers get it through
`run_ending` or `RunStore.ending`, never from the raw metadata, so that a run whose
process died without recording an ending reads as "killed" instead of "running".
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from adrs.errors import UserError
from adrs.store.side_tables import SideTables
from adrs.types import EditKind, EvalResult, LLMUsage, Program

DB_NAME = "candidates.sqlite"
CONFIG_NAME = "config.yaml"
EVENTS_NAME = "events.jsonl"
LOCK_NAME = "run.lock"
SCHEMA_VERSION = "1"
Status = Literal["evaluated", "duplicate", "proposal_failed"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS candidates (
    id INTEGER PRIMARY KEY, status TEXT NOT NULL, island INTEGER NOT NULL,
    generation INTEGER NOT NULL, parent_ids TEXT NOT NULL, edit_kind TEXT NOT NULL,
    code TEXT, code_hash TEXT, prompt TEXT, response TEXT, notes TEXT NOT NULL,
    valid INTEGER, score REAL, result TEXT, error TEXT, duplicate_of INTEGER,
    model TEXT NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL, llm_calls INTEGER NOT NULL, attempts INTEGER NOT NULL,
    propose_s REAL NOT NULL, eval_s REAL NOT NULL, created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS candidates_hash ON candidates (code_hash);
CREATE TABLE IF NOT EXISTS launches (id INTEGER PRIMARY KEY, sampled_after INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS reevaluations (
    candidate_id INTEGER NOT NULL, code_hash TEXT NOT NULL, n INTEGER NOT NULL,
    valid INTEGER NOT NULL, score REAL, error TEXT, duration_s REAL NOT NULL,
    PRIMARY KEY (candidate_id, code_hash, n));
"""
_COLUMNS = ("id", "status", "island", "generation", "parent_ids", "edit_kind", "code",
            "code_hash", "prompt", "response", "notes", "valid", "score", "result", "error",
            "duplicate_of", "model", "prompt_tokens", "completion_tokens", "cost_usd",
            "llm_calls", "attempts", "propose_s", "eval_s", "created")


@dataclass(frozen=True)
class CandidateRecord:
    """Everything known about one candidate, as stored."""

    id: int
    status: Status
    island: int
    generation: int
    parent_ids: tuple[int, ...]
    edit_kind: EditKind
    created: float
    code: str | None = None
    code_hash: str | None = None
    prompt: str | None = None
    response: str | None = None
    notes: tuple[str, ...] = ()
    result: EvalResult | None = None
    error: str | None = None
    duplicate_of: int | None = None
    usage: LLMUsage = field(default_factory=LLMUsage)
    attempts: int = 0
    propose_s: float = 0.0
    eval_s: float = 0.0

    def program(self) -> Program | None:
        """The archive's view of this candidate, if it was evaluated."""
        if self.status != "evaluated" or self.code is None or self.result is None:
            return None
        return Program(id=self.id, code=self.code, result=self.result,
                       parent_ids=self.parent_ids, island=self.island,
                       generation=self.generation, edit_kind=self.edit_kind)


@dataclass(frozen=True)
class StoreTally:
    """What a run list shows of a run: counts, the best valid candidate, total cost."""

    candidates: int
    valid: int
    cost_usd: float
    best_id: int | None
    best_score: float | None


def _row(rec: CandidateRecord) -> tuple[object, ...]:
    res = rec.result
    return (rec.id, rec.status, rec.island, rec.generation, json.dumps(rec.parent_ids),
            rec.edit_kind, rec.code, rec.code_hash, rec.prompt, rec.response,
            json.dumps(rec.notes), None if res is None else int(res.valid),
            None if res is None else res.score,
            None if res is None else json.dumps(res.to_json()), rec.error, rec.duplicate_of,
            rec.usage.model, rec.usage.prompt_tokens, rec.usage.completion_tokens,
            rec.usage.cost_usd, rec.usage.calls, rec.attempts, rec.propose_s, rec.eval_s,
            rec.created)


def _record(row: sqlite3.Row) -> CandidateRecord:
    result = row["result"]
    return CandidateRecord(
        id=row["id"], status=row["status"], island=row["island"],
        generation=row["generation"], parent_ids=tuple(json.loads(row["parent_ids"])),
        edit_kind=row["edit_kind"], created=row["created"], code=row["code"],
        code_hash=row["code_hash"], prompt=row["prompt"], response=row["response"],
        notes=tuple(json.loads(row["notes"])),
        result=None if result is None else EvalResult.from_json(json.loads(result)),
        error=row["error"], duplicate_of=row["duplicate_of"],
        usage=LLMUsage(model=row["model"], prompt_tokens=row["prompt_tokens"],
                       completion_tokens=row["completion_tokens"], cost_usd=row["cost_usd"],
                       calls=row["llm_calls"]),
        attempts=row["attempts"], propose_s=row["propose_s"], eval_s=row["eval_s"])


class RunStore:
    """The database of one run. Every `add` is its own committed transaction."""

    def __init__(self, run_dir: Path, db: sqlite3.Connection) -> None:
        self.run_dir = run_dir
        self._db = db
        self.tables = SideTables(db)

    @classmethod
    def create(cls, run_dir: Path, config_yaml: str, meta: dict[str, str]) -> RunStore:
        """A new store in `run_dir`, which must be missing or empty (but for the run's lock
        file, so the lock can be taken before the store exists)."""
        check_new_run_dir(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / CONFIG_NAME).write_text(config_yaml, encoding="utf-8")
        store = cls(run_dir, _connect(run_dir / DB_NAME))
        for key, value in {"schema": SCHEMA_VERSION, **meta}.items():
            store.set_meta(key, value)
        return store

    @classmethod
    def open(cls, run_dir: Path, *, readonly: bool = False) -> RunStore:
        db_path = run_dir / DB_NAME
        if not db_path.is_file():
            raise UserError(f"'{run_dir}' is not an adrs run folder (no {DB_NAME}): pass the "
                            "folder that 'adrs run' created under runs/")
        # Read before writing anything: a file that is not an adrs store (an empty file,
        # another program's database) is refused and left exactly as it was.
        probe: sqlite3.Connection | None = None
        try:
            probe = _connect(db_path, readonly=True)
            refusal = _refusal(run_dir, _schema_version(probe))
            if refusal is not None:
                raise UserError(refusal)
            if readonly:  # the probe is the reader's connection
                store, probe = cls(run_dir, probe), None
                return store
            return cls(run_dir, _connect(db_path))
        except sqlite3.DatabaseError as exc:
            raise UserError(f"'{db_path}' is not a readable run database ({exc}): "
                            "restore it from a backup or start a new run") from None
        finally:
            if probe is not None:
                probe.close()

    def add(self, record: CandidateRecord) -> None:
        marks = ",".join("?" * len(_COLUMNS))
        with self._db:
            self._db.execute(f"INSERT INTO candidates ({','.join(_COLUMNS)}) "
                             f"VALUES ({marks})", _row(record))

    def records(self) -> Iterator[CandidateRecord]:
        """Every stored candidate in id order."""
        for row in self._db.execute("SELECT * FROM candidates ORDER BY id"):
            yield _record(row)

    def records_after(self, last_id: int) -> list[CandidateRecord]:
        """The stored candidates with an id above `last_id`, in id order (for followers)."""
        rows = self._db.execute("SELECT * FROM candidates WHERE id > ? ORDER BY id",
                                (last_id,))
        return [_record(row) for row in rows]

    def tally(self) -> StoreTally:
        """Counts, best valid candidate and total cost, computed by SQL (no code loaded)."""
        count, valid, cost = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(valid = 1), 0), COALESCE(SUM(cost_usd), 0) "
            "FROM candidates").fetchone()
        best = self._db.execute("SELECT id, score FROM candidates WHERE valid = 1 "
                                "ORDER BY score DESC, id LIMIT 1").fetchone()
        return StoreTally(candidates=int(count), valid=int(valid), cost_usd=float(cost),
                          best_id=None if best is None else int(best[0]),
                          best_score=None if best is None else float(best[1]))

    def get(self, candidate_id: int) -> CandidateRecord | None:
        row = self._db.execute("SELECT * FROM candidates WHERE id = ?",
                               (candidate_id,)).fetchone()
        return None if row is None else _record(row)

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM candidates").fetchone()[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def record_ending(self, reason: str | None) -> None:
        """Record how the session ended: `reason` is its stop reason, in the words of a
        RunSummary ("iterations", "budget", "target score", "wall time", "no improvement",
        "interrupted", "error: ...", "initial program invalid: ..."), or None when a
        session starts ("running").

        Writes the `status` (RunEnding.from_reason) and the `stop_reason` (`reason` as it
        is) in one transaction. Only the process holding the run's lock writes them;
        "killed" is never written: readers derive it.
        """
        ending = RUNNING if reason is None else RunEnding.from_reason(reason)
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", (
                ("status", ending.status), ("stop_reason", reason or "")))

    def ending(self) -> RunEnding:
        """How this run ended, or that it runs; see `run_ending`."""
        return _derive(self.meta("status"), self.meta("stop_reason") or "",
                       lock_held(self.run_dir))

    def close(self) -> None:
        self._db.close()


def _connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    else:
        db = sqlite3.connect(path, check_same_thread=False)
        # WAL + NORMAL: each commit survives a killed process (not a power cut) and costs
        # tens of microseconds, so committing every candidate is cheap.
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
    db.row_factory = sqlite3.Row
    return db


def _schema_version(db: sqlite3.Connection) -> str | None:
    """The store's schema version; None when `db` is not an adrs store (no metadata)."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
                  ).fetchone() is None:
        return None
    row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    return None if row is None else str(row[0])


def _refusal(run_dir: Path, version: str | None) -> str | None:
    """Why a store of schema `version` (None: no metadata) cannot be opened; None if it can."""
    if version is None:
        return (f"'{run_dir / DB_NAME}' is not an adrs run store (it holds no run metadata): "
                "pass the folder that 'adrs run' created under runs/")
    if version != SCHEMA_VERSION:
        return (f"'{run_dir}' was written by another adrs version (schema {version}): "
                "use that version to read it")
    return None


def check_new_run_dir(run_dir: Path) -> None:
    """A UserError unless `run_dir` can hold a new run (missing, or empty but for a lock)."""
    if run_dir.exists() and any(p.name != LOCK_NAME for p in run_dir.iterdir()):
        raise UserError(f"run folder '{run_dir}' already exists and is not empty: "
                        "choose another --run-dir, or continue it with 'adrs resume'")


# ------------------------------------------------------------------------------ run endings
RunStatus = Literal["running", "finished", "stopped", "failed", "killed"]
INTERRUPTED = "interrupted"
FINISH_REASONS = ("iterations", "budget", "target score", "wall time", "no improvement")
_ERROR_PREFIX = "error: "


@dataclass(frozen=True)
class RunEnding:
    """How a run ended, or that it is running: the one answer every reader shows.

    `status` is one of:
    - "running": a process holds the run's lock now; `reason` is "".
    - "finished": a stop condition held; `reason` is one of FINISH_REASONS ("iterations",
      "budget", "target score", "wall time", "no improvement"). `adrs resume --iterations N`
      continues a run that finished for "iterations".
    - "stopped": interrupted (Ctrl-C, SIGTERM) with work left; `reason` is "interrupted".
      `adrs resume` continues it where it stopped.
    - "failed": the run could not go on; `reason` says why in one line (an LLM or
      evaluator error, a Ray failure, an invalid initial program ...), without an
      "error: " prefix. Stored candidates are kept; resume retries once the cause is fixed.
    - "killed": the store says "running" but no process holds the run's lock: the process
      died without recording an ending (kill -9, out of memory, power loss). `reason` is "".
      Resume continues it; the candidates in flight when it died are launched again.

    `text` is how to print it on one line: "running", "killed", or "STATUS: REASON"
    (e.g. "finished: iterations", "stopped: interrupted", "failed: <why>").
    """

    status: RunStatus
    reason: str = ""

    @property
    def text(self) -> str:
        return f"{self.status}: {self.reason}" if self.reason else self.status

    def __str__(self) -> str:
        return self.text

    @classmethod
    def from_reason(cls, reason: str) -> RunEnding:
        """The ending of a session that stopped for `reason` (a RunSummary's reason)."""
        if reason == INTERRUPTED:
            return cls("stopped", INTERRUPTED)
        if reason.startswith(_ERROR_PREFIX):
            return cls("failed", reason[len(_ERROR_PREFIX):])
        if reason in FINISH_REASONS:
            return cls("finished", reason)
        return cls("failed", reason)  # "initial program invalid: ...", or unknown


RUNNING = RunEnding("running")


def run_ending(run_dir: Path) -> RunEnding:
    """How the run in `run_dir` ended, or that it is running (see RunEnding).

    The contract for every reader (`adrs runs`, `adrs show`, the dashboard): call this (or
    `RunStore.ending` on a store already open) and show `RunEnding.text`; never read the
    `status` and `stop_reason` metadata directly, which say "running" for a killed run.
    It reads the store read-only and probes the run's lock without holding it longer than
    a system call, so it is safe to call while the run goes on, as often as once a second.
    Raises UserError when `run_dir` is not a run folder. Runs written by older versions
    read alike ("interrupted" reads as stopped, "error: ..." as failed).
    """
    store = RunStore.open(run_dir, readonly=True)
    try:
        return store.ending()
    finally:
        store.close()


def _derive(status: str | None, reason: str, held: bool) -> RunEnding:
    if held:
        return RUNNING
    if status in (None, "running"):
        return RunEnding("killed")
    if status == "failed" and not reason.startswith(_ERROR_PREFIX):
        return RunEnding("failed", reason)  # "initial program invalid: ..."
    if reason and status in ("finished", "stopped", INTERRUPTED, "failed"):
        # The stored reason says it all; older versions wrote an interruption as status
        # "interrupted", and an invalid initial program as "finished".
        return RunEnding.from_reason(reason)
    if status in ("stopped", INTERRUPTED):
        return RunEnding("stopped", INTERRUPTED)
    if status == "finished":
        return RunEnding("finished")
    return RunEnding("failed", f"unknown status {status!r}" + (f": {reason}" if reason else ""))


# ---------------------------------------------------------------------------- the run lock
LOCK_WAIT_S = 1.0  # how long a writer waits out readers probing the lock


def lock_held(run_dir: Path) -> bool:
    """Whether a process holds the run's lock now (the run is running).

    Probes with a shared lock taken and released at once; a writer taking the lock meanwhile
    waits out that instant (`hold_lock`). A missing or unreadable lock file: not held.
    """
    try:
        fd = os.open(run_dir / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False  # a file system without locks: nobody can hold it
    finally:
        os.close(fd)  # releases the probe's lock, if taken
    return False


@contextmanager
def hold_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run's lock (an exclusive flock on `run_dir/run.lock`) for the block.

    Only the process that runs the run holds it, for its whole session: the run folder
    must exist. The lock dies with the process, however it dies, which is how readers tell
    a killed run from a running one. Another holder is a UserError.
    """
    fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise UserError(f"run '{run_dir}' is in use by another adrs process: "
                                    "wait for it to finish or stop it first") from None
                time.sleep(0.02)  # a reader's probe lasts microseconds
        yield
    finally:
        os.close(fd)

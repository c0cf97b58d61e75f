"""The run store: one folder per run with the resolved config, a SQLite database holding
every candidate (committed as it completes) and an append-only event log.

Resume reads the database alone, so a killed run loses at most its in-flight candidates.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from adrs.errors import UserError
from adrs.types import EditKind, EvalResult, LLMUsage, Program

DB_NAME = "candidates.sqlite"
CONFIG_NAME = "config.yaml"
EVENTS_NAME = "events.jsonl"
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

    @classmethod
    def create(cls, run_dir: Path, config_yaml: str, meta: dict[str, str]) -> RunStore:
        if run_dir.exists() and any(run_dir.iterdir()):
            raise UserError(f"run folder '{run_dir}' already exists and is not empty: "
                            "choose another --run-dir, or continue it with 'adrs resume'")
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
        try:
            store = cls(run_dir, _connect(db_path, readonly=readonly))
            version = store.meta("schema")
        except sqlite3.DatabaseError as exc:
            raise UserError(f"'{db_path}' is not a readable run database ({exc}): "
                            "restore it from a backup or start a new run") from None
        if version != SCHEMA_VERSION:
            raise UserError(f"'{run_dir}' was written by another adrs version "
                            f"(schema {version}): use that version to read it")
        return store

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

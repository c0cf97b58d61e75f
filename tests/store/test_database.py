from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from adrs.errors import UserError
from adrs.store.database import DB_NAME, CandidateRecord, RunStore
from adrs.types import EvalResult, LLMUsage


def _record(cid: int, **kw: object) -> CandidateRecord:
    base: dict[str, object] = dict(id=cid, status="evaluated", island=cid % 2, generation=1,
                                   parent_ids=(0,), edit_kind="diff", created=1.0,
                                   code=f"x = {cid}\n", code_hash=f"h{cid}",
                                   result=EvalResult(True, float(cid), {"m": 1}))
    base.update(kw)
    return CandidateRecord(**base)  # type: ignore[arg-type]


def test_records_round_trip_in_id_order(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path / "run", "seed: 0\n", {"problem": "toy"})
    records = [_record(2, usage=LLMUsage("m", 10, 20, 0.5, 1), notes=("n",)),
               _record(0, parent_ids=(), edit_kind="initial"),
               _record(1, status="proposal_failed", code=None, result=None, error="bad")]
    for rec in records:
        store.add(rec)
    store.close()
    again = RunStore.open(tmp_path / "run")
    assert list(again.records()) == sorted(records, key=lambda r: r.id)
    assert again.meta("problem") == "toy" and again.count() == 3
    assert again.get(2) == records[0] and again.get(9) is None
    assert [r.program() is None for r in again.records()] == [False, True, False]


def test_create_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("data")
    with pytest.raises(UserError, match="already exists"):
        RunStore.create(tmp_path / "run", "", {})
    assert (tmp_path / "run" / "keep.txt").read_text() == "data"


def test_open_rejects_folders_that_are_not_runs(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not an adrs run folder"):
        RunStore.open(tmp_path)
    (tmp_path / DB_NAME).write_bytes(b"garbage" * 100)
    with pytest.raises(UserError, match="not a readable run database"):
        RunStore.open(tmp_path)


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path / "run", "", {})
    store.add(_record(1))
    with pytest.raises(sqlite3.IntegrityError):
        store.add(_record(1))

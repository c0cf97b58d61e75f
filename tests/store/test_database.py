from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from adrs.errors import UserError
from adrs.store.database import (
    DB_NAME,
    LOCK_NAME,
    RUNNING,
    CandidateRecord,
    RunEnding,
    RunStore,
    check_new_run_dir,
    hold_lock,
    lock_held,
    run_ending,
)
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


def test_open_refuses_a_database_that_is_not_a_store_and_writes_nothing(
        tmp_path: Path) -> None:
    """An empty file, or another program's SQLite database, is not an adrs store: opening
    it (even for writing, as resume does) is refused and the file is left as it was."""
    (tmp_path / DB_NAME).write_bytes(b"")
    for readonly in (False, True):
        with pytest.raises(UserError, match="is not an adrs run store"):
            RunStore.open(tmp_path, readonly=readonly)
    assert (tmp_path / DB_NAME).read_bytes() == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == [DB_NAME]
    other = tmp_path / "other"
    other.mkdir()
    db = sqlite3.connect(other / DB_NAME)
    db.execute("CREATE TABLE notes (text TEXT)")
    db.commit()
    db.close()
    before = (other / DB_NAME).read_bytes()
    with pytest.raises(UserError, match="is not an adrs run store"):
        RunStore.open(other)
    assert (other / DB_NAME).read_bytes() == before
    store = RunStore.create(tmp_path / "run", "", {})
    store.set_meta("schema", "0")
    store.close()
    with pytest.raises(UserError, match=r"another adrs version \(schema 0\)"):
        RunStore.open(tmp_path / "run")


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path / "run", "", {})
    store.add(_record(1))
    with pytest.raises(sqlite3.IntegrityError):
        store.add(_record(1))


# ------------------------------------------------------------------------------ run endings
def test_session_reasons_map_to_endings() -> None:
    cases = {"iterations": ("finished", "iterations"), "budget": ("finished", "budget"),
             "target score": ("finished", "target score"),
             "wall time": ("finished", "wall time"),
             "no improvement": ("finished", "no improvement"),
             "interrupted": ("stopped", "interrupted"),
             "error: RuntimeError: worker died": ("failed", "RuntimeError: worker died"),
             "initial program invalid: NaN": ("failed", "initial program invalid: NaN")}
    for reason, (status, why) in cases.items():
        assert RunEnding.from_reason(reason) == RunEnding(status, why)  # type: ignore[arg-type]
    assert RunEnding("finished", "budget").text == "finished: budget"
    assert str(RunEnding("killed")) == "killed" and RUNNING.text == "running"


def test_a_recorded_ending_reads_back_and_never_says_interrupted_twice(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    store = RunStore.create(run_dir, "", {"problem": "toy"})
    for reason, ending in (
            ("target score", RunEnding("finished", "target score")),
            ("interrupted", RunEnding("stopped", "interrupted")),
            ("error: the API key was rejected", RunEnding("failed", "the API key was rejected")),
            ("initial program invalid: NaN", RunEnding("failed", "initial program invalid: NaN"))):
        store.record_ending(reason)
        assert run_ending(run_dir) == ending == store.ending()
        assert store.meta("stop_reason") == reason  # stored as the session said it
    assert run_ending(run_dir).text == "failed: initial program invalid: NaN"
    store.record_ending("interrupted")
    assert run_ending(run_dir).text == "stopped: interrupted"
    assert store.meta("status") == "stopped"
    store.close()


def test_endings_written_by_older_versions_read_alike(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    store = RunStore.create(run_dir, "", {})
    for status, reason, text in (
            ("interrupted", "interrupted", "stopped: interrupted"),
            ("failed", "error: RuntimeError: boom", "failed: RuntimeError: boom"),
            ("failed", "a reason without a prefix", "failed: a reason without a prefix"),
            ("running", "", "killed"),
            ("finished", "initial program invalid: x", "failed: initial program invalid: x"),
            ("finished", "iterations", "finished: iterations")):
        store.set_meta("status", status)
        store.set_meta("stop_reason", reason)
        assert run_ending(run_dir).text == text
    store.close()


def test_running_without_the_lock_held_reads_killed(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    store = RunStore.create(run_dir, "", {})
    store.record_ending(None)
    assert run_ending(run_dir) == RunEnding("killed")  # no lock file at all
    with hold_lock(run_dir):
        assert run_ending(run_dir) == RUNNING == store.ending()
        assert lock_held(run_dir)
        store.record_ending("iterations")
        assert run_ending(run_dir) == RUNNING  # the lock says more than the metadata
        store.record_ending(None)
    assert not lock_held(run_dir)
    assert run_ending(run_dir) == RunEnding("killed")  # the holder went without a word
    store.close()


def test_the_lock_dies_with_its_process(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    RunStore.create(run_dir, "", {}).close()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from adrs.store.database import "
        "hold_lock\nwith hold_lock(Path(sys.argv[1])):\n    print('held', flush=True)\n"
        "    time.sleep(60)\n"), str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        assert lock_held(run_dir)
        with pytest.raises(UserError, match="in use by another adrs process"), \
                hold_lock(run_dir):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert not lock_held(run_dir)
    with hold_lock(run_dir):
        assert lock_held(run_dir)


def test_probing_readers_do_not_keep_a_writer_out(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    RunStore.create(run_dir, "", {}).close()
    (run_dir / LOCK_NAME).touch()
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            lock_held(run_dir)

    readers = [threading.Thread(target=probe) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        for _ in range(50):
            with hold_lock(run_dir):
                pass
    finally:
        stop.set()
        for reader in readers:
            reader.join()


def test_a_new_store_may_be_created_under_its_lock(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with hold_lock(run_dir):
        RunStore.create(run_dir, "", {}).close()
    with pytest.raises(UserError, match="already exists"):
        check_new_run_dir(run_dir)

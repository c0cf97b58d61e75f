from __future__ import annotations

import json
from pathlib import Path

from adrs.store.events import CandidateEvaluated, EventLog, NewBest, RunStarted, read_events


def test_event_log_appends_typed_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(path)
    log(NewBest(id=3, score=1.5, t=10.0))
    log(CandidateEvaluated(id=4, valid=False, score=None, error="boom", eval_s=0.1, t=11.0))
    log.close()
    with path.open("a") as f:
        f.write('{"type": "NewBe')  # a line cut short by a crash
    events = read_events(path)
    assert events == [{"type": "NewBest", "t": 10.0, "id": 3, "score": 1.5},
                      {"type": "CandidateEvaluated", "t": 11.0, "id": 4, "valid": False,
                       "score": None, "error": "boom", "eval_s": 0.1}]
    assert json.loads(path.read_text().splitlines()[0])["type"] == "NewBest"


def test_run_started_carries_the_stored_state_and_reads_old_logs() -> None:
    old = RunStarted(run_id="r", run_dir="runs/r", problem="toy", proposer="p", seed=0,
                     resumed=False, iterations=10)
    assert (old.candidates, old.failures, old.duplicates, old.cost_usd) == (0, 0, 0, 0.0)
    assert old.best_id is None and old.best_score is None
    resumed = RunStarted(run_id="r", run_dir="runs/r", problem="toy", proposer="p", seed=0,
                         resumed=True, iterations=20, candidates=13, failures=2,
                         duplicates=1, cost_usd=0.5, best_id=7, best_score=3.5)
    assert resumed.to_json()["candidates"] == 13 and resumed.to_json()["best_id"] == 7

from __future__ import annotations

import json
from pathlib import Path

from adrs.store.events import CandidateEvaluated, EventLog, NewBest, read_events


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

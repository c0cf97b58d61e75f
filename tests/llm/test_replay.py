"""Recording exchanges and replaying them: same answers, refusals when the run diverges."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from adrs.errors import UserError
from adrs.llm.mutator import LLMRequest, Message, ScriptedClient
from adrs.llm.replay import RecordingClient, ReplayClient, ReplayMismatch


def request(cid: int, text: str = "improve it") -> LLMRequest:
    return LLMRequest((Message("system", "s"), Message("user", text)), cid, 0)


def test_replay_answers_what_was_recorded(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    live = RecordingClient(ScriptedClient(lambda r: f"answer {r.candidate_id}"), path)
    first = [asyncio.run(live.complete(request(cid))) for cid in range(3)]
    replay = ReplayClient(path)
    assert [asyncio.run(replay.complete(request(cid))) for cid in range(3)] == first


def test_a_diverged_or_longer_run_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    asyncio.run(RecordingClient(ScriptedClient(lambda r: "x"), path).complete(request(1)))
    replay = ReplayClient(path)
    with pytest.raises(ReplayMismatch, match="asks another prompt"):
        asyncio.run(replay.complete(request(1, "something else")))
    with pytest.raises(ReplayMismatch, match="no exchange for candidate 2"):
        asyncio.run(replay.complete(request(2)))


def test_a_file_that_is_not_a_recording(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{\"hello\": 1}\n")
    with pytest.raises(UserError, match="line 1 is not a recorded exchange"):
        ReplayClient(bad)
    with pytest.raises(UserError, match="does not exist"):
        ReplayClient(tmp_path / "missing.jsonl")

"""Recording exchanges and replaying them: same answers, refusals when the run diverges."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from adrs.errors import UserError
from adrs.llm.mutator import LLMRequest, Message, ScriptedClient
from adrs.llm.replay import RecordingClient, ReplayClient, ReplayMismatch, figures_out


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


def test_figures_only_drift_is_answered_and_counted(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "rec.jsonl"
    live = RecordingClient(ScriptedClient(lambda r: f"answer {r.candidate_id}"), path)
    asyncio.run(live.complete(request(1, "W1 makespan 1200, 0.031 s, t_ms 2.5e-03")))
    asyncio.run(live.complete(request(2, "same")))
    live.close()
    replay = ReplayClient(path)
    reply = asyncio.run(replay.complete(request(1, "W1 makespan 1200, 0.0475 s, t_ms 7e-04")))
    assert reply.text == "answer 1" and replay.drifted == {(1, 0)}
    assert asyncio.run(replay.complete(request(2, "same"))).text == "answer 2"
    with pytest.raises(ReplayMismatch, match="asks another prompt"):  # not a figure
        asyncio.run(replay.complete(request(1, "W1 makespan 1200, 0.0475 ms")))
    assert capsys.readouterr().err == ""
    replay = ReplayClient(path)
    asyncio.run(replay.complete(request(1, "W1 makespan 1200, 9 s, t_ms 1.25")))
    replay.close()
    assert capsys.readouterr().err == (
        "adrs: replay: 1 prompt differed from the recording in figures only (measured "
        "times, say); their recorded answers were used\n")


def test_a_recording_without_shapes_stays_strict(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "rec.jsonl"
    asyncio.run(RecordingClient(ScriptedClient(lambda r: "x"), path).complete(
        request(1, "took 0.03 s")))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert all("shape" in line for line in lines)
    path.write_text("".join(json.dumps({k: v for k, v in line.items() if k != "shape"}) + "\n"
                            for line in lines))
    replay = ReplayClient(path)
    with pytest.raises(ReplayMismatch, match="asks another prompt"):
        asyncio.run(replay.complete(request(1, "took 0.04 s")))
    replay.close()
    assert capsys.readouterr().err == ""  # nothing drifted; a mismatch has its own line


@pytest.mark.parametrize(("recorded", "asked"), [
    ("vs the current program: runtime_s 0.0195 (-0.01); makespan 447 (+30)",
     "vs the current program: makespan 447 (+30); runtime_s 0.0189 (+0.001)"),
    ("W1       72    302  0.0233\nW2       25    57   0.0019",
     "W1       72    302  0.1108\nW2       25    57   0.12"),
])
def test_a_shape_ignores_figures_their_alignment_and_clause_order(recorded: str,
                                                                   asked: str) -> None:
    assert figures_out(recorded) == figures_out(asked)


@pytest.mark.parametrize(("recorded", "asked"), [
    ("makespan 447; runtime_s 0.02", "makespan 447; cost 0.02"),  # another metric
    ("orders 302\nusers 57", "users 57\norders 302"),  # lines in another order
    ("took 0.03 s", "took 0.03 ms"),
])
def test_a_shape_keeps_everything_else(recorded: str, asked: str) -> None:
    assert figures_out(recorded) != figures_out(asked)

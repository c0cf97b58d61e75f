"""Whole `adrs run toy` runs through a real OpenAI-compatible server on 127.0.0.1, with
two models: concurrency, retries, a rejected key, the budget, costs, record and replay,
the adaptive ensemble, and that the key never reaches the run folder."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from openai_server import MALFORMED, FakeOpenAI, Reply, Script, good_diff, good_rewrite, is_repair

from adrs.cli.main import main
from adrs.store.database import CandidateRecord, RunStore

KEY = "sk-test-7f3a9c2e5b1d"
PRICES = {"openai/model-a": (1e-6, 2e-6), "openai/model-b": (3e-6, 4e-6)}


@pytest.fixture(autouse=True)
def key_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ADRS_TEST_KEY", KEY)
    yield


def two_models(script: Script, run_dir: Path, *extra: str,
               llm: dict[str, Any] | None = None) -> tuple[int, FakeOpenAI]:
    server = FakeOpenAI(script)
    with server.running():
        config = {"llm": {"retry_backoff_s": 0.02, "timeout_s": 3.0, **(llm or {}),
                          "models": [{"name": name, "api_base": server.url,
                                      "api_key_env": "ADRS_TEST_KEY", "price_in": pin,
                                      "price_out": pout}
                                     for name, (pin, pout) in PRICES.items()]}}
        path = run_dir.parent / f"{run_dir.name}.yaml"
        path.write_text(yaml.safe_dump(config))
        code = main(["run", "toy", "-c", str(path), "--llm", "litellm", "--backend", "thread",
                     "--run-dir", str(run_dir), *extra])
    return code, server


def records(run_dir: Path) -> list[CandidateRecord]:
    store = RunStore.open(run_dir, readonly=True)
    try:
        return list(store.records())
    finally:
        store.close()


def both_good(body: dict[str, Any], number: int) -> Reply:
    if body["model"] == "model-a":
        return Reply(text=good_diff(body), delay_s=0.15)
    return Reply(text=good_rewrite(body) if is_repair(body) else MALFORMED, delay_s=0.15)


def test_a_run_with_faults_is_retried_and_finishes(tmp_path: Path) -> None:
    faults = {1: Reply(429), 3: Reply(503), 5: Reply(500)}

    def script(body: dict[str, Any], number: int) -> Reply:
        if number == 7:
            return Reply(text=good_diff(body), delay_s=4.0)  # past the 3 s timeout
        return faults.get(number) or both_good(body, number)

    code, server = two_models(script, tmp_path / "run", "--iterations", "14")
    assert code == 0
    statuses = [s.status for s in server.seen]
    assert {429, 503, 500} <= set(statuses)
    print(f"max concurrent requests: {server.max_concurrent}; statuses: {statuses}")
    # proposals_in_flight is 4; the server still answers the timed-out request after the
    # client gave up on it and retried, so it may see one more.
    assert 2 <= server.max_concurrent <= 5
    stored = records(tmp_path / "run")
    assert len(stored) == 14
    # Every stored call is one answered request, except the timed-out one (number 7): the
    # server answers it late, or not at all if the run ends first, and it is never stored.
    answered = [s for s in server.ok() if s.number != 7]
    assert sum(r.usage.calls for r in stored) == len(answered)
    assert {r.usage.model for r in stored[1:]} == set(PRICES)


def test_costs_equal_the_token_counts_times_the_prices(tmp_path: Path) -> None:
    code, server = two_models(both_good, tmp_path / "run", "--iterations", "10")
    assert code == 0
    print(f"max concurrent requests: {server.max_concurrent}")
    assert 2 <= server.max_concurrent <= 4  # llm.proposals_in_flight
    stored = records(tmp_path / "run")
    for name, (pin, pout) in PRICES.items():
        seen = [s for s in server.ok() if s.model == name.split("/")[1]]
        by_hand = sum(s.prompt_tokens * pin + s.completion_tokens * pout for s in seen)
        mine = [r for r in stored if r.usage.model == name]
        assert sum(r.usage.prompt_tokens for r in mine) == sum(s.prompt_tokens for s in seen)
        assert sum(r.usage.cost_usd for r in mine) == pytest.approx(by_hand, rel=1e-12)
        for r in mine:
            assert r.usage.cost_usd == pytest.approx(
                r.usage.prompt_tokens * pin + r.usage.completion_tokens * pout, rel=1e-12)
        print(f"{name}: {len(seen)} calls, by hand ${by_hand:.6f}")


def test_a_rejected_key_stops_the_run_with_one_line(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    def script(body: dict[str, Any], number: int) -> Reply:
        return Reply(401) if number >= 2 else both_good(body, number)

    code, server = two_models(script, tmp_path / "run", "--iterations", "30")
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and err.startswith("adrs: error: model 'openai/model-")
    assert "401" in err and "ADRS_TEST_KEY" in err and KEY not in err
    # Never retried: at most one 401 per candidate in flight (4 proposals + 2 evaluations).
    rejected = sum(s.status == 401 for s in server.seen)
    print(f"401 answers: {rejected}; stderr: {err}")
    assert 1 <= rejected <= 6
    assert len(records(tmp_path / "run")) < 30


def test_the_budget_stops_within_one_call(tmp_path: Path) -> None:
    budget = 0.03
    code, server = two_models(both_good, tmp_path / "run", "--iterations", "60",
                              "--budget-usd", str(budget))
    assert code == 0
    stored = records(tmp_path / "run")
    spent = sum(r.usage.cost_usd for r in stored)
    largest = max(s.prompt_tokens * PRICES["openai/" + s.model][0]
                  + s.completion_tokens * PRICES["openai/" + s.model][1] for s in server.ok())
    print(f"budget ${budget}, spent ${spent:.6f}, largest call ${largest:.6f}, "
          f"{len(stored)} candidates")
    assert len(stored) < 60
    assert abs(spent - budget) <= largest
    # The spent dollars are restored from the store: a resumed run proposes nothing more.
    assert main(["resume", str(tmp_path / "run"), "--iterations", "80"]) == 0
    assert len(records(tmp_path / "run")) == len(stored)


def test_record_then_replay_gives_the_same_archive(tmp_path: Path) -> None:
    recording = tmp_path / "exchanges.jsonl"
    code, _ = two_models(both_good, tmp_path / "live", "--iterations", "12",
                         "--record", str(recording))
    assert code == 0
    # No server now: every answer comes from the recording.
    code = main(["run", "toy", "--replay", str(recording), "--iterations", "12",
                 "--backend", "thread", "--run-dir", str(tmp_path / "replayed")])
    assert code == 0

    def view(run: str) -> list[tuple[Any, ...]]:
        return [(r.id, r.status, r.code_hash, r.result and r.result.score, r.usage)
                for r in records(tmp_path / run)]

    assert view("live") == view("replayed")


def test_the_key_never_reaches_the_run_folder(tmp_path: Path) -> None:
    def script(body: dict[str, Any], number: int) -> Reply:
        return Reply(401) if number == 6 else both_good(body, number)

    two_models(script, tmp_path / "run", "--iterations", "12")
    assert KEY.encode() not in b"".join(p.read_bytes() for p in (tmp_path / "run").rglob("*")
                                        if p.is_file())
    assert any(s.authorization == f"Bearer {KEY}" for s in script_seen(tmp_path))


def script_seen(tmp_path: Path) -> list[Any]:
    # The server sent the key back in its 401 message; check it was indeed sent to it.
    server = FakeOpenAI(both_good)
    with server.running():
        import asyncio

        from adrs.config.llm import ModelConfig
        from adrs.llm.client import CallSettings, LiteLLMClient
        from adrs.llm.mutator import LLMRequest, Message
        client = LiteLLMClient(ModelConfig("openai/model-a", api_base=server.url,
                                           api_key_env="ADRS_TEST_KEY"), CallSettings())
        asyncio.run(client.complete(LLMRequest((Message("system", "s"),
                                                Message("user", "u")), 0, 0)))
    return server.seen


def test_the_adaptive_ensemble_moves_to_the_better_model(tmp_path: Path) -> None:
    def script(body: dict[str, Any], number: int) -> Reply:
        if body["model"] == "model-a":
            return Reply(text=good_rewrite(body) if number % 2 else good_diff(body))
        return Reply(text=MALFORMED)  # never an applicable edit, and it costs

    code, _ = two_models(script, tmp_path / "run", "--iterations", "48",
                         llm={"ensemble": "adaptive", "repair_attempts": 1})
    assert code == 0
    models = [r.usage.model for r in records(tmp_path / "run")[1:]]
    first, last = models[:16], models[-16:]
    share = [m.count("openai/model-a") / len(m) for m in (first, last)]
    print(f"share of model-a: first 16 candidates {share[0]:.2f}, last 16 {share[1]:.2f}")
    assert share[1] > share[0] and share[1] >= 0.75


def test_missing_key_variable_is_one_line(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    os.environ.pop("ADRS_TEST_KEY")
    code, server = two_models(both_good, tmp_path / "run", "--iterations", "5")
    assert code == 2 and not server.seen
    assert "ADRS_TEST_KEY is not set" in capsys.readouterr().err


def test_a_missing_provider_key_fails_before_any_call(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`adrs run toy --model openai/gpt-4o-mini` without OPENAI_API_KEY: one line, at once
    (it used to retry litellm's "missing credentials" 500 for about 40 s)."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    started = time.monotonic()
    code = main(["run", "toy", "--model", "openai/gpt-4o-mini", "--backend", "thread",
                 "--iterations", "3", "--run-dir", str(tmp_path / "run")])
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err.strip()
    print(f"{elapsed:.1f} s: {err}")
    assert code == 2 and err.count("\n") == 0
    assert "OPENAI_API_KEY is not set" in err and elapsed < 10.0


def test_a_local_server_needs_no_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model with api_base and no api_key_env is not refused for want of a key."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server = FakeOpenAI(lambda body, number: Reply(text=good_diff(body)))
    with server.running():
        path = tmp_path / "local.yaml"
        path.write_text(yaml.safe_dump({"llm": {"models": [
            {"name": "hosted_vllm/model-a", "api_base": server.url}]}}))
        code = main(["run", "toy", "-c", str(path), "--llm", "litellm", "--backend",
                     "thread", "--iterations", "4", "--run-dir", str(tmp_path / "run")])
    assert code == 0 and len(server.ok()) >= 3


def test_a_rejection_stops_new_requests_at_once(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """4 proposals in flight, 2 more candidates waiting: after the first 401 no request is
    sent (the two slow calls already in flight complete). It used to send 6."""
    def script(body: dict[str, Any], number: int) -> Reply:
        return Reply(text=good_diff(body), delay_s=1.0) if number < 2 else Reply(401)

    code, server = two_models(script, tmp_path / "run", "--iterations", "30")
    err = capsys.readouterr().err.strip()
    statuses = [s.status for s in server.seen]
    print(f"requests: {statuses}; stderr: {err}")
    assert code == 2 and "401" in err and "ADRS_TEST_KEY" in err and KEY not in err
    assert 401 in statuses and len(statuses) <= 4  # llm.proposals_in_flight
    assert all(s == 401 for s in statuses[2:])
    stored = records(tmp_path / "run")
    assert len(stored) == 7  # the initial program and the 6 launched candidates
    assert sum("not sent" in (r.error or "") for r in stored) >= 2

"""`adrs doctor` against a real local OpenAI-compatible server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from openai_server import FakeOpenAI, Reply

from adrs.cli.main import main


def doctor(tmp_path: Path, script: Any, capsys: pytest.CaptureFixture[str],
           **model: Any) -> tuple[int, str]:
    server = FakeOpenAI(script)
    with server.running():
        config = tmp_path / "c.yaml"
        config.write_text(yaml.safe_dump({"llm": {"mode": "litellm", "models": [
            {"name": "openai/model-a", "api_base": server.url, "api_key_env": "DOC_KEY",
             **model}]}}))
        code = main(["doctor", "toy", "-c", str(config)])
    return code, capsys.readouterr().out


def test_all_fine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DOC_KEY", "k")
    code, out = doctor(tmp_path, lambda b, n: Reply(text="OK"), capsys,
                       context_window=128000, price_in=1e-6, price_out=1e-6)
    assert code == 0, out
    assert "endpoint answers" in out and "fits the 128000-token window" in out
    assert "sandbox protections:" in out and "all fine" in out
    from adrs.sandbox.isolation import protection_report

    for protection in protection_report():  # each one, active or missing, with its reason
        state = "active " if protection.active else "MISSING"
        assert f"{state} {protection.name.replace('_', ' ')}: {protection.why}" in out


def test_what_to_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DOC_KEY", "k")
    code, out = doctor(tmp_path, lambda b, n: Reply(401), capsys, context_window=1000)
    assert code == 1
    fixes = [line for line in out.splitlines() if line.startswith("FIX")]
    assert len(fixes) == 2, out
    assert "401" in fixes[0] and "DOC_KEY" in fixes[0]
    assert "window is 1000" in fixes[1]
    assert "no known price" in out


def test_a_missing_key_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("DOC_KEY", raising=False)
    code, out = doctor(tmp_path, lambda b, n: Reply(text="OK"), capsys)
    assert code == 1 and "DOC_KEY is not set" in out

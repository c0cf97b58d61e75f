"""`adrs doctor` against a real local OpenAI-compatible server."""

from __future__ import annotations

import socket
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


def fix_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("FIX")]


def test_a_missing_provider_key_is_one_whole_line(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code = main(["doctor", "--model", "openai/gpt-4o-mini"])
    out = capsys.readouterr().out
    assert code == 1
    assert fix_lines(out) == ["FIX  model 'openai/gpt-4o-mini': OPENAI_API_KEY is not set: "
                              "export it with the API key, or name the variable that holds "
                              "the key in the model's api_key_env"], out


def test_an_unreachable_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DOC_KEY", "k")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"llm": {"mode": "litellm", "models": [
        {"name": "openai/model-a", "api_base": base, "api_key_env": "DOC_KEY"}]}}))
    code = main(["doctor", "-c", str(config)])
    fixes = fix_lines(capsys.readouterr().out)
    assert code == 1 and len(fixes) == 1, fixes
    assert f"is unreachable at {base} (connection refused)" in fixes[0]
    assert "rejected" not in fixes[0] and "500" not in fixes[0]


def test_a_local_server_without_a_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """No api_key_env at an api_base: not refused up front; the endpoint decides."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code, out = doctor(tmp_path, lambda b, n: Reply(text="OK"), capsys,
                       name="hosted_vllm/model-a", api_key_env=None, context_window=128000,
                       price_in=0.0, price_out=0.0)
    assert code == 0 and "endpoint answers" in out, out
    # An openai/ model there does need some key: litellm refuses to call without one.
    code, out = doctor(tmp_path, lambda b, n: Reply(text="OK"), capsys, api_key_env=None)
    assert code == 1 and len(fix_lines(out)) == 1, out
    assert "set OPENAI_API_KEY (any value if the server needs no key)" in fix_lines(out)[0]

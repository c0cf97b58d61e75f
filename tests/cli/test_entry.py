"""The `adrs` entry point: run and resume warm the sandbox before the CLI is imported."""

from __future__ import annotations

import sys

import pytest

from adrs.cli import entry
from adrs.cli import main as cli_main
from adrs.sandbox import isolation


@pytest.mark.parametrize(("argv", "warms"), [(["adrs", "run", "toy"], True),
                                             (["adrs", "resume", "r"], True),
                                             (["adrs", "problems"], False), (["adrs"], False)])
def test_only_sandboxed_commands_warm_the_sandbox(monkeypatch: pytest.MonkeyPatch,
                                                  argv: list[str], warms: bool) -> None:
    calls: list[str] = []
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(isolation, "warm_up", lambda: calls.append("warm"))
    monkeypatch.setattr(cli_main, "main", lambda: calls.append("cli") or 0)
    assert entry.main() == 0
    assert calls == (["warm", "cli"] if warms else ["cli"])

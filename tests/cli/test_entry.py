"""The `adrs` entry point: run and resume warm the sandbox before the CLI is imported."""

from __future__ import annotations

import gc
import sys
import types
from collections.abc import Callable
from typing import ClassVar

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


class _RecordingCli(types.ModuleType):
    """A stand-in for adrs.cli.main that records whether the collector ran while its
    `main` was imported."""

    collector_on: ClassVar[list[bool]] = []

    @property
    def main(self) -> Callable[[], int]:
        self.collector_on.append(gc.isenabled())
        return lambda: 0


@pytest.mark.parametrize("enabled", [True, False])
def test_the_cli_is_imported_with_the_collector_off(monkeypatch: pytest.MonkeyPatch,
                                                     enabled: bool) -> None:
    monkeypatch.setitem(sys.modules, "adrs.cli.main", _RecordingCli("adrs.cli.main"))
    _RecordingCli.collector_on = []
    (gc.enable if enabled else gc.disable)()
    try:
        assert entry._import_cli()() == 0
        assert _RecordingCli.collector_on == [False]
        assert gc.isenabled() is enabled  # as it was: a caller's choice is kept
    finally:
        gc.enable()
        gc.unfreeze()

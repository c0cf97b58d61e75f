"""The dashboard driven headlessly by Textual's pilot over the store of a real offline run."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest
from rich.syntax import Syntax
from textual.pilot import Pilot
from textual.widgets import DataTable, Static, TabbedContent

from adrs.cli.authoring import scaffold
from adrs.dashboard.app import DashboardApp
from adrs.dashboard.screens import HelpScreen, ProgramScreen
from adrs.dashboard.widgets import HeatMap
from adrs.engine import archive_view as view
from adrs.store.database import RunStore


def adrs(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "adrs", *args], capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr


def local_config(folder: Path) -> Path:
    """Evaluate in a local process pool: no Ray start-up for a 30-candidate run."""
    path = folder / "local.yaml"
    path.write_text("evaluation: {backend: local}\n")
    return path


@pytest.fixture(scope="module")
def problem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # The scaffolded problem: its latency bound makes some offline mutations invalid.
    return scaffold("flush", tmp_path_factory.mktemp("problems"))


@pytest.fixture(scope="module")
def run_dir(problem: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("runs")
    path = base / "r"
    adrs("run", str(problem), "-c", str(local_config(base)), "--iterations", "30", "--seed",
         "0", "--run-dir", str(path))
    return path


def drive(run_dir: Path, script: Callable[[DashboardApp, Pilot[None]], Awaitable[None]],
          poll_s: float = 1.0) -> None:
    async def main() -> None:
        app = DashboardApp(run_dir, poll_s=poll_s)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            await script(app, pilot)
    asyncio.run(main())


def stored(run_dir: Path) -> list[view.CandidateRecord]:
    store = RunStore.open(run_dir, readonly=True)
    try:
        return list(store.records())
    finally:
        store.close()


def test_best_program_diff_parent_lineage_and_failure_filter(run_dir: Path) -> None:
    records = {r.id: r for r in stored(run_dir)}
    best = view.ranked(records.values())[0]
    parent = best.parent_ids[0]
    failures = sorted(r.id for r in records.values() if view.failure_reason(r) is not None)
    assert failures, "the run must hold failures for this test to mean anything"

    async def script(app: DashboardApp, pilot: Pilot[None]) -> None:
        await pilot.press("b")
        screen = app.screen
        assert isinstance(screen, ProgramScreen) and screen.candidate_id == best.id
        await pilot.press("d")
        assert screen.query_one("#program-tabs", TabbedContent).active == "diff"
        syntax = screen.query_one("#diff-body", Static).content
        assert isinstance(syntax, Syntax)
        diff = syntax.code
        assert f"+++ #{best.id}" in diff and f"--- #{parent}" in diff
        await pilot.press("p")
        assert screen.candidate_id == parent
        await pilot.press("i")
        assert screen.candidate_id == 0
        await pilot.press("backspace", "backspace")
        assert screen.candidate_id == best.id
        await pilot.press("escape", "slash", *"failed", "enter")
        await pilot.pause()
        table = app.query_one("#table", DataTable)
        shown = sorted(int(str(table.get_row_at(i)[0])) for i in range(table.row_count))
        assert shown == failures
        await pilot.press("enter")  # the cursor row opens that failed candidate
        assert isinstance(app.screen, ProgramScreen)
        assert app.screen.candidate_id in failures

    drive(run_dir, script)


def test_heat_map_cell_opens_its_elite_and_islands_switch(run_dir: Path) -> None:
    async def script(app: DashboardApp, pilot: Pilot[None]) -> None:
        await pilot.press("2")
        heat = app.query_one("#heat", HeatMap)
        chosen = heat.selected()
        assert chosen is not None  # the cursor starts on the best elite of island 0
        assert chosen == app.data.archive.cells(0)[next(
            cell for cell, p in app.data.archive.cells(0).items() if p.id == chosen)].id
        await pilot.press("enter")
        assert isinstance(app.screen, ProgramScreen) and app.screen.candidate_id == chosen
        await pilot.press("escape", "right_square_bracket")
        assert heat.island == 1

    drive(run_dir, script)


def test_sort_quick_filter_and_help(run_dir: Path) -> None:
    valid = [r for r in stored(run_dir) if view.score_of(r) is not None]

    async def script(app: DashboardApp, pilot: Pilot[None]) -> None:
        await pilot.press("3", "s", "r")  # sort by score, best first
        table = app.query_one("#table", DataTable)
        top = max(valid, key=lambda r: (view.score_of(r) or 0.0, -r.id))
        shown = str(table.get_row_at(0)[1]).split()[0]  # "193.4 ×2": a re-evaluated best
        assert float(shown) == pytest.approx(view.score_of(top), 1e-5)
        await pilot.press("f")  # quick filter: valid
        assert table.row_count == len(valid)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)

    drive(run_dir, script)


def test_follows_a_run_while_it_grows(problem: Path, tmp_path: Path) -> None:
    path = tmp_path / "live"
    adrs("run", str(problem), "-c", str(local_config(tmp_path)), "--iterations", "6",
         "--run-dir", str(path))

    async def script(app: DashboardApp, pilot: Pilot[None]) -> None:
        table = app.query_one("#table", DataTable)
        assert table.row_count == 6
        grow = subprocess.Popen([sys.executable, "-m", "adrs", "resume", str(path),
                                 "--iterations", "14"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while table.row_count < 14 and time.monotonic() < deadline:
            await pilot.pause(0.2)
        assert grow.wait(timeout=120) == 0
        assert table.row_count == 14
        assert len(app.data.records) == 14

    drive(path, script, poll_s=0.1)


def test_polls_in_a_worker_while_a_program_screen_is_on_top(fresh_run: Path) -> None:
    async def script(app: DashboardApp, pilot: Pilot[None]) -> None:
        await pilot.press("b")
        assert isinstance(app.screen, ProgramScreen)
        table = app.query_one("#table", DataTable)
        assert table.row_count == 14
        store = RunStore.open(fresh_run)
        try:
            store.add(replace(app.data.records[11], id=14, parent_ids=(11,)))
        finally:
            store.close()
        deadline = time.monotonic() + 30
        while table.row_count < 15 and time.monotonic() < deadline:
            await pilot.pause(0.05)
        assert table.row_count == 15 and 14 in app.data.children[11]
        assert "15 candidates" in str(app.query_one("#status", Static).content)
        assert isinstance(app.screen, ProgramScreen)  # the poll left the open screen alone

    drive(fresh_run, script, poll_s=0.05)

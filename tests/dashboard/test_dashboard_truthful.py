"""The dashboard tells the truth and shows stored text as it is: how the run ended (through
`RunStore.ending`), the same counts as `adrs show`, evaluator and LLM text never read as
markup in any view, a crash that exits non-zero, and a layout that fits 80x24.
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from adrs.cli.main import main
from adrs.code.features import FeatureDim
from adrs.config.archive import ArchiveConfig
from adrs.config.run_config import RunConfig, dump
from adrs.dashboard.app import DashboardApp, status_line
from adrs.dashboard.data import RunData
from adrs.dashboard.screens import HelpScreen, ProgramScreen
from adrs.dashboard.views import stats_line
from adrs.engine import archive_view as view
from adrs.store.database import CandidateRecord, RunStore, hold_lock
from adrs.types import EvalResult, LLMUsage

ESC = "\x1b[31m"
SHOWN_ESC = "\\x1b[31m"
LONG_LINE = "z" * 3000
HOSTILE = ("[/bold]", "[red]x[/red]", "[link=file:///etc/passwd]x[/link]", "cost[us-west-2a]")
Script = Callable[[DashboardApp, Pilot[None]], Awaitable[None]]


def drive(run_dir: Path, script: Script, size: tuple[int, int] = (80, 24)) -> None:
    """Run `script` on the dashboard; an exception inside the app fails the test."""
    async def run() -> None:
        app = DashboardApp(run_dir, poll_s=3600)
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await script(app, pilot)
    asyncio.run(run())


CELL_PX = 12.2  # the width of one terminal cell in Textual's SVG screenshots


def screen_text(app: DashboardApp) -> str:
    """What the terminal shows, line by line (read back from Textual's SVG screenshot, each
    run of text at its column: blank cells are not always written)."""
    svg = app.export_screenshot()
    rows: dict[float, list[tuple[int, str]]] = {}
    for match in re.finditer(r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>',
                             svg):
        column = round(float(match.group(1)) / CELL_PX)
        text = html.unescape(match.group(3)).replace("\u00a0", " ")
        rows.setdefault(float(match.group(2)), []).append((column, text))
    lines = []
    for _, row in sorted(rows.items()):
        line = ""
        for column, text in sorted(row):
            line = line.ljust(column) + text
        lines.append(line.rstrip())
    return "\n".join(lines)


def write_run(path: Path, records: list[CandidateRecord], config: RunConfig,
              meta: dict[str, str], ending: str | None = "iterations") -> Path:
    store = RunStore.create(path, dump(config), meta)
    try:
        for record in records:
            store.add(record)
        store.record_ending(ending)
    finally:
        store.close()
    return path


def hostile_run(base: Path) -> Path:
    """Every text the dashboard shows, written by an evaluator, a candidate or an LLM."""
    metrics = {"cost[us-west-2a]": 3.0, "[red]x[/red]": "[/bold]", "e" + ESC: ESC}
    usage = LLMUsage(model="[link=file:///etc/passwd]m[/link]" + ESC, prompt_tokens=10,
                     completion_tokens=5, cost_usd=0.01, calls=1)
    common = {"usage": usage, "prompt": "[/bold] prompt " + ESC, "created": 1.0,
              "response": "[red]x[/red] reply " + ESC, "notes": ("[/bold] note" + ESC,)}
    code = f"X = '[/bold] {ESC}'\nY = '{LONG_LINE}END'\n"
    records = [
        CandidateRecord(id=0, status="evaluated", island=0, generation=0, parent_ids=(),
                        edit_kind="initial", code=code, result=EvalResult(
                            True, 2.0, metrics, feedback="[/bold] feedback " + ESC,
                            stderr="[red]x[/red] stderr " + ESC), **common),
        CandidateRecord(id=1, status="evaluated", island=1, generation=1, parent_ids=(0,),
                        edit_kind="diff", code=code.replace("X", "W"), result=EvalResult(
                            True, 3.0, metrics), **common),
        CandidateRecord(id=2, status="evaluated", island=1, generation=1, parent_ids=(0,),
                        edit_kind="diff", code="X = 2\n", result=EvalResult.invalid(
                            " ".join(HOSTILE) + " " + ESC + " " + LONG_LINE, metrics=metrics),
                        **common),
        CandidateRecord(id=3, status="proposal_failed", island=0, generation=1,
                        parent_ids=(0,), edit_kind="diff", error="[/bold] no edit " + ESC,
                        **common),
    ]
    config = RunConfig(archive=ArchiveConfig(islands=2, features=(
        FeatureDim("cost[us-west-2a]", bins=4, lo=0.0, hi=10.0),
        FeatureDim("code_length", bins=4))))
    return write_run(base / "[bold]x[link=file:]-run", records, config,
                     {"problem": "[/bold]prob" + ESC}, ending="error: [/bold] " + ESC)


# ------------------------------------------------------------------------------ item 2
def test_every_view_shows_hostile_text_as_written(tmp_path: Path) -> None:
    path = hostile_run(tmp_path)
    seen: dict[str, str] = {}

    async def script(app: DashboardApp, pilot: Pilot[None]) -> None:
        async def shot(name: str, *keys: str) -> None:
            await pilot.press(*keys)
            await pilot.pause()
            seen[name] = screen_text(app)

        await shot("overview")
        await shot("islands", "2")
        await shot("candidates", "3")
        await shot("failures", "4")  # this view crashed on "[/bold]"
        await shot("failure", "down", "enter")  # newest first: #3, then #2
        assert isinstance(app.screen, ProgramScreen) and app.screen.candidate_id == 2
        await shot("failure metrics", "m")
        await shot("source", "escape", "b", "p", "s")  # the best is #1; its parent #0
        await shot("metrics", "m")
        await shot("prompt", "t")
        await shot("diff", "c", "d")  # #1 against #0
        await shot("help", "question_mark")
        assert isinstance(app.screen, HelpScreen)

    drive(path, script, size=(160, 60))
    for name, text in seen.items():
        assert "\x1b" not in text, name
    everything = "\n".join(seen.values())
    assert "[bold]x[link=file:]-run" in seen["overview"]
    assert f"[/bold]prob{SHOWN_ESC}" in seen["overview"]
    assert f"failed: [/bold] {SHOWN_ESC}" in seen["overview"]
    assert "[link=file:///etc/passwd]m[/l…" in seen["overview"]  # cost table: cut at 30
    assert "cost[us-west-2a]" in seen["islands"]  # the heat map's axis
    assert f" link]{SHOWN_ESC} " in seen["candidates"]  # the model after its last "/"
    assert "invalid: [/bold] [red]x[/red] [link=file:///etc/passwd]x[/link] cost[us-west-2a]" \
        in seen["failures"]
    assert f"proposal failed: [/bold] no edit {SHOWN_ESC}" in seen["failures"]
    for text in ("cost[us-west-2a]", "[red]x[/red]", "[/bold]", f"e{SHOWN_ESC}",
                 f"[/bold] feedback {SHOWN_ESC}", f"[red]x[/red] stderr {SHOWN_ESC}",
                 f"[/bold] note{SHOWN_ESC}", f"[link=file:///etc/passwd]m[/link]{SHOWN_ESC}"):
        assert text in seen["metrics"], text
    assert f"X = '[/bold] {SHOWN_ESC}'" in seen["source"]
    assert "zzzzEND'" in seen["source"]  # the long line wraps: its end is on screen
    assert "+W = '[/bold]" in seen["diff"]
    assert f"[/bold] prompt {SHOWN_ESC}" in seen["prompt"]
    assert f"[red]x[/red] reply {SHOWN_ESC}" in seen["prompt"]
    assert "QD" in everything


def test_a_crash_of_the_dashboard_exits_non_zero(fresh_run: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: DashboardApp) -> None:
        raise RuntimeError("a view crashed")

    run = DashboardApp.run
    monkeypatch.setattr(DashboardApp, "on_mount", boom)
    monkeypatch.setattr(DashboardApp, "run", lambda self: run(self, headless=True))
    assert main(["dashboard", str(fresh_run)]) == 1


# ------------------------------------------------------------------------------ item 1
def test_the_status_line_shows_how_the_run_ended(fresh_run: Path) -> None:
    store = RunStore.open(fresh_run)
    try:
        cases = [("iterations", "finished: iterations"),
                 ("interrupted", "stopped: interrupted"),
                 ("error: RuntimeError: worker died", "failed: RuntimeError: worker died"),
                 (None, "killed")]  # "running" in the store, but no process holds the lock
        for reason, text in cases:
            store.record_ending(reason)
            data = RunData(fresh_run)
            try:
                assert f"  flush  {text}  14 candidates" in str(status_line(data)), reason
            finally:
                data.close()
        with hold_lock(fresh_run):
            data = RunData(fresh_run)
            try:
                assert "  flush  running  14 candidates" in str(status_line(data))
            finally:
                data.close()
    finally:
        store.close()


# ------------------------------------------------------------------------------ item 3
def test_counts_are_those_of_adrs_show(demo_run: Path) -> None:
    store = RunStore.open(demo_run, readonly=True)
    try:
        shown = view.show_json(store, 1)
    finally:
        store.close()
    data = RunData(demo_run)
    try:  # 2 islands: the archive holds the initial program twice, the counts once
        assert data.archive.stats().valid == shown["valid"] + 1
        assert str(stats_line(data)).startswith(
            f"valid {shown['valid']}  failed {shown['failures']}  dup {shown['duplicates']}  ")
        assert f"{shown['candidates']} candidates" in str(status_line(data))
    finally:
        data.close()


# ------------------------------------------------------------------------------ item 5
def test_80x24_footer_sort_mark_and_elapsed_label(demo_run: Path) -> None:
    async def script(app: DashboardApp, pilot: Pilot[None]) -> None:
        lines = screen_text(app).splitlines()
        assert "? help" in lines[-1] and "q quit" in lines[-1]
        await pilot.press("3")
        header = next(line for line in screen_text(app).splitlines() if "score" in line)
        assert "id ▲" in header and "elapsed" in header
        await pilot.press("s", "r")
        header = next(line for line in screen_text(app).splitlines() if "score" in line)
        assert "score ▼" in header and "id ▲" not in header
        await pilot.press("b")
        assert "? help" in screen_text(app).splitlines()[-1]

    drive(demo_run, script)


def test_failures_view_says_when_there_are_none(tmp_path: Path) -> None:
    result = EvalResult(True, 1.0, {"latency_ms": 1.0})
    records = [CandidateRecord(id=0, status="evaluated", island=0, generation=0,
                               parent_ids=(), edit_kind="initial", created=1.0, code="X = 1\n",
                               result=result)]
    path = write_run(tmp_path / "ok", records, RunConfig(), {"problem": "toy"})

    async def script(app: DashboardApp, pilot: Pilot[None]) -> None:
        await pilot.press("4")
        await pilot.pause()
        assert "no failed candidates" in screen_text(app)

    drive(path, script)


def test_qd_score_is_not_shown_below_the_qd_offset(tmp_path: Path) -> None:
    def records() -> list[CandidateRecord]:
        return [CandidateRecord(id=i, status="evaluated", island=0, generation=0,
                                parent_ids=(), edit_kind="initial" if i == 0 else "diff",
                                created=1.0, code="X = 1\n" + "#\n" * i,
                                result=EvalResult(True, -100.0 + i, {})) for i in range(3)]

    cost = write_run(tmp_path / "cost", records(), RunConfig(), {"problem": "cbl"})
    data = RunData(cost)
    try:
        assert "QD n/a (scores < qd_offset 0)" in str(stats_line(data))
    finally:
        data.close()
    offset = write_run(tmp_path / "offset", records(),
                       RunConfig(archive=ArchiveConfig(qd_offset=-1000.0)), {"problem": "cbl"})
    data = RunData(offset)
    try:
        stats = str(stats_line(data))
        assert "QD " in stats and "n/a" not in stats and "(over -1000)" in stats
        assert data.archive.stats().qd_score > 0
    finally:
        data.close()

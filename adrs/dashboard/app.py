"""`adrs dashboard RUN_DIR`: a Textual application over one run's store.

It reads the store (never the controller) and polls it for new candidates, so the same app
watches a live run and browses a finished one. The app composes the views (views.py, one
class per view), holds the key bindings and refreshes the data; the views draw it. Layout
and colours live in dashboard.tcss.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Input, Static, TabbedContent, TabPane

from adrs.dashboard.data import RunData
from adrs.dashboard.screens import HelpScreen, ProgramScreen
from adrs.dashboard.views import (
    SORTS,
    CandidatesView,
    ChartView,
    CostView,
    FailuresView,
    IslandsView,
    OpenProgram,
    RunView,
)
from adrs.engine import archive_view as view
from adrs.store.database import CandidateRecord


class DashboardApp(App[None]):
    """The dashboard. `poll_s` is how often the store is read for new candidates."""

    CSS_PATH = "dashboard.tcss"
    TITLE = "adrs dashboard"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "tab('overview')", "overview"),
        Binding("2", "tab('islands')", "islands"),
        Binding("3", "tab('candidates')", "table"),
        Binding("4", "tab('failures')", "failures"),
        Binding("b", "best", "best"),
        Binding("slash", "filter", "filter"),
        Binding("f", "quick_filter", "quick filter", show=False),
        Binding("s", "sort", "sort", show=False),
        Binding("r", "reverse", "reverse", show=False),
        Binding("question_mark", "help", "help"),
        Binding("q", "quit", "quit"),
    ]

    def __init__(self, run_dir: Path, *, poll_s: float = 1.0) -> None:
        super().__init__()
        self.data = RunData(run_dir)
        self.poll_s = poll_s

    # ----------------------------------------------------------------- layout
    def compose(self) -> ComposeResult:
        yield Static(id="status")
        with TabbedContent(id="tabs", initial="overview"):
            with TabPane("1 Overview", id="overview"):
                yield ChartView(self.data)
                yield CostView(self.data)
            with TabPane("2 Islands", id="islands"):
                yield IslandsView(self.data)
            with TabPane("3 Candidates", id="candidates"):
                yield CandidatesView(self.data)
            with TabPane("4 Failures", id="failures"):
                yield FailuresView(self.data)
        yield Footer()

    def on_mount(self) -> None:
        # Each view fills itself when mounted; the app keeps the status line and the poll.
        self.query_one("#status", Static).update(status_line(self.data))
        self.follow()

    def on_unmount(self) -> None:
        self.workers.cancel_group(self, "poll")
        self.data.close()

    # ---------------------------------------------------------------- refresh
    @work(exclusive=True, group="poll")
    async def follow(self) -> None:
        """Read the store every `poll_s` for new candidates, off the UI thread.

        Only the read runs in a thread (`RunData.fetch` changes nothing); the records are
        taken and drawn here, on the UI thread, one poll at a time.
        """
        while True:
            await asyncio.sleep(self.poll_s)
            fetched = await asyncio.to_thread(self.data.fetch)
            if not self.is_running:  # shutting down: the views are being taken apart
                return
            self.refresh_views(self.data.take(fetched))

    def refresh_views(self, new: list[CandidateRecord]) -> None:
        """Redraw the status line, and the views when candidates were loaded."""
        self.query_one("#status", Static).update(status_line(self.data))
        if new:
            for run_view in self.query(RunView):
                run_view.refresh_data(new, rebuild=False)

    # ---------------------------------------------------------------- actions
    def action_tab(self, pane: str) -> None:
        self.query_one("#tabs", TabbedContent).active = pane
        focus = {"islands": "#heat", "candidates": "#table", "failures": "#failed"}.get(pane)
        if focus is not None:
            self.query_one(focus).focus()

    def action_best(self) -> None:
        best = self.data.best()
        if best is None:
            self.notify("no valid program yet", severity="warning")
        else:
            self.push_screen(ProgramScreen(self.data, best.id))

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_filter(self) -> None:
        self.action_tab("candidates")
        self.query_one("#filter", Input).focus()

    def action_quick_filter(self) -> None:
        self.action_tab("candidates")
        self.query_one(CandidatesView).cycle_quick_filter()

    def action_sort(self) -> None:
        candidates = self.query_one(CandidatesView)
        candidates.sort_index = (candidates.sort_index + 1) % len(SORTS)

    def action_reverse(self) -> None:
        candidates = self.query_one(CandidatesView)
        candidates.sort_reverse = not candidates.sort_reverse

    def on_open_program(self, message: OpenProgram) -> None:
        self.push_screen(ProgramScreen(self.data, message.candidate_id))


def status_line(data: RunData) -> Text:
    best = data.best()
    text = Text(f" {data.run_dir.name} ", style="bold reverse")
    text.append(f"  {data.problem}  {data.status}  {len(data.records)} candidates")
    if best is not None:
        text.append(f"  best {view.score_of(best):.6g} (#{best.id})", style="bold green")
    if data.in_flight:
        text.append(f"  {data.in_flight} in flight", style="yellow")
    return text

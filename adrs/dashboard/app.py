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

from adrs.dashboard.data import RunData, score_label
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

MAIN_SCREEN_ACTIONS = frozenset({"tab", "best", "filter", "quick_filter", "sort", "reverse"})


class DashboardApp(App[None]):
    """The dashboard. `poll_s` is how often the store is read for new candidates."""

    CSS_PATH = "dashboard.tcss"
    TITLE = "adrs dashboard"
    # The footer shows the keys an 80-column terminal has room for; the tab titles show
    # their own keys (1-4), and `?` lists every key.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "help", "help"),
        Binding("q", "quit", "quit"),
        Binding("1", "tab('overview')", "overview", show=False),
        Binding("2", "tab('islands')", "islands", show=False),
        Binding("3", "tab('candidates')", "table", show=False),
        Binding("4", "tab('failures')", "failures", show=False),
        Binding("b", "best", "best"),
        Binding("slash", "filter", "filter"),
        Binding("f", "quick_filter", "quick filter", show=False),
        Binding("s", "sort", "sort", show=False),
        Binding("r", "reverse", "reverse", show=False),
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
        yield Footer(show_command_palette=False)

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
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The main screen's keys act (and show in the footer) on the main screen only."""
        if action in MAIN_SCREEN_ACTIONS:
            return len(self.screen_stack) <= 1
        return True

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


ENDING_STYLES = {"running": "bold green", "finished": "bold", "stopped": "bold yellow",
                 "failed": "bold red", "killed": "bold red"}


def status_line(data: RunData) -> Text:
    """The run's id, problem, how it ended (or that it runs), counts and best: plain text,
    whatever the stored names hold."""
    ending = data.ending
    counts = data.counts
    text = Text(f" {view.printable(data.run_dir.name, newlines=False)} ", style="bold reverse")
    text.append(f"  {view.printable(data.problem, newlines=False)}  ")
    text.append(view.one_line(ending.text, 120), style=ENDING_STYLES.get(ending.status, ""))
    text.append(f"  {counts.candidates} candidates")
    if counts.best_score is not None:
        noise = None if counts.best_id is None else data.noise.get(counts.best_id)
        text.append(f"  best {score_label(counts.best_score, noise)} (#{counts.best_id})",
                    style="bold green")
    if ending.status == "running" and data.in_flight:
        text.append(f"  {data.in_flight} in flight", style="yellow")
    return text

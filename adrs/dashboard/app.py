"""`adrs dashboard RUN_DIR`: a Textual application over one run's store.

It reads the store (never the controller) and polls it for new candidates, so the same app
watches a live run and browses a finished one. Layout and colours live in dashboard.tcss.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Input, Static, TabbedContent, TabPane
from textual.widgets.data_table import ColumnKey

from adrs.dashboard.data import FILTER_HELP, Predicate, RunData, parse_filter
from adrs.dashboard.screens import HelpScreen, ProgramScreen
from adrs.dashboard.widgets import HeatMap, ScoreChart
from adrs.engine import archive_view as view
from adrs.store.database import CandidateRecord

QUICK_FILTERS = ("", "valid", "failed")
# (column label, sort key); None sorts last whatever the direction.
SORTS: tuple[tuple[str, Callable[[CandidateRecord], Any]], ...] = (
    ("id", lambda r: r.id),
    ("score", lambda r: view.score_of(r)),
    ("island", lambda r: r.island),
    ("gen", lambda r: r.generation),
    ("time", lambda r: r.created),
)
COLUMNS = ("id", "score", "valid", "island", "gen", "model", "edit", "time")


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
        self.predicate: Predicate = parse_filter("")
        self.sort_index = 0
        self.sort_reverse = False
        self.quick = 0

    # ----------------------------------------------------------------- layout
    def compose(self) -> ComposeResult:
        yield Static(id="status")
        with TabbedContent(id="tabs", initial="overview"):
            with TabPane("1 Overview", id="overview"):
                yield ScoreChart(self.data, id="chart")
                yield Static(id="stats")
                yield DataTable(id="usage", cursor_type="none", zebra_stripes=True)
            with TabPane("2 Islands", id="islands"):
                yield HeatMap(self.data, id="heat")
            with TabPane("3 Candidates", id="candidates"):
                yield Input(placeholder=f"filter — {FILTER_HELP}", id="filter")
                yield DataTable(id="table", cursor_type="row", zebra_stripes=True)
            with TabPane("4 Failures", id="failures"):
                yield DataTable(id="failed", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#table", DataTable)
        for label in COLUMNS:
            table.add_column(label, key=label)
        self.query_one("#usage", DataTable).add_columns(
            "model", "candidates", "calls", "prompt tok", "completion tok", "cost $")
        self.query_one("#failed", DataTable).add_columns("id", "island", "reason")
        self.refresh_views(list(self.data.records.values()), rebuild=True)
        self.set_interval(self.poll_s, self.poll)
        self.query_one("#heat", HeatMap).cursor = self._best_cell()

    def on_unmount(self) -> None:
        self.data.close()

    # ---------------------------------------------------------------- refresh
    def poll(self) -> None:
        new = self.data.refresh()
        self.refresh_views(new, rebuild=False)

    def refresh_views(self, new: list[CandidateRecord], *, rebuild: bool) -> None:
        self.query_one("#status", Static).update(self._status_line())
        if not new and not rebuild:
            return
        self._fill_table(new, rebuild=rebuild)
        self._fill_failures()
        self._fill_usage()
        self.query_one("#stats", Static).update(self._stats())
        self.query_one("#chart", ScoreChart).refresh()
        self.query_one("#heat", HeatMap).refresh()

    def _status_line(self) -> Text:
        d = self.data
        best = d.best()
        text = Text(f" {d.run_dir.name} ", style="bold reverse")
        text.append(f"  {d.problem}  {d.status}  {len(d.records)} candidates")
        if best is not None:
            text.append(f"  best {view.score_of(best):.6g} (#{best.id})", style="bold green")
        if d.in_flight:
            text.append(f"  {d.in_flight} in flight", style="yellow")
        return text

    def _stats(self) -> Text:
        stats = self.data.archive.stats()
        records = self.data.records.values()
        fails = sum(view.failure_reason(r) is not None for r in records)
        dups = sum(r.status == "duplicate" for r in records)
        return Text(f"valid {stats.valid}  failed {fails}  dup {dups}  "
                    f"cells {stats.cells_filled}/{stats.cells_total} ({stats.coverage:.0%})  "
                    f"QD {stats.qd_score:.4g}  migrations {self.data.archive.migrations}")

    def _fill_table(self, new: list[CandidateRecord], *, rebuild: bool) -> None:
        table = self.query_one("#table", DataTable)
        if rebuild:
            table.clear()
            new = list(self.data.records.values())
        start = min((r.created for r in self.data.records.values()), default=0.0)
        for record in new:
            if self.predicate(record):
                table.add_row(*_cells(record, start), key=str(record.id))
        self._sort(table)

    def _sort(self, table: DataTable[Any]) -> None:
        label, key = SORTS[self.sort_index]
        records = self.data.records

        def order(row_key: Any) -> tuple[bool, Any]:
            value = key(records[int(row_key)])
            missing = value is None
            return (missing != self.sort_reverse, value if not missing else 0)

        table.sort("id", key=order, reverse=self.sort_reverse)
        for column in COLUMNS:
            table.columns[ColumnKey(column)].label = Text(column + (
                (" ▼" if self.sort_reverse else " ▲") if column == label else ""))

    def _fill_failures(self) -> None:
        table = self.query_one("#failed", DataTable)
        table.clear()
        for record, reason in self.data.failures():
            table.add_row(str(record.id), str(record.island), reason, key=str(record.id))

    def _fill_usage(self) -> None:
        table = self.query_one("#usage", DataTable)
        table.clear()
        for u in self.data.usage_by_model():
            table.add_row(u.model, str(u.candidates), str(u.calls), str(u.prompt_tokens),
                          str(u.completion_tokens), f"{u.cost_usd:.4f}")

    def _best_cell(self) -> tuple[int, int]:
        best = self.data.best()
        if best is None:
            return (0, 0)
        for key, (cid, _) in self.data.heat(0).cells.items():
            if cid == best.id:
                return key
        return (0, 0)

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
            self.open_program(best.id)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_filter(self) -> None:
        self.action_tab("candidates")
        self.query_one("#filter", Input).focus()

    def action_quick_filter(self) -> None:
        self.quick = (self.quick + 1) % len(QUICK_FILTERS)
        self.action_tab("candidates")
        self.apply_filter(QUICK_FILTERS[self.quick])

    def action_sort(self) -> None:
        self.sort_index = (self.sort_index + 1) % len(SORTS)
        self._sort(self.query_one("#table", DataTable))

    def action_reverse(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self._sort(self.query_one("#table", DataTable))

    def apply_filter(self, text: str) -> None:
        try:
            self.predicate = parse_filter(text)
        except ValueError as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return
        self.query_one("#filter", Input).value = text
        self._fill_table([], rebuild=True)

    def open_program(self, candidate_id: int) -> None:
        self.push_screen(ProgramScreen(self.data, candidate_id))

    # ----------------------------------------------------------------- events
    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.apply_filter(event.value)
        self.query_one("#table", DataTable).focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.open_program(int(event.row_key.value))

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        labels = [label for label, _ in SORTS]
        name = str(event.column_key.value)
        if name in labels:
            self.sort_index = labels.index(name)
            self._sort(event.data_table)

    def on_heat_map_elite_selected(self, event: HeatMap.EliteSelected) -> None:
        self.open_program(event.candidate_id)

    def on_key(self, event: Any) -> None:
        # Esc in the filter box goes back to the table instead of doing nothing.
        if event.key == "escape" and isinstance(self.focused, Input):
            self.query_one("#table", DataTable).focus()


def _cells(record: CandidateRecord, start: float) -> tuple[Text | str, ...]:
    score = view.score_of(record)
    if score is not None:
        verdict: Text | str = Text("valid", style="green")
    elif record.status == "duplicate":
        verdict = Text(f"dup #{record.duplicate_of}", style="dim")
    else:
        verdict = Text("FAILED", style="bold red")
    return (str(record.id), "-" if score is None else f"{score:.6g}", verdict,
            str(record.island), str(record.generation), record.usage.model or "offline",
            record.edit_kind, f"{record.created - start:.1f}s")

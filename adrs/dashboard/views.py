"""The main screen's views, one class each: the score chart, the LLM cost per model, the
island heat maps, the candidate table and the failures (the program, diff and lineage view
is `screens.ProgramScreen`).

Every view is a container over the run's shared `RunData`: it composes its widgets, fills
them when mounted and redraws in `refresh_data`, which the app calls after each poll that
loaded new candidates. A view that selects a candidate posts `OpenProgram` to the app
(straight to it, not bubbling through the tabs), which opens the program screen. Styles
live in dashboard.tcss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import var
from textual.widgets import DataTable, Input, Static
from textual.widgets.data_table import ColumnKey

from adrs.dashboard.data import FILTER_HELP, Predicate, RunData, parse_filter, score_label
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
    ("elapsed", lambda r: r.created),
)
# "elapsed": seconds from the first candidate's creation to this one's.
COLUMNS = ("id", "score", "valid", "island", "gen", "model", "edit", "elapsed")
SORTABLE = tuple(label for label, _ in SORTS)
SORT_MARKS = ("▲", "▼")  # ascending, descending: shown after the sorted column's label
MODEL_WIDTH = 16  # the table shows the model's name after its provider, cut to this
MODEL_COST_WIDTH = 30  # the cost table shows the model's whole name, cut to this
REASON_WIDTH = 200  # the failures table shows a reason's first line, cut to this

class OpenProgram(Message):
    """A view asks the app to open one candidate's program screen (posted to the app)."""

    def __init__(self, candidate_id: int) -> None:
        super().__init__()
        self.candidate_id = candidate_id


class RunView(Vertical):
    """Base of the views: holds the run's data and redraws from it in `refresh_data`."""

    def __init__(self, data: RunData, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.data = data

    def refresh_data(self, new: list[CandidateRecord], *, rebuild: bool) -> None:
        """Show the candidates just loaded (`new`), or everything again when `rebuild`."""
        raise NotImplementedError


class ChartView(RunView):
    """The best score over candidates, with the archive's statistics under it."""

    def compose(self) -> ComposeResult:
        yield ScoreChart(self.data, id="chart")
        yield Static(id="stats")

    def on_mount(self) -> None:
        self.refresh_data([], rebuild=True)

    def refresh_data(self, new: list[CandidateRecord], *, rebuild: bool) -> None:
        self.query_one("#stats", Static).update(stats_line(self.data))
        self.query_one("#chart", ScoreChart).refresh()


class CostView(RunView):
    """LLM calls, tokens and dollars per model ('offline' when no LLM proposed)."""

    def compose(self) -> ComposeResult:
        yield DataTable(id="usage", cursor_type="none", zebra_stripes=True)

    def on_mount(self) -> None:
        self.query_one("#usage", DataTable).add_columns(
            "model", "candidates", "calls", "in tok", "out tok", "cost $")
        self.refresh_data([], rebuild=True)

    def refresh_data(self, new: list[CandidateRecord], *, rebuild: bool) -> None:
        table = self.query_one("#usage", DataTable)
        table.clear()
        for u in self.data.usage_by_model():
            table.add_row(Text(view.one_line(u.model, MODEL_COST_WIDTH)), str(u.candidates),
                          str(u.calls),
                          str(u.prompt_tokens), str(u.completion_tokens), f"{u.cost_usd:.4f}")


class IslandsView(RunView):
    """The MAP-Elites grid of one island at a time; the cursor starts on the best elite."""

    def compose(self) -> ComposeResult:
        yield HeatMap(self.data, id="heat")

    def on_mount(self) -> None:
        self.query_one("#heat", HeatMap).cursor = best_cell(self.data)

    def refresh_data(self, new: list[CandidateRecord], *, rebuild: bool) -> None:
        self.query_one("#heat", HeatMap).refresh()

    def on_heat_map_elite_selected(self, event: HeatMap.EliteSelected) -> None:
        event.stop()
        self.app.post_message(OpenProgram(event.candidate_id))


class CandidatesView(RunView):
    """Every candidate in a filterable, sortable table; Enter opens the selected one.

    `sort_index` (a row of SORTS) and `sort_reverse` are reactive: setting either one
    re-sorts the table and marks the sorted column's header.
    """

    sort_index: var[int] = var(0, init=False)
    sort_reverse: var[bool] = var(False, init=False)

    def __init__(self, data: RunData, *, id: str | None = None) -> None:
        super().__init__(data, id=id)
        self.predicate: Predicate = parse_filter("")
        self.quick = 0  # index into QUICK_FILTERS

    def compose(self) -> ComposeResult:
        yield Input(placeholder=f"filter — {FILTER_HELP}", id="filter")
        yield DataTable(id="table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one("#table", DataTable)
        for label in COLUMNS:  # sortable columns keep room for the mark: it is never cut
            table.add_column(Text(f"{label}  " if label in SORTABLE else label), key=label)
        self.refresh_data([], rebuild=True)

    def refresh_data(self, new: list[CandidateRecord], *, rebuild: bool) -> None:
        table = self.query_one("#table", DataTable)
        if rebuild:
            table.clear()
            new = list(self.data.records.values())
        start = min((r.created for r in self.data.records.values()), default=0.0)
        for record in new:
            if self.predicate(record):
                table.add_row(*_cells(record, start, self.data), key=str(record.id))
        self.sort_rows()

    def apply_filter(self, text: str) -> None:
        """Show only the candidates matching `text` (see FILTER_HELP); a bad term notifies."""
        try:
            self.predicate = parse_filter(text)
        except ValueError as exc:
            self.notify(view.printable(exc), severity="error", timeout=8, markup=False)
            return
        self.query_one("#filter", Input).value = text
        self.refresh_data([], rebuild=True)

    def cycle_quick_filter(self) -> None:
        self.quick = (self.quick + 1) % len(QUICK_FILTERS)
        self.apply_filter(QUICK_FILTERS[self.quick])

    def watch_sort_index(self) -> None:
        self.sort_rows()

    def watch_sort_reverse(self) -> None:
        self.sort_rows()

    def sort_rows(self) -> None:
        table = self.query_one("#table", DataTable)
        label, key = SORTS[self.sort_index]
        table.sort("id", key=_row_order(self.data, key, self.sort_reverse),
                   reverse=self.sort_reverse)
        mark = SORT_MARKS[self.sort_reverse]
        for column in SORTABLE:
            table.columns[ColumnKey(column)].label = Text(
                f"{column} {mark if column == label else ' '}",
                style="bold" if column == label else "")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.apply_filter(event.value)
        self.query_one("#table", DataTable).focus()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        labels = [label for label, _ in SORTS]
        name = str(event.column_key.value)
        if name in labels:
            self.sort_index = labels.index(name)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.app.post_message(OpenProgram(int(event.row_key.value)))

    def on_key(self, event: events.Key) -> None:
        # Esc in the filter box goes back to the table instead of doing nothing.
        if event.key == "escape" and isinstance(self.screen.focused, Input):
            self.query_one("#table", DataTable).focus()


class FailuresView(RunView):
    """Failed candidates (failed proposals and invalid programs), newest first; a line
    saying so when there are none. A reason shows its first line here (the evaluator's
    text, shown as it is), and in full on the candidate's program screen."""

    def compose(self) -> ComposeResult:
        yield Static(EMPTY_FAILURES, id="failed-empty")
        yield DataTable(id="failed", cursor_type="row")

    def on_mount(self) -> None:
        self.query_one("#failed", DataTable).add_columns("id", "island", "reason")
        self.refresh_data([], rebuild=True)

    def refresh_data(self, new: list[CandidateRecord], *, rebuild: bool) -> None:
        table = self.query_one("#failed", DataTable)
        table.clear()
        failures = self.data.failures()
        for record, reason in failures:
            table.add_row(str(record.id), str(record.island),
                          Text(view.one_line(reason, REASON_WIDTH)), key=str(record.id))
        self.query_one("#failed-empty", Static).display = not failures

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.app.post_message(OpenProgram(int(event.row_key.value)))


# --------------------------------------------------------------------------- helpers
EMPTY_FAILURES = Text("no failed candidates: every proposal gave a program and every "
                      "program was valid", style="dim")


def stats_line(data: RunData) -> Text:
    """Counts (the same as `adrs show`), the archive's coverage and QD score."""
    counts = data.counts
    stats = data.archive.stats()
    return Text(f"valid {counts.valid}  failed {counts.failures}  dup {counts.duplicates}  "
                f"cells {stats.cells_filled}/{stats.cells_total} ({stats.coverage:.0%})  "
                f"{qd_text(data)}  migrations {data.archive.migrations}")


def qd_text(data: RunData) -> str:
    """The QD score: the sum over filled cells of (elite score - archive.qd_offset). It
    means something only when every elite scores at least qd_offset (a cost problem's
    negative scores with qd_offset 0 would sum to a negative number that falls as cells
    fill): then it is shown as "n/a"; the help screen says why and what to set."""
    offset = data.config.archive.qd_offset
    scores = [program.score for island in range(data.config.archive.islands)
              for program in data.archive.cells(island).values()]
    if not scores:
        return "QD -"
    if min(scores) < offset:
        return f"QD n/a (scores < qd_offset {offset:g})"
    qd = data.archive.stats().qd_score
    return f"QD {qd:.4g}" + (f" (over {offset:g})" if offset else "")


def best_cell(data: RunData) -> tuple[int, int]:
    """The heat-map cell of island 0 that holds its best elite (the run's best when island
    0 holds it), else the corner of an empty island."""
    cells = data.heat(0).cells
    if not cells:
        return (0, 0)
    return max(cells, key=lambda key: (cells[key][1], -cells[key][0]))


def _row_order(data: RunData, key: Callable[[CandidateRecord], Any],
               reverse: bool) -> Callable[[Any], tuple[bool, Any]]:
    """The table's sort key over row keys (candidate ids): missing values sort last."""
    records = data.records

    def order(row_key: Any) -> tuple[bool, Any]:
        value = key(records[int(row_key)])
        missing = value is None
        return (missing != reverse, value if not missing else 0)

    return order


def _cells(record: CandidateRecord, start: float, data: RunData) -> tuple[Text | str, ...]:
    score = view.score_of(record)
    if score is not None:
        verdict: Text | str = Text("valid", style="green")
    elif record.status == "duplicate":
        verdict = Text(f"dup #{record.duplicate_of}", style="dim")
    else:
        verdict = Text("FAILED", style="bold red")
    shown = "-" if score is None else score_label(score, data.noise.get(record.id))
    return (str(record.id), shown, verdict,
            str(record.island), str(record.generation), Text(short_model(record.usage.model)),
            Text(view.printable(record.edit_kind, newlines=False)),
            f"{record.created - start:.1f}s")


def short_model(model: str) -> str:
    """A model's name for a narrow column: without its provider prefix, cut to MODEL_WIDTH
    ("openai/gpt-4o-mini" reads "gpt-4o-mini"); the program screen shows it whole."""
    name = (model or "offline").rsplit("/", 1)[-1] or model
    return view.one_line(name, MODEL_WIDTH)

"""Dashboard widgets: the score chart and the selectable MAP-Elites heat map."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from adrs.dashboard.chart import render_chart
from adrs.dashboard.data import HeatGrid, RunData, score_label
from adrs.engine.archive_view import printable

# Cold to hot: low scores blue, high scores red (relative to the island's range).
PALETTE = ("#3b4cc0", "#6788ee", "#9abbff", "#c9d7f0", "#edd1c2", "#f7a889", "#e26952",
           "#b40426")


class ScoreChart(Widget):
    """Best score over candidates, redrawn from `RunData` on every refresh."""

    def __init__(self, data: RunData, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.data = data

    def render(self) -> Text:
        last = max(self.data.records, default=0)
        return render_chart(self.data.best_steps, self.data.valid_points(), last,
                            self.size.width, self.size.height)


class HeatMap(Widget, can_focus=True):
    """One island's grid. Arrows move the cursor, Enter opens the elite, [ and ] switch
    islands. Each cell shows the elite's score colour; an empty cell is a dot."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left", "move(-1, 0)", "left", show=False),
        Binding("right", "move(1, 0)", "right", show=False),
        Binding("up", "move(0, 1)", "up", show=False),
        Binding("down", "move(0, -1)", "down", show=False),
        Binding("enter", "open", "open elite"),
        Binding("left_square_bracket", "island(-1)", "prev island"),
        Binding("right_square_bracket", "island(1)", "next island"),
    ]
    island: reactive[int] = reactive(0)
    cursor: reactive[tuple[int, int]] = reactive((0, 0))

    class EliteSelected(Message):
        def __init__(self, candidate_id: int) -> None:
            super().__init__()
            self.candidate_id = candidate_id

    def __init__(self, data: RunData, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.data = data

    def grid(self) -> HeatGrid:
        return self.data.heat(self.island)

    def selected(self) -> int | None:
        """The id of the elite under the cursor, if the cell is filled."""
        held = self.grid().cells.get(self.cursor)
        return None if held is None else held[0]

    def action_move(self, dx: int, dy: int) -> None:
        grid = self.grid()
        row, col = self.cursor
        self.cursor = (min(max(row + dy, 0), grid.rows - 1),
                       min(max(col + dx, 0), grid.columns - 1))

    def action_island(self, step: int) -> None:
        self.island = (self.island + step) % self.data.config.archive.islands

    def action_open(self) -> None:
        chosen = self.selected()
        if chosen is not None:
            self.post_message(self.EliteSelected(chosen))

    def render(self) -> Text:
        grid = self.grid()
        scores = [score for _, score in grid.cells.values()]
        lo, hi = (min(scores), max(scores)) if scores else (0.0, 1.0)
        text = Text()
        text.append(f"island {self.island + 1}/{self.data.config.archive.islands}  "
                    f"{len(grid.cells)}/{grid.rows * grid.columns} cells  "
                    f"↑ {printable(grid.y_name, newlines=False)}  "
                    f"→ {printable(grid.x_name, newlines=False)}\n", style="bold")
        for row in reversed(range(grid.rows)):  # high bins at the top, like a plot
            for col in range(grid.columns):
                self._cell(text, grid, (row, col), lo, hi)
            text.append("\n")
        text.append_text(self._caption(grid))
        return text

    def _cell(self, text: Text, grid: HeatGrid, key: tuple[int, int], lo: float,
              hi: float) -> None:
        held = grid.cells.get(key)
        focus = key == self.cursor
        if held is None:
            text.append("[·]" if focus else " · ", style="dim reverse" if focus else "dim")
            return
        shade = PALETTE[min(int((held[1] - lo) / (hi - lo or 1.0) * len(PALETTE)),
                            len(PALETTE) - 1)]
        style = f"bold white on {shade}" + (" reverse" if focus else "")
        text.append("[■]" if focus else " ■ ", style=style)

    def _caption(self, grid: HeatGrid) -> Text:
        held = grid.cells.get(self.cursor)
        row, col = self.cursor
        where = f"cell ({col}, {row})"
        if held is None:
            return Text(f"{where}: empty", style="dim")
        score = score_label(held[1], self.data.noise.get(held[0]))
        return Text(f"{where}: #{held[0]} score {score}  (Enter opens it)")

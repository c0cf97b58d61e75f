"""A text chart of the best score over candidates (a step line plus every valid score).

Pure functions of the data and the size, so they can be tested without a terminal. Each
column is one slice of candidate ids; the best-so-far is drawn as a step line with eighth
blocks (8 levels per row), and a dot marks the best valid score within the slice.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

BLOCKS = " ▁▂▃▄▅▆▇█"
LABEL_WIDTH = 9


def best_so_far(steps: Sequence[tuple[int, float]], last_id: int) -> list[float | None]:
    """The best score after each candidate id 0..last_id (None before the first)."""
    values: list[float | None] = []
    current: float | None = None
    index = 0
    for cid in range(last_id + 1):
        while index < len(steps) and steps[index][0] <= cid:
            current = steps[index][1]
            index += 1
        values.append(current)
    return values


def render_chart(steps: Sequence[tuple[int, float]], points: Sequence[tuple[int, float]],
                 last_id: int, width: int, height: int) -> Text:
    """The chart as `height` lines of `width` cells; a note when there is nothing to draw."""
    plot_w, plot_h = width - LABEL_WIDTH, height - 1
    if not steps or plot_w < 4 or plot_h < 2:
        return Text("no valid candidate yet" if not steps else "(too small to draw)",
                    style="dim")
    scores = [s for _, s in points] + [s for _, s in steps]
    lo, hi = min(scores), max(scores)
    if hi - lo < 1e-12:
        lo, hi = lo - 1.0, hi + 1.0
    best = best_so_far(steps, last_id)
    columns = [_column(best, points, last_id, plot_w, c) for c in range(plot_w)]
    lines = [_row(columns, row, plot_h, lo, hi) for row in range(plot_h)]
    text = Text()
    for row, line in enumerate(lines):
        label = _label(row, plot_h, lo, hi)
        text.append(f"{label:>{LABEL_WIDTH - 1}}│", style="dim")
        text.append_text(line)
        text.append("\n")
    axis = f"0 … {last_id} candidates"
    text.append(" " * (LABEL_WIDTH - 1) + "└" + axis.center(plot_w, "─")[:plot_w], style="dim")
    return text


def _column(best: list[float | None], points: Sequence[tuple[int, float]], last_id: int,
            plot_w: int, column: int) -> tuple[float | None, float | None]:
    """(best-so-far at the slice's end, best single score inside the slice)."""
    first = column * (last_id + 1) // plot_w
    end = max(first + 1, (column + 1) * (last_id + 1) // plot_w)
    inside = [s for cid, s in points if first <= cid < end]
    return best[min(end - 1, last_id)], max(inside) if inside else None


def _row(columns: list[tuple[float | None, float | None]], row: int, plot_h: int, lo: float,
         hi: float) -> Text:
    line = Text()
    top = plot_h - row  # this row covers levels (top - 1, top] in row units
    for area, dot in columns:
        char, style = " ", ""
        if area is not None:
            # Only the row holding the level is drawn: a step line, so dots below show.
            level = max((area - lo) / (hi - lo) * plot_h, 1 / 8)
            if top - 1 < level <= top:
                char, style = BLOCKS[max(1, round((level - (top - 1)) * 8))], "bold green"
        if dot is not None and char in (" ", BLOCKS[0]):
            level = (dot - lo) / (hi - lo) * plot_h
            if top - 1 <= level < top or (row == plot_h - 1 and level < 1):
                char, style = "·", "yellow"
        line.append(char, style=style)
    return line


def _label(row: int, plot_h: int, lo: float, hi: float) -> str:
    if row == 0:
        return f"{hi:.4g}"
    if row == plot_h - 1:
        return f"{lo:.4g}"
    return ""

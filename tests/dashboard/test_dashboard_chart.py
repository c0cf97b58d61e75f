"""The text chart: best-so-far values and the drawn lines."""

from __future__ import annotations

from adrs.dashboard.chart import LABEL_WIDTH, best_so_far, render_chart


def test_best_so_far_steps() -> None:
    assert best_so_far([(1, 2.0), (4, 5.0)], 5) == [None, 2.0, 2.0, 2.0, 5.0, 5.0]


def test_chart_has_the_requested_size_labels_and_a_rising_line() -> None:
    steps = [(0, 1.0), (10, 3.0), (30, 9.0)]
    points = [(i, 1.0 + (i % 5)) for i in range(40)] + [(30, 9.0)]
    lines = render_chart(steps, points, 39, 60, 12).plain.splitlines()
    assert len(lines) == 12 and all(len(line) == 60 for line in lines)
    assert lines[0].strip().startswith("9") and lines[-2].strip().startswith("1")
    plot = [line[LABEL_WIDTH:] for line in lines[:-1]]
    # The line's row (first row holding a block) never goes down from left to right.
    rows = [next(r for r, line in enumerate(plot) if line[c] not in " ·")
            for c in range(len(plot[0]))]
    assert rows == sorted(rows, reverse=True) and rows[0] > rows[-1]
    assert "·" in "".join(plot)


def test_chart_without_data_says_so() -> None:
    assert "no valid candidate" in render_chart([], [], 0, 40, 10).plain

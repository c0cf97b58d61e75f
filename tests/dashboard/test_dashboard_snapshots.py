"""Snapshot tests of the dashboard (pytest-textual-snapshot) at 80x24 and 160x48.

The run (`demo_run`, conftest.py) is written record by record with fixed values, so every
cell is deterministic: fixed `created` timestamps (the table shows seconds since the first
candidate, never a wall-clock time), fixed durations, tokens and costs, and a fixed run
folder name (the status line shows only the folder's name, not its temporary parent).

Update the SVGs in __snapshots__/ after an intended change of the layout with
`pytest tests/dashboard/test_dashboard_snapshots.py --snapshot-update`, and look at them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from adrs.dashboard.app import DashboardApp

Compare = Callable[..., bool]
VIEWS = {
    "overview": (),  # the main view: score chart, stats, LLM cost per model
    "islands": ("2",),
    "candidates": ("3",),
    "failures": ("4",),
    "program": ("b",),  # the best program's source
    "diff": ("b", "d"),
}
CASES = [((80, 24), "overview"), ((80, 24), "candidates"), ((80, 24), "program"),
         ((160, 48), "overview"), ((160, 48), "islands"), ((160, 48), "failures"),
         ((160, 48), "diff")]


@pytest.mark.parametrize(("size", "view"), CASES,
                         ids=[f"{w}x{h}-{view}" for (w, h), view in CASES])
def test_dashboard_snapshot(snap_compare: Compare, demo_run: Path, size: tuple[int, int],
                            view: str) -> None:
    # No poll during the shot: the run is finished, and a poll would change nothing anyway.
    app = DashboardApp(demo_run, poll_s=3600)
    assert snap_compare(app, press=VIEWS[view], terminal_size=size)


# A run whose initial program and best were evaluated again (conftest.REEVALUATED): the table
# and the status line mark their scores "×N", the best's metrics tab lists its evaluations.
NOISY_VIEWS = {"candidates": ("3",), "metrics": ("b", "m")}


@pytest.mark.parametrize("view", sorted(NOISY_VIEWS))
def test_dashboard_snapshot_reevaluated(snap_compare: Compare, noisy_run: Path,
                                        view: str) -> None:
    app = DashboardApp(noisy_run, poll_s=3600)
    assert snap_compare(app, press=NOISY_VIEWS[view], terminal_size=(80, 24))

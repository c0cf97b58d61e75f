"""The dashboard's data layer over a real offline run: lineage, diffs, grid, filters, usage."""

from __future__ import annotations

import itertools
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from adrs.cli.authoring import scaffold
from adrs.dashboard.data import RunData, parse_filter, score_label
from adrs.engine import archive_view as view
from adrs.store.database import RunStore
from adrs.store.side_tables import Evaluation


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> RunData:
    base = tmp_path_factory.mktemp("data")
    problem = scaffold("flush", base)
    config = base / "local.yaml"
    config.write_text("evaluation: {backend: local}\n")
    proc = subprocess.run([sys.executable, "-m", "adrs", "run", str(problem), "-c",
                           str(config), "--iterations", "25", "--run-dir", str(base / "r")],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    return RunData(base / "r")


def test_loads_every_record_and_the_archive_resume_would_rebuild(data: RunData) -> None:
    assert sorted(data.records) == list(range(25))
    rebuilt = view.replay([data.records[i] for i in sorted(data.records)], data.config)
    assert rebuilt.stats() == data.archive.stats()
    best = data.best()
    assert best is not None and best.id == data.store.tally().best_id
    scores = [s for _, s in data.best_steps]
    assert scores == sorted(scores) and data.best_steps[0][0] == 0
    assert data.refresh() == []  # nothing new: nothing loaded twice
    assert data.in_flight == 0  # the run stopped


def test_lineage_children_and_diff(data: RunData) -> None:
    best = data.best()
    assert best is not None
    chain = data.lineage(best.id)
    assert chain[0] == 0 and chain[-1] == best.id
    for parent, child in itertools.pairwise(chain):
        assert child in data.children[parent]
        assert data.records[child].parent_ids[0] == parent
    diff = data.diff(best.id)
    assert diff.startswith(f"--- #{chain[-2]}") and "\n+" in diff and "\n-" in diff
    assert "no parent" in data.diff(0)


def test_heat_grid_holds_the_island_elites(data: RunData) -> None:
    for island in range(data.config.archive.islands):
        grid = data.heat(island)
        elites = data.archive.cells(island)
        assert len(grid.cells) == len(elites)
        assert {cid for cid, _ in grid.cells.values()} == {p.id for p in elites.values()}
        assert (grid.x_name, grid.y_name) == ("mean_batch", "complexity")
        assert all(0 <= r < grid.rows and 0 <= c < grid.columns for r, c in grid.cells)


def test_filters_failures_usage(data: RunData) -> None:
    records = list(data.records.values())
    failed = [r for r in records if parse_filter("failed")(r)]
    assert [r.id for r in failed] == sorted(r.id for r, _ in data.failures())
    assert all("invalid" in (view.failure_reason(r) or "") for r in failed)
    valid = [r for r in records if parse_filter("valid score>0")(r)]
    assert len(valid) == data.archive.stats().valid - data.config.archive.islands + 1
    assert [r.id for r in records if parse_filter("id<=2 island=1")(r)] == [1]
    assert all(parse_filter("kind:offline")(r) for r in records if r.id > 0)
    with pytest.raises(ValueError, match="unknown filter term 'colour:red'"):
        parse_filter("colour:red")
    usage = data.usage_by_model()
    assert [(u.model, u.candidates, u.cost_usd) for u in usage] == [("offline", 25, 0.0)]


def test_fetch_reads_without_taking_and_take_skips_what_is_held(fresh_run: Path) -> None:
    data = RunData(fresh_run)
    try:
        assert sorted(data.records) == list(range(14)) and data.fetch().records == []
        store = RunStore.open(fresh_run)
        try:
            store.add(replace(data.records[13], id=14, parent_ids=(13,)))
        finally:
            store.close()
        fetched = data.fetch()  # what the app's worker thread runs: it changes nothing
        assert [r.id for r in fetched.records] == [14] and 14 not in data.records
        assert [r.id for r in data.take(fetched)] == [14]
        assert data.take(fetched) == []  # a second take of the same rows adds nothing
        assert data.children[13] == [14] and data.refresh() == []
    finally:
        data.close()


def test_reevaluated_candidates_carry_their_noise_and_a_follower_reads_new_ones(
        noisy_run: Path, fresh_noisy_run: Path) -> None:
    data = RunData(noisy_run)
    try:
        assert sorted(data.noise) == [0, 11]  # the others were evaluated once
        best = data.noise[11]
        assert (best.evaluations, best.spread) == (3, pytest.approx(2.5))
        assert best.text == f"mean of 3, spread 2.5; first {best.scores[0]:.6g}"
        assert data.noise[0].text == "same in 2 evaluations"
        assert score_label(19.75, best) == "19.75 ×3" and score_label(19.75, None) == "19.75"
    finally:
        data.close()
    run_dir = fresh_noisy_run
    data = RunData(run_dir)
    try:
        store = RunStore.open(run_dir)
        try:  # #14's rows of other code (an earlier launch, before a resume) do not count
            record = replace(data.records[13], id=14, parent_ids=(13,))
            assert record.code_hash is not None
            for n, (digest, score) in enumerate(((record.code_hash, 30.0), ("other", 1.0),
                                                 (record.code_hash, 34.0))):
                store.tables.add_evaluation(Evaluation(14, digest, n if n < 2 else 1, True,
                                                       score))
            store.add(record)
        finally:
            store.close()
        assert [r.id for r in data.refresh()] == [14]
        assert data.noise[14].scores == (30.0, 34.0) and 11 in data.noise
    finally:
        data.close()

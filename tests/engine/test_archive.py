"""MAP-Elites archive: cells, statistics, migration, sampling, adaptive ranges, determinism."""

from __future__ import annotations

import ast
import hashlib
import inspect
import random

import pytest

from adrs.code.features import FeatureDim
from adrs.engine.archive import AddStatus, Archive, ArchiveConfig, ArchiveStats
from adrs.types import EvalResult, Program

# Two fixed metric axes with 10 bins over [0, 10): a program's cell is (int(x), int(y)).
XY = (FeatureDim("x", bins=10, lo=0.0, hi=10.0), FeatureDim("y", bins=10, lo=0.0, hi=10.0))


def prog(pid: int, score: float | None, x: float = 0.0, y: float = 0.0, island: int = 0,
         code: str = "pass\n") -> Program:
    metrics = {"x": x, "y": y}
    result = (EvalResult(valid=True, score=score, metrics=metrics) if score is not None
              else EvalResult.invalid("boom", metrics=metrics))
    return Program(id=pid, code=code, result=result, island=island)


def config(**overrides: object) -> ArchiveConfig:
    # The grid mechanics alone: progress-aware exploration is tested in test_exploration.py.
    base: dict[str, object] = {"islands": 1, "features": XY, "migration_interval": 1000,
                               "seed_stalled_islands": False, "retire_initial": False,
                               "behaviour_dedup": False}
    base.update(overrides)
    return ArchiveConfig(**base)  # type: ignore[arg-type]


def ids(programs: list[Program] | tuple[Program, ...]) -> list[int]:
    return [p.id for p in programs]


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(("field", "value", "message"), [
    ("islands", 0, "islands must be an integer >= 1"),
    ("migration_interval", 0, "migration_interval must be an integer >= 1"),
    ("migration_size", -1, "use 0 to disable migration"),
    ("elite_pool", 0, "elite_pool must be"),
    ("num_top_inspirations", -1, "num_top_inspirations"),
    ("num_diverse_inspirations", 1.5, "num_diverse_inspirations"),
    ("exploit_ratio", 1.5, "exploit_ratio must be between 0 and 1"),
    ("qd_offset", float("nan"), "qd_offset must be a finite number"),
    ("features", ("x",), "must be FeatureDim values"),
    ("features", (FeatureDim("x"), FeatureDim("x", bins=3)), "must be unique"),
])
def test_config_validation(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ArchiveConfig(**{field: value})  # type: ignore[arg-type]


def test_config_defaults_and_list_features_become_tuple() -> None:
    default = ArchiveConfig()
    assert [d.name for d in default.features] == ["code_length", "complexity"]
    assert default.cells_per_island == 100
    listed = ArchiveConfig(features=list(XY))  # type: ignore[arg-type]
    assert listed.features == XY


# --------------------------------------------------------------------- cells and status


def test_cell_replacement_rules_and_status() -> None:
    archive = Archive(config())
    assert archive.add(prog(1, 5.0, x=1.5, y=2.5)) is AddStatus.NEW
    assert archive.add(prog(2, 4.0, x=1.1, y=2.9)) is AddStatus.NOT_ADDED  # worse
    assert archive.add(prog(3, 5.0, x=1.2, y=2.2)) is AddStatus.NOT_ADDED  # tie keeps 1
    assert archive.add(prog(4, 6.0, x=1.9, y=2.0)) is AddStatus.IMPROVED
    assert archive.add(prog(5, 1.0, x=7.0, y=2.0)) is AddStatus.NEW
    assert {cell: p.id for cell, p in archive.cells(0).items()} == {(1, 2): 4, (7, 2): 5}
    assert ids(archive.elites(0)) == [4, 5]
    assert archive.bins_of(prog(9, 0.0, x=7.0, y=2.0)) == (7, 2)


def test_invalid_programs_are_counted_but_not_added() -> None:
    archive = Archive(config())
    assert archive.add(prog(1, None, x=1.0)) is AddStatus.NOT_ADDED
    assert archive.best() is None
    assert archive.elites() == []
    assert archive.stats().added == 1
    assert archive.stats().valid == 0
    with pytest.raises(LookupError, match="no valid program"):
        archive.sample(0, random.Random(0))


def test_program_on_unknown_island_is_rejected() -> None:
    archive = Archive(config(islands=2))
    with pytest.raises(ValueError, match=r"island 2 does not exist.*0\.\.1"):
        archive.add(prog(1, 1.0, island=2))
    with pytest.raises(ValueError, match="island -1 does not exist"):
        archive.sample(-1, random.Random(0))


def test_stats_by_number() -> None:
    archive = Archive(config(islands=2, qd_offset=-1.0))
    assert archive.stats() == ArchiveStats(added=0, valid=0, cells_filled=0, cells_total=200,
                                           coverage=0.0, qd_score=0.0, best_score=None,
                                           best_id=None)
    archive.add(prog(1, 2.0, x=0.0))
    archive.add(prog(2, 3.5, x=1.0))
    archive.add(prog(3, 3.0, x=0.0, island=1))
    archive.add(prog(4, None, x=5.0))
    archive.add(prog(5, 1.0, x=1.0))  # worse than 2: not added
    assert archive.stats() == ArchiveStats(added=5, valid=4, cells_filled=3, cells_total=200,
                                           coverage=0.015, qd_score=3.0 + 4.5 + 4.0,
                                           best_score=3.5, best_id=2)


def test_elites_sorted_best_first_ties_by_lower_id() -> None:
    archive = Archive(config(islands=2))
    archive.add(prog(7, 1.0, x=0.0))
    archive.add(prog(3, 1.0, x=1.0))
    archive.add(prog(5, 2.0, x=2.0))
    archive.add(prog(4, 1.5, x=0.0, island=1))
    assert ids(archive.elites(0)) == [5, 3, 7]
    assert ids(archive.elites(1)) == [4]
    assert ids(archive.elites()) == [5, 4, 3, 7]
    best = archive.best()
    assert best is not None
    assert best.id == 5


def test_best_on_equal_scores_is_lower_id() -> None:
    archive = Archive(config())
    archive.add(prog(8, 2.0, x=0.0))
    archive.add(prog(6, 2.0, x=1.0))
    best = archive.best()
    assert best is not None
    assert best.id == 6


# --------------------------------------------------------------------------- migration


def test_migration_runs_exactly_every_interval_and_copies_top_elites() -> None:
    archive = Archive(config(islands=3, migration_interval=5, migration_size=2))
    adds = [prog(1, 1.0, x=1.0), prog(2, 3.0, x=2.0), prog(3, 2.0, x=3.0),
            prog(4, 9.0, x=4.0, island=1), prog(5, None, island=2)]
    for program in adds[:4]:
        archive.add(program)
    assert archive.migrations == 0
    assert ids(archive.elites(1)) == [4]
    archive.add(adds[4])  # the 5th add, invalid, still counts
    assert archive.migrations == 1
    # Ring 0 -> 1 -> 2 -> 0, top 2 of each island, chosen before any copy lands.
    assert ids(archive.elites(1)) == [4, 2, 3]
    assert ids(archive.elites(2)) == [4]
    assert ids(archive.elites(0)) == [2, 3, 1]
    migrants = archive.elites(1)[1:]
    assert [p.island for p in migrants] == [1, 1]
    assert migrants[0] == prog(2, 3.0, x=2.0, island=1)
    for pid in range(6, 10):
        archive.add(prog(pid, None))
    assert archive.migrations == 1
    archive.add(prog(10, None))
    assert archive.migrations == 2
    assert ids(archive.elites(2)) == [4, 2]  # island 1's new top two
    assert archive.stats().best_id == 4


def test_migrant_does_not_duplicate_program_already_on_destination() -> None:
    archive = Archive(config(islands=2, migration_interval=1, migration_size=2))
    archive.add(prog(1, 1.0))
    archive.add(prog(2, 0.5, x=5.0, island=1))  # round trip brings 1 back to island 0
    assert ids(archive.elites(0)) == [1, 2]
    assert ids(archive.elites(1)) == [1, 2]
    assert ids(archive.elites()) == [1, 2]
    assert archive.stats().cells_filled == 4


def test_single_island_never_migrates() -> None:
    archive = Archive(config(islands=1, migration_interval=1))
    archive.add(prog(1, 1.0))
    archive.add(prog(2, 2.0, x=3.0))
    assert archive.migrations == 0
    assert ids(archive.elites(0)) == [2, 1]


# ---------------------------------------------------------------------------- sampling


def filled_archive(islands: int = 2, **overrides: object) -> Archive:
    archive = Archive(config(islands=islands, **overrides))
    pid = 0
    for island in range(islands):
        for x in range(10):
            pid += 1
            archive.add(prog(pid, float(pid), x=float(x), island=island))
    return archive


def test_sample_draws_parents_from_the_requested_island() -> None:
    archive = filled_archive()
    rng = random.Random(1)
    island_ids = set(ids(archive.elites(1)))
    for _ in range(200):
        selection = archive.sample(1, rng)
        assert selection.island == 1
        assert selection.parent.id in island_ids
        assert selection.parent.island == 1


def test_exploit_ratio_is_roughly_respected() -> None:
    # Exploit draws from the top 2 of 10; explore is uniform over all 10, so a parent
    # outside the top 2 can only come from exploration: expected share 0.5 * 0.8 = 0.4.
    archive = filled_archive(islands=1, exploit_ratio=0.5, elite_pool=2)
    rng = random.Random(7)
    top = set(ids(archive.elites(0)[:2]))
    draws = 4000
    outside = sum(archive.sample(0, rng).parent.id not in top for _ in range(draws))
    assert abs(outside / draws - 0.4) < 0.03


def test_exploit_favours_rank() -> None:
    archive = filled_archive(islands=1, exploit_ratio=1.0, elite_pool=3)
    rng = random.Random(3)
    counts = {pid: 0 for pid in ids(archive.elites(0)[:3])}
    for _ in range(3000):
        counts[archive.sample(0, rng).parent.id] += 1
    first, second, third = counts.values()  # weights 1, 1/2, 1/3
    assert first > second > third > 0
    assert abs(first / 3000 - 6 / 11) < 0.04


def test_inspirations_exclude_parent_and_have_unique_ids() -> None:
    archive = filled_archive(islands=3, migration_interval=7, num_top_inspirations=3,
                             num_diverse_inspirations=4)
    assert archive.migrations > 0  # copies with repeated ids exist across islands
    rng = random.Random(11)
    for island in range(3):
        for _ in range(100):
            selection = archive.sample(island, rng)
            found = ids(selection.inspirations)
            assert selection.parent.id not in found
            assert len(found) == len(set(found)) == 7
            top = [p for p in ids(archive.elites(island)) if p != selection.parent.id][:3]
            assert found[:3] == top


def test_inspirations_shrink_when_the_archive_is_small() -> None:
    archive = Archive(config(islands=2))
    archive.add(prog(1, 1.0))
    selection = archive.sample(0, random.Random(0))
    assert selection.parent.id == 1
    assert selection.inspirations == ()
    assert selection.mate is None
    archive.add(prog(2, 2.0, x=4.0))
    selection = archive.sample(0, random.Random(0))
    assert ids(selection.inspirations) == [3 - selection.parent.id]
    assert selection.mate is not None
    assert selection.mate.id == 3 - selection.parent.id  # same island: no other has one


def test_empty_island_falls_back_on_global_best() -> None:
    archive = Archive(config(islands=3))
    archive.add(prog(1, 1.0))
    archive.add(prog(2, 5.0, x=3.0))
    selection = archive.sample(2, random.Random(0))
    assert selection.parent.id == 2
    assert ids(selection.inspirations) == [1]


def test_mate_prefers_another_island_and_differs_from_parent() -> None:
    archive = filled_archive(islands=2)
    rng = random.Random(5)
    other_island = set(ids(archive.elites(1)))
    for _ in range(100):
        selection = archive.sample(0, rng)
        assert selection.mate is not None
        assert selection.mate.id in other_island
        assert selection.mate.id != selection.parent.id


# ------------------------------------------------------------------------- determinism


def run_history(seed: int) -> tuple[list[list[int]], list[tuple[int, tuple[int, ...], int]]]:
    gen = random.Random(seed)
    archive = Archive(config(islands=3, migration_interval=13,
                             features=(FeatureDim("x", bins=5), FeatureDim("y", bins=4))))
    draws = []
    for pid in range(400):
        score = None if gen.random() < 0.1 else round(gen.uniform(0, 10), 1)
        archive.add(prog(pid, score, x=gen.uniform(-50, 50), y=gen.randint(0, 30),
                         island=pid % 3))
        if pid % 10 == 0 and archive.best() is not None:
            selection = archive.sample(pid % 3, random.Random(f"{seed}:{pid}"))
            mate = selection.mate.id if selection.mate else -1
            draws.append((selection.parent.id, tuple(ids(selection.inspirations)), mate))
    return [ids(archive.elites(i)) for i in range(3)], draws


def test_rankings_stay_in_step_with_cells_through_rebins_and_migrations() -> None:
    gen = random.Random(9)
    archive = Archive(config(islands=3, migration_interval=7, migration_size=3,
                             features=(FeatureDim("x", bins=6), FeatureDim("y", bins=3))))
    for pid in range(600):
        archive.add(prog(pid, float(gen.randint(0, 20)), x=gen.gauss(0, 1 + pid / 50),
                         y=gen.random(), island=gen.randrange(3)))
        if pid % 50 == 0:
            for island in range(3):
                cells = archive.cells(island)
                expected = sorted(cells.values(), key=lambda p: (-p.score, p.id))
                assert archive.elites(island) == expected
                assert all(archive.bins_of(p) == cell for cell, p in cells.items())
    assert archive.stats().cells_filled == sum(len(archive.cells(i)) for i in range(3))


def test_sample_leaves_the_archive_unchanged() -> None:
    archive = filled_archive(islands=2)
    before = [archive.cells(i) for i in range(2)], archive.stats()
    for seed in range(50):
        archive.sample(seed % 2, random.Random(seed))
    assert ([archive.cells(i) for i in range(2)], archive.stats()) == before


def test_same_adds_and_rng_seeds_give_identical_archive_and_draws() -> None:
    assert run_history(42) == run_history(42)
    assert run_history(42) != run_history(43)


def test_a_seeded_history_is_pinned() -> None:
    """Adds, re-bins, migrations and samples against a recorded trace: any change in
    verdicts, rankings, rng draws or migration timing changes the hash. The hash is that of
    the archive before it was split into grid, sampler and migration."""
    gen = random.Random(5)
    archive = Archive(ArchiveConfig(
        islands=3, migration_interval=7, migration_size=2, elite_pool=3, exploit_ratio=0.6,
        num_top_inspirations=2, num_diverse_inspirations=2,
        features=(FeatureDim("x", bins=4), FeatureDim("y", bins=3, lo=0.0, hi=3.0)),
        seed_stalled_islands=False, retire_initial=False, behaviour_dedup=False))
    trace: list[object] = []
    for pid in range(1, 121):
        score = None if gen.random() < 0.1 else float(gen.randint(0, 30))
        program = prog(pid, score, x=gen.gauss(0, 1 + pid / 20), y=gen.uniform(0, 3),
                       island=gen.randrange(3))
        trace.append(archive.add(program).value)
        if pid % 4 == 0:
            s = archive.sample(pid % 3, random.Random(pid))
            trace.append((s.parent.id, tuple(ids(s.inspirations)), s.mate.id if s.mate else 0))
    trace.append(tuple(tuple(ids(archive.elites(i))) for i in range(3)))
    trace.append(archive.migrations)
    assert trace[-1] == 17
    assert hashlib.sha256(repr(trace).encode()).hexdigest() == (
        "ff033d7decc17e1ec8ee9af930ea04835118c7f1317d4389a55189bf55a9c2a8")


# ---------------------------------------------------------------------- adaptive ranges


def test_adaptive_range_widens_and_rebins_keeping_best_per_cell() -> None:
    archive = Archive(config(features=(FeatureDim("x", bins=2),)))
    archive.add(prog(1, 1.0, x=0.0))
    archive.add(prog(2, 3.0, x=10.0))  # range [0, 10]: cells 0 and 1
    archive.add(prog(3, 2.0, x=5.0))  # 5 is in the upper half of [0, 10]
    assert {c: p.id for c, p in archive.cells(0).items()} == {(0,): 1, (1,): 2}
    assert archive.binnings[0].hi == 10.0
    # Range grows to [0, 30]: x=0 and x=10 collide in bin 0, the best (2) stays there.
    assert archive.add(prog(4, 0.5, x=30.0)) is AddStatus.NEW
    assert archive.binnings[0].hi == 30.0
    assert {c: p.id for c, p in archive.cells(0).items()} == {(0,): 2, (1,): 4}
    assert archive.best() == prog(2, 3.0, x=10.0)


def test_rebin_collision_on_equal_scores_keeps_lower_id() -> None:
    archive = Archive(config(features=(FeatureDim("x", bins=2),)))
    archive.add(prog(9, 1.0, x=0.0))
    archive.add(prog(3, 1.0, x=10.0))
    archive.add(prog(5, 0.1, x=100.0))
    assert {c: p.id for c, p in archive.cells(0).items()} == {(0,): 3, (1,): 5}
    assert ids(archive.elites(0)) == [3, 5]
    assert archive.stats().cells_filled == 2


def test_invalid_programs_do_not_move_adaptive_ranges() -> None:
    archive = Archive(config(features=(FeatureDim("x", bins=2),)))
    archive.add(prog(1, 1.0, x=0.0))
    archive.add(prog(2, 1.0, x=4.0))
    archive.add(prog(3, None, x=1000.0))
    assert archive.binnings[0].hi == 4.0
    assert archive.bins_of(prog(4, 0.0, x=3.0)) == (1,)


def test_half_adaptive_dimension_keeps_its_fixed_bound() -> None:
    archive = Archive(config(features=(FeatureDim("x", bins=4, lo=0.0),)))
    archive.add(prog(1, 1.0, x=2.0))
    archive.add(prog(2, 1.0, x=8.0))
    assert (archive.binnings[0].lo, archive.binnings[0].hi) == (0.0, 8.0)
    assert sorted(archive.cells(0)) == [(1,), (3,)]


def test_builtin_features_on_real_programs() -> None:
    archive = Archive(ArchiveConfig(islands=1))
    short = "# EVOLVE-BLOCK-START\nx = 1\n# EVOLVE-BLOCK-END\n"
    long = "# EVOLVE-BLOCK-START\nif a:\n    x = 1 if b else 2\n# EVOLVE-BLOCK-END\n"
    archive.add(prog(1, 1.0, code=short))
    archive.add(prog(2, 2.0, code=long))
    assert archive.cells(0) == {(0, 0): prog(1, 1.0, code=short),
                                (9, 9): prog(2, 2.0, code=long)}


# ---------------------------------------------------------------------- metric features


def test_metric_feature_dims_place_programs_by_metric() -> None:
    dims = (FeatureDim("hit_rate", bins=4, lo=0.0, hi=1.0), FeatureDim("tuned", bins=2,
                                                                       lo=0.0, hi=1.0))
    archive = Archive(config(features=dims))
    result = EvalResult(valid=True, score=1.0, metrics={"hit_rate": 0.6, "tuned": True})
    assert archive.add(Program(id=1, code="", result=result)) is AddStatus.NEW
    missing = EvalResult(valid=True, score=1.0, metrics={"hit_rate": "n/a"})
    assert archive.add(Program(id=2, code="", result=missing)) is AddStatus.NEW
    assert {c: p.id for c, p in archive.cells(0).items()} == {(0, 0): 2, (2, 1): 1}


# ------------------------------------------------------------------------- performance


@pytest.mark.parametrize("growing", [False, True])
def test_ten_thousand_adds_and_samples_fill_the_grid_and_migrate(growing: bool) -> None:
    # growing=True is the worst case: a new maximum of the adaptive x on every add, so
    # every add re-bins every island.
    gen = random.Random(0)
    archive = Archive(ArchiveConfig(features=(FeatureDim("x", bins=10),
                                              FeatureDim("y", bins=10, lo=0.0, hi=10.0))))
    programs = [prog(pid, gen.uniform(0, 100), island=pid % 4, y=gen.uniform(0, 10),
                     x=float(pid) + gen.random() if growing else gen.uniform(0, 1000))
                for pid in range(10_000)]
    for program in programs:
        archive.add(program)
        archive.sample(program.island, random.Random(program.id))
    # Their speed is measured by benchmarks/engine_overhead.py (time per candidate over the
    # first and the last window of a 10,000-candidate run), not by a timed test.
    assert archive.stats().cells_filled > 250
    assert archive.migrations == 250


# ------------------------------------------------------------------------------ layout


def test_archive_classes_stay_small() -> None:
    """The archive is split by concern (grid, sampling, migration); no class of it may grow
    past 15 methods (every def in the class body, private ones included)."""
    from adrs.engine import archive, islands, migration, sampling
    for module in (archive, islands, migration, sampling):
        tree = ast.parse(inspect.getsource(module))
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                defs = [item for item in node.body
                        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)]
                assert len(defs) <= 15, f"{module.__name__}.{node.name}: {len(defs)} methods"

"""The new root's plan: what a sandbox binds, and the directories it makes for that."""

from __future__ import annotations

import os
from pathlib import Path

from adrs.sandbox import lockdown


def test_the_plan_makes_the_parents_of_nested_binds_first(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b" / "site-packages"
    deep.mkdir(parents=True)
    harness = tmp_path / "a" / "harness.py"
    harness.write_text("")
    links, dirs, binds = lockdown.plan_binds([str(deep), str(harness)])
    real = os.path.realpath(tmp_path)
    assert (f"{real}/a/b/site-packages", True) in binds
    assert (f"{real}/a/harness.py", False) in binds
    for path, _ in binds:  # every bind's parent is made before it, parents first
        parent = os.path.dirname(path)
        assert parent == "/" or parent in dirs
    assert dirs.index(f"{real}/a") < dirs.index(f"{real}/a/b")
    assert len(dirs) == len(set(dirs))
    assert all(os.path.islink(path) for path, _ in links)


def test_a_path_inside_another_is_not_bound_again(tmp_path: Path) -> None:
    inner = tmp_path / "prefix" / "lib"
    inner.mkdir(parents=True)
    _, _, binds = lockdown.plan_binds([str(tmp_path / "prefix"), str(inner)])
    real = os.path.realpath(tmp_path)
    assert [p for p, _ in binds if p.startswith(real)] == [f"{real}/prefix"]
    assert ("/proc", True) in binds and not any(p == "/" for p, _ in binds)


def test_the_plan_is_found_once_per_list_of_paths(tmp_path: Path) -> None:
    """A zygote finds it before it clones; its sandboxes reuse it."""
    paths = [str(tmp_path)]
    assert lockdown.plan_binds(paths) is lockdown.plan_binds(list(paths))

"""remove_tree: iterative, by descriptor, never following links, never raising."""

from __future__ import annotations

import os
import time
from pathlib import Path

from adrs.sandbox.cleanup import remove_tree


def deep_tree(root: Path, depth: int) -> None:
    """A chain of `depth` directories, made by descriptor (its paths exceed PATH_MAX)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        with open(os.open("leaf", os.O_WRONLY | os.O_CREAT, dir_fd=fd), "w") as f:
            f.write("x")
    finally:
        os.close(fd)


def test_a_3000_deep_tree_is_removed(tmp_path: Path) -> None:
    root = tmp_path / "work"
    root.mkdir()
    deep_tree(root, 3000)
    assert remove_tree(str(root)) is None
    assert not root.exists()


def test_links_are_removed_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("precious")
    root = tmp_path / "work"
    root.mkdir()
    (root / "to-dir").symlink_to(outside)
    (root / "to-file").symlink_to(outside / "keep.txt")
    os.mkfifo(root / "fifo")
    assert remove_tree(str(root)) is None
    assert not root.exists() and (outside / "keep.txt").read_text() == "precious"


def test_directories_without_permissions(tmp_path: Path) -> None:
    root = tmp_path / "work"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f").write_text("x")
    os.chmod(root / "a" / "b", 0)
    os.chmod(root / "a", 0o500)
    assert remove_tree(str(root)) is None
    assert not root.exists()


def test_a_missing_path_is_fine_and_a_file_is_removed(tmp_path: Path) -> None:
    assert remove_tree(str(tmp_path / "absent")) is None
    (tmp_path / "file").write_text("x")
    assert remove_tree(str(tmp_path / "file")) is None
    assert not (tmp_path / "file").exists()


def test_the_time_budget_bounds_it_and_it_reports_instead_of_raising(tmp_path: Path) -> None:
    root = tmp_path / "work"
    root.mkdir()
    for i in range(2000):
        (root / f"f{i}").write_text("")
    started = time.monotonic()
    error = remove_tree(str(root), budget_s=0.0)
    assert error is not None and error.startswith("TimeoutError")
    assert time.monotonic() - started < 5

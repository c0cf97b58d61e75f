"""child.py's own helpers, in this process: what a sandbox puts on sys.path, found once."""

from __future__ import annotations

import marshal
import os
import sys
import threading
from pathlib import Path

import pytest

from adrs.sandbox import child


@pytest.fixture
def site(tmp_path: Path) -> Path:
    site_dir = tmp_path / "site-packages"
    (site_dir / "pkg_src").mkdir(parents=True)
    (site_dir / "a.pth").write_text("# a comment\npkg_src\nimport os; os._exit(3)\n"
                                    "missing_dir\n\n")
    (site_dir / "b.pth").write_text("pkg_src\n")  # named twice: listed once
    return site_dir


def test_site_paths_are_the_dirs_and_their_pth_dirs_once(site: Path) -> None:
    value = os.pathsep.join([str(site), str(site), str(site.parent / "absent")])
    paths = child.site_paths(value)
    assert paths == [str(site), str(site / "pkg_src")]  # no import line run, nothing missing
    assert child.site_paths(value) is paths  # found once per value


def test_add_site_dirs_skips_what_does_not_exist_here(site: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    value = str(site)
    child.site_paths(value)  # as the zygote does before the lockdown hides a directory
    (site / "pkg_src").rmdir()
    child.add_site_dirs(value)
    assert str(site) in sys.path and str(site / "pkg_src") not in sys.path


def test_code_from_the_trusted_side_is_used_only_when_it_is_code() -> None:
    code = compile("X = 1\n", "candidate.py", "exec")
    assert child._code_of(marshal.dumps(code)) == code
    for bad in (b"garbage", marshal.dumps(42), None, "text", b""):
        assert child._code_of(bad) is None  # compiled from the source then


def test_precompile_keeps_one_version_and_drops_an_unreadable_harness(tmp_path: Path) -> None:
    harness = tmp_path / "harness.py"
    harness.write_text("A = 1\n")
    child.precompile(str(harness))
    first = child._PRECOMPILED[str(harness)]
    child.precompile(str(harness))
    assert child._PRECOMPILED[str(harness)] is first  # same version: not compiled again
    harness.write_text("def broken(:\n")
    child.precompile(str(harness))
    assert str(harness) not in child._PRECOMPILED  # load compiles it and reports why


def _skipped_reads(backoff: child.Backoff) -> int:
    """How many reads in a row the backoff sends to sleep before the next spin."""
    skipped = 0
    while not backoff.spin_now():
        skipped += 1
    return skipped


def test_missed_spins_back_off_2_4_8_16_and_a_caught_one_resets() -> None:
    backoff = child.Backoff()
    assert backoff.spin_now() and backoff.spin_now()  # spins while nothing was missed
    skipped = []
    for _ in range(6):
        backoff.missed()
        skipped.append(_skipped_reads(backoff))
    assert skipped == [2, 4, 8, 16, 16, 16]
    backoff.caught()
    backoff.missed()
    assert _skipped_reads(backoff) == 2


def test_a_read_that_waits_past_the_spin_gets_its_request_and_backs_off(
        monkeypatch: pytest.MonkeyPatch) -> None:
    backoff = child.Backoff()
    monkeypatch.setattr(child, "_BACKOFF", backoff)
    read, write = os.pipe()
    os.set_blocking(read, False)
    try:
        writer = threading.Timer(0.05, os.write, (write, b"late"))
        writer.start()
        assert child._read_some(read, 100) == b"late"  # missed the spin, then slept
        writer.join()
        assert (backoff.misses, backoff.skips) == (1, 2)
        os.write(write, b"ready")
        assert child._read_some(read, 100) == b"ready"  # sleeps at once: already there
        assert (backoff.misses, backoff.skips) == (1, 1)
        os.write(write, b"next")
        child._read_some(read, 100)
        assert backoff.skips == 0
        os.write(write, b"caught")
        assert child._read_some(read, 100) == b"caught"  # spins, and catches it
        assert (backoff.misses, backoff.skips) == (0, 0)
    finally:
        os.close(read)
        os.close(write)

"""Shared fixtures: paths of the repository's bundled problems; no standby sandbox
outlives the test that launched it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def toy_root() -> Path:
    return REPO / "problems" / "toy"


@pytest.fixture(autouse=True)
def _no_standby_left() -> Iterator[None]:
    """Standby sandboxes (adrs/sandbox/standby.py) launched by a test are closed after it,
    and the sandboxes it released in the background (sweeper.py) are freed: the next test
    may change how sandboxes are launched, or count what is left."""
    yield
    standby = sys.modules.get("adrs.sandbox.standby")
    if standby is not None:
        standby.STANDBY.drain()
    sweeper = sys.modules.get("adrs.sandbox.sweeper")
    if sweeper is not None:
        sweeper.SWEEPER.flush()

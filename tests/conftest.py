"""Shared fixtures: paths of the repository's bundled problems."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def toy_root() -> Path:
    return REPO / "problems" / "toy"

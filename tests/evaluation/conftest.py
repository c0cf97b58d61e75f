"""Shared fixtures of the evaluation tests: one embedded Ray for the whole session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adrs.evaluation.ray_backend import RayBackend

RAY_CPUS = 3


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """Start the embedded Ray once (seconds); RayBackends made meanwhile join it."""
    owner = RayBackend(RAY_CPUS)
    yield
    owner.close()

"""An embedded Ray's wait for its GCS port releases the GIL: other threads of the process
(the run's event loop) go on meanwhile, and the port is still Ray's to read."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from adrs.evaluation import ray_port_wait
from adrs.evaluation.ray_backend import _import_ray

pytestmark = pytest.mark.timeout(60)
NODE_ID = "ab" * 28


def test_the_wait_ray_starts_with_is_patched_once() -> None:
    ray = _import_ray()
    assert ray_port_wait.patch() and ray_port_wait.patch()
    wait = ray._private.node.wait_for_persisted_port
    assert ray_port_wait.patched(wait) and not ray_port_wait.patched(wait.__wrapped__)


def test_a_port_written_by_another_thread_meanwhile_is_read(tmp_path: Path) -> None:
    """Ray's own wait sleeps in C++ holding the GIL: a Python thread could not write the
    file until it timed out. The patched one sees the file that thread writes."""
    ray = _import_ray()
    assert ray_port_wait.patch()
    path = tmp_path / ray._raylet.get_port_filename(NODE_ID, "gcs_server")
    ticks: list[float] = []

    def write_later() -> None:
        for _ in range(20):
            ticks.append(time.monotonic())
            time.sleep(0.005)
        path.write_text("12345")

    writer = threading.Thread(target=write_later)
    writer.start()
    port = ray._private.node.wait_for_persisted_port(str(tmp_path), NODE_ID, "gcs_server",
                                                     timeout_ms=10_000)
    writer.join()
    assert port == 12345 and len(ticks) == 20


def test_a_port_file_that_never_comes_is_ray_s_timeout(tmp_path: Path) -> None:
    ray = _import_ray()
    assert ray_port_wait.patch()
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="Timed out"):
        ray._private.node.wait_for_persisted_port(str(tmp_path), NODE_ID, "gcs_server",
                                                  timeout_ms=200)
    assert time.monotonic() - started < 5.0
    assert not os.listdir(tmp_path)

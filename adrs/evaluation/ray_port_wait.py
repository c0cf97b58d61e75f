"""An embedded Ray's start without its one long wait that holds the GIL.

Starting a local Ray, `ray.init` waits for the GCS server to write its port into a file
of the session folder (`ray._raylet.wait_for_persisted_port`). That wait is C++ called
without releasing the GIL, polling every 100 ms: each start held the GIL for 100 ms at
least, 200 ms and more on a loaded machine, and the run's event loop (its LLM calls and
evaluations), which runs beside the thread that starts Ray, stood still meanwhile.

`patch` swaps the function `ray._private.node` calls for one that waits for the file in
Python, sleeping between looks (which releases the GIL), then lets Ray's own function
read the port with what is left of the timeout and a short poll, so the format of the
file and the errors stay Ray's (its "Timed out" error when the file never comes). Where
this Ray lacks the wait or `get_port_filename`, nothing is patched and the start is Ray's
own.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from typing import Any

LOOK_EVERY_S = 0.002
READ_POLL_MS = 5
_installed: list[Callable[..., int]] = []  # the waits patch made


def patch() -> bool:
    """Install the GIL-releasing wait into the imported Ray (once); whether it is in."""
    node: Any = sys.modules.get("ray._private.node")
    raylet: Any = sys.modules.get("ray._raylet")
    original = getattr(node, "wait_for_persisted_port", None)
    port_file = getattr(raylet, "get_port_filename", None)
    if original is None or port_file is None:
        return False
    if original not in _installed:
        _installed.append(_releasing(original, port_file))
        node.wait_for_persisted_port = _installed[-1]
    return True


def patched(wait: object) -> bool:
    """Whether `wait` is a wait that `patch` installed."""
    return wait in _installed


def _releasing(original: Callable[..., int],
               port_file: Callable[[str, str], str]) -> Callable[..., int]:
    @functools.wraps(original)
    def wait(folder: str, node_id: str, port_name: str, timeout_ms: int = 30000,
             poll_interval_ms: int = 100, **extra: Any) -> int:
        deadline = time.monotonic() + timeout_ms / 1000
        path = os.path.join(folder, port_file(node_id, port_name))
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(LOOK_EVERY_S)
        left_ms = max(0, int((deadline - time.monotonic()) * 1000))
        return original(folder, node_id, port_name, timeout_ms=left_ms,
                        poll_interval_ms=min(poll_interval_ms, READ_POLL_MS), **extra)

    return wait

"""Importing the LLM client library in the background, as soon as the run knows it needs it.

litellm takes seconds to import and the openai package half a second: `setup` starts the
import on a daemon thread when it builds the proposer, so it overlaps the initial program's
evaluation and the backend's start instead of delaying the first LLM request. The first
call then imports the (by then loaded) module again, which waits on Python's import lock
if the background import is still running. Errors are left to that call.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

_started: set[str] = set()
_lock = threading.Lock()


def preload(name: str, load: Callable[[], object]) -> None:
    """Run `load` once per process on a daemon thread named after `name`."""
    with _lock:
        if name in _started:
            return
        _started.add(name)
    threading.Thread(target=_quietly, args=(load,), name=f"adrs-preload-{name}",
                     daemon=True).start()


def _quietly(load: Callable[[], object]) -> None:
    with contextlib.suppress(Exception):  # the first call imports it again and says why
        load()

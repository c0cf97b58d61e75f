"""The timing games: work the evaluation may not time (at import, after each reply)."""

from __future__ import annotations

import time
from typing import Any

from adrs.problem.probes.core import Probe


class SpinGame:
    """Heavy CPU work at import, before any call is timed (`spin-import`)."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.spun = 0

    def start(self) -> None:
        end = time.perf_counter() + float(self.probe.config.get("spin_s", 0.5))
        while time.perf_counter() < end:
            self.spun += sum(range(1000)) > 0

    def stats(self) -> dict[str, int]:
        return {"spun": self.spun}

    def before(self, n: int, request: Any) -> None:
        return None

    def after(self, n: int, request: Any, reply: Any) -> Any:
        return reply


class DaemonGame:
    """A daemon thread that keeps working after each reply, until the next request arrives
    or `spin_ms` have passed (`daemon`)."""

    def __init__(self, probe: Probe) -> None:
        import threading

        self.probe = probe
        self.wake = threading.Event()
        self.until = 0.0
        self.spun = 0
        self.thread = threading.Thread(target=self._run, name="adrs-probe", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stats(self) -> dict[str, int]:
        return {"spun": self.spun}

    def _run(self) -> None:
        while True:
            self.wake.wait()
            self.wake.clear()
            while time.perf_counter() < self.until:
                self.spun += sum(range(200)) > 0
                time.sleep(0)  # lets the server take the next request at once

    def before(self, n: int, request: Any) -> None:
        self.until = 0.0  # the next request: stop
        return None

    def after(self, n: int, request: Any, reply: Any) -> Any:
        self.until = time.perf_counter() + float(self.probe.config.get("spin_ms", 20)) / 1e3
        self.wake.set()
        return reply

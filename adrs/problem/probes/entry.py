"""The payload's entry point: `install(config)` picks the game of `config["mode"]` and
hooks the sandbox server's `handle` (see the package docstring)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from adrs.problem.probes.claims import ClaimGame
from adrs.problem.probes.core import CHILD_MODULE, Probe
from adrs.problem.probes.overlap import OverlapGame
from adrs.problem.probes.persist import PersistGame
from adrs.problem.probes.replay import ReplayGame
from adrs.problem.probes.timing import DaemonGame, SpinGame
from adrs.problem.probes.trusted import TrustedGame

GAMES: dict[str, Callable[[Probe], Any]] = {
    "replay": ReplayGame,
    "memoize": lambda probe: ReplayGame(probe, memoize=True),
    "overlap": OverlapGame,
    "trusted": TrustedGame,
    "persist-write": PersistGame,
    "persist-read": PersistGame,
    "spin-import": SpinGame,
    "daemon": DaemonGame,
    "claim-print": ClaimGame,
    "claim-reply": ClaimGame,
}


def install(config: dict[str, Any]) -> Probe:
    """Start the probe `config["mode"]` in this process (see adversarial.py for the modes)."""
    probe = Probe(config)
    try:
        probe.game = GAMES[probe.mode](probe)
        child = sys.modules.get(CHILD_MODULE)
        original = getattr(child, "handle", None)
        if child is None or not callable(original):
            raise RuntimeError(f"no {CHILD_MODULE}.handle to wrap")

        def handle(request: Any) -> Any:
            return probe.on_request(request, original)

        child.handle = handle  # type: ignore[attr-defined]
        probe.out.line(f"start mode={probe.mode}")
        probe.game.start()
    except Exception as exc:
        probe.fail(exc)
    probe.out.status(0)
    return probe

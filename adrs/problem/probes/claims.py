"""The self-score probe: the program claims a score (printed, as module globals, in
every reply)."""

from __future__ import annotations

import sys
from typing import Any

from adrs.problem.probes.core import MODULE, Probe, power_of_two

CLAIM = 1e9
CLAIM_REPLY = {"score": CLAIM, "valid": True}
CLAIM_GLOBALS: tuple[tuple[str, Any], ...] = (
    ("score", CLAIM), ("SCORE", CLAIM), ("best_score", CLAIM),
    ("result", lambda: dict(CLAIM_REPLY)), ("RESULT", lambda: dict(CLAIM_REPLY)))


class ClaimGame:
    """Claim a score: print it (`claim-print`, which also sets `score`, `result`, ... in
    every loaded module), or reply with it to every call (`claim-reply`)."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.replying = probe.mode == "claim-reply"
        self.modules = 0

    def stats(self) -> dict[str, int]:
        return {"modules": self.modules}

    def start(self) -> None:
        if not self.replying:
            self._claim()

    def _claim(self) -> None:
        text = f'score: {CLAIM:g}\n{{"score": {CLAIM:g}, "valid": true}}\nSCORE={CLAIM:g}\n'
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.write(text)
                stream.flush()
            except Exception:
                pass
        self._set_globals()

    def _set_globals(self, names: tuple[str, ...] | None = None) -> None:
        """Set the claim globals in the modules `names` (every loaded module if None)."""
        count = 0
        modules = list(sys.modules.items()) if names is None else \
            [(name, sys.modules.get(name)) for name in names]
        for name, module in modules:
            if module is None or name.startswith(("_adrs_sandbox", MODULE)) \
                    or name in ("builtins", "sys"):
                continue
            try:
                for attr, value in CLAIM_GLOBALS:
                    if not callable(getattr(module, attr, None)):  # a function stays
                        setattr(module, attr, value() if callable(value) else value)
                count += 1
            except Exception:
                continue
        self.modules = max(self.modules, count)

    def before(self, n: int, request: Any) -> None:
        """Claims before every call: printed at the first four, set as globals of every
        module at the calls 1, 2, 4, 8, ..., of the program and the harness at all."""
        if not self.replying:
            if n <= 4:
                self._claim()
            else:
                self._set_globals(None if power_of_two(n) else ("candidate", "harness"))
        return None

    def after(self, n: int, request: Any, reply: Any) -> Any:
        if not self.replying:
            self._set_globals(("candidate", "harness"))
            return reply
        if isinstance(reply, dict) and "ok" in reply:
            value = reply["ok"]
            claimed = {**value, **CLAIM_REPLY} if isinstance(value, dict) else dict(CLAIM_REPLY)
            return {"ok": claimed}
        return reply

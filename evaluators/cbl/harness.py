"""Sandbox side of the Can't Be Late evaluators: holds one policy object per scenario.

Loaded inside the sandbox as module `harness`, after the candidate (module `candidate`).
It never sees a trace: each tick the trusted simulator sends what the policies may know
now, and this module replies with every decision. It imports nothing from adrs.

The program defines only what it needs when it loads, before this module: `ClusterType`
(NONE, SPOT, ON_DEMAND = 0, 1, 2) and a bare base class `Strategy`, and its policy, the one
leaf subclass of `Strategy`. Everything a policy may read is set here (`create`, `step`
and `Env`); the task statements (problems/cbl*/TASK.md) document it, and a test checks
that every attribute they name exists.

Protocol (plain data):
- start(configs): one dict per scenario (gap_s, task_duration_s, deadline_s,
  restart_overhead_s, num_regions, on_demand_price, spot_prices); creates the policies.
- step(message): a byte string, the tick (TICK) then one ROW record per scenario asked:
  its id, has_spot, last, cluster, region, done, progress, remaining_overhead; returns
  the decisions then the regions, one byte each per id, in one byte string. Plain bytes:
  the sandbox never needs numpy, and a call costs little to encode.
"""

from __future__ import annotations

import struct
from typing import Any

TICK = struct.Struct("<I")  # the trusted side packs the same layouts (lockstep.py)
ROW = "<HBBBBddd"

_policies: list[Any] = []
_types: tuple[Any, ...] = (0, 1, 2)
_known: dict[Any, int] = {}  # the candidate's ClusterType members -> their codes
_known_types: set[type] = set()


class Env:
    """What a policy may ask about its environment: the present and its own past only."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.gap_seconds: float = config["gap_s"]
        self.tick = 0
        self.elapsed_seconds = 0.0
        self.cluster_type: Any = _types[0]
        self.spot_history: list[bool] = []  # has_spot observed at each tick so far
        self.region_history: list[int] = []  # the region observed at each tick so far
        self.on_demand_price: float = config["on_demand_price"]
        self.spot_prices: list[float] = list(config["spot_prices"])
        self._num_regions: int = config["num_regions"]
        self._region = 0
        self._next_region = 0
        self._has_spot = False

    def get_num_regions(self) -> int:
        return self._num_regions

    def get_current_region(self) -> int:
        return self._region

    def spot_available(self) -> bool:
        """Spot availability in the current region now (the `has_spot` of this tick)."""
        return self._has_spot

    def switch_region(self, region: int) -> None:
        """Move to `region` from the next tick on. Under the default accounting the running
        instance is left behind (the next launch pays the restart overhead); under
        reference accounting it moves along for free (the task statement has both)."""
        if isinstance(region, bool) or not isinstance(region, int) \
                or not 0 <= region < self._num_regions:
            raise ValueError(f"switch_region({region!r}): regions are 0..{self._num_regions - 1}")
        self._next_region = region


def policy_class(module: Any) -> Any:
    """The one policy class of the candidate: a leaf subclass of its `Strategy`."""
    base = getattr(module, "Strategy", None)
    if not isinstance(base, type):
        raise TypeError("the program must define the Strategy base class (keep the code "
                        "outside the EVOLVE-BLOCK)")
    found = [c for c in vars(module).values() if isinstance(c, type) and issubclass(c, base)
             and c is not base and c.__module__ == module.__name__]
    leaves = [c for c in found if not any(o is not c and issubclass(o, c) for o in found)]
    if len(leaves) != 1:
        names = ", ".join(c.__name__ for c in leaves) or "none"
        raise TypeError(f"define exactly one policy class deriving from Strategy (found: "
                        f"{names})")
    return leaves[0]


def create(cls: Any, types: tuple[Any, ...], configs: list[dict[str, Any]]) -> None:
    """Create one fresh policy per scenario and call its reset()."""
    global _types
    _types = types
    _known.clear()
    _known.update((t, i) for i, t in enumerate(types) if type(t) is not int)
    _known_types.clear()
    _known_types.update(type(t) for t in _known)
    _policies.clear()
    for config in configs:
        policy = cls()
        policy.env = Env(config)
        policy.env.cluster_type = types[0]
        policy.task_duration = config["task_duration_s"]
        policy.deadline = config["deadline_s"]
        policy.restart_overhead = config["restart_overhead_s"]
        policy.remaining_restart_overhead = 0.0
        policy.progress = 0.0
        policy.task_done_time = []
        policy.reset()
        _policies.append(policy)


def start(configs: list[dict[str, Any]]) -> None:
    import candidate  # the sandbox loads it before this module

    kinds = getattr(candidate, "ClusterType", None)
    types = tuple(kinds(v) for v in range(3)) if kinds is not None else (0, 1, 2)
    create(policy_class(candidate), types, configs)


def _code(decision: Any) -> int:
    if type(decision) in _known_types:  # the usual answer, a ClusterType: one lookup
        code = _known.get(decision)
        if code is not None:
            return code
    value = getattr(decision, "value", decision)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2:
        raise TypeError(f"_step returned {decision!r}; expected ClusterType.NONE, "
                        "ClusterType.SPOT or ClusterType.ON_DEMAND")
    return value


def step(message: bytes) -> bytes:
    """Ask every listed policy for its decision at this tick."""
    (tick,) = TICK.unpack_from(message)
    types = _types
    decisions = bytearray()
    regions = bytearray()
    for row in struct.iter_unpack(ROW, memoryview(message)[TICK.size:]):
        i, spot, last, cluster, region, done, progress, remaining = row
        policy = _policies[i]
        has = spot == 1
        env = policy.env
        env.tick = tick
        env.elapsed_seconds = tick * env.gap_seconds
        env.cluster_type = types[cluster]
        env._region = env._next_region = region
        env._has_spot = has
        env.spot_history.append(has)
        env.region_history.append(region)
        policy.task_done_time.append(done)
        policy.progress = progress
        policy.remaining_restart_overhead = remaining
        decisions.append(_code(policy._step(types[last], has)))
        regions.append(env._next_region)
    return bytes(decisions + regions)

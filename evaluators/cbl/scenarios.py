"""The bundled scenario sets of `cbl` and `cbl-multi` (the ADRS configurations).

Traces are synthetic (calibrated, seeded) unless the user points the problem option
`trace_dir` at the real trace archive, unpacked: cant_be_late/real_traces.tar.gz for `cbl`,
cant_be_late_multi/real_traces.tar.gz for `cbl-multi` (`--option trace_dir=PATH`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from adrs.evaluators.cbl.calibration import (
    MULTI_GAP_S,
    MULTI_REGION,
    MULTI_TICKS,
    SINGLE_GAP_S,
    SINGLE_REGION,
    SINGLE_TICKS,
    SPOT_PRICE,
)
from adrs.evaluators.cbl.simulator import Job, Scenario
from adrs.evaluators.cbl.traces import (
    Trace,
    TraceError,
    real_multi_region,
    real_single_region,
    synthetic,
)

TRACE_DIR_OPTION = "trace_dir"
HOUR = 3600.0

# Single region (PROBLEMS.md 2.5, the ADRS evaluator): 4 envs x 3 deadlines x 3 overheads
# x 30 traces = 1,080 simulations of a 48-hour job.
SINGLE_ENVS = ("us-west-2a_k80_1", "us-west-2b_k80_1", "us-west-2a_v100_1", "us-west-2b_v100_1")
DURATION_H = 48.0
DEADLINES_H = (52.0, 70.0, 92.0)
OVERHEADS_H = (0.02, 0.2, 0.4)
TRACES_PER_ENV = 30

# Multi region (PROBLEMS.md 3.5): region lists (region 0 is where a run starts) and how
# many aligned traces of each; D = 48 h, T = 52 h, d = 0.2 h.
MULTI_JOB_H = (48.0, 52.0, 0.2)
MULTI_SCENARIOS: tuple[tuple[str, tuple[str, ...], int], ...] = (
    ("2_zones_same_region", ("us-east-1a", "us-east-1c"), 8),
    ("2_regions_east_west", ("us-east-2a", "us-west-2a"), 8),
    ("3_regions_diverse", ("us-east-1a", "us-east-2b", "us-west-2c"), 6),
    ("3_zones_same_region", ("us-east-1a", "us-east-1c", "us-east-1d"), 6),
    ("5_regions_high_diversity",
     ("us-east-1a", "us-east-1f", "us-west-2a", "us-west-2b", "us-east-2b"), 4),
    ("all_9_regions", ("us-east-2a", "us-west-2c", "us-east-1d", "us-east-2b", "us-west-2a",
                       "us-east-1f", "us-east-1a", "us-west-2b", "us-east-1c"), 2),
)
MULTI_REGION_SUFFIX = "_v100_1"


def trace_dir(options: Mapping[str, Any] | None) -> str | None:
    """The real-trace folder the problem option `trace_dir` names, or None for synthetic
    traces; a value that is not a folder is a TraceError (a UserError)."""
    value = str((options or {}).get(TRACE_DIR_OPTION) or "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise TraceError(f"problem option {TRACE_DIR_OPTION}={value!r} is not a folder: unpack "
                         f"the trace archive and point --option {TRACE_DIR_OPTION}= at it, or "
                         "leave it unset for synthetic traces")
    return str(path.resolve())


def single_region_group(env: str, deadline_h: float, overhead_h: float) -> str:
    return f"{env} T={deadline_h:g}h d={overhead_h:g}h"


def _single_traces(env: str, root: str | None) -> tuple[Trace, ...]:
    if root is not None:
        return tuple(real_single_region(root, env, TRACES_PER_ENV, max(DEADLINES_H) * HOUR,
                                        SPOT_PRICE))
    stats = SINGLE_REGION[env]
    return tuple(synthetic(env, stats, i, SINGLE_TICKS, SINGLE_GAP_S)
                 for i in range(TRACES_PER_ENV))


def single_region(root: str | None = None, envs: tuple[str, ...] = SINGLE_ENVS,
                  traces_per_env: int = TRACES_PER_ENV) -> list[Scenario]:
    """The `cbl` scenarios, in the order env, deadline, overhead, trace."""
    scenarios = []
    for env in envs:
        traces = _single_traces(env, root)[:traces_per_env]
        for deadline in DEADLINES_H:
            for overhead in OVERHEADS_H:
                job = Job(DURATION_H * HOUR, deadline * HOUR, overhead * HOUR)
                group = single_region_group(env, deadline, overhead)
                scenarios += [Scenario(group, job, (t,)) for t in traces]
    return scenarios


def _multi_trace(region: str, index: int, root: str | None) -> Trace:
    name = region + MULTI_REGION_SUFFIX
    if root is not None:
        return real_multi_region(root, name, index)
    return synthetic(name, MULTI_REGION[name], index, MULTI_TICKS, MULTI_GAP_S)


def multi_region(root: str | None = None) -> list[Scenario]:
    """The `cbl-multi` scenarios, in the order of MULTI_SCENARIOS, then trace index."""
    duration, deadline, overhead = (h * HOUR for h in MULTI_JOB_H)
    job = Job(duration, deadline, overhead)
    return [Scenario(name, job, tuple(_multi_trace(r, i, root) for r in regions))
            for name, regions, count in MULTI_SCENARIOS for i in range(count)]

"""The files `adrs problems new` writes: a small but real problem (batch flushing).

Kept as Python strings (not data files) so they ship with the package without package-data
rules. `{name}` and `{title}` are the only placeholders (with the numbers of PARAMETERS);
every other brace is doubled. TASK.md is the task statement every LLM prompt shows; README.md
is for the problem's users and never reaches the model.
The evaluator really simulates a queue, so the offline mutator can improve the initial
program by tuning its constants, and some of its mutations break the latency bound (an
invalid candidate with a precise error), which shows what failures look like.
"""

from __future__ import annotations

PROBLEM_YAML = """\
name: {name}
description: Batch flushing policy for a request queue (scaffolded by 'adrs problems new').
# A file next to this one, so the problem folder is self-contained. The evaluator is trusted
# code: it runs outside the sandbox and computes the score from what the candidate returns.
evaluator: evaluator.py:evaluate
initial_program: initial_program.py
# What every LLM prompt shows: the contract, the scoring, the constraints, hints. Keep what
# only users need (how to run it, options, data, provenance) in README.md.
task: TASK.md
readme: README.md
# The MAP-Elites grid: any evaluator metric, or code_length / complexity.
features:
  - {{name: mean_batch, bins: 8}}
  - {{name: complexity, bins: 6}}
# Run-configuration defaults for this problem, in the shape of a config file.
defaults:
  stop: {{iterations: 40}}
  evaluation: {{limits: {{timeout_s: 20}}}}
"""

TASK = """\
# {title}: when to flush a batch

Requests arrive at a service one by one (a varying number per tick). Sending the queued
requests costs {setup:g} per batch, whatever its size, and every request costs {wait:g} for each
tick it waits in the queue. No request may wait more than {max_wait} ticks: a policy that lets
one wait longer is invalid.

Before each tick ends, the policy `should_flush(queued, oldest_wait)` sees how many requests
are queued and how many ticks the oldest one has waited, and answers True to send them all
now as one batch. It returns a bool and sees nothing of the future.

The score is `100 * reference_cost / cost`, where the reference flushes every tick that has
a request; higher is better.
"""

README = """\
# {title}

A batch flushing policy for a request queue, scaffolded by `adrs problems new`: evolution
rewrites `should_flush` in `initial_program.py`, and `evaluator.py` scores it on a seeded
queue simulation (3 series of 120 ticks). TASK.md is the task statement the LLM sees; this
file is for the problem's users and never reaches the model.

From the folder that holds `{name}/` (elsewhere, give its path):

```bash
adrs problems check {name}       # validate the folder, score the initial program once
adrs run {name} --iterations 20  # offline mutator: no LLM needed
```

| file | role |
|---|---|
| `problem.yaml` | name, evaluator, feature grid, run defaults |
| `TASK.md` | the task statement: contract, scoring, constraints |
| `initial_program.py` | the starting policy; only the EVOLVE-BLOCK changes |
| `evaluator.py` | the trusted simulator and scorer |

Options: none yet. A switch such as a real arrival trace goes into `options:` in
problem.yaml, and users set it with `--option KEY=VALUE`; document it here, not in TASK.md.
"""

INITIAL_PROGRAM = """\
\"\"\"Batch flushing policy: decide when to send the queued requests as one batch.\"\"\"

# EVOLVE-BLOCK-START
FLUSH_AT = 2
MAX_AGE = 10


def should_flush(queued: int, oldest_wait: int) -> bool:
    \"\"\"Return True to send every queued request now, as one batch.\"\"\"
    return queued >= FLUSH_AT or oldest_wait >= MAX_AGE
# EVOLVE-BLOCK-END


if __name__ == "__main__":
    print(should_flush(3, 0))
"""

EVALUATOR = '''\
"""Trusted evaluator of the {name} problem: a seeded queue simulation.

It runs outside the sandbox. `candidate` is a handle on the sandboxed candidate process:
`candidate.call("should_flush", queued, oldest_wait)` runs the candidate's function there
and returns plain data, which this code checks before using. The score is computed here,
never taken from the candidate.
"""

from __future__ import annotations

import math
import random
from typing import Any

SETUP_COST = {setup!r}  # per batch sent
WAIT_COST = {wait!r}  # per request per tick spent waiting
MAX_WAIT = {max_wait!r}  # ticks a request may wait at most (the latency bound)
SERIES = 3
TICKS = 120


def arrivals(seed: int, ticks: int = TICKS) -> list[int]:
    """Requests per tick: a slow cycle between quiet and busy, with Poisson noise."""
    rng = random.Random(seed)
    phase = rng.uniform(0.0, 2.0 * math.pi)
    counts = []
    for t in range(ticks):
        rate = 1.6 + 1.4 * math.sin(2.0 * math.pi * t / 60.0 + phase)
        count, threshold, p = 0, math.exp(-rate), rng.random()
        while p > threshold:  # Knuth's Poisson sampler: fine for small rates
            count += 1
            p *= rng.random()
        counts.append(count)
    return counts


def simulate(counts: list[int], decide: Any) -> tuple[float, int, str | None]:
    """Cost and number of batches of one series under `decide`; or the violation message."""
    queue: list[int] = []  # arrival tick of each queued request
    cost, batches = 0.0, 0
    for t, count in enumerate(counts):
        queue.extend([t] * count)
        if not queue:
            continue
        oldest = t - queue[0]
        flush = decide(len(queue), oldest)
        if not isinstance(flush, bool):
            return 0.0, 0, f"should_flush returned {{type(flush).__name__}}, expected a bool"
        if flush:
            cost += SETUP_COST
            batches += 1
            queue.clear()
        elif oldest + 1 > MAX_WAIT:
            return 0.0, 0, (f"a request waited {{oldest + 1}} ticks at tick {{t}} with "
                            f"{{len(queue)}} queued; the limit is {{MAX_WAIT}}")
        cost += WAIT_COST * len(queue)
    if queue:  # whatever is left at the end goes out as one last batch
        cost += SETUP_COST
        batches += 1
    return cost, batches, None


def evaluate(candidate: Any) -> dict[str, Any]:
    """Two-stage cascade: a cheap smoke test on a short series, then the full workload."""
    smoke = arrivals(seed=7, ticks=15)
    _, _, error = simulate(smoke, lambda q, w: candidate.call("should_flush", q, w))
    if error is not None:
        return {{"valid": False, "error": f"smoke test: {{error}}"}}
    total = reference = 0.0
    requests = batches = 0
    for s in range(SERIES):
        counts = arrivals(seed=100 + s)
        cost, sent, error = simulate(counts, lambda q, w: candidate.call("should_flush", q, w))
        if error is not None:
            return {{"valid": False, "error": f"series {{s}}: {{error}}"}}
        total += cost
        batches += sent
        requests += sum(counts)
        reference += SETUP_COST * sum(1 for c in counts if c)  # flush every non-empty tick
    return {{
        "score": 100.0 * reference / total,
        "metrics": {{"cost": round(total, 3), "batches": batches,
                    "mean_batch": round(requests / max(batches, 1), 3)}},
        "feedback": f"{{batches}} batches of {{requests / max(batches, 1):.1f}} requests on "
                    f"average; cost {{total:.0f}} against {{reference:.0f}} for flushing "
                    "every tick.",
    }}
'''

PARAMETERS = {"setup": 20.0, "wait": 1.0, "max_wait": 11}

"""Run every scenario of an evaluation in lockstep against the candidate's policies.

The scenarios are split into groups that cannot inform one another (partition.py); each
group's policies live in a process of their own behind a `PolicyPort`: a sandbox running
the candidate (`Sandboxes` starts one per group, the evaluation's own candidate serving
the first) or, for tests and benchmarks, a fresh copy of a trusted program module in this
process (`LocalPrograms`). One trusted simulation drives every group: each tick, one call
per process carries its scenarios' observations and brings back their decisions. The
calls of a tick are spread over a few threads (`Lanes`), so that several sandboxes decide
side by side: a call waits on a pipe without holding the GIL.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import queue
import struct
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from adrs.evaluators.cbl.simulator import Outcome, PolicyError, Scenario, Simulation
from adrs.evaluators.harness_port import SandboxPort, load_module
from adrs.sandbox.candidate import Candidate, sibling

HARNESS_PATH = Path(__file__).with_name("harness.py")
SANDBOX_LANES = 8  # threads that call sandboxes at once (a call mostly waits)
START_THREADS = 4  # sandboxes started at once
_COUNTER = itertools.count()


class PolicyPort(Protocol):
    """The policies of one process. `start` creates them, one per config; `step` sends one
    tick's message (harness.py: the tick and a record per scenario asked) and returns the
    reply (the decisions, then the regions, a byte each per scenario). Calls to different
    ports may run in different threads."""

    def start(self, configs: list[dict[str, Any]]) -> None: ...

    def step(self, message: bytes) -> object: ...


class Processes(Protocol):
    """Opens `count` policy ports, each in a process of its own, and closes them on exit;
    `lanes`: how many of them are worth calling at once."""

    lanes: int

    def open(self, count: int) -> contextlib.AbstractContextManager[Sequence[PolicyPort]]: ...


# ------------------------------------------------------------------------------ sandboxes
class Sandboxes:
    """One sandbox per group: the evaluation's candidate and as many fresh sandboxes of the
    same program as more groups need, started side by side and held to what is left of the
    candidate's time limit. `cleanup_error`: a sandbox of ours that could not be cleaned
    up (the evaluation is then void, as the runner treats its own candidate)."""

    lanes = SANDBOX_LANES

    def __init__(self, candidate: Candidate) -> None:
        self.candidate = candidate
        self.cleanup_error: str | None = None

    @contextlib.contextmanager
    def open(self, count: int) -> Iterator[Sequence[PolicyPort]]:
        c = self.candidate
        extra = [sibling(c) for _ in range(count - 1)]
        try:
            if extra:
                with ThreadPoolExecutor(min(len(extra), START_THREADS)) as pool:
                    list(pool.map(Candidate.start, extra))
            yield [SandboxPort(c)] + [SandboxPort(e) for e in extra]
        finally:
            for e in extra:
                e.close()
                if e.cleanup_error is not None and self.cleanup_error is None:
                    self.cleanup_error = e.cleanup_error


# ------------------------------------------------------------------ trusted, in process
def load_harness(name: str = "_adrs_cbl_harness") -> ModuleType:
    """A private copy of the harness module in this process (its state is per module)."""
    spec = importlib.util.spec_from_file_location(name, HARNESS_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_program(path: Path, name: str | None = None) -> ModuleType:
    """Import a policy program file as a fresh module (trusted programs only)."""
    module: ModuleType = load_module(path, name or f"_adrs_cbl_program_{next(_COUNTER)}")
    return module


class LocalPort:
    """Policies of an already imported program module, run in this process (trusted code
    only: tests and benchmarks). Same code path as the sandbox, minus the pipe."""

    def __init__(self, program: ModuleType) -> None:
        self.program = program
        self.harness = load_harness(f"_adrs_cbl_harness_{next(_COUNTER)}")

    def start(self, configs: list[dict[str, Any]]) -> None:
        kinds = getattr(self.program, "ClusterType", None)
        types = tuple(kinds(v) for v in range(3)) if kinds is not None else (0, 1, 2)
        self.harness.create(self.harness.policy_class(self.program), types, configs)

    def step(self, message: bytes) -> object:
        return self.harness.step(message)


class LocalPrograms:
    """A trusted program file, imported afresh for every group: groups share no module
    state, as sandboxes share none."""

    lanes = 1

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def open(self, count: int) -> Iterator[Sequence[PolicyPort]]:
        yield [LocalPort(load_program(self.path)) for _ in range(count)]


class OneProcess:
    """One given port for the one group there is (tests: what sharing would allow)."""

    lanes = 1

    def __init__(self, port: PolicyPort) -> None:
        self.port = port

    @contextlib.contextmanager
    def open(self, count: int) -> Iterator[Sequence[PolicyPort]]:
        if count != 1:
            raise ValueError(f"OneProcess serves one group, not {count}")
        yield [self.port]


# ---------------------------------------------------------------------------------- lanes
Calls = list[tuple[PolicyPort, bytes]]


class Lanes:
    """Makes a tick's calls on `count` threads: this one and count - 1 helpers, each
    taking its share of the calls in turn. Use inside a with block."""

    def __init__(self, count: int) -> None:
        self._inboxes: list[queue.SimpleQueue[Calls | None]] = \
            [queue.SimpleQueue() for _ in range(max(count, 1) - 1)]
        self._outbox: queue.SimpleQueue[tuple[int, bool, object]] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._serve, args=(lane,), daemon=True)
                         for lane in range(len(self._inboxes))]

    def __enter__(self) -> Lanes:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for inbox in self._inboxes:
            inbox.put(None)
        for thread in self._threads:
            thread.join()

    def _serve(self, lane: int) -> None:
        inbox = self._inboxes[lane]
        while (calls := inbox.get()) is not None:
            try:
                self._outbox.put((lane, True, [port.step(m) for port, m in calls]))
            except BaseException as exc:  # handed to the driver, which raises it
                self._outbox.put((lane, False, exc))

    def run(self, calls: Calls) -> list[object]:
        """The replies of `calls`, in order; the first exception of a call is raised."""
        lanes = len(self._inboxes) + 1
        shares = [calls[lane::lanes] for lane in range(lanes)]
        busy = [lane for lane in range(1, lanes) if shares[lane]]
        for lane in busy:
            self._inboxes[lane - 1].put(shares[lane])
        results: dict[int, list[object]] = {}
        error: BaseException | None = None
        try:
            results[0] = [port.step(m) for port, m in shares[0]]
        except BaseException as exc:
            error = exc
        for _ in busy:  # every helper reports, even after an error here
            lane, ok, value = self._outbox.get()
            if ok:
                assert isinstance(value, list)
                results[lane + 1] = value
            elif error is None:
                assert isinstance(value, BaseException)
                error = value
        if error is not None:
            raise error
        replies: list[object] = [None] * len(calls)
        for lane in range(lanes):
            replies[lane::lanes] = results.get(lane, [])
        return replies


# ------------------------------------------------------------------------------ lockstep
# The tick, then one record per scenario asked, as harness.TICK and harness.ROW unpack them.
TICK = struct.Struct("<I")
ROW = np.dtype([("id", "<u2"), ("has_spot", "u1"), ("last", "u1"), ("cluster", "u1"),
                ("region", "u1"), ("done", "<f8"), ("progress", "<f8"),
                ("remaining_overhead", "<f8")])
_FIELDS = ("has_spot", "last", "cluster", "region", "done", "progress", "remaining_overhead")


def _codes(replies: list[object], sizes: list[int]) -> tuple[Any, Any]:
    """The decisions and the regions of every reply, reply i `sizes[i]` scenarios long."""
    checked: list[bytes] = []
    for reply, n in zip(replies, sizes, strict=True):
        if not isinstance(reply, bytes) or len(reply) != 2 * n:
            raise PolicyError(f"the harness replied {type(reply).__name__} instead of a "
                              f"byte string of length {2 * n}: do not replace harness.step")
        checked.append(reply)
    pairs = list(zip(checked, sizes, strict=True))
    decisions = np.frombuffer(b"".join(r[:n] for r, n in pairs), np.uint8)
    regions = np.frombuffer(b"".join(r[n:] for r, n in pairs), np.uint8)
    return decisions.astype(np.int64), regions.astype(np.int64)


def simulate(ports: Sequence[PolicyPort], scenarios: Sequence[Scenario],
             groups: Sequence[Sequence[int]], reference_accounting: bool = False,
             lanes: int = 1) -> list[Outcome]:
    """Simulate every scenario to its end, the policies of `groups[g]` behind `ports[g]`,
    one call per port and tick, `lanes` calls at once. Outcomes in scenario order."""
    if len(ports) != len(groups):
        raise ValueError(f"{len(ports)} ports for {len(groups)} groups")
    order = [i for group in groups for i in group]  # each group a contiguous block
    if sorted(order) != list(range(len(scenarios))):
        raise ValueError("the groups must hold every scenario exactly once")
    if any(len(g) > np.iinfo(np.uint16).max for g in groups):
        raise ValueError("a group of more than 65,535 scenarios")
    sim = Simulation([scenarios[i] for i in order], reference_accounting)
    configs = sim.configs()
    bounds = np.cumsum([0] + [len(g) for g in groups])
    local = np.concatenate([np.arange(len(g)) for g in groups]).astype(np.uint16)
    with Lanes(min(lanes, len(ports))) as calls:
        for g, port in enumerate(ports):
            port.start(configs[bounds[g]:bounds[g + 1]])
        tick = 0
        while sim.running:
            obs = sim.observe(tick)
            if obs.ids.size:
                rows = np.empty(obs.ids.size, ROW)
                rows["id"] = local[obs.ids]
                for name in _FIELDS:
                    rows[name] = obs.message[name]
                cuts = np.searchsorted(obs.ids, bounds).tolist()
                head = TICK.pack(tick)
                asked = [(ports[g], head + rows[cuts[g]:cuts[g + 1]].tobytes())
                         for g in range(len(ports)) if cuts[g] < cuts[g + 1]]
                sizes = [b - a for a, b in itertools.pairwise(cuts) if b > a]
                sim.decide(obs, *_codes(calls.run(asked), sizes))
            tick += 1
    by_scenario = dict(zip(order, sim.outcomes(), strict=True))
    return [by_scenario[i] for i in range(len(scenarios))]

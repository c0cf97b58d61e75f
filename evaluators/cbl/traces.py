"""Spot-availability traces: seeded synthetic ones (the default) and real ones from disk.

A trace is one bit per tick, 1 = spot unavailable during that tick (the reference format).
Synthetic traces come from an alternating renewal process whose available and unavailable
run lengths follow discretised log-normal laws with the mean and standard deviation of the
real environment (calibration.py); each window starts at a random point of a long run so
that it opens in the stationary state. Real traces are read from a folder the user points
at (the unpacked archives described in PROBLEMS.md 2.4 and 3.4); they are never shipped.

Every trace also says where it lies in time (`Origin`), so that runs whose traces could
inform one another are kept in different processes (partition.py). The real archives'
windows are cut from long recordings: their files name the recording and the window's
start. Each synthetic trace is an independent draw, on a clock of its own.
"""

from __future__ import annotations

import functools
import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from adrs.errors import UserError
from adrs.evaluators.cbl.calibration import RunStats

WARMUP_TICKS = 2000  # the window starts uniformly within this many ticks of a fresh process


class TraceError(UserError, ValueError):
    """A trace folder or file that cannot be used; the message names the fix. A UserError:
    the user chose the folder, so it stops the run instead of failing the candidate."""


@dataclass(frozen=True)
class Origin:
    """Where a trace lies in time.

    Traces on one `clock` were recorded over the same period: their instants compare, and
    what one shows at an instant may say something about another at the same or a nearby
    instant (the real single-region environments were probed side by side, the regions of
    the multi-region archive too). `series` names the recording the trace was cut from;
    the trace's tick 0 is `start_s` seconds into the clock.
    """

    clock: str
    series: str
    start_s: float


@dataclass(frozen=True)
class Trace:
    """One availability trace: `unavailable[k]` is 1 when spot cannot run during tick k.
    `origin` None: unknown, so possibly cut from the same recording as any other trace of
    unknown origin (partition.py keeps such traces apart)."""

    name: str
    gap_s: float
    unavailable: bytes
    spot_price: float
    origin: Origin | None = None

    @property
    def ticks(self) -> int:
        return len(self.unavailable)

    @property
    def availability(self) -> float:
        return 1.0 - sum(self.unavailable) / max(1, self.ticks)


# ------------------------------------------------------------------------------ synthetic
def _run_length(rng: random.Random, mean: float, std: float) -> int:
    """A run length in ticks (at least 1) with about the given mean and std.

    1 + floor(X) has mean close to E[X] + 0.5, so X is log-normal with mean `mean - 0.5`.
    """
    m = max(mean - 0.5, 0.05)
    sigma2 = math.log1p((std / m) ** 2)
    x = rng.lognormvariate(math.log(m) - sigma2 / 2.0, math.sqrt(sigma2))
    return 1 + int(x)


def renewal_bits(stats: RunStats, ticks: int, rng: random.Random) -> bytes:
    """`ticks` bits of an alternating renewal process seen from a random start time."""
    offset = rng.randrange(WARMUP_TICKS)
    down = rng.random() >= stats.availability
    out = bytearray()
    while len(out) < offset + ticks:
        n = (_run_length(rng, stats.down_mean, stats.down_std) if down
             else _run_length(rng, stats.up_mean, stats.up_std))
        out.extend(b"\x01" * n if down else b"\x00" * n)
        down = not down
    return bytes(out[offset:offset + ticks])


@functools.lru_cache(maxsize=4096)
def synthetic(env: str, stats: RunStats, index: int, ticks: int, gap_s: float) -> Trace:
    """Synthetic trace number `index` of environment `env` (deterministic)."""
    seed = f"adrs-cbl:{env}:{ticks}:{gap_s}:{index}"
    bits = renewal_bits(stats, ticks, random.Random(seed))
    return Trace(f"synthetic/{env}/{index}", gap_s, bits, stats.spot_price,
                 Origin(seed, seed, 0.0))  # an independent draw: a clock of its own


def windows(trace: Trace, starts: Sequence[int], ticks: int) -> tuple[Trace, ...]:
    """Windows of `ticks` ticks of a long trace, starting at the given ticks; they keep
    their place on the long trace's clock (its origin, else one named after it)."""
    origin = trace.origin or Origin(trace.name, trace.name, 0.0)
    return tuple(replace(trace, name=f"{trace.name}@{start}",
                         unavailable=trace.unavailable[start:start + ticks],
                         origin=replace(origin, start_s=origin.start_s + start * trace.gap_s))
                 for start in starts)


# ----------------------------------------------------------------------------------- real
def read_trace(path: Path, spot_price: float | None = None) -> Trace:
    """A trace JSON file: {"metadata": {"gap_seconds": g}, "data": [0|1, ...], "prices"?}.

    The spot price is `spot_price` when given, else the file's first price (the reference
    multi-region simulator's constant price). The origin comes from the archives' fields
    (`read_origin`); a file without them has an unknown origin.
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        gap = float(raw["metadata"]["gap_seconds"])
        bits = bytes(1 if int(b) else 0 for b in raw["data"])
        price = spot_price if spot_price is not None else float(raw["prices"][0])
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise TraceError(f"cannot read trace file '{path}': {type(exc).__name__}: {exc}; "
                         "expected JSON with metadata.gap_seconds, data (and prices for "
                         "multi-region traces)") from None
    return Trace(f"{path.parent.name}/{path.name}", gap, bits, price, read_origin(raw, gap))


def read_origin(raw: dict[str, Any], gap_s: float) -> Origin | None:
    """Where a window of the real archives lies: the recording it was cut from
    (`original_trace`, single region; `metadata.source_file`, multi region) and its start
    (`metadata.start_time`: a tick of that recording, or an ISO time, taken as UTC).
    Recordings kept in one folder were made over the same period: one clock."""
    meta = raw.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    series = raw.get("original_trace", meta.get("source_file"))
    start = meta.get("start_time")
    if not isinstance(series, str) or not series:
        return None
    if isinstance(start, int | float) and not isinstance(start, bool) \
            and math.isfinite(start):
        start_s = float(start) * gap_s
    elif isinstance(start, str):
        try:
            when = datetime.fromisoformat(start)
        except ValueError:
            return None
        start_s = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    else:
        return None
    return Origin(str(PurePosixPath(series).parent), series, start_s)


def _json_files(folder: Path) -> list[Path]:
    # Lexicographic order, as the reference's directory listing ("0", "1", "10", ...);
    # AppleDouble "._*" files from macOS archives are skipped.
    return sorted((p for p in folder.glob("*.json") if not p.name.startswith("._")),
                  key=lambda p: p.name)


def single_region_folder(root: Path, env: str) -> Path:
    """The folder holding the random-start windows of `env` under a user-given root.

    Accepts the unpacked single-region archive (root holding `real/`), its `real/` folder,
    a `<env>/traces/random_start/` tree, or a folder of `<env>/*.json` files.
    """
    bases = [root, root / "real"]
    candidates = [b / env / "traces" / "random_start" for b in bases] + [root / env]
    for base in bases:
        candidates += [d / "real" / env / "traces" / "random_start"
                       for d in sorted(base.glob("ddl=*"))]
    for folder in candidates:
        if folder.is_dir() and _json_files(folder):
            return folder
    raise TraceError(f"no traces of '{env}' under '{root}': point the trace folder at the "
                     "unpacked cant_be_late/real_traces.tar.gz (the folder holding 'real/') "
                     f"or at a folder with '{env}/*.json'")


def multi_region_folder(root: Path, region: str) -> Path:
    """The folder of `region` under the unpacked multi-region archive (or a parent)."""
    for folder in (root / region, root / "converted_multi_region_aligned" / region,
                   root / "data" / "converted_multi_region_aligned" / region):
        if folder.is_dir() and _json_files(folder):
            return folder
    raise TraceError(f"no traces of '{region}' under '{root}': point the trace folder at "
                     "the unpacked cant_be_late_multi/real_traces.tar.gz (the folder "
                     f"holding 'data/') or at a folder with '{region}/<i>.json'")


def evenly_spaced(n: int, count: int) -> list[int]:
    """`count` strictly increasing indices spread over range(n), as the reference picks."""
    if n <= count:
        return list(range(n))
    picked: list[int] = []
    for j in range(count):
        i = round(j * (n - 1) / (count - 1))
        picked.append(max(i, picked[-1] + 1) if picked else i)
    return picked


@functools.lru_cache(maxsize=64)
def real_single_region(root: str, env: str, count: int, min_seconds: float,
                       spot_price: float) -> tuple[Trace, ...]:
    """The reference's selection: `count` evenly spaced files of the lexicographic listing
    among those long enough for `min_seconds`."""
    folder = single_region_folder(Path(root), env)
    traces = [read_trace(p, spot_price) for p in _json_files(folder)]
    usable = [t for t in traces if t.ticks * t.gap_s >= min_seconds]
    if not usable:
        raise TraceError(f"no trace of '{env}' in '{folder}' covers {min_seconds / 3600:g} h")
    return tuple(usable[i] for i in evenly_spaced(len(usable), count))


@functools.lru_cache(maxsize=256)
def real_multi_region(root: str, region: str, index: int) -> Trace:
    """Aligned trace `<index>.json` of `region`."""
    path = multi_region_folder(Path(root), region) / f"{index}.json"
    if not path.is_file():
        raise TraceError(f"trace file '{path}' is missing")
    return read_trace(path)

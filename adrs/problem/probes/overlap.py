"""The series-overlap probe: inventory the numeric series a process holds (request
arguments at every call, memory scans) and look for one scenario's past that is another's
future: two series that share a window at different offsets (SeriesIndex).
"""

from __future__ import annotations

import time
from typing import Any

from adrs.problem.probes.core import Probe, power_of_two, request_parts
from adrs.problem.probes.memory import SCAN_EVERY, memory_sequences, where_label
from adrs.problem.probes.series import (
    K_BINARY,
    K_NUMERIC,
    MIN_BITS,
    encode_series,
    request_series,
    window_bits,
)

# The inventory's bounds: series, and values in all (beyond them, series go unchecked).
MAX_SERIES = 8192
MAX_SERIES_VALUES = 4_000_000

_AMBIGUOUS = (-1, -1)


class Series:
    """One inventoried series: its values as bytes, where it came from, when first seen."""

    __slots__ = ("binary", "data", "label", "live", "n", "seen", "sid")

    def __init__(self, sid: int, data: bytes, binary: bool, label: Any, seen: int,
                 live: Any) -> None:
        self.sid, self.data, self.binary, self.label = sid, data, binary, label
        self.n = len(data) if binary else len(data) // 8
        self.seen = seen
        self.live = live  # the object in memory (memory scans), None for a request's copy

    @property
    def width(self) -> int:
        return 1 if self.binary else 8

    @property
    def k(self) -> int:
        return K_BINARY if self.binary else K_NUMERIC

    def name(self) -> str:
        return str(self.label() if callable(self.label) else self.label)


class SeriesIndex:
    """Windows of every inventoried series, to find one window in two series at two
    offsets. Every window is looked up; every K/4-th informative one is stored, so a shared
    stretch of K + K/4 values or more is found. A match counts once verified: the two
    series agree over their whole aligned overlap (at least K values), the shift is not a
    period of either, and one continues past where the other ends."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.series: dict[int, Series] = {}
        self.windows: dict[tuple[bool, int], tuple[int, int]] = {}
        self.checked: set[tuple[int, int, int]] = set()
        self.values = 0
        self.stored = 0
        self.looked = 0
        self.full = False

    def add(self, data: bytes, binary: bool, label: Any, seen: int, live: Any = None,
            start: int = 0, sid: int | None = None) -> Series | None:
        """Index `data` (new, or the extension from `start` of series `sid`)."""
        record = self.series.get(sid) if sid is not None else None
        if record is None:
            if len(self.series) >= MAX_SERIES or self.values + len(data) > MAX_SERIES_VALUES:
                self.full = True
                return None
            record = Series(len(self.series) + 1, data, binary, label, seen, live)
            self.series[record.sid] = record
            self.values += record.n
        else:
            self.values += (len(data) // record.width) - record.n
            record.data, record.n = data, len(data) // record.width
        self._index(record, start)
        return record

    def _index(self, s: Series, start: int) -> None:
        k, w = s.k, s.width
        stride = k // 4
        data, sid = s.data, s.sid
        windows = self.windows
        for offset in range(max(0, start), s.n - k + 1):
            key = (s.binary, hash(data[offset * w:(offset + k) * w]))
            found = windows.get(key)
            self.looked += 1
            if found is not None and found[0] not in (sid, -1) and found[1] != offset:
                self._candidate(self.series[found[0]], found[1], s, offset)
            if offset % stride:
                continue
            if found is None:
                if window_bits(data, offset, k, s.binary) >= MIN_BITS:
                    windows[key] = (sid, offset)
                    self.stored += 1
            elif found[0] == sid and found[1] != offset:
                windows[key] = _AMBIGUOUS  # the window repeats inside one series

    def _candidate(self, a: Series, offset_a: int, b: Series, offset_b: int) -> None:
        shift = offset_b - offset_a  # b[i + shift] == a[i] over the overlap
        if (a.sid, b.sid, shift) in self.checked:
            return
        self.checked.add((a.sid, b.sid, shift))
        w, k = a.width, a.k
        low, high = max(0, -shift), min(a.n, b.n - shift)
        if high - low < k:
            return
        if a.data[low * w:high * w] != b.data[(low + shift) * w:(high + shift) * w]:
            return
        if _periodic(a, offset_a, shift) or _periodic(b, offset_b, -shift):
            return
        end_a = a.n + shift  # where a ends, in b's positions
        if b.n == end_a:
            return
        ahead, behind, extra = (b, a, b.n - end_a) if b.n > end_a else (a, b, end_a - b.n)
        behind_time = behind.seen if behind.live is None else self.probe.calls
        if ahead.seen > behind_time:
            return  # what holds the future arrived after the other was answered
        self.probe.out.finding("overlap", lambda: (
            f"{behind.name()} ({behind.n} values) and {ahead.name()} ({ahead.n} values) "
            f"agree over {high - low} values at offsets {abs(shift)} apart: the second "
            f"holds {extra} values past the end of the first"))

    def bound(self) -> float:
        """The chance of any match between independent series (union bound)."""
        return float(self.looked) * float(max(self.stored, 1)) * float(2.0 ** -MIN_BITS)


def _periodic(s: Series, offset: int, shift: int) -> bool:
    """Whether `s` repeats itself `shift` values later (or earlier) around `offset`."""
    w, k = s.width, s.k
    other = offset + shift
    if other < 0 or other + k > s.n:
        return False
    return s.data[offset * w:(offset + k) * w] == s.data[other * w:(other + k) * w]


class OverlapGame:
    """Inventory the series a process holds (request arguments, memory) and look for one
    scenario's past that is another's future (see SeriesIndex)."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.index = SeriesIndex(probe)
        self.live: dict[int, Series] = {}  # id of a live object -> its series
        self.arguments: dict[str, Series] = {}  # "(fn) path" -> the last series there
        self.scans = 0

    def start(self) -> None:
        pass

    def stats(self) -> dict[str, Any]:
        return {"series": len(self.index.series), "windows": self.index.stored,
                "looked": self.index.looked, "scans": self.scans,
                "bound": f"{self.index.bound():.1e}", "full": int(self.index.full)}

    def before(self, n: int, request: Any) -> None:
        fn, args = request_parts(request)
        inputs = list(request_series(args, "args"))
        for path, seq in inputs:
            encoded = encode_series(seq)
            if encoded is not None:
                self._argument(n, f"({fn}) {path}", *encoded)
        if (n <= SCAN_EVERY and power_of_two(n)) or n % SCAN_EVERY == 0:
            self.scan(n, {id(seq) for _, seq in inputs})

    def _argument(self, n: int, where: str, data: bytes, binary: bool) -> None:
        """Index a series of call `n`'s arguments. One that extends the series the same
        argument held at the previous call (a history that grows by a tick) extends it."""
        previous = self.arguments.get(where)
        if previous is not None and previous.binary == binary and len(data) > \
                len(previous.data) and data.startswith(previous.data):
            previous.seen = n  # its new values arrived now
            previous.label = f"call {n} {where}"
            self.index.add(data, binary, previous.label, n, start=previous.n - previous.k + 1,
                           sid=previous.sid)
            return
        if len(data) // (1 if binary else 8) >= (K_BINARY if binary else K_NUMERIC):
            record = self.index.add(data, binary, f"call {n} {where}", n)
            if record is not None:
                self.arguments[where] = record

    def after(self, n: int, request: Any, reply: Any) -> Any:
        return reply

    def scan(self, n: int, skip: set[int]) -> None:
        """Inventory the numeric series reachable in memory (lists, tuples, arrays)."""
        self.scans += 1
        deadline = time.perf_counter() + max(0.0, self.probe.budget_s - self.probe.own_s)
        for obj in memory_sequences(skip, deadline):
            if self.index.full:
                return
            self._take(obj, n)

    def _take(self, obj: Any, n: int) -> None:
        encoded = encode_series(obj)
        if encoded is None:
            return
        data, binary = encoded
        known = self.live.get(id(obj))
        if known is not None and known.live is obj and known.binary == binary:
            if data == known.data:
                return
            if data.startswith(known.data):  # grown in place: index the new windows only
                self.index.add(data, binary, known.label, known.seen,
                               start=known.n - known.k + 1, sid=known.sid)
                return
        record = self.index.add(data, binary, where_label(obj), n, live=obj)
        if record is not None:
            self.live[id(obj)] = record

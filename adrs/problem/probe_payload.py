"""The sandbox side of `adrs problems check --adversarial` (the trusted side: adversarial.py).

Never imported by the trusted side for its behaviour: adversarial.py appends a few lines to a
problem's initial program that execute this file's text, inside the sandbox, as the module
`_adrs_probe`, and call `install(config)`. It must therefore run where adrs is not
importable: stdlib only, and numpy only where the sandbox already loaded it.

The hook. child.py, the sandbox's server, answers every request of the trusted side,
`{"fn": name, "args": [...]}`, with `handle(request)`, which it looks up at each request
among the globals of the module registered as sys.modules["_adrs_sandbox_child"] (boot.py
and the zygote's forkserver.py both register it under that name). Replacing that attribute
from the program's own code, at import time, wraps every call the trusted side makes,
whatever the problem's interface (numpy arrays for EPLB, lockstep `harness.step(message)`
for CBL): the wrapper sees every input and every reply, and may reply without calling the
program. Any candidate program can do this; the kit does it to play the games a candidate
could play. `install` also wraps the program's own functions and methods when the probe
needs to see what a harness passes them (and the harness's frames above them).

Reports travel on stderr only, never through files. A finding is one line,
`ADRS-PROBE <process> find <probe> <text>`, written once with os.write (no buffer), at most
MAX_FINDINGS per probe (more are counted). The status line `ADRS-PROBE <process> stat k=v
...` is padded to a fixed width and rewritten in place at the end of stderr (the sandbox's
stderr is a file, capture.py), so the tail the trusted side reads (EvalResult.stderr, its
last 2,000 characters) ends with the latest counts; where stderr cannot be rewritten in
place, the status line is appended at the calls 1, 2, 4, 8, ...

Each probe bounds its own cost: analysis stops once it has used `budget_s` seconds (the
status line then says `budget=spent`), and stored series and vectors are bounded in count
and size.
"""

from __future__ import annotations

import gc
import hashlib
import itertools
import math
import os
import sys
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

PREFIX = "ADRS-PROBE"
CHILD_MODULE = "_adrs_sandbox_child"
MODULE = "_adrs_probe"
SOURCE_NAME = "_adrs_probe.py"  # the file name this module's code runs under
PROGRAM_FILE = "candidate.py"  # child.py compiles the program under this name
STAT_WIDTH = 240
MAX_FINDINGS = 3
NUMBER = (int, float, bool)

# Replay and memoize: an input repeats exactly (same fingerprint) or nearly (same structure,
# same scalars and text, every numeric vector within NEAR relative L1 distance).
MIN_INFORMATIVE = 16  # numbers (or text bytes / 8) an input needs for its repeat to count
NEAR = 0.02
BUCKET_ENTRIES = 64  # inputs kept per structure for near comparison
MAX_VECTOR_VALUES = 8_000_000  # numbers kept for near comparison in all
SAMPLE = 4096  # positions compared per vector without numpy

# Overlap and trusted data: windows of K consecutive values, kept only when a chance match
# is implausible (see `window_bits`): MIN_BITS bits of surprise under the best null model.
K_NUMERIC = 32
K_BINARY = 256
MIN_BITS = 64.0
MIN_SERIES = 64  # shortest list or array the memory scan inventories
MAX_SERIES = 8192
MAX_SERIES_VALUES = 4_000_000
MAX_SCAN_OBJECTS = 2_000_000
SCAN_EVERY = 64  # calls between memory scans, after the scans at calls 1, 2, 4, ... 64
TRUSTED_MIN_INPUT = 8  # shortest input series the trusted-data probe follows

_AMBIGUOUS = (-1, -1)


def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _numpy() -> Any:
    return sys.modules.get("numpy")  # never imported here: used only where already loaded


# ------------------------------------------------------------------------------ reporting
class Out:
    """Finding lines and the status line on stderr (see the module docstring)."""

    def __init__(self, render: Callable[[], str]) -> None:
        self.process = os.urandom(4).hex()
        self.render = render
        self.found: Counter[str] = Counter()
        self._stat_at = -1
        self._stat_len = 0
        self._in_place = _rewritable(2)

    def finding(self, probe: str, text: str | Callable[[], str]) -> None:
        """Count a finding; write it if it is one of the probe's first MAX_FINDINGS (`text`
        may be a function, called only then)."""
        self.found[probe] += 1
        if self.found[probe] <= MAX_FINDINGS:
            self.line(f"find {probe} {text() if callable(text) else text}")

    def line(self, text: str) -> None:
        self._write(f"{PREFIX} {self.process} {text[:420]}\n".encode("utf-8", "replace"))

    def status(self, calls: int) -> None:
        if self._in_place or _power_of_two(calls):
            self._write(b"")

    def _stat(self) -> bytes:
        text = f"{PREFIX} {self.process} stat {self.render()}"[:STAT_WIDTH]
        if self._in_place:  # a fixed width, so that the next one overwrites it exactly
            text = text.ljust(STAT_WIDTH)
        return (text + "\n").encode("utf-8", "replace")

    def _write(self, data: bytes) -> None:
        _flush_std()
        stat = self._stat()
        if self._in_place:
            try:
                end = os.lseek(2, 0, os.SEEK_END)
                # Over the last status line if nothing was written after it, else at the end.
                ours = self._stat_at >= 0 and self._stat_at + self._stat_len == end
                at = self._stat_at if ours else end
                os.pwrite(2, data + stat, at)
                self._stat_at, self._stat_len = at + len(data), len(stat)
                os.lseek(2, 0, os.SEEK_END)
                return
            except OSError:
                self._in_place = False
        _write_all(2, data + stat)


def _rewritable(fd: int) -> bool:
    try:
        import fcntl

        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND:
            return False
        os.lseek(fd, 0, os.SEEK_END)
    except (ImportError, OSError):
        return False
    return True


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
    except OSError:
        pass


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 (contextlib costs start-up time in the sandbox)
            stream.flush()
        except Exception:
            pass


# ------------------------------------------------------------------------- the probe core
class Probe:
    """One sandbox process's probe: the hook on `handle`, its budget and its report."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.mode: str = config["mode"]
        self.budget_s = float(config.get("budget_s", 5.0))
        self.own_s = 0.0
        self.calls = 0
        self.error = ""
        self.game: Any = None
        self.out = Out(self.render)

    @property
    def active(self) -> bool:
        return not self.error and self.own_s < self.budget_s

    def render(self) -> str:
        fields = {"mode": self.mode, "calls": self.calls,
                  "own_ms": round(self.own_s * 1e3), **self.out.found}
        if self.game is not None:
            fields.update(self.game.stats())
        if self.own_s >= self.budget_s:
            fields["budget"] = "spent"
        if self.error:
            fields["error"] = self.error.replace(" ", "_")[:60]
        return " ".join(f"{k}={v}" for k, v in fields.items())

    def fail(self, exc: BaseException) -> None:
        self.error = f"{type(exc).__name__}:{exc}"[:120]
        self.out.line(f"error {self.error}")

    def on_request(self, request: Any, original: Callable[[Any], Any]) -> Any:
        self.calls += 1
        n = self.calls
        reply = None
        start = time.perf_counter()
        if self.active:
            try:
                reply = self.game.before(n, request)
            except Exception as exc:
                self.fail(exc)
        self.own_s += time.perf_counter() - start
        if reply is None:
            reply = original(request)
        start = time.perf_counter()
        if not self.error:
            try:
                reply = self.game.after(n, request, reply)
            except Exception as exc:
                self.fail(exc)
        self.out.status(n)
        self.own_s += time.perf_counter() - start
        return reply


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


# -------------------------------------------------------------------- replay and memoize
class Shape:
    """One input as the replay probe sees it: exact fingerprint, structure key (scalars and
    text included, vectors only by length), numeric vectors, and how many numbers."""

    __slots__ = ("digest", "key", "size", "vectors")

    def __init__(self, fn: str, args: Any) -> None:
        self.vectors: list[Any] = []
        exact = hashlib.blake2b(fn.encode(), digest_size=16)
        skeleton = hashlib.blake2b(fn.encode(), digest_size=16)
        self.size = _feed(args, exact, skeleton, self.vectors, 0)
        self.digest = exact.digest()
        self.key = skeleton.digest()


def _feed(obj: Any, exact: Any, skeleton: Any, vectors: list[Any], depth: int) -> int:
    """Hash `obj` into both digests; collect its numeric vectors; return its number count."""
    kind = type(obj)
    if obj is None or kind in NUMBER:
        token = b"s" + repr(obj).encode() + b";"
        exact.update(token)
        skeleton.update(token)
        return 1
    if kind is str or kind is bytes:
        raw = obj.encode("utf-8", "surrogatepass") if kind is str else obj
        exact.update(b"t%d:" % len(raw) + raw)
        skeleton.update(b"t" + hashlib.blake2b(raw, digest_size=8).digest())
        return len(raw) // 8
    if depth > 24:
        exact.update(b"deep")
        skeleton.update(b"deep")
        return 0
    if kind is list or kind is tuple:
        packed = _doubles(obj)
        if packed is not None:
            exact.update(b"v%d:" % len(obj) + packed)
            skeleton.update(b"v%d;" % len(obj))
            vectors.append(packed)
            return len(obj)
        exact.update(b"[")
        skeleton.update(b"[")
        count = sum(_feed(item, exact, skeleton, vectors, depth + 1) for item in obj)
        exact.update(b"]")
        skeleton.update(b"]")
        return count
    if kind is dict:
        exact.update(b"{")
        skeleton.update(b"{")
        count = 0
        for key in sorted(obj, key=str):
            count += _feed(str(key), exact, skeleton, vectors, depth + 1)
            count += _feed(obj[key], exact, skeleton, vectors, depth + 1)
        exact.update(b"}")
        skeleton.update(b"}")
        return count
    np = _numpy()
    if np is not None and isinstance(obj, np.ndarray):
        layout = f"a{obj.dtype.str}{obj.shape}".encode()
        exact.update(layout + np.ascontiguousarray(obj).tobytes())
        skeleton.update(layout)
        if obj.dtype.kind in "biuf" and obj.size >= 2:
            vectors.append(np.array(obj, dtype=np.float64).ravel())  # a copy
            return int(obj.size)
        return 0
    exact.update(b"o" + kind.__name__.encode())
    skeleton.update(b"o" + kind.__name__.encode())
    return 0


def _doubles(seq: Any) -> bytes | None:
    """A list or tuple of at least two numbers as packed doubles; None otherwise."""
    if len(seq) < 2 or type(seq[0]) not in NUMBER or type(seq[-1]) not in NUMBER:
        return None
    try:
        return array("d", seq).tobytes()
    except (TypeError, OverflowError):
        return None


def _distance(a: Any, b: Any) -> float:
    """Relative L1 distance of two numeric vectors of equal length (packed or numpy)."""
    np = _numpy()
    if np is not None:
        x = np.frombuffer(a, np.float64) if isinstance(a, bytes) else a
        y = np.frombuffer(b, np.float64) if isinstance(b, bytes) else b
        diff = float(np.abs(x - y).sum())
        norm = max(float(np.abs(x).sum()), float(np.abs(y).sum()))
    else:
        x, y = memoryview(a).cast("d"), memoryview(b).cast("d")
        step = max(1, len(x) // SAMPLE)
        diff = norm_x = norm_y = 0.0
        for i in range(0, len(x), step):
            diff += abs(x[i] - y[i])
            norm_x += abs(x[i])
            norm_y += abs(y[i])
        norm = max(norm_x, norm_y)
    if not math.isfinite(diff) or not math.isfinite(norm):
        return math.inf
    return diff / norm if norm > 0 else (0.0 if diff == 0 else math.inf)


class ReplayGame:
    """Input replay (watch only) or memoize (answer a repeated input from memory)."""

    def __init__(self, probe: Probe, memoize: bool = False) -> None:
        self.probe = probe
        self.memoize = memoize
        self.exact: dict[bytes, tuple[int, str, Any]] = {}
        self.buckets: dict[bytes, list[tuple[int, list[Any], Any]]] = {}
        self.kept = 0
        self.counts: Counter[str] = Counter()
        self.pending: tuple[int, str, Shape] | None = None

    def start(self) -> None:
        pass

    def stats(self) -> dict[str, int]:
        return dict(self.counts)

    def before(self, n: int, request: Any) -> Any:
        self.pending = None
        fn, args = _request_parts(request)
        shape = Shape(fn, args)
        if shape.size < MIN_INFORMATIVE:
            return None
        self.counts["informative"] += 1
        prior = self.exact.get(shape.digest)
        if prior is not None:
            self.counts["exact"] += 1
            return self._repeat(n, fn, prior[0], "exactly", prior[2])
        near = self._nearest(shape)
        if near is not None:
            self.counts["near"] += 1
            call, distance, reply = near
            return self._repeat(n, fn, call, f"within {100 * distance:.2g}%", reply)
        self.pending = (n, fn, shape)
        return None

    def _repeat(self, n: int, fn: str, earlier: int, how: str, reply: Any) -> Any:
        if not self.memoize:
            self.probe.out.finding("replay", f"call {n} ({fn}) repeats call {earlier} {how}")
            return None
        if reply is None:
            return None
        self.counts["answered"] += 1
        self.probe.out.finding("memoize", f"call {n} ({fn}) answered with the reply to call "
                               f"{earlier} (its input repeats {how})")
        return reply

    def _nearest(self, shape: Shape) -> tuple[int, float, Any] | None:
        best: tuple[int, float, Any] | None = None
        if not shape.vectors:
            return None
        for call, vectors, reply in self.buckets.get(shape.key, ()):
            distance = max(_distance(a, b) for a, b in zip(vectors, shape.vectors, strict=True))
            if distance <= NEAR and (best is None or distance < best[1]):
                best = (call, distance, reply)
        return best

    def after(self, n: int, request: Any, reply: Any) -> Any:
        if self.pending is None or self.pending[0] != n:
            return reply
        _, fn, shape = self.pending
        self.pending = None
        kept = reply if self.memoize and isinstance(reply, dict) and "ok" in reply else None
        self.exact[shape.digest] = (n, fn, kept)
        size = sum(len(v) // 8 if isinstance(v, bytes) else int(v.size) for v in shape.vectors)
        if shape.vectors and self.kept + size <= MAX_VECTOR_VALUES:
            bucket = self.buckets.setdefault(shape.key, [])
            bucket.append((n, shape.vectors, kept))
            self.kept += size
            if len(bucket) > BUCKET_ENTRIES:
                _, dropped, _ = bucket.pop(0)
                self.kept -= sum(len(v) // 8 if isinstance(v, bytes) else int(v.size)
                                 for v in dropped)
        return reply


def _request_parts(request: Any) -> tuple[str, Any]:
    if isinstance(request, dict):
        return str(request.get("fn")), request.get("args")
    return "?", None


# ------------------------------------------------------------------------------- series
def encode_series(obj: Any) -> tuple[bytes, bool] | None:
    """A 1-D numeric sequence as bytes: one byte per value for 0/1 data (`binary`), else
    packed doubles. None if `obj` is not one, or holds fewer than 2 distinct values."""
    kind = type(obj)
    if kind is list or kind is tuple:
        packed = _doubles(obj)
        if packed is None:
            return None
        values = array("d")
        values.frombytes(packed)
    elif kind is array and obj.typecode in "bBhHiIlLqQfd":
        values = array("d", obj)
    else:
        np = _numpy()
        if np is None or not isinstance(obj, np.ndarray) or obj.ndim != 1 \
                or obj.dtype.kind not in "biuf" or obj.size < 2:
            return None
        values = array("d")
        values.frombytes(np.ascontiguousarray(obj, dtype=np.float64).tobytes())
    distinct = set(values)
    if len(distinct) < 2:
        return None
    if distinct <= {0.0, 1.0}:
        return bytes(map(int, values)), True
    return values.tobytes(), False


def _entropy_bits(counts: Any, total: int) -> float:
    return float(sum(-c * math.log2(c / total) for c in counts if c))


def window_bits(data: bytes, offset: int, k: int, binary: bool) -> float:
    """Bits of surprise of the window of `k` values at `offset`: -log2 of the largest
    probability that any null model of its family gives it, so that two independent series
    share that window with probability at most 2 ** -bits.

    Numbers: independent draws from any one distribution give the window at most
    prod (n_v / k) ** n_v = 2 ** -(k H), H the entropy of its values; the same for its k - 1
    increments (a random walk, a ramp such as 0, 1, 2, ...): the smaller bound counts.
    0/1 data: any two-state Markov chain gives it at most 2 ** -(n0 H(up / n0) + n1 H(down
    / n1)), n0 and n1 the 0s and 1s followed by a value, up and down the changes.
    """
    if binary:
        window = data[offset:offset + k]
        zeros = window.count(0, 0, k - 1)
        up, down = window.count(b"\x00\x01"), window.count(b"\x01\x00")
        return _entropy_bits((up, zeros - up), zeros) + \
            _entropy_bits((down, k - 1 - zeros - down), k - 1 - zeros)
    values = memoryview(data)[offset * 8:(offset + k) * 8].cast("d").tolist()
    steps = [b - a for a, b in itertools.pairwise(values)]
    return min(_entropy_bits(Counter(values).values(), k),
               _entropy_bits(Counter(steps).values(), k - 1))


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


def request_series(obj: Any, path: str, depth: int = 0) -> Iterator[tuple[str, Any]]:
    """(path, sequence) for each 1-D numeric sequence inside a request's arguments."""
    kind = type(obj)
    if depth > 8:
        return
    if kind is dict:
        for key, value in obj.items():
            yield from request_series(value, f"{path}[{key!r}]", depth + 1)
    elif kind is list or kind is tuple:
        if obj and type(obj[0]) in NUMBER:
            yield path, obj
        elif len(obj) <= 10_000:
            for i, item in enumerate(obj):
                yield from request_series(item, f"{path}[{i}]", depth + 1)
    else:
        np = _numpy()
        if np is not None and isinstance(obj, np.ndarray) and obj.ndim == 1:
            yield path, obj


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
        fn, args = _request_parts(request)
        inputs = list(request_series(args, "args"))
        for path, seq in inputs:
            encoded = encode_series(seq)
            if encoded is not None:
                self._argument(n, f"({fn}) {path}", *encoded)
        if (n <= SCAN_EVERY and _power_of_two(n)) or n % SCAN_EVERY == 0:
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
        for obj in _memory_sequences(skip, deadline):
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
        record = self.index.add(data, binary, _where_label(obj), n, live=obj)
        if record is not None:
            self.live[id(obj)] = record


def _array_types() -> tuple[type, ...]:
    np = _numpy()
    return (array, np.ndarray) if np is not None else (array,)


def _is_series(value: Any, kinds: tuple[type, ...], shortest: int) -> bool:
    """A list or tuple starting with a number, or a 1-D array, of `shortest` items or more."""
    kind = type(value)
    if kind is list or kind is tuple:
        return len(value) >= shortest and type(value[0]) in NUMBER
    sized: Any = value
    return isinstance(value, kinds) and getattr(value, "ndim", 1) == 1 \
        and len(sized) >= shortest


def _memory_sequences(skip: set[int], deadline: float) -> Iterator[Any]:
    """Lists, tuples and 1-D arrays of MIN_SERIES numbers or more, reachable through gc
    (arrays through the dicts and objects that hold them), except the probe's own; stops
    at `deadline`."""
    kinds = _array_types()
    for count, obj in enumerate(gc.get_objects()):
        if count > MAX_SCAN_OBJECTS or (count % 4096 == 0 and time.perf_counter() > deadline):
            return
        kind = type(obj)
        if kind is list or kind is tuple:
            if _is_series(obj, kinds, MIN_SERIES) and id(obj) not in skip:
                yield obj
            continue
        if kind is dict:
            holder: Any = obj
        elif getattr(kind, "__module__", "") in ("candidate", "harness"):
            holder = getattr(obj, "__dict__", None)
        else:
            continue
        if type(holder) is dict:
            for value in list(holder.values()):
                if type(value) not in (list, tuple) and _is_series(value, kinds, MIN_SERIES) \
                        and id(value) not in skip:
                    yield value


def _where_label(obj: Any) -> Callable[[], str]:
    """A label computed only when a finding needs it: where `obj` is reachable from."""
    return lambda: where(obj) or f"a {type(obj).__name__} of {len(obj)} values in memory"


def _namespaces() -> list[tuple[str, Any]]:
    return [(name, vars(sys.modules[name])) for name in ("harness", "candidate")
            if name in sys.modules]


def where(target: Any, limit: int = 50_000) -> str | None:
    """A path from the harness's or the program's globals to `target`, or None."""
    for label, value in _walk(_namespaces(), limit, everything=True):
        if value is target:
            return label
    return None


def _children(label: str, obj: Any) -> Iterator[tuple[str, Any]]:
    kind = type(obj)
    if kind is dict:
        for key, value in list(obj.items())[:20_000]:
            yield f"{label}[{key!r}]", value
    elif kind is list or kind is tuple:
        if obj and type(obj[0]) in NUMBER:
            return
        for i, value in enumerate(obj[:20_000]):
            yield f"{label}[{i}]", value
    else:
        attrs = getattr(obj, "__dict__", None)
        if type(attrs) is dict:
            for key, value in list(attrs.items()):
                yield f"{label}.{key}", value


def _traversable(value: Any) -> bool:
    kind = type(value)
    if kind in (dict, list, tuple):
        return True
    module = getattr(kind, "__module__", "")
    return module in ("candidate", "harness") and not isinstance(value, type)


def _walk(roots: list[tuple[str, Any]], limit: int = 100_000,
          everything: bool = False) -> Iterator[tuple[str, Any]]:
    """(path, value) for the strings and numeric sequences reachable from `roots`, each a
    namespace (a dict of names: module globals, a frame's locals), through dicts, lists,
    tuples and the attributes of objects of the program's and the harness's classes;
    every value reached if `everything`."""
    kinds = _array_types()
    seen: set[int] = set()
    queue: list[tuple[str, Any, int]] = []
    for label, namespace in roots:
        queue += [(f"{label}.{name}", value, 1) for name, value in list(namespace.items())
                  if not name.startswith("__")]
    for label, obj, depth in queue:
        if len(seen) > limit:
            return
        kind = type(obj)
        if kind is str or _is_series(obj, kinds, 2):
            if id(obj) not in seen:
                seen.add(id(obj))
                yield label, obj
            continue
        if everything:
            yield label, obj
        if depth < 8 and id(obj) not in seen and _traversable(obj):
            seen.add(id(obj))
            queue += [(sub, value, depth + 1) for sub, value in _children(label, obj)]


# ------------------------------------------------------------------------- trusted data
class TrustedGame:
    """Look, from inside the sandbox, for what only the trusted side should hold: a series
    that continues an input past its end (in the harness's globals or in the frames of the
    harness code that calls the program), evaluator modules and objects, paths under the
    evaluator's folder, evaluator files the sandbox can read."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.dirs = tuple(os.path.join(d, "") for d in probe.config.get("trusted_dirs", ()))
        self.files: list[str] = list(probe.config.get("trusted_files", ()))
        self.harness = probe.config.get("harness") or ""
        self.checks = 0
        self.inputs = 0
        self.memory = 0
        self.reported: set[str] = set()

    def start(self) -> None:
        self._wrap_program()

    def stats(self) -> dict[str, int]:
        return {"checks": self.checks, "inputs": self.inputs, "memory": self.memory}

    def before(self, n: int, request: Any) -> None:
        if n == 1:
            self._once()
        if _power_of_two(n) or n % SCAN_EVERY == 0:
            fn, args = _request_parts(request)
            inputs = [(f"call {n} ({fn}) {path}", seq)
                      for path, seq in request_series(args, "args")]
            self.check(inputs, sys._getframe(1))

    def after(self, n: int, request: Any, reply: Any) -> Any:
        return reply

    def _find(self, what: str) -> None:
        if what not in self.reported:
            self.reported.add(what)
            self.probe.out.finding("trusted", what)

    def _once(self) -> None:
        for name, module in list(sys.modules.items()):
            file = str(getattr(module, "__file__", "") or "")
            if "evaluat" in name.lower() or name.startswith("_adrs_evaluator"):
                self._find(f"module {name} ({file or 'no file'}) is loaded in the sandbox")
            elif file and self._trusted_path(os.path.realpath(file)):
                self._find(f"module {name} was loaded from the evaluator's folder ({file})")
        for path in self.files:
            try:
                with open(path, "rb") as f:
                    f.read(1)
            except OSError:
                continue
            self._find(f"the sandbox can read {path}")
        for obj in gc.get_objects():
            owner = str(getattr(type(obj), "__module__", "") or "")
            if "evaluat" in owner.lower():
                self._find(f"an object of type {owner}.{type(obj).__qualname__} is in "
                           "the sandbox")

    def _trusted_path(self, text: str) -> bool:
        return text != self.harness and any(text.startswith(d) for d in self.dirs)

    def _wrap_program(self) -> None:
        """Wrap the program's functions and methods, to see what a harness passes them."""
        program = sys.modules.get("candidate")
        if program is None:
            return
        for name, value in list(vars(program).items()):
            if _own_function(value):
                setattr(program, name, self._wrapped(value, name))
            elif isinstance(value, type) and value.__module__ == "candidate" \
                    and type(value) is type:
                for attr, member in list(vars(value).items()):
                    if _own_function(member) and not attr.startswith("__"):
                        setattr(value, attr, self._wrapped(member, f"{name}.{attr}"))

    def _wrapped(self, fn: Callable[..., Any], name: str) -> Callable[..., Any]:
        import functools

        calls = [0]
        probe = self.probe

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls[0] += 1
            if _power_of_two(calls[0]) and probe.active:
                start = time.perf_counter()
                try:
                    inputs = list(_object_series(args, f"{name} args"))
                    self.check(inputs, sys._getframe(1))
                except Exception as exc:
                    probe.fail(exc)
                probe.own_s += time.perf_counter() - start
            return fn(*args, **kwargs)

        return wrapper

    def check(self, inputs: list[tuple[str, Any]], frame: Any) -> None:
        """Does any memory series continue an input series past its end?"""
        self.checks += 1
        inputs_ids = {id(seq) for _, seq in inputs}
        memory = self._memory(frame, inputs_ids)
        self.memory = max(self.memory, len(memory))
        for label, seq in inputs:
            encoded = encode_series(seq)
            if encoded is None or len(seq) < TRUSTED_MIN_INPUT:
                continue
            self.inputs += 1
            self._continued(label, encoded, memory)

    def _continued(self, label: str, encoded: tuple[bytes, bool],
                   memory: list[tuple[str, bytes, bool]]) -> None:
        data, binary = encoded
        w = 1 if binary else 8
        n = len(data) // w
        size = min(n, 512 if binary else 64)
        while window_bits(data, n - size, size, binary) < MIN_BITS:
            if size == n:
                return
            size = min(n, size * 4)
        needle = data[(n - size) * w:]
        for where_label, haystack, kind in memory:
            if kind != binary or haystack == data:
                continue
            at = haystack.find(needle)
            while at >= 0:
                if at % w == 0 and self._extends(data, haystack, at // w, size, w):
                    extra = len(haystack) // w - at // w - size
                    self._find(f"{where_label} ({len(haystack) // w} values) continues the "
                               f"input {label} ({n} values) past its end by {extra} values")
                    break
                at = haystack.find(needle, at + 1)

    @staticmethod
    def _extends(data: bytes, haystack: bytes, p: int, size: int, w: int) -> bool:
        n, m = len(data) // w, len(haystack) // w
        if p + size >= m:
            return False
        start = p - (n - size)  # where the input's first value falls in the haystack
        low = max(0, start)
        return haystack[low * w:(p + size) * w] == data[(low - start) * w:]

    def _memory(self, frame: Any, skip: set[int]) -> list[tuple[str, bytes, bool]]:
        """Series in the harness's globals and in the frames of code that is neither the
        program, nor the probe, nor the sandbox's server; trusted paths found on the way."""
        roots: list[tuple[str, Any]] = []
        harness = sys.modules.get("harness")
        if harness is not None:
            roots.append(("harness", vars(harness)))
        child_file = str(getattr(sys.modules.get(CHILD_MODULE), "__file__", "") or "")
        sandbox = os.path.join(os.path.dirname(child_file), "") if child_file else "\0"
        while frame is not None:
            code = frame.f_code
            if code.co_filename not in (PROGRAM_FILE, SOURCE_NAME) \
                    and not code.co_filename.startswith(sandbox):
                roots.append((f"frame {code.co_name} ({os.path.basename(code.co_filename)}:"
                              f"{frame.f_lineno})", dict(frame.f_locals)))
            frame = frame.f_back
        found: list[tuple[str, bytes, bool]] = []
        for label, value in _walk(roots):
            if isinstance(value, str):
                if len(value) < 4096 and self._trusted_path(value):
                    self._find(f"{label} holds the path {value}")
                continue
            if id(value) in skip:
                continue
            encoded = encode_series(value)
            if encoded is not None:
                found.append((label, encoded[0], encoded[1]))
        return found


def _own_function(value: Any) -> bool:
    return type(value).__name__ == "function" and getattr(value, "__module__", "") == "candidate"


def _object_series(obj: Any, label: str, depth: int = 0) -> Iterator[tuple[str, Any]]:
    """Numeric sequences in a program function's arguments, and in the attributes of the
    objects passed (two levels: `self.env.spot_history`)."""
    for sub, value in _children(label, obj):
        kind = type(value)
        np = _numpy()
        if ((kind is list or kind is tuple) and value and type(value[0]) in NUMBER) \
                or (np is not None and isinstance(value, np.ndarray) and value.ndim == 1):
            yield sub, value
        elif depth < 3 and _traversable(value):
            yield from _object_series(value, sub, depth + 1)


# ----------------------------------------------------------------------- persistent state
PERSIST_NAME = ".adrs_probe_"
SHM_KEY = 0x41445250  # "ADRP": a fixed SysV key both evaluations use


class PersistGame:
    """Write a token everywhere a later evaluation could find it (`persist-write`), or look
    for the earlier evaluation's token there (`persist-read`)."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.token: str = probe.config["token"]
        self.reading = probe.mode == "persist-read"
        self.places: list[str] = []
        self.refused: list[str] = []

    def stats(self) -> dict[str, int]:
        return {"places": len(self.places), "refused": len(self.refused)}

    def before(self, n: int, request: Any) -> None:
        return None

    def after(self, n: int, request: Any, reply: Any) -> Any:
        return reply

    def start(self) -> None:
        for place, folder in self._folders():
            if not folder:
                self.refused.append(f"{place} (unset)")
                continue
            path = os.path.join(folder, PERSIST_NAME + self.token[:16])
            try:
                self._file(path)
                self.places.append(place)
            except OSError as exc:
                self.refused.append(f"{place} ({type(exc).__name__})")
        self._variables()
        self._shm()
        verb = "looked in" if self.reading else "wrote to"
        self.probe.out.line(f"note {verb}: {', '.join(self.places) or 'nothing'}; refused: "
                            f"{', '.join(self.refused) or 'nothing'}")

    @staticmethod
    def _folders() -> list[tuple[str, str | None]]:
        return [("working directory", os.getcwd()), ("$HOME", os.environ.get("HOME")),
                ("$TMPDIR", os.environ.get("TMPDIR")), ("/tmp", "/tmp"),
                ("/var/tmp", "/var/tmp"), ("/dev/shm", "/dev/shm")]

    def _file(self, path: str) -> None:
        if not self.reading:
            with open(path, "w", encoding="utf-8") as f:
                f.write(self.token)
            return
        try:
            with open(path, encoding="utf-8") as f:
                content = f.read(200)
        except FileNotFoundError:
            return
        if content == self.token:
            self.probe.out.finding("persist", f"the first evaluation's token is in {path}")
            try:  # noqa: SIM105
                os.unlink(path)
            except OSError:
                pass

    def _variables(self) -> None:
        import builtins

        holders = (("module variable os", os), ("module variable sys", sys),
                   ("builtins", builtins))
        for place, holder in holders:
            if self.reading and getattr(holder, "_adrs_probe_token", None) == self.token:
                self.probe.out.finding("persist", f"the first evaluation's token is in {place}")
            elif not self.reading:
                holder._adrs_probe_token = self.token  # type: ignore[attr-defined]
            self.places.append(place)
        if self.reading and os.environ.get("ADRS_PROBE_TOKEN") == self.token:
            self.probe.out.finding("persist", "the first evaluation's token is in the "
                                   "environment")
        elif not self.reading:
            os.environ["ADRS_PROBE_TOKEN"] = self.token
        self.places.append("environment")

    def _shm(self) -> None:
        """A SysV shared-memory segment under a fixed key (ctypes; skipped without it)."""
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.shmat.restype = ctypes.c_void_p
            libc.shmat.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_int)
            libc.shmdt.argtypes = (ctypes.c_void_p,)
        except (ImportError, OSError, AttributeError) as exc:
            self.refused.append(f"sysv shm ({type(exc).__name__})")
            return
        flags = 0 if self.reading else 0o1000 | 0o600  # IPC_CREAT
        shmid = libc.shmget(SHM_KEY, 0 if self.reading else 4096, flags)
        if shmid < 0:
            if not self.reading:
                self.refused.append(f"sysv shm (errno {ctypes.get_errno()})")
            else:
                self.places.append("sysv shm")
            return
        address = libc.shmat(shmid, None, 0)
        if address in (None, ctypes.c_void_p(-1).value):
            self.refused.append(f"sysv shm (shmat errno {ctypes.get_errno()})")
            return
        raw = self.token.encode()
        if self.reading:
            if ctypes.string_at(address, len(raw)) == raw:
                self.probe.out.finding("persist", f"the first evaluation's token is in the "
                                       f"SysV shared-memory segment {SHM_KEY:#x}")
            libc.shmctl(shmid, 0, None)  # IPC_RMID: leave nothing behind
        else:
            ctypes.memmove(address, raw, len(raw))
        libc.shmdt(address)
        self.places.append("sysv shm")


# --------------------------------------------------------------------------- timing games
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


# ------------------------------------------------------------------------ claiming scores
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
                self._set_globals(None if _power_of_two(n) else ("candidate", "harness"))
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

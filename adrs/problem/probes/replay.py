"""The input-replay and memoize probes: does the same input (or nearly the same one) reach
a process twice, and does answering it from memory raise the score?"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from typing import Any

from adrs.problem.probes.core import NUMBER, Probe, loaded_numpy, request_parts
from adrs.problem.probes.series import doubles

# Replay and memoize: an input repeats exactly (same fingerprint) or nearly (same structure,
# same scalars and text, every numeric vector within NEAR relative L1 distance).
MIN_INFORMATIVE = 16  # numbers (or text bytes / 8) an input needs for its repeat to count
NEAR = 0.02
BUCKET_ENTRIES = 64  # inputs kept per structure for near comparison
MAX_VECTOR_VALUES = 8_000_000  # numbers kept for near comparison in all
SAMPLE = 4096  # positions compared per vector without numpy


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
        packed = doubles(obj)
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
    np = loaded_numpy()
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


def _distance(a: Any, b: Any) -> float:
    """Relative L1 distance of two numeric vectors of equal length (packed or numpy)."""
    np = loaded_numpy()
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
        fn, args = request_parts(request)
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

"""Numeric series as the overlap and trusted-data probes see them: a 1-D sequence encoded
as bytes (one byte per value for 0/1 data, else packed doubles), the bits of surprise of a
window of it (`window_bits`: how implausible a chance match is), and the series inside a
request's arguments.
"""

from __future__ import annotations

import itertools
import math
from array import array
from collections import Counter
from collections.abc import Iterator
from typing import Any

from adrs.problem.probes.core import NUMBER, loaded_numpy

# Overlap and trusted data: windows of K consecutive values, kept only when a chance match
# is implausible (see `window_bits`): MIN_BITS bits of surprise under the best null model.
K_NUMERIC = 32
K_BINARY = 256
MIN_BITS = 64.0


def doubles(seq: Any) -> bytes | None:
    """A list or tuple of at least two numbers as packed doubles; None otherwise."""
    if len(seq) < 2 or type(seq[0]) not in NUMBER or type(seq[-1]) not in NUMBER:
        return None
    try:
        return array("d", seq).tobytes()
    except (TypeError, OverflowError):
        return None


def encode_series(obj: Any) -> tuple[bytes, bool] | None:
    """A 1-D numeric sequence as bytes: one byte per value for 0/1 data (`binary`), else
    packed doubles. None if `obj` is not one, or holds fewer than 2 distinct values."""
    kind = type(obj)
    if kind is list or kind is tuple:
        packed = doubles(obj)
        if packed is None:
            return None
        values = array("d")
        values.frombytes(packed)
    elif kind is array and obj.typecode in "bBhHiIlLqQfd":
        values = array("d", obj)
    else:
        np = loaded_numpy()
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
        np = loaded_numpy()
        if np is not None and isinstance(obj, np.ndarray) and obj.ndim == 1:
            yield path, obj

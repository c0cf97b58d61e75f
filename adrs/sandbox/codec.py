"""A small binary codec for plain data crossing the sandbox boundary.

Contract: `decode` can only ever construct None, bool, int, float, str, bytes, list, tuple,
dict with str keys, and numpy arrays of a boolean, integer or float dtype. It never imports
or calls anything named by the input (no pickle, no object dtype), it bounds the nesting
depth, and it checks every declared length against the bytes actually present before
allocating, so a hostile encoder can make it fail (CodecError) but not misbehave.

Amplification: a hostile reply can also make few bytes decode into many objects (5 bytes,
an empty list, become a 72-byte object and its pointer). So a frame is at most
MAX_FRAME_BYTES (64 MiB) unless the reader passes another limit to `frame_length`, and
`decode` refuses, before building them, more than `max_items` values in all
(DEFAULT_MAX_ITEMS, 2 million: every scalar, container and dict key is one, a packed float
list counts its floats, a numpy array counts 16); it refuses text that would take more than
32 MiB beyond its UTF-8 size once decoded (ASCII with one emoji is 4 bytes a char), and it
stops at an optional `deadline`. Bound at the default limits: decoding one 64 MiB frame
takes at most about 230 MiB besides the frame itself (2 million values at ~72 bytes, about
140 MiB; the bytes, text and array data in the rest of the frame, about 55 MiB; widened
text, 32 MiB) and a second or two. benchmarks/codec_bomb.py measures it: the costliest
bomb (2 million empty dicts or lists, then refused) adds ~140 MiB and ~1.2 s, the
costliest reply accepted ~230 MiB and ~1.1 s.

numpy is imported only when an array is encoded or decoded, so a sandboxed child that never
touches numpy starts without paying for it.

Wire format: one tag byte per value, little-endian fixed-width integers.
Frames (for pipes) are an 8-byte little-endian length followed by the encoded value.
"""

from __future__ import annotations

import struct
import sys
import time

# Not `from typing import ...`: the sandboxed child imports this module on every start,
# and mypy treats a plain TYPE_CHECKING name the same way.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from numpy.typing import NDArray

MAX_DEPTH = 100
MAX_FRAME_BYTES = 1 << 26  # 64 MiB: `frame_length(header, limit=...)` takes another limit
# Requests come from the trusted side (traces, tables): the sandbox reads them with this
# limit and no item cap.
MAX_REQUEST_BYTES = 1 << 30
DEFAULT_MAX_ITEMS = 2_000_000  # decoded values in one reply (see the docstring)
FRAME_HEADER = struct.Struct("<Q")

_U8 = struct.Struct("<B")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")
_F64 = struct.Struct("<d")

_NONE, _TRUE, _FALSE = b"N", b"T", b"F"
_INT, _BIGINT, _FLOAT = b"i", b"I", b"f"
_STR, _BYTES = b"s", b"y"
_LIST, _TUPLE, _DICT = b"l", b"t", b"d"
_FLOATS = b"D"  # a list of floats packed as raw doubles: histories and series are common
_ARRAY = b"a"

_PACK_MIN = 2  # a lockstep tick's few floats (one per series) go packed too: 1.3 us less
_ONLY_FLOAT = {float}
_MAX_NDIM = 32
# Byte order, kind and size only: no structured, object, string or datetime dtypes.
_DTYPES = frozenset(order + code for order in "<>|="
                    for code in ("b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8",
                                 "f2", "f4", "f8"))
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_ARRAY_ITEMS = 16  # an array is counted as this many values: its object costs about as much
_CHECK_EVERY = 4096  # values between two reads of the clock when decoding has a deadline
_TEXT_CHUNK = 1 << 20  # longer text is decoded piecewise, its widening checked on the way
_MAX_TEXT_EXCESS = 1 << 25  # 32 MiB: how much more than its UTF-8 all decoded text may take
_WIDE_STR_HEADER = sys.getsizeof("\xe9") - 2  # a non-ASCII str: this + (len + 1) * width


class CodecError(ValueError):
    """Data that cannot be encoded, or bytes that are not a valid encoding."""


def encode(obj: object) -> bytes:
    """Encode plain data; raise CodecError naming the first unsupported type met."""
    return _encoded(b"", obj, 0)


def _encoded(head: bytes, obj: object, depth: int) -> bytes:
    """`head` followed by `obj` encoded at nesting `depth`."""
    out: list[bytes | memoryview] = [head]
    try:
        _encode(obj, out, depth)
    except RecursionError:
        raise CodecError(f"nesting deeper than {MAX_DEPTH} levels") from None
    return b"".join(out)


def decode(data: bytes | bytearray | memoryview, *, max_items: int = DEFAULT_MAX_ITEMS,
           deadline: float | None = None) -> object:
    """Decode bytes made by `encode`; raise CodecError on anything else.

    Refuses, before building them, more than `max_items` values in all (each scalar,
    container and dict key is one, a packed float list counts its floats, an array 16),
    and stops once `time.monotonic()` passes `deadline` (read first, then every few
    thousand values).
    """
    reader = _Reader(memoryview(data).cast("B"), max_items, deadline)
    return _read_all(reader, 1, 0)


def _read_all(reader: _Reader, counted: int, depth: int) -> object:
    """The value at the reader's position, `counted` values reserved for it (and what
    holds it), up to the end of the data; every failure a CodecError."""
    try:
        reader.reserve(counted)
        value = reader.value(depth)
    except (struct.error, UnicodeDecodeError, ValueError, TypeError, IndexError,
            OverflowError, RecursionError, MemoryError) as exc:
        if isinstance(exc, CodecError):
            raise
        raise CodecError(f"malformed data: {type(exc).__name__}: {exc}") from None
    if reader.pos != reader.end:
        raise CodecError(f"{reader.end - reader.pos} trailing bytes after the value")
    return value


# The usual messages of a call, {"fn": name, "args": [...]} and {"ok": value}, encoded
# and decoded with their fixed part made once: a lockstep evaluator sends thousands of
# them, and the generic path spends most of its time on that part. Same bytes, same
# values, same limits as `encode` and `decode`.
_CALL_HEADS: dict[str, bytes] = {}
_MAX_CALL_HEADS = 256


def encode_call(name: str, args: list[Any]) -> bytes:
    """`encode({"fn": name, "args": args})`, byte for byte."""
    head = _CALL_HEADS.get(name)
    if head is None:
        if len(_CALL_HEADS) >= _MAX_CALL_HEADS:
            _CALL_HEADS.clear()
        head = _CALL_HEADS[name] = encode({"fn": name, "args": []})[:-_EMPTY_LIST_SIZE]
    return _encoded(head, args, 1)


def encode_ok(value: object) -> bytes:
    """`encode({"ok": value})`, byte for byte."""
    return _encoded(_OK_HEAD, value, 1)


def decode_reply(data: bytes | bytearray | memoryview, *,
                 max_items: int = DEFAULT_MAX_ITEMS, deadline: float | None = None) -> object:
    """`decode(data, ...)`, with a shortcut for {"ok": value}: the same result, limits and
    errors (the dict and its key count as the two values they are)."""
    view = memoryview(data).cast("B")
    if view[:len(_OK_HEAD)] != _OK_HEAD:
        return decode(view, max_items=max_items, deadline=deadline)
    reader = _Reader(view, max_items, deadline)
    reader.pos = len(_OK_HEAD)
    return {"ok": _read_all(reader, 3, 1)}


def decode_call(data: bytes | bytearray | memoryview, *,
                max_items: int = DEFAULT_MAX_ITEMS) -> object:
    """`decode(data, max_items=...)`, with a shortcut for {"fn": name, "args": value} as
    `encode_call` makes it (an ASCII name, "fn" first): the same result and limits."""
    view = memoryview(data).cast("B")
    start = len(_CALL_START)
    if view[:start] != _CALL_START or len(view) < start + 4:
        return decode(view, max_items=max_items)
    name_end = start + 4 + int.from_bytes(view[start:start + 4], "little")
    args_start = name_end + len(_ARGS_KEY)
    name = bytes(view[start + 4:name_end])
    if view[name_end:args_start] != _ARGS_KEY or not name.isascii():
        return decode(view, max_items=max_items)
    reader = _Reader(view, max_items, None)
    reader.pos = args_start
    return {"fn": name.decode("ascii"), "args": _read_all(reader, 5, 1)}


def frame_header(length: int) -> bytes:
    """The 8-byte header that precedes an encoded value of `length` bytes on a pipe."""
    return FRAME_HEADER.pack(length)


def frame_length(header: bytes, limit: int = MAX_FRAME_BYTES) -> int:
    """Parse a frame header; refuse lengths above `limit` before anything is allocated."""
    if len(header) != FRAME_HEADER.size:
        raise CodecError("truncated frame header")
    (length,) = FRAME_HEADER.unpack(header)
    if length > limit:
        raise CodecError(f"frame of {length} bytes exceeds the limit of {limit} bytes")
    return int(length)


# ------------------------------------------------------------------------------- encoding
def _encode(obj: object, out: list[bytes | memoryview], depth: int) -> None:
    kind = type(obj)
    if kind is float:
        out.append(_FLOAT + _F64.pack(obj))
    elif kind is int:
        _encode_int(obj, out)  # type: ignore[arg-type]
    elif kind is str:
        _encode_text(_STR, obj, out)  # type: ignore[arg-type]
    elif obj is None:
        out.append(_NONE)
    elif kind is bool:
        out.append(_TRUE if obj else _FALSE)
    elif kind is list or kind is tuple:
        _encode_sequence(obj, out, depth)  # type: ignore[arg-type]
    elif kind is dict:
        _encode_dict(obj, out, depth)  # type: ignore[arg-type]
    elif isinstance(obj, bytes | bytearray):
        out.append(_BYTES + _U32.pack(len(obj)) + bytes(obj))
    else:
        _encode_other(obj, out, depth)


def _encode_int(value: int, out: list[bytes | memoryview]) -> None:
    if _INT64_MIN <= value <= _INT64_MAX:
        out.append(_INT + _I64.pack(value))
        return
    raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    out.append(_BIGINT + _U32.pack(len(raw)) + raw)


def _encode_text(tag: bytes, text: str, out: list[bytes | memoryview]) -> None:
    # surrogatepass: a str with lone surrogates is still a str; keep it rather than fail.
    raw = text.encode("utf-8", "surrogatepass")
    out.append(tag + _U32.pack(len(raw)) + raw)


def _encode_sequence(seq: list[Any] | tuple[Any, ...], out: list[bytes | memoryview],
                     depth: int) -> None:
    if depth >= MAX_DEPTH:
        raise CodecError(f"nesting deeper than {MAX_DEPTH} levels")
    # The set of the items' types, built in C: a fraction of a per-item Python check.
    if type(seq) is list and len(seq) >= _PACK_MIN and set(map(type, seq)) == _ONLY_FLOAT:
        out.append(_FLOATS + _U32.pack(len(seq)) + struct.pack(f"<{len(seq)}d", *seq))
        return
    out.append((_LIST if type(seq) is list else _TUPLE) + _U32.pack(len(seq)))
    for item in seq:
        _encode(item, out, depth + 1)


def _encode_dict(mapping: dict[Any, Any], out: list[bytes | memoryview], depth: int) -> None:
    if depth >= MAX_DEPTH:
        raise CodecError(f"nesting deeper than {MAX_DEPTH} levels")
    out.append(_DICT + _U32.pack(len(mapping)))
    for key, item in mapping.items():
        if not isinstance(key, str):
            raise CodecError(f"a dict key of type {type(key).__name__!r}; keys must be str")
        _encode_text(b"", str(key), out)
        _encode(item, out, depth + 1)


def _encode_other(obj: object, out: list[bytes | memoryview], depth: int) -> None:
    """Subclasses of the plain types, and numpy values (only if numpy is already loaded)."""
    np = sys.modules.get("numpy")
    if np is not None and isinstance(obj, np.ndarray):
        _encode_array(obj, out)
    elif np is not None and isinstance(obj, np.generic) and obj.dtype.kind in "biuf":
        _encode(obj.item(), out, depth)
    elif isinstance(obj, bool):
        out.append(_TRUE if obj else _FALSE)
    elif isinstance(obj, int):
        _encode_int(int(obj), out)
    elif isinstance(obj, float):
        out.append(_FLOAT + _F64.pack(float(obj)))
    elif isinstance(obj, str):
        _encode_text(_STR, str(obj), out)
    elif isinstance(obj, list | tuple):
        _encode_sequence(list(obj) if isinstance(obj, list) else tuple(obj), out, depth)
    elif isinstance(obj, dict):
        _encode_dict(dict(obj), out, depth)
    else:
        raise CodecError(f"cannot encode an object of type {type(obj).__name__!r}")


def _encode_array(arr: NDArray[Any], out: list[bytes | memoryview]) -> None:
    import numpy as np

    dtype = arr.dtype.str
    if arr.dtype.fields is not None or dtype not in _DTYPES:
        raise CodecError(f"cannot encode a numpy array of dtype {arr.dtype}")
    if arr.ndim > _MAX_NDIM:
        raise CodecError(f"cannot encode a numpy array with {arr.ndim} dimensions")
    contiguous = np.ascontiguousarray(arr)
    small = contiguous.ndim == 0 or contiguous.size == 0  # memoryview cannot cast those
    raw = contiguous.tobytes() if small else contiguous.data.cast("B")
    head = [_ARRAY, _U8.pack(len(dtype)), dtype.encode("ascii"), _U8.pack(arr.ndim)]
    head += [_U64.pack(n) for n in arr.shape]
    head.append(_U64.pack(len(raw)))
    out.append(b"".join(head))
    out.append(raw)


# ------------------------------------------------------------------------------- decoding
class _Reader:
    """A cursor over untrusted bytes that checks every read against what is left, and
    keeps the budgets: items declared so far, text widened beyond its wire size, time."""

    __slots__ = ("data", "deadline", "end", "items", "max_items", "next_check", "pos",
                 "text_excess")

    def __init__(self, data: memoryview, max_items: int, deadline: float | None) -> None:
        self.data = data
        self.pos = 0
        self.end = len(data)
        self.items = 0
        self.max_items = max_items
        self.deadline = deadline
        # With a deadline the first value reads the clock (a deadline already past refuses
        # even a small reply); without one it is never read, as the item cap comes first.
        self.next_check = 0 if deadline is not None else max_items + 1
        self.text_excess = 0

    def reserve(self, n: int) -> None:
        """Count `n` more values before any of them is built; refuse past the item cap."""
        items = self.items + n
        if items > self.max_items:
            raise CodecError(f"reply has more than {self.max_items} items (a value before "
                             f"byte {self.pos} declares {n} more after {self.items})")
        self.items = items
        if items >= self.next_check:
            self.check_deadline()

    def check_deadline(self) -> None:
        if self.deadline is None:
            return
        self.next_check = self.items + _CHECK_EVERY
        if time.monotonic() > self.deadline:
            raise CodecError("decoding took past the deadline")

    def view(self, n: int) -> memoryview:
        """The next `n` bytes, without copying them."""
        end = self.pos + n
        if n < 0 or end > self.end:
            raise CodecError(f"declared length {n} exceeds the {self.end - self.pos} "
                             "bytes left")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def unpack(self, fmt: struct.Struct) -> Any:
        pos = self.pos
        end = pos + fmt.size
        if end > self.end:
            raise CodecError(f"truncated: {fmt.size} bytes expected at byte {pos}, "
                             f"{self.end - pos} left")
        self.pos = end
        return fmt.unpack_from(self.data, pos)[0]

    def count(self, min_item_bytes: int) -> int:
        """A declared element count, refused if the remaining bytes cannot hold it."""
        n: int = self.unpack(_U32)
        if n * min_item_bytes > self.end - self.pos:
            raise CodecError(f"declared count {n} exceeds the bytes left")
        return n

    def text(self) -> str:
        n: int = self.unpack(_U32)
        raw = self.view(n)
        if n >= _TEXT_CHUNK:
            return self._long_text(raw)
        text = str(raw, "utf-8", "surrogatepass")
        if not text.isascii():  # O(1): a flag of the str
            self._widened(len(text) * _width(text) - n)
        return text

    def _long_text(self, raw: memoryview) -> str:
        """Text of a megabyte or more: measured first, a chunk at a time, so that text
        refused for widening is never built whole; then decoded in one go."""
        chars, width, start, n = 0, 1, 0, len(raw)
        while start < n:
            end = min(start + _TEXT_CHUNK, n)
            for _ in range(3):  # never cut a UTF-8 sequence (at most 3 continuation bytes)
                if end < n and 0x80 <= raw[end] < 0xC0:
                    end -= 1
            self.check_deadline()
            piece = str(raw[start:end], "utf-8", "surrogatepass")
            chars += len(piece)
            width = max(width, _width(piece))
            start = end
        self._widened(chars * width - n)
        return str(raw, "utf-8", "surrogatepass")

    def _widened(self, excess: int) -> None:
        """Text whose str takes `excess` more bytes than its UTF-8 (e.g. ASCII + one emoji
        is 4 bytes a char): capped in total, as it is the one growth not paid in items."""
        if excess <= 0:
            return
        if self.text_excess + excess > _MAX_TEXT_EXCESS:
            raise CodecError(f"reply text would take more than {_MAX_TEXT_EXCESS >> 20} MiB "
                             "beyond its encoded size once decoded")
        self.text_excess += excess

    def value(self, depth: int) -> object:
        """One value, already counted by `reserve`."""
        pos = self.pos
        if pos >= self.end:
            raise CodecError(f"truncated: a value is missing at byte {pos}")
        tag = self.data[pos]
        self.pos = pos + 1
        read = _READERS[tag]
        if read is None:
            raise CodecError(f"unknown tag {bytes([tag])!r} at byte {pos}")
        return read(self, depth)


def _width(text: str) -> int:
    """Bytes per character of a str (1, 2 or 4), from its size: no pass over the text."""
    if text.isascii():
        return 1
    return (sys.getsizeof(text) - _WIDE_STR_HEADER) // (len(text) + 1)


def _read_floats(reader: _Reader, depth: int) -> list[float]:
    n = reader.count(8)
    reader.reserve(n)
    start = reader.pos
    reader.pos = start + 8 * n
    return list(struct.unpack_from(f"<{n}d", reader.data, start))


def _read_bigint(reader: _Reader, depth: int) -> int:
    return int.from_bytes(reader.view(reader.unpack(_U32)), "little", signed=True)


def _read_list(reader: _Reader, depth: int) -> list[object]:
    if depth >= MAX_DEPTH:
        raise CodecError(f"nesting deeper than {MAX_DEPTH} levels")
    n = reader.count(1)
    if not n:
        return []
    reader.reserve(n)
    value = reader.value
    depth += 1
    if n <= _CHECK_EVERY:
        return [value(depth) for _ in range(n)]
    result: list[object] = []
    for start in range(0, n, _CHECK_EVERY):  # a long list alone still reads the clock
        reader.check_deadline()
        result += [value(depth) for _ in range(min(_CHECK_EVERY, n - start))]
    return result


def _read_tuple(reader: _Reader, depth: int) -> tuple[object, ...]:
    return tuple(_read_list(reader, depth))


def _read_dict(reader: _Reader, depth: int) -> dict[str, object]:
    if depth >= MAX_DEPTH:
        raise CodecError(f"nesting deeper than {MAX_DEPTH} levels")
    n = reader.count(5)  # a key is at least a 4-byte length, a value at least a tag
    reader.reserve(2 * n)  # keys are decoded values too
    text, value = reader.text, reader.value
    depth += 1
    result: dict[str, object] = {}
    for start in range(0, n, _CHECK_EVERY):
        if start:
            reader.check_deadline()
        for _ in range(min(_CHECK_EVERY, n - start)):
            key = text()
            result[key] = value(depth)
    return result


def _read_array(reader: _Reader, depth: int) -> object:
    dtype = str(reader.view(reader.unpack(_U8)), "ascii")
    if dtype not in _DTYPES:
        raise CodecError(f"refused array dtype {dtype!r}")
    ndim: int = reader.unpack(_U8)
    if ndim > _MAX_NDIM:
        raise CodecError(f"refused array with {ndim} dimensions")
    shape = tuple(reader.unpack(_U64) for _ in range(ndim))
    nbytes: int = reader.unpack(_U64)
    itemsize = int(dtype[2:])
    size = 1
    for dim in shape:
        size *= dim
    if size * itemsize != nbytes:
        raise CodecError(f"array of shape {shape} and dtype {dtype} cannot hold {nbytes} bytes")
    raw = reader.view(nbytes)
    reader.reserve(_ARRAY_ITEMS - 1)  # its parent counted one
    import numpy as np  # only now: a child that never sees an array never imports numpy

    if size == 0:
        return np.zeros(shape, dtype=np.dtype(dtype))
    return np.frombuffer(raw, dtype=np.dtype(dtype)).reshape(shape).copy()


def _reader_table() -> tuple[Any, ...]:
    """Tag byte -> reader(reader, depth), None for the bytes that are no tag."""
    table: list[Any] = [None] * 256
    readers: dict[bytes, Any] = {
        _NONE: lambda r, d: None,
        _TRUE: lambda r, d: True,
        _FALSE: lambda r, d: False,
        _INT: lambda r, d: r.unpack(_I64),
        _BIGINT: _read_bigint,
        _FLOAT: lambda r, d: r.unpack(_F64),
        _STR: lambda r, d: r.text(),
        _BYTES: lambda r, d: bytes(r.view(r.unpack(_U32))),
        _FLOATS: _read_floats,
        _ARRAY: _read_array,
        _LIST: _read_list,
        _TUPLE: _read_tuple,
        _DICT: _read_dict,
    }
    for tag, read in readers.items():
        table[tag[0]] = read
    return tuple(table)


_READERS = _reader_table()


_EMPTY_LIST_SIZE = len(encode([]))
_OK_HEAD = encode({"ok": None})[:-len(_NONE)]
_CALL_START = encode({"fn": "", "args": None})[:len(_DICT) + 4 + 4 + len(b"fn") + len(_STR)]
_ARGS_KEY = encode({"args": None})[5:-len(_NONE)]  # the key "args", after the dict's head

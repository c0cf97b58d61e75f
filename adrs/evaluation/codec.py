"""A small binary codec for plain data crossing the sandbox boundary.

Contract: `decode` can only ever construct None, bool, int, float, str, bytes, list, tuple,
dict with str keys, and numpy arrays of a boolean, integer or float dtype. It never imports
or calls anything named by the input (no pickle, no object dtype), it bounds the nesting
depth, and it checks every declared length against the bytes actually present before
allocating, so a hostile encoder can make it fail (CodecError) but not misbehave.

numpy is imported only when an array is encoded or decoded, so a sandboxed child that never
touches numpy starts without paying for it.

Wire format: one tag byte per value, little-endian fixed-width integers.
Frames (for pipes) are an 8-byte little-endian length followed by the encoded value.
"""

from __future__ import annotations

import struct
import sys

# Not `from typing import ...`: the sandboxed child imports this module on every start,
# and mypy treats a plain TYPE_CHECKING name the same way.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from numpy.typing import NDArray

MAX_DEPTH = 100
MAX_FRAME_BYTES = 1 << 30
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

_PACK_MIN = 8
_MAX_NDIM = 32
# Byte order, kind and size only: no structured, object, string or datetime dtypes.
_DTYPES = frozenset(order + code for order in "<>|="
                    for code in ("b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8",
                                 "f2", "f4", "f8"))
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


class CodecError(ValueError):
    """Data that cannot be encoded, or bytes that are not a valid encoding."""


def encode(obj: object) -> bytes:
    """Encode plain data; raise CodecError naming the first unsupported type met."""
    out: list[bytes | memoryview] = []
    try:
        _encode(obj, out, 0)
    except RecursionError:
        raise CodecError(f"nesting deeper than {MAX_DEPTH} levels") from None
    return b"".join(out)


def decode(data: bytes | bytearray | memoryview) -> object:
    """Decode bytes made by `encode`; raise CodecError on anything else."""
    reader = _Reader(memoryview(data).cast("B"))
    try:
        value = reader.value(0)
    except (struct.error, UnicodeDecodeError, ValueError, TypeError, IndexError,
            OverflowError, RecursionError, MemoryError) as exc:
        if isinstance(exc, CodecError):
            raise
        raise CodecError(f"malformed data: {type(exc).__name__}: {exc}") from None
    if reader.pos != len(reader.data):
        raise CodecError(f"{len(reader.data) - reader.pos} trailing bytes after the value")
    return value


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
    if type(seq) is list and len(seq) >= _PACK_MIN and all(type(x) is float for x in seq):
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
    """A cursor over untrusted bytes; every read is checked against what is left."""

    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.pos = 0

    def view(self, n: int) -> memoryview:
        """The next `n` bytes, without copying them."""
        end = self.pos + n
        if n < 0 or end > len(self.data):
            raise CodecError(f"declared length {n} exceeds the {len(self.data) - self.pos} "
                             "bytes left")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def unpack(self, fmt: struct.Struct) -> Any:
        (value,) = fmt.unpack(self.view(fmt.size))
        return value

    def count(self, min_item_bytes: int) -> int:
        """A declared element count, refused if the remaining bytes cannot hold it."""
        n: int = self.unpack(_U32)
        if n * min_item_bytes > len(self.data) - self.pos:
            raise CodecError(f"declared count {n} exceeds the bytes left")
        return n

    def text(self) -> str:
        return str(self.view(self.unpack(_U32)), "utf-8", "surrogatepass")

    def value(self, depth: int) -> object:
        tag = bytes(self.view(1))
        simple = _SIMPLE.get(tag)
        if simple is not None:
            return simple(self)
        if tag in _NESTED:
            if depth >= MAX_DEPTH:
                raise CodecError(f"nesting deeper than {MAX_DEPTH} levels")
            return _NESTED[tag](self, depth + 1)
        raise CodecError(f"unknown tag {tag!r} at byte {self.pos - 1}")


def _read_floats(reader: _Reader) -> list[float]:
    n = reader.count(8)
    return list(struct.unpack(f"<{n}d", reader.view(8 * n)))


def _read_bigint(reader: _Reader) -> int:
    return int.from_bytes(reader.view(reader.unpack(_U32)), "little", signed=True)


def _read_list(reader: _Reader, depth: int) -> list[object]:
    return [reader.value(depth) for _ in range(reader.count(1))]


def _read_tuple(reader: _Reader, depth: int) -> tuple[object, ...]:
    return tuple(_read_list(reader, depth))


def _read_dict(reader: _Reader, depth: int) -> dict[str, object]:
    n = reader.count(5)  # a key is at least a 4-byte length, a value at least a tag
    result: dict[str, object] = {}
    for _ in range(n):
        key = reader.text()
        result[key] = reader.value(depth)
    return result


def _read_array(reader: _Reader) -> object:
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
    import numpy as np  # only now: a child that never sees an array never imports numpy

    if size == 0:
        return np.zeros(shape, dtype=np.dtype(dtype))
    return np.frombuffer(raw, dtype=np.dtype(dtype)).reshape(shape).copy()


_SIMPLE: dict[bytes, Any] = {
    _NONE: lambda r: None,
    _TRUE: lambda r: True,
    _FALSE: lambda r: False,
    _INT: lambda r: r.unpack(_I64),
    _BIGINT: _read_bigint,
    _FLOAT: lambda r: r.unpack(_F64),
    _STR: lambda r: r.text(),
    _BYTES: lambda r: bytes(r.view(r.unpack(_U32))),
    _FLOATS: _read_floats,
    _ARRAY: _read_array,
}
_NESTED: dict[bytes, Any] = {_LIST: _read_list, _TUPLE: _read_tuple, _DICT: _read_dict}

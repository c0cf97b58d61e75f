"""The codec: faithful round trips of plain data, and safety against hostile bytes."""

from __future__ import annotations

import contextlib
import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adrs.evaluation.codec import (
    MAX_DEPTH,
    CodecError,
    decode,
    encode,
    frame_header,
    frame_length,
)

U32 = struct.Struct("<I")


def roundtrip(value: object) -> object:
    return decode(encode(value))


def same(a: object, b: object) -> bool:
    """Equality that also compares types, and treats NaN as equal to NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and str(a) == str(b))
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


# ------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("value", [
    None, True, False, 0, -1, 2**63 - 1, -(2**63), 2**64, -(10**40), 0.0, -0.0, 1.5,
    math.inf, -math.inf, math.nan, "", "héllo ✓", "\ud800", b"", b"\x00\xff", [], (),
    {}, [1, "a", None], (1, (2, (3,))), {"b": 1, "a": [2.0, {"c": (True,)}]},
    [0.5] * 20, [1.0] * 7 + [2], [1.0, 2, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
])
def test_plain_values_round_trip_with_their_types(value: object) -> None:
    assert same(roundtrip(value), value)


plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=12) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=5), inner, max_size=6),
    max_leaves=40)


@settings(max_examples=200, deadline=None)
@given(plain)
def test_any_plain_value_round_trips(value: object) -> None:
    assert same(roundtrip(value), value)


@pytest.mark.parametrize("dtype", ["bool", "int8", "int16", "int32", "int64", "uint8",
                                   "uint16", "uint32", "uint64", "float16", "float32",
                                   "float64", ">i4", ">f8"])
def test_numeric_arrays_round_trip(dtype: str) -> None:
    array = (np.arange(24) % 7).astype(dtype).reshape(2, 3, 4)
    result = roundtrip(array)
    assert isinstance(result, np.ndarray)
    assert result.dtype == array.dtype and result.shape == (2, 3, 4)
    assert np.array_equal(result, array)
    assert result.flags.writeable


@pytest.mark.parametrize("array", [
    np.array(3.5), np.zeros((0, 3)), np.arange(20.0).reshape(4, 5)[:, ::2],
    np.asfortranarray(np.arange(6).reshape(2, 3)), np.array([np.nan, np.inf]),
])
def test_array_shapes_and_layouts_round_trip(array: np.ndarray) -> None:
    result = roundtrip(array)
    assert isinstance(result, np.ndarray) and result.shape == array.shape
    assert np.array_equal(result, array, equal_nan=True)


def test_large_array_is_encoded_as_a_raw_buffer() -> None:
    array = np.random.default_rng(0).random(1_000_000)
    data = encode(array)
    assert len(data) < array.nbytes + 100
    assert np.array_equal(decode(data), array)  # type: ignore[arg-type]


def test_numpy_scalars_become_python_numbers() -> None:
    result = roundtrip([np.float32(1.5), np.int64(7), np.bool_(True), np.uint8(3)])
    assert same(result, [1.5, 7, True, 3])


def test_bytearray_and_subclasses_decode_as_plain_types() -> None:
    class Text(str):
        pass

    assert same(roundtrip([bytearray(b"ab"), Text("x")]), [b"ab", "x"])


# --------------------------------------------------------------------------- refused input
@pytest.mark.parametrize("value", [
    {1, 2}, object(), {1: "int key"}, 1j, np.array([1 + 2j]),
    np.array(["a", "b"]), np.array([object()]), np.zeros(2, dtype=[("x", "f8")]),
    np.datetime64("2024-01-01"), [lambda: 0],
])
def test_encode_refuses_what_is_not_plain_data(value: object) -> None:
    with pytest.raises(CodecError):
        encode(value)


def test_encode_refuses_deep_and_cyclic_structures() -> None:
    deep: list[object] = []
    for _ in range(MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(CodecError, match="nesting"):
        encode(deep)
    cycle: list[object] = []
    cycle.append(cycle)
    with pytest.raises(CodecError):
        encode(cycle)


# --------------------------------------------------------------------------- hostile bytes
SAMPLE = encode({"a": [1, 2.5, "x", b"y", (None, True)], "b": np.arange(5), "c": [0.5] * 9})


def test_every_truncation_is_refused() -> None:
    for cut in range(len(SAMPLE)):
        with pytest.raises(CodecError):
            decode(SAMPLE[:cut])


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(CodecError, match="trailing"):
        decode(SAMPLE + b"N")


@pytest.mark.parametrize("data", [
    b"s" + U32.pack(2**32 - 1) + b"abc",
    b"y" + U32.pack(2**31) + b"",
    b"l" + U32.pack(2**32 - 1) + b"N",
    b"d" + U32.pack(2**32 - 1),
    b"D" + U32.pack(2**30) + b"\x00" * 16,
    b"I" + U32.pack(2**32 - 1),
])
def test_huge_declared_lengths_are_refused_without_allocating(data: bytes) -> None:
    with pytest.raises(CodecError):
        decode(data)


def array_bytes(dtype: bytes, shape: tuple[int, ...], nbytes: int, body: bytes) -> bytes:
    head = b"a" + bytes([len(dtype)]) + dtype + bytes([len(shape)])
    return head + b"".join(struct.pack("<Q", n) for n in shape) + struct.pack("<Q", nbytes) + body


@pytest.mark.parametrize("data", [
    array_bytes(b"|O8", (1,), 8, b"\x00" * 8),
    array_bytes(b"<c16", (1,), 16, b"\x00" * 16),
    array_bytes(b"<V8", (1,), 8, b"\x00" * 8),
    array_bytes(b"<f8", (2,), 8, b"\x00" * 8),
    array_bytes(b"<f8", (2**40, 2**40), 0, b""),
    array_bytes(b"<f8", (2**61,), 2**64 - 8, b""),
    array_bytes(b"<f8", (0, 2**63), 0, b""),
])
def test_hostile_arrays_are_refused(data: bytes) -> None:
    with pytest.raises(CodecError):
        decode(data)


@pytest.mark.parametrize("data", [b"", b"?", b"Z", b"\x80", b"s" + U32.pack(1) + b"\xff",
                                  b"d" + U32.pack(1) + U32.pack(1) + b"\xffN",
                                  b"i\x00\x00\x00"])
def test_unknown_tags_and_bad_text_are_refused(data: bytes) -> None:
    with pytest.raises(CodecError):
        decode(data)


def test_deep_nesting_is_refused_without_recursion_error() -> None:
    for opener in (b"l" + U32.pack(1), b"t" + U32.pack(1), b"d" + U32.pack(1) + U32.pack(0)):
        with pytest.raises(CodecError, match="nesting"):
            decode(opener * 100_000 + b"N")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_only_ever_raise_codec_error(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        decode(data)


def test_frame_lengths_are_checked_before_allocation() -> None:
    assert frame_length(frame_header(1234)) == 1234
    with pytest.raises(CodecError, match="exceeds the limit"):
        frame_length(frame_header(2**62))
    with pytest.raises(CodecError):
        frame_length(b"\x01\x02")

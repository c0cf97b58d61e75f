"""The codec: faithful round trips of plain data, and safety against hostile bytes."""

from __future__ import annotations

import contextlib
import math
import struct
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adrs.sandbox.codec import (
    DEFAULT_MAX_ITEMS,
    MAX_DEPTH,
    MAX_FRAME_BYTES,
    CodecError,
    decode,
    decode_call,
    decode_reply,
    encode,
    encode_call,
    encode_ok,
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


# ------------------------------------------------------------------------- bombs and limits
MB = 1_000_000
EMPTY_LIST = b"l" + U32.pack(0)


@contextlib.contextmanager
def peak_memory() -> Iterator[Callable[[], int]]:
    """Peak bytes allocated (Python objects and numpy buffers) inside the block."""
    tracemalloc.start()
    try:
        yield lambda: tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def refused_fast(data: bytes, match: str, *, max_memory: int = MB, **limits: object) -> None:
    """`data` is refused with CodecError matching `match`, quickly and in bounded memory."""
    with peak_memory() as peak:
        started = time.monotonic()
        with pytest.raises(CodecError, match=match):
            decode(data, **limits)  # type: ignore[arg-type]
        elapsed = time.monotonic() - started
        assert peak() < max_memory, f"peak {peak()} bytes"
    assert elapsed < 5.0


def test_frame_limit_is_64_mib_and_can_be_overridden() -> None:
    assert MAX_FRAME_BYTES == 1 << 26
    assert frame_length(frame_header(MAX_FRAME_BYTES)) == MAX_FRAME_BYTES
    with pytest.raises(CodecError, match="exceeds the limit"):
        frame_length(frame_header(MAX_FRAME_BYTES + 1))
    with pytest.raises(CodecError, match="exceeds the limit"):
        frame_length(frame_header(2**40))
    assert frame_length(frame_header(1 << 30), limit=1 << 30) == 1 << 30
    with pytest.raises(CodecError, match="exceeds the limit"):
        frame_length(frame_header(100), limit=99)


def test_ten_million_none_tags_are_refused_before_building_the_list() -> None:
    n = 10_000_000
    refused_fast(b"l" + U32.pack(n) + b"N" * n, "more than 2000000 items")


def test_a_dict_of_millions_of_empty_keys_is_refused_at_once() -> None:
    n = 3_000_000
    refused_fast(b"d" + U32.pack(n) + (U32.pack(0) + b"N") * n, "more than 2000000 items")


def test_a_list_of_millions_of_empty_lists_is_refused_at_once() -> None:
    n = 3_000_000
    refused_fast(b"l" + U32.pack(n) + EMPTY_LIST * n, "more than 2000000 items")


def test_items_are_counted_across_containers_with_memory_bounded_by_the_cap() -> None:
    # No single container declares too much: 200 lists of 1000 empty lists each.
    data = b"l" + U32.pack(200) + (b"l" + U32.pack(1000) + EMPTY_LIST * 1000) * 200
    assert len(decode(data)) == 200  # type: ignore[arg-type]
    # At most ~72 bytes per item (an empty list and the pointer to it) were built.
    refused_fast(data, "more than 50000 items", max_memory=50_000 * 100, max_items=50_000)


def test_empty_dict_keys_count_as_items() -> None:
    data = b"d" + U32.pack(3) + (U32.pack(0) + b"d" + U32.pack(0)) * 3
    assert decode(data, max_items=7) == {"": {}}
    with pytest.raises(CodecError, match="more than 6 items"):
        decode(data, max_items=6)


@pytest.mark.parametrize(("value", "items"), [
    (None, 1), ([None] * 9, 10), ([1.0] * 9, 10), ((1, (2, 3)), 5), ({"a": 1, "b": [2]}, 6),
    ([np.arange(10)], 17), ([b"x", "y", 10**30], 4),
])
def test_max_items_is_exact(value: object, items: int) -> None:
    data = encode(value)
    assert repr(decode(data, max_items=items)) == repr(value)
    with pytest.raises(CodecError, match=f"more than {items - 1} items"):
        decode(data, max_items=items - 1)


def test_small_arrays_count_as_sixteen_items_each() -> None:
    # A numpy array object costs ~120 bytes and ~2 us to build, many times a plain value.
    data = encode([np.zeros(0, dtype=np.uint8)] * 1000)
    assert len(decode(data, max_items=16_001)) == 1000  # type: ignore[arg-type]
    with pytest.raises(CodecError, match="more than 16000 items"):
        decode(data, max_items=16_000)


def test_deep_nesting_of_empty_lists_is_refused_in_bounded_memory() -> None:
    data = (b"l" + U32.pack(1)) * 1_000_000 + EMPTY_LIST
    refused_fast(data, "nesting")
    assert decode((b"l" + U32.pack(1)) * (MAX_DEPTH - 1) + EMPTY_LIST) is not None


@pytest.mark.parametrize("data", [
    array_bytes(b"|b1", (2**40,), 2**40, b""),
    array_bytes(b"<f8", (2**20, 2**20), 2**43, b"\x00" * 64),
    b"l" + U32.pack(2**32 - 1) + b"N" * 1000,
    b"D" + U32.pack(2**32 - 1) + b"\x00" * 1000,
    b"t" + U32.pack(2**32 - 1),
])
def test_frames_declaring_huge_element_counts_are_refused(data: bytes) -> None:
    refused_fast(data, "exceeds|cannot hold|more than")


def test_a_deadline_already_past_refuses_even_a_small_reply() -> None:
    with pytest.raises(CodecError, match="past the deadline"):
        decode(encode([1, 2, 3]), deadline=time.monotonic() - 1)
    assert decode(encode([1, 2, 3]), deadline=time.monotonic() + 60) == [1, 2, 3]


@pytest.mark.parametrize("data", [
    b"l" + U32.pack(800_000) + b"N" * 800_000,  # one long list
    b"l" + U32.pack(8000) + (b"l" + U32.pack(99) + b"N" * 99) * 8000,  # many short ones
    b"d" + U32.pack(400_000) + (U32.pack(0) + b"F") * 400_000,  # one long dict
])
def test_the_deadline_is_checked_while_decoding(data: bytes) -> None:
    started = time.monotonic()
    decode(data)  # within the default limits
    full = time.monotonic() - started
    started = time.monotonic()
    with pytest.raises(CodecError, match="past the deadline"):
        decode(data, deadline=started + 0.002)
    # It stopped soon after the deadline (values are counted in steps of 4096), long
    # before the end.
    assert time.monotonic() - started < full / 2


def test_legit_large_replies_decode_under_the_defaults() -> None:
    floats = [float(i) for i in range(1_000_000)]
    assert decode(encode(floats)) == floats
    mixed: list[object] = [*floats[:-1], 1]  # not packed: one item per float
    assert decode(encode(mixed)) == mixed
    strings = [f"s{i}" for i in range(500_000)]
    assert decode(encode(strings)) == strings
    keys = {f"k{i}": i for i in range(100_000)}
    assert decode(encode(keys)) == keys


def test_a_dict_counts_its_keys_so_half_the_cap_in_pairs_is_the_most() -> None:
    n = DEFAULT_MAX_ITEMS // 2  # with the dict itself, one item too many
    refused_fast(b"d" + U32.pack(n) + (U32.pack(1) + b"kN") * n, "more than")
    n = 1000  # the same at a small scale, decoded
    data = b"d" + U32.pack(n) + (U32.pack(1) + b"kN") * n
    assert decode(data, max_items=2 * n + 1) == {"k": None}
    with pytest.raises(CodecError, match="more than"):
        decode(data, max_items=2 * n)


def test_a_50_mb_array_decodes_in_memory_close_to_its_size() -> None:
    array = np.arange(50 * MB // 8, dtype=np.float64)
    data = encode(array)
    assert len(data) <= MAX_FRAME_BYTES
    with peak_memory() as peak:
        result = decode(data)
        assert peak() < 1.2 * array.nbytes
    assert isinstance(result, np.ndarray) and np.array_equal(result, array)


@pytest.mark.parametrize("text", [
    "a" * ((1 << 20) - 1) + "😀" + "b" * 10,  # a 4-byte char across the first chunk end
    "a" * ((1 << 20) - 2) + "€" * 3 + "é",  # a 3-byte one
    "é" * 700_000 + "\ud800" + "x",  # 2-byte chars throughout, a lone surrogate
    "😀" * 600_000,  # wide, but no wider than its UTF-8
    "x" * (3 << 20),
])
def test_long_text_round_trips(text: str) -> None:
    assert roundtrip(text) == text
    assert roundtrip({text: [text]}) == {text: [text]}


@pytest.mark.parametrize("raw", [
    b"a" * ((1 << 20) - 1) + "😀".encode()[:3],  # cut short at the end
    b"a" * ((1 << 20) - 1) + b"\x80" * 8 + b"a",  # stray continuation bytes at the cut
    b"\x80" * (2 << 20),
    b"a" * (2 << 20) + b"\xff",
])
def test_long_invalid_text_is_refused(raw: bytes) -> None:
    with pytest.raises(CodecError):
        decode(b"s" + U32.pack(len(raw)) + raw)


def test_text_widened_by_one_wide_char_is_refused_before_it_is_built() -> None:
    # 20 MB of ASCII and one emoji would be an 80 MB str: 60 MB more than its encoding.
    for raw in (b"a" * 20 * MB + "😀".encode(), "😀".encode() + b"a" * 20 * MB):
        refused_fast(b"s" + U32.pack(len(raw)) + raw, "beyond its encoded size",
                     max_memory=10 * MB)  # measured a chunk at a time, never built
    # Many short strings, each widened, add up the same way.
    short = "😀" + "a" * 100_000
    with pytest.raises(CodecError, match="beyond its encoded size"):
        decode(encode([short] * 200))
    assert decode(encode([short] * 50)) == [short] * 50


# --------------------------------------------------------------- the call shortcuts
def outcome(decoder: Callable[..., object], data: bytes, max_items: int) -> tuple[Any, ...]:
    """What a decoder gives: its value, or the fact that it refused (CodecError)."""
    try:
        return ("value", decoder(data, max_items=max_items))
    except CodecError:
        return ("refused",)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=12), plain)
def test_call_and_ok_shortcuts_encode_the_same_bytes(name: str, value: object) -> None:
    assert encode_call(name, [value, 1]) == encode({"fn": name, "args": [value, 1]})
    assert encode_ok(value) == encode({"ok": value})


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=12), plain, st.integers(1, 40))
def test_call_and_reply_shortcuts_decode_as_decode_does(name: str, value: object,
                                                        max_items: int) -> None:
    """Whole, cut short anywhere, or over an item cap: the same value or the same refusal."""
    for data in (encode({"fn": name, "args": [value]}), encode({"ok": value}),
                 encode({"error": {"kind": "x"}})):
        for cut in {len(data), len(data) - 1, len(data) // 2, 13, 3}:
            piece = data[:max(cut, 0)]
            expected = outcome(decode, piece, max_items)
            for shortcut in (decode_call, decode_reply):
                got = outcome(shortcut, piece, max_items)
                assert got[0] == expected[0]
                assert got[0] == "refused" or same(got[1], expected[1])


def test_shortcuts_refuse_trailing_bytes_and_keep_the_deadline() -> None:
    with pytest.raises(CodecError, match="trailing"):
        decode_reply(encode({"ok": 1}) + b"N")
    with pytest.raises(CodecError, match="trailing"):
        decode_call(encode({"fn": "f", "args": []}) + b"N")
    with pytest.raises(CodecError, match="deadline"):
        decode_reply(encode({"ok": [1, 2]}), deadline=time.monotonic() - 1)


def test_short_float_lists_are_packed() -> None:
    """A lockstep tick's handful of floats (one per series) travels as one packed run, and
    decodes to the same list; a single float or a mixed list is not packed."""
    pair = [1.5, -2.25]
    assert encode(pair)[:1] == b"D" and decode(encode(pair)) == pair
    assert encode([1.5])[:1] == b"l" and encode([1.5, 2])[:1] == b"l"
    assert decode(encode({"ok": [0.5, 1.0, 2.0]})) == {"ok": [0.5, 1.0, 2.0]}

"""Decompression bombs against the codec: what a hostile reply frame costs the trusted side.

Builds reply frames of the largest size a frame may have (codec.MAX_FRAME_BYTES, 64 MiB) in
shapes that maximise decoded values, memory or time per wire byte, and decodes each in a
fresh interpreter with the default limits, as the trusted side does with a reply. A few
legit replies of the same size are decoded too, for comparison.

Usage: python benchmarks/codec_bomb.py [--only SUBSTRING]
Prints for each shape: the outcome (ok, or the CodecError message), the wall time of
`decode`, the child's peak RSS (VmHWM) and how much of it came during `decode` (peak minus
the RSS before, which holds the interpreter and the frame itself).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

CODEC = Path(__file__).resolve().parents[1] / "adrs" / "sandbox" / "codec.py"
U32 = struct.Struct("<I")
MiB = 1 << 20


def load_codec() -> ModuleType:
    """codec.py by path, as the sandbox child loads it: without the `adrs` package."""
    spec = importlib.util.spec_from_file_location("codec", CODEC)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


codec = load_codec()
FRAME: int = codec.MAX_FRAME_BYTES


# ---------------------------------------------------------------------------- the shapes
def one_list(unit: bytes) -> bytes:
    """A single list of as many `unit` values as fit in a frame."""
    n = (FRAME - 5) // len(unit)
    return b"l" + U32.pack(n) + unit * n


def lists_of(unit: bytes, per: int = 1000) -> bytes:
    """A list of lists of `per` values each, so that no one container declares much."""
    inner = b"l" + U32.pack(per) + unit * per
    n = (FRAME - 5) // len(inner)
    return b"l" + U32.pack(n) + inner * n


def empty_key_dict() -> bytes:
    n = (FRAME - 5) // 5
    return b"d" + U32.pack(n) + (U32.pack(0) + b"N") * n


def dicts_of_distinct_keys() -> bytes:
    """Dicts of 1000 distinct 3-byte keys, each mapping to an empty dict."""
    inner = b"d" + U32.pack(1000) + b"".join(
        U32.pack(3) + f"{i:03x}".encode() + b"d" + U32.pack(0) for i in range(1000))
    n = (FRAME - 5) // len(inner)
    return b"l" + U32.pack(n) + inner * n


def deep_nesting() -> bytes:
    n = (FRAME - 5) // 5
    return (b"l" + U32.pack(1)) * n + b"l" + U32.pack(0)


def array(ndim: int) -> bytes:
    """An empty uint8 array of `ndim` dimensions, as encoded."""
    return (b"a" + bytes([3]) + b"|u1" + bytes([ndim]) + struct.pack("<Q", 0) * ndim
            + struct.pack("<Q", 0))


def text(raw: bytes) -> bytes:
    return b"s" + U32.pack(len(raw)) + raw


def wide_text() -> bytes:
    """One string filling the frame: ASCII, then one emoji that makes every char 4 bytes."""
    return text(b"a" * (FRAME - 9) + "😀".encode())


def float_array() -> bytes:
    body = FRAME - 32
    head = b"a" + bytes([3]) + b"<f8" + bytes([1]) + struct.pack("<Q", body // 8)
    return head + struct.pack("<Q", body // 8 * 8) + b"\0" * (body // 8 * 8)


def worst_accepted_mix() -> bytes:
    """As much as the defaults let through at once: the item cap spent on empty dicts,
    the text budget on one widened string, the rest of the frame on plain ASCII."""
    dicts: int = codec.DEFAULT_MAX_ITEMS - 4
    wide_chars: int = codec._MAX_TEXT_EXCESS // 3 - 2
    head = b"l" + U32.pack(3) + b"l" + U32.pack(dicts) + (b"d" + U32.pack(0)) * dicts
    wide = text(b"a" * wide_chars + "😀".encode())
    return head + wide + text(b"a" * (FRAME - len(head) - len(wide) - 5))


SHAPES: dict[str, Callable[[], bytes]] = {
    "None tags, one list": lambda: one_list(b"N"),
    "None tags, lists of 1000": lambda: lists_of(b"N"),
    "empty lists, one list": lambda: one_list(b"l" + U32.pack(0)),
    "empty lists, lists of 1000": lambda: lists_of(b"l" + U32.pack(0)),
    "empty dicts, lists of 1000": lambda: lists_of(b"d" + U32.pack(0)),
    "dict of empty keys": empty_key_dict,
    "dicts of 1000 distinct keys": dicts_of_distinct_keys,
    "2-char strings, lists of 1000": lambda: lists_of(text(b"ab")),
    "empty bigints, lists of 1000": lambda: lists_of(b"I" + U32.pack(0)),
    "packed floats, lists of 1000": lambda: lists_of(b"D" + U32.pack(1000) + b"\0" * 8000, 1),
    "deep nesting": deep_nesting,
    "empty 1-d arrays, lists of 1000": lambda: lists_of(array(1)),
    "empty 32-d arrays, lists of 100": lambda: lists_of(array(32), 100),
    "wide text, one string": wide_text,
    "wide text, 100 kB strings": lambda: lists_of(text("😀".encode() + b"a" * 100_000), 1),
    "legit: 64 MiB float64 array": float_array,
    "legit: 64 MiB ASCII string": lambda: text(b"a" * (FRAME - 5)),
    "legit: worst accepted mix": worst_accepted_mix,
}


# ------------------------------------------------------------------------------ running
def child(path: str) -> None:
    """Decode the frame at `path` with the default limits; print one JSON line."""
    data = Path(path).read_bytes()
    before = memory("VmRSS")
    started = time.perf_counter()
    try:
        value = codec.decode(data)
        outcome = f"ok ({type(value).__name__})"
    except codec.CodecError as exc:
        outcome = f"CodecError: {exc}"
    seconds = time.perf_counter() - started
    print(json.dumps({"outcome": outcome, "seconds": seconds, "before": before,
                      "peak": memory("VmHWM")}))


def memory(field: str) -> int:
    """A field of /proc/self/status, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def run(name: str, build: Callable[[], bytes], folder: str) -> None:
    data = build()
    assert len(data) <= FRAME, (name, len(data))
    path = os.path.join(folder, "frame")
    Path(path).write_bytes(data)
    del data
    result = subprocess.run([sys.executable, __file__, "--child", path], capture_output=True,
                            text=True, check=False)
    if result.returncode:
        print(f"{name:<34} child failed ({result.returncode}): {result.stderr.strip()[-300:]}")
        return
    report = json.loads(result.stdout)
    outcome = report["outcome"]
    if len(outcome) > 70:
        outcome = outcome[:67] + "..."
    print(f"{name:<34} {report['seconds']:6.2f} s  peak RSS {report['peak'] / MiB:6.0f} MiB  "
          f"(+{(report['peak'] - report['before']) / MiB:4.0f} MiB in decode)  {outcome}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run the shapes whose name has this")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    print(f"frames of {FRAME / MiB:.0f} MiB, default limits "
          f"(max_items={codec.DEFAULT_MAX_ITEMS}), no deadline")
    with tempfile.TemporaryDirectory() as folder:
        for name, build in SHAPES.items():
            if args.only.lower() in name.lower():
                run(name, build, folder)


if __name__ == "__main__":
    main()

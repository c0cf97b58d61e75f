"""The channel's framing: reading ahead never mixes frames nor skips the reply limit."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest

from adrs.sandbox.channel import Channel, Gone
from adrs.sandbox.codec import CodecError, encode, frame_header

pytestmark = pytest.mark.timeout(30)


def frame(value: object) -> bytes:
    body = encode(value)
    return frame_header(len(body)) + body


@pytest.fixture
def pipes() -> Iterator[tuple[Channel, int]]:
    """A channel whose reply pipe we write into (as the child would)."""
    req_r, req_w = os.pipe()
    rep_r, rep_w = os.pipe()
    os.set_blocking(rep_w, True)
    yield Channel(req_w, rep_r, lambda: True), rep_w
    for fd in (req_r, req_w, rep_r):
        os.close(fd)
    try:  # noqa: SIM105 (a test may have closed it)
        os.close(rep_w)
    except OSError:
        pass


def deadline() -> float:
    return time.monotonic() + 5


def test_frames_written_at_once_are_read_one_after_another(pipes: tuple[Channel, int]) -> None:
    channel, rep_w = pipes
    big = [float(i) for i in range(30_000)]  # 240 kB: read past the first read-ahead
    data = frame({"ok": 1}) + frame({"ok": big}) + frame("last")
    writer = threading.Thread(target=os.write, args=(rep_w, data))  # more than the pipe holds
    writer.start()
    assert channel.receive(deadline(), 1 << 20) == {"ok": 1}
    assert channel.receive(deadline(), 1 << 20) == {"ok": big}
    assert channel.receive(deadline(), 1 << 20) == "last"
    writer.join()


def test_a_frame_over_the_limit_is_refused_though_already_read(
        pipes: tuple[Channel, int]) -> None:
    channel, rep_w = pipes
    os.write(rep_w, frame("x" * 100))
    with pytest.raises(CodecError, match="exceeds the limit of 50 bytes"):
        channel.receive(deadline(), 50)


def test_a_frame_cut_short_by_the_child_closing_is_gone(pipes: tuple[Channel, int]) -> None:
    channel, rep_w = pipes
    os.write(rep_w, frame("abc")[:-1])
    os.close(rep_w)
    with pytest.raises(Gone):
        channel.receive(deadline(), 1 << 20)

"""The two pipes to a sandbox: length-prefixed codec frames, every wait bounded.

The request pipe is non-blocking (write first, wait only when it is full); the reply pipe
is non-blocking too: a read tries it for SPIN_S (a cheap call's reply comes back within
that, and catching it awake saves being woken from another CPU, which is slow on a VM:
benchmarks/sandbox.py, call round trip), then polls it in slices, so a child that died
while a grandchild holds the pipe open is noticed. `Timeout` means the deadline passed,
`Gone` that the child is dead or closed its end; a reply frame is refused before its body
is read when it exceeds the reply limit, and decoding stops at the deadline too (codec.py).

A read asks for at least _AHEAD bytes, so a small reply (header and body) takes one wait
and one read; bytes past the frame (only a misbehaving child sends them) are kept for the
next reply, at most _AHEAD of them.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable

from adrs.sandbox import codec

_POLL_SLICE_S = 0.1  # how often a silent child is checked for being alive
_CHUNK = 1 << 20
_AHEAD = 1 << 16
SPIN_S = 50e-6  # giving the CPU to anything else runnable between tries


class Timeout(Exception):
    """The deadline passed before the pipe was ready."""


class Gone(Exception):
    """The child died or closed its end of a pipe."""


class Channel:
    """Frames over our ends of the request (`req`) and reply (`rep`) pipes."""

    def __init__(self, req: int, rep: int, alive: Callable[[], bool]) -> None:
        self._req, self._rep, self._alive = req, rep, alive
        self._pending = b""  # read from the reply pipe, not yet taken
        os.set_blocking(req, False)
        os.set_blocking(rep, False)
        self._req_poll, self._rep_poll = select.poll(), select.poll()
        self._req_poll.register(req, select.POLLOUT)
        self._rep_poll.register(rep, select.POLLIN)

    def send(self, body: bytes, deadline: float) -> None:
        """Write one frame; Timeout or Gone."""
        view = memoryview(codec.frame_header(len(body)) + body)
        while view:
            try:  # the pipe is non-blocking: write first, wait only when it is full
                view = view[os.write(self._req, view[:_CHUNK]):]
            except BlockingIOError:
                self._wait_ready(self._req_poll, deadline)
            except BrokenPipeError:
                raise Gone from None

    def receive(self, deadline: float, limit: int) -> object:
        """Read and decode one frame of at most `limit` bytes; Timeout, Gone or CodecError."""
        size = codec.frame_length(self._read(codec.FRAME_HEADER.size, deadline), limit)
        return codec.decode_reply(self._read(size, deadline), deadline=deadline)

    def _wait_ready(self, poller: select.poll, deadline: float) -> None:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout
            if poller.poll(min(left, _POLL_SLICE_S) * 1000):
                return
            if not self._alive():  # silence: a grandchild may hold the pipe open
                raise Gone

    def _read_some(self, size: int, deadline: float) -> bytes:
        """At most `size` bytes of the reply pipe: polled for SPIN_S (asking poll(0), which
        costs less than a read failing with BlockingIOError), then waited for."""
        end = time.perf_counter() + SPIN_S
        while not self._rep_poll.poll(0):
            if time.perf_counter() > end:
                break
            os.sched_yield()
        while True:
            try:
                return os.read(self._rep, size)
            except BlockingIOError:
                self._wait_ready(self._rep_poll, deadline)

    def _read(self, n: int, deadline: float) -> bytes:
        """The next `n` bytes of the reply pipe (reading ahead, see the docstring)."""
        pending = self._pending
        if len(pending) >= n:
            self._pending = pending[n:]
            return pending[:n]
        chunks = [pending] if pending else []
        have = len(pending)
        while have < n:
            chunk = self._read_some(max(min(n - have, _CHUNK), _AHEAD), deadline)
            if not chunk:
                raise Gone
            chunks.append(chunk)
            have += len(chunk)
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._pending = data[n:]
        return data[:n]

"""A sandbox's stdout and stderr, captured through descriptors made before it starts.

The trusted side never opens a path the candidate could have changed: a file of the
working directory can be replaced by a symlink to any host file (secrets, the run store),
a FIFO that blocks the reader forever, or /dev/zero. So each stream is an anonymous
memory file (memfd; an unlinked temporary file where memfd is missing) that has no path
at all. The candidate writes to it through the descriptor it inherits, bounded by its
file-size limit; the trusted side reads a bounded tail of it with pread, which never
blocks on such a file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

STREAMS = ("stdout", "stderr")
_BYTES_PER_CHAR = 4  # the most bytes a UTF-8 character takes


def _anonymous_file(name: str) -> int:
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None:
        with contextlib.suppress(OSError):
            return int(memfd_create(f"adrs-{name}", os.MFD_CLOEXEC))
    with tempfile.TemporaryFile() as f:  # unlinked at once: no path leads to it
        return os.dup(f.fileno())


class Capture:
    """One descriptor per stream; `tail` reads without ever following a path."""

    def __init__(self) -> None:
        self.fds: dict[str, int] = {}
        try:
            for stream in STREAMS:
                self.fds[stream] = _anonymous_file(stream)
        except BaseException:
            self.close()
            raise

    def tail(self, stream: str, n_chars: int) -> str:
        """The last `n_chars` characters written to `stream` (at most 4 x n_chars bytes
        read); "" once closed or when the descriptor cannot be read."""
        fd = self.fds.get(stream, -1)
        if fd < 0 or n_chars <= 0:
            return ""
        try:
            size = os.fstat(fd).st_size
            length = min(size, _BYTES_PER_CHAR * n_chars)
            data = os.pread(fd, length, size - length)
        except OSError:
            return ""
        return data.decode("utf-8", "replace")[-n_chars:]

    def close(self) -> None:
        for stream, fd in list(self.fds.items()):
            with contextlib.suppress(OSError):
                os.close(fd)
            del self.fds[stream]

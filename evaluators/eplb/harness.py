"""Loaded into every EPLB sandbox (the candidate's and the trusted echo's) as `harness`.

It makes the sandboxed process's memory allocator behave like the long-running server
process a load balancer lives in. A fresh process running glibc's malloc hands the pages of
a call's temporary arrays back to the system when the call ends (trim) and maps large arrays
anew each time, so every call of a numpy-heavy algorithm pays hundreds of page faults
(measured: ~580 per call, over 1 ms, for a 1 ms vectorized placement; none for the Python
loop version) that a warm process does not. Keeping freed memory in the heap removes that
artifact from the timing for every candidate alike. Where the C library has no `mallopt`
(not glibc), nothing changes and `HEAP_STEADY` is False.
"""

from __future__ import annotations

M_TRIM_THRESHOLD = -1   # glibc mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 << 20   # glibc's largest: arrays below it come from the heap
TRIM_THRESHOLD_BYTES = 256 << 20  # freed heap memory up to this is kept for the next call


def _steady_heap() -> bool:
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (ImportError, OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and \
        bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))


HEAP_STEADY = _steady_heap()


def heap_steady() -> bool:
    """Whether the allocator settings above are in force in this process."""
    return HEAP_STEADY

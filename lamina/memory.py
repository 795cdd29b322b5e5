"""Give freed memory back to the operating system (glibc's heap), for loops that allocate large tensors.

A loop that allocates tensors of a few to a few tens of MB, step after step, between small Python objects that
live on (the rows of a growing table), can leave glibc's heap fragmented: the freed tensors' pages stay with
the process, and its resident memory grows with the number of steps, not with what is alive. Measured on the
logit lens (500 tokens, 128 positions a step, embedded model): peak RSS 6.30 GB, against 1.35 GB with
`MALLOC_MMAP_THRESHOLD_=65536` (`docs/RELIABILITY.md`). `trim_heap()` after each step returns the free pages
(`malloc_trim(0)`); elsewhere than glibc it does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache


@lru_cache(maxsize=1)
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return None


def trim_heap() -> bool:
    """Return the heap's free pages to the OS; True where glibc did so."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False

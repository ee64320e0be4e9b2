"""Give freed heap memory back to the operating system during training.

A training step allocates and frees tensors of many sizes (batches of different widths,
activations, gradients). glibc's ``malloc`` keeps freed chunks in the process for reuse, and
once a few large chunks have been freed it also raises its threshold for serving allocations
from fresh ``mmap`` pages, so later tensors land in the heap, fragment it and the resident set
grows epoch by epoch.
:func:`trim_heap` calls ``malloc_trim(0)``, which returns every free page to the system; the
training loop calls it after the prefix cache, the warm start and the epochs, and
:class:`HeapTrimmer` after any step that left the resident set more than 64 MiB above where the
last trim left it. With it and the rounded batch widths, the training benchmark's default
recipe on 5,000 Endava tickets peaked at 1,414 MiB instead of 1,851 MiB (docs/training.md,
"Memory"). On a C library without ``malloc_trim`` (musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from functools import cache

__all__ = ["HeapTrimmer", "resident_bytes", "trim_heap"]


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    # find_library needs ldconfig or a compiler, which slim images lack: try glibc's soname too
    libc = None
    for name in (ctypes.util.find_library("c"), "libc.so.6"):
        if name is None:
            continue
        try:
            libc = ctypes.CDLL(name)
            break
        except OSError:
            continue
    if libc is None:
        return None
    fn = getattr(libc, "malloc_trim", None)
    if fn is None:
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn  # type: ignore[no-any-return]


def trim_heap() -> bool:
    """Release free heap pages to the OS; True when ``malloc_trim`` exists and ran."""
    fn = _malloc_trim()
    if fn is None:
        return False
    fn(0)
    return True


def resident_bytes() -> int | None:
    """The process's resident set in bytes (``/proc/self/statm``), or None where unavailable."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            pages = int(handle.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * _page_size()


@cache
def _page_size() -> int:
    import os

    return int(os.sysconf("SC_PAGE_SIZE"))


class HeapTrimmer:
    """Trims the heap when the resident set has grown by ``slack_bytes`` since the last trim.

    Called after every training step: a small job whose memory stays flat never pays for a
    trim, a long one on wide batches is trimmed as often as it fragments.
    """

    def __init__(self, slack_bytes: int = 64 * 2**20) -> None:
        self.slack_bytes = slack_bytes
        self.trims = 0
        self._floor = resident_bytes()

    def step(self) -> bool:
        """Trim if the resident set grew past the slack; True when it trimmed."""
        if self._floor is None:
            return False
        now = resident_bytes()
        if now is None or now - self._floor <= self.slack_bytes:
            return False
        trim_heap()
        self.trims += 1
        self._floor = resident_bytes() or now
        return True

"""Give freed heap memory back to the operating system during training.

A training step allocates and frees tensors of many sizes (batches of different widths,
activations, gradients). glibc's ``malloc`` keeps freed chunks in the process for reuse, and
once a few large chunks have been freed it also raises its threshold for serving allocations
from fresh ``mmap`` pages, so later tensors land in the heap, fragment it and the resident set
grows epoch by epoch.
:func:`trim_heap` calls ``malloc_trim(0)``, which returns every free page to the system; the
training loop calls it after each step on a wide batch (``train/_prefix.py``). With it and the
rounded batch widths, the training benchmark's default recipe on 5,000 Endava tickets peaked at
1,493 MiB instead of 1,851 MiB (docs/training.md, "Memory"). On a C library without
``malloc_trim`` (musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from functools import cache

__all__ = ["trim_heap"]


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
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

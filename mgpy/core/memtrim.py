"""Give memory back to the OS after big buffers were freed (glibc's ``malloc_trim``).

A send queue of megabytes is a ``bytearray`` from ``malloc``.  glibc raises its mmap
threshold after the first big buffer is freed, so later ones come from the heap, and
a heap page stays resident after ``free`` while anything lives above it: three rounds
of 50 slow consumers with 4 MiB queues each left 100+ MiB resident after every queue had
been freed.  ``malloc_trim(0)`` hands free heap pages back (``madvise``), wherever they
are.  The manager calls ``trim()`` after closing connections that held big buffers, at
most once per ``TRIM_INTERVAL``; without glibc (musl, macOS) it does nothing.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["TRIM_INTERVAL", "TRIM_MIN", "trim"]

#: a closed connection whose buffers held at least this much asks for a trim
TRIM_MIN = 1024 * 1024
#: seconds between two trims (each walks the heap: well under a millisecond for 100 MiB)
TRIM_INTERVAL = 1.0

_fn: list[Callable[[int], int] | None] = []  # [malloc_trim or None] once looked up


def _lookup() -> Callable[[int], int] | None:
    try:
        import ctypes  # only when a trim is first needed: most programs never get here

        fn = ctypes.CDLL(None).malloc_trim
    except (ImportError, OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


def trim() -> bool:
    """Release free heap memory to the OS; False where the C library cannot."""
    if not _fn:
        _fn.append(_lookup())
    fn = _fn[0]
    if fn is None:
        return False
    fn(0)
    return True

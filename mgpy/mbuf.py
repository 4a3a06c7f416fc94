"""Mbuf: a growable byte buffer with mongoose's mbuf semantics.

The data lives in a ``bytearray``; ``size`` is the logical capacity mongoose
would have allocated (it grows by x1.5 of the needed length, ``trim`` shrinks
it to ``len``), and ``max_size`` caps it: an ``append``/``insert`` that would
pass it returns 0 and leaves the buffer unchanged.  Removing from the front is
amortised O(1) because CPython's bytearray keeps a start offset.

``view()`` hands out a zero-copy memoryview.  While a view is alive the
bytearray cannot be resized; rather than fail, a mutation then moves the data
to a fresh bytearray, so the old view keeps showing the old bytes.
"""

from __future__ import annotations

__all__ = ["Mbuf"]

BytesLike = bytes | bytearray | memoryview

#: growth factor for appends that do not fit (mongoose MBUF_SIZE_MULTIPLIER)
_GROWTH = 1.5


class Mbuf:
    """A growable buffer.

    ``buf`` is the live ``bytearray`` holding the data: protocol parsers read it in
    place (zero-copy) and ``remove()`` what they consumed; do not keep a reference to it
    across events (a mutation while a view is alive replaces it).  ``size`` is the
    logical capacity, ``max_size`` the cap (None: unbounded).

    Example::

        mb = Mbuf(max_size=1024)
        mb.append(b"hello")      # -> 5
        mb.remove(2)             # data is now b"llo"
        bytes(mb), mb.len        # (b"llo", 3)
    """

    __slots__ = ("buf", "max_size", "size")

    def __init__(self, capacity: int = 0, max_size: int | None = None) -> None:
        self.buf = bytearray()
        self.size = max(0, capacity)
        self.max_size = max_size

    # -- inspection ------------------------------------------------------------
    @property
    def len(self) -> int:
        """Number of bytes held."""
        return len(self.buf)

    def __len__(self) -> int:
        return len(self.buf)

    def __bool__(self) -> bool:
        return len(self.buf) > 0

    def __bytes__(self) -> bytes:
        return bytes(self.buf)

    def __repr__(self) -> str:
        return f"<Mbuf len={len(self.buf)} size={self.size}>"

    def view(self) -> memoryview:
        """Return a zero-copy memoryview of the data (valid until the next mutation)."""
        return memoryview(self.buf)

    def find(self, sub: bytes, start: int = 0) -> int:
        """Return the offset of ``sub`` in the data at or after ``start``, or -1."""
        return self.buf.find(sub, start)

    # -- mutation ----------------------------------------------------------------
    def reserve(self, need: int) -> bool:
        """Grow the logical capacity to hold ``need`` bytes (x1.5); False if over ``max_size``."""
        if need <= self.size:
            return True
        mx = self.max_size
        if mx is not None and need > mx:
            return False
        new = int(need * _GROWTH)
        if mx is not None and new > mx:
            new = mx
        self.size = new
        return True

    def _unlock(self) -> None:
        # a live memoryview pins the bytearray: move the data to a new one
        self.buf = bytearray(self.buf)

    def append(self, data: BytesLike) -> int:
        """Append ``data``; return the number of bytes appended (0 if over ``max_size``)."""
        n = len(data)
        buf = self.buf
        need = len(buf) + n
        if need > self.size and not self.reserve(need):
            return 0
        try:
            buf += data
        except BufferError:
            self._unlock()
            self.buf += data
        return n

    def insert(self, off: int, data: BytesLike) -> int:
        """Insert ``data`` at ``off`` (clamped to ``len``); return bytes inserted or 0."""
        n = len(data)
        buf = self.buf
        need = len(buf) + n
        if need > self.size and not self.reserve(need):
            return 0
        off = max(0, min(off, len(buf)))
        try:
            buf[off:off] = data
        except BufferError:
            self._unlock()
            self.buf[off:off] = data
        return n

    def remove(self, n: int) -> None:
        """Remove ``n`` bytes from the front (all of them if ``n >= len``)."""
        if n <= 0:
            return
        buf = self.buf
        try:
            if n >= len(buf):
                buf.clear()
            else:
                del buf[:n]
        except BufferError:
            self.buf = bytearray(buf[n:])

    def clear(self) -> None:
        """Drop the data, keeping the capacity."""
        try:
            self.buf.clear()
        except BufferError:
            self.buf = bytearray()

    def free(self) -> None:
        """Drop the data and the capacity."""
        self.buf = bytearray()
        self.size = 0

    def resize(self, new_size: int) -> None:
        """Set the capacity to ``new_size``; ignored if below ``len`` or above ``max_size``."""
        if new_size < len(self.buf):
            return
        if self.max_size is not None and new_size > self.max_size:
            return
        self.size = new_size

    def trim(self) -> None:
        """Shrink the capacity to ``len``."""
        self.size = len(self.buf)
        if not self.buf:
            self.buf = bytearray()

    def append_and_free(self, other: Mbuf) -> int:
        """Append ``other``'s data, then free ``other``; return bytes appended.

        If the append is refused (``max_size``) both buffers are left unchanged and 0 is
        returned, so no data is lost.
        """
        n = self.append(other.buf)
        if n or not other.buf:
            other.free()
        return n

    def take(self) -> bytes:
        """Return all the data as bytes and clear the buffer."""
        data = bytes(self.buf)
        self.clear()
        return data

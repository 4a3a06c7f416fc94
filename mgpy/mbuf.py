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

    Example::

        mb = Mbuf(max_size=1024)
        mb.append(b"hello")      # -> 5
        mb.remove(2)             # data is now b"llo"
        bytes(mb), mb.len        # (b"llo", 3)
    """

    __slots__ = ("_buf", "_size", "max_size")

    def __init__(self, capacity: int = 0, max_size: int | None = None) -> None:
        self._buf = bytearray()
        self._size = max(0, capacity)
        self.max_size = max_size

    # -- inspection ------------------------------------------------------------
    @property
    def len(self) -> int:
        """Number of bytes held."""
        return len(self._buf)

    @property
    def size(self) -> int:
        """Logical capacity (bytes allocated in mongoose terms)."""
        return self._size

    def __len__(self) -> int:
        return len(self._buf)

    def __bool__(self) -> bool:
        return len(self._buf) > 0

    def __bytes__(self) -> bytes:
        return bytes(self._buf)

    def __repr__(self) -> str:
        return f"<Mbuf len={len(self._buf)} size={self._size}>"

    def view(self) -> memoryview:
        """Return a zero-copy memoryview of the data (valid until the next mutation)."""
        return memoryview(self._buf)

    def find(self, sub: bytes, start: int = 0) -> int:
        """Return the offset of ``sub`` in the data at or after ``start``, or -1."""
        return self._buf.find(sub, start)

    # -- mutation ----------------------------------------------------------------
    def _grow_for(self, need: int) -> bool:
        if need <= self._size:
            return True
        mx = self.max_size
        if mx is not None and need > mx:
            return False
        new = int(need * _GROWTH)
        if mx is not None and new > mx:
            new = mx
        self._size = new
        return True

    def _unlock(self) -> None:
        # a live memoryview pins the bytearray: move the data to a new one
        self._buf = bytearray(self._buf)

    def append(self, data: BytesLike) -> int:
        """Append ``data``; return the number of bytes appended (0 if over ``max_size``)."""
        n = len(data)
        buf = self._buf
        need = len(buf) + n
        if need > self._size and not self._grow_for(need):
            return 0
        try:
            buf += data
        except BufferError:
            self._unlock()
            self._buf += data
        return n

    def insert(self, off: int, data: BytesLike) -> int:
        """Insert ``data`` at ``off`` (clamped to ``len``); return bytes inserted or 0."""
        n = len(data)
        buf = self._buf
        need = len(buf) + n
        if need > self._size and not self._grow_for(need):
            return 0
        off = max(0, min(off, len(buf)))
        try:
            buf[off:off] = data
        except BufferError:
            self._unlock()
            self._buf[off:off] = data
        return n

    def remove(self, n: int) -> None:
        """Remove ``n`` bytes from the front (all of them if ``n >= len``)."""
        if n <= 0:
            return
        buf = self._buf
        try:
            if n >= len(buf):
                buf.clear()
            else:
                del buf[:n]
        except BufferError:
            self._buf = bytearray(buf[n:])

    def clear(self) -> None:
        """Drop the data, keeping the capacity."""
        try:
            self._buf.clear()
        except BufferError:
            self._buf = bytearray()

    def free(self) -> None:
        """Drop the data and the capacity."""
        self._buf = bytearray()
        self._size = 0

    def resize(self, new_size: int) -> None:
        """Set the capacity to ``new_size``; ignored if below ``len`` or above ``max_size``."""
        if new_size < len(self._buf):
            return
        if self.max_size is not None and new_size > self.max_size:
            return
        self._size = new_size

    def trim(self) -> None:
        """Shrink the capacity to ``len``."""
        self._size = len(self._buf)
        if not self._buf:
            self._buf = bytearray()

    def append_and_free(self, other: Mbuf) -> int:
        """Append ``other``'s data, then free ``other``; return bytes appended.

        If the append is refused (``max_size``) both buffers are left unchanged and 0 is
        returned, so no data is lost.
        """
        n = self.append(other._buf)
        if n or not other._buf:
            other.free()
        return n

    def take(self) -> bytes:
        """Return all the data as bytes and clear the buffer."""
        data = bytes(self._buf)
        self.clear()
        return data

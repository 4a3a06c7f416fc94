"""Static files, sending side: the zero-copy body pump.

``FilePump`` is a ``c.pump`` (see docs/protocols.md, "Body producers"): the manager
calls it when ``send_mbuf`` is empty, with a per-round byte budget.  It walks
a list of segments -- ``(prefix bytes, file offset, length)`` plus a tail --
which covers a whole file (one segment), one range, or ``multipart/byteranges``
(each part's delimiter and headers as the prefix, the closing delimiter as the
tail).  Prefixes go out with ``c.send``; file bytes go straight from the page
cache to the socket with ``os.sendfile`` on plain connections, or through
``os.pread`` + ``c.send`` slices when TLS is active (or sendfile is not
supported for this socket), so memory stays flat whatever the file size.
``c.sendfile`` does the zero-copy write and its accounting.

Descriptor ownership: the pump owns its fd and closes it as soon as the last
file byte has been handed to the kernel, when the socket fails, when the file
turns out shorter than announced (the connection is then closed: the promised
Content-Length cannot be met), and -- through ``close()``, which the manager
calls on connection close -- when the peer goes away mid-body.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import brotli  # type: ignore[import-untyped]

from ..respond import send_http_chunk

if TYPE_CHECKING:
    from ...core import Connection

__all__ = ["BrotliPump", "FilePump"]

#: bytes read per slice when the body cannot use sendfile (TLS)
READ_SLICE = 256 * 1024

_NO_SENDFILE = frozenset(
    (errno.EINVAL, errno.ENOSYS, errno.ENOTSOCK, getattr(errno, "EOPNOTSUPP", errno.EINVAL))
)


class FilePump:
    """Send file segments (with byte prefixes and a tail) on a connection; owns ``fd``."""

    __slots__ = ("fd", "idx", "last", "left", "off", "segs", "sendfile", "tail")

    def __init__(self, fd: int, segs: list[tuple[bytes, int, int]], tail: bytes = b"") -> None:
        self.fd = fd
        self.segs = segs
        self.idx = -1
        self.off = 0
        self.left = 0
        self.tail = tail
        self.sendfile = True
        self.last = len(segs) - 1

    def close(self) -> None:
        """Release the file descriptor (idempotent)."""
        fd = self.fd
        if fd >= 0:
            self.fd = -1
            os.close(fd)

    def _fail(self, c: Connection, why: str) -> int:
        self.close()
        c.error(why)
        return -1

    def __call__(self, c: Connection, budget: int) -> int:
        """Move up to ``budget`` bytes; 0 when the socket is full, -1 when done."""
        try:
            return self._step(c, budget)
        except BaseException:
            self.close()  # the manager drops a pump that raised: do not leak the fd
            raise

    def _step(self, c: Connection, budget: int) -> int:
        while self.left == 0:
            if self.idx >= self.last:
                self.close()
                tail = self.tail
                if tail:
                    self.tail = b""
                    c.send(tail)
                    return len(tail)
                return -1
            self.idx += 1
            pre, self.off, self.left = self.segs[self.idx]
            if pre:
                c.send(pre)
                return len(pre)
        fd = self.fd
        if fd < 0:
            return -1
        want = self.left if self.left < budget else budget
        if self.sendfile and not c.is_tls:
            try:
                n = c.sendfile(fd, self.off, want)
            except (BlockingIOError, InterruptedError):
                return 0
            except OSError as e:
                if e.errno in _NO_SENDFILE:
                    self.sendfile = False
                    return self._step(c, budget)
                return self._fail(c, f"sendfile: {e.strerror or e}")
            if n == 0:
                return self._fail(c, "file shrank while being sent")
            self.off += n
            self.left -= n
            if not self.left and self.idx >= self.last:
                self.close()  # before SEND fires: the next response may start from there
            return n
        if want > READ_SLICE:
            want = READ_SLICE
        try:
            data = os.pread(fd, want, self.off)
        except OSError as e:
            return self._fail(c, f"read: {e.strerror or e}")
        if not data:
            return self._fail(c, "file shrank while being sent")
        n = len(data)
        self.off += n
        self.left -= n
        if not self.left and self.idx >= self.last:
            self.close()
        c.send(data)
        return n


class BrotliPump:
    """Compress a file with brotli as it is sent, as HTTP chunks, one slice per poll round.

    For compressible files too big to compress in one go on the loop.  Each call
    reads ``COMPRESS_SLICE`` bytes, compresses them and queues the output as a chunk
    (``send_http_chunk``: chunked for HTTP/1.1, raw for close-delimited 1.0), then
    returns the whole budget so the manager lets every other connection run before
    the next slice.  The output is kept (up to ``keep_max`` bytes) and handed to
    ``done(data)`` when the file was read to its announced size, so the next
    request is served from memory with a Content-Length.
    """

    __slots__ = ("comp", "done", "fd", "keep", "keep_max", "kept", "left", "off")

    def __init__(
        self, fd: int, size: int, quality: int, keep_max: int, done: Callable[[bytes], None]
    ) -> None:
        self.fd = fd
        self.off = 0
        self.left = size
        self.comp = brotli.Compressor(quality=quality)
        self.keep: list[bytes] | None = []
        self.kept = 0
        self.keep_max = keep_max
        self.done = done

    def close(self) -> None:
        """Release the file descriptor (idempotent)."""
        fd = self.fd
        if fd >= 0:
            self.fd = -1
            os.close(fd)

    def __call__(self, c: Connection, budget: int) -> int:
        """Compress and queue one slice; -1 once the last chunk is queued."""
        try:
            return self._step(c, budget)
        except BaseException:
            self.close()
            raise

    def _step(self, c: Connection, budget: int) -> int:
        if self.fd < 0:
            return -1
        want = min(self.left, COMPRESS_SLICE)
        try:
            data = os.pread(self.fd, want, self.off) if want else b""
        except OSError as e:
            self.close()
            c.error(f"read: {e.strerror or e}")
            return -1
        if want and not data:
            self.close()
            c.error("file shrank while being sent")
            return -1
        self.off += len(data)
        self.left -= len(data)
        out = self.comp.process(data) if data else b""
        last = self.left == 0
        if last:
            out += self.comp.finish()
            self.close()
        keep = self.keep
        if keep is not None:
            if self.kept + len(out) > self.keep_max:
                self.keep = None
            else:
                keep.append(out)
                self.kept += len(out)
        if out:
            send_http_chunk(c, out)
        if last:
            send_http_chunk(c, b"")
            if self.keep is not None:
                self.done(b"".join(self.keep))
            return -1
        return budget if budget > 0 else 1  # one slice per round: let the others run


#: input bytes compressed per poll round by BrotliPump (about 1 ms at quality 5)
COMPRESS_SLICE = 64 * 1024

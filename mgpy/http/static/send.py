"""Static files, sending side: the body pumps (zero-copy files, shared brotli output).

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

On-the-fly brotli costs a small, fixed amount per connection, however slowly the
client reads.  A pump runs only when the send queue is empty and queues at most one
``SEND_SLICE`` (one chunk), so a connection never holds more than that of output.
``BrotliJob`` compresses one file version **once**, as far as its fastest reader has
read (a reader that catches up compresses the next ``COMPRESS_SLICE``, flushed, for
everyone); every reader of that version is a ``BrotliTee`` at its own offset in the
job's output, and the finished output becomes the cached body that later requests
get with a Content-Length (``BytesPump``).  ``BrotliPump`` is a private, windowed
compressor for a file too big to share, whose output proved too big to cache, or
while every shared-job slot is busy.  Each compressor state costs
about 2 MiB (``BROTLI_LGWIN``, flushed every slice); at most ``BROTLI_STATES`` live in
the process at once (``take_state``): past that the caller serves identity.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import brotli  # type: ignore[import-untyped]

from ..respond import send_http_chunk

if TYPE_CHECKING:
    from ...core import Connection

__all__ = [
    "BROTLI_STATES",
    "BrotliJob",
    "BrotliPump",
    "BrotliTee",
    "BytesPump",
    "FilePump",
    "give_state",
    "take_state",
]

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


class BytesPump:
    """Send a shared, immutable body (a cached brotli output) one slice per call.

    The body is referenced, never copied per connection: a slow reader holds at most
    ``SEND_SLICE`` of it in its send queue.
    """

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def __call__(self, c: Connection, budget: int) -> int:
        """Queue the next slice; -1 once everything was queued."""
        data, pos = self.data, self.pos
        n = len(data) - pos
        if n <= 0:
            self.data = b""
            return -1
        if n > SEND_SLICE:
            n = SEND_SLICE
        c.send(memoryview(data)[pos : pos + n])  # sent or copied into the queue: no view kept
        self.pos = pos + n
        return n


# -- brotli ------------------------------------------------------------------------------
#: input bytes compressed per step (about 1.5 ms at quality 5); the output of each step is
#: flushed, so a compressor never holds more than this much input back
COMPRESS_SLICE = 64 * 1024
#: output bytes a pump queues per call (asyncio's 64 KiB high-water mark): what a slow
#: reader can pin in its send queue
SEND_SLICE = 64 * 1024
#: brotli window, log2 (ngx_brotli's brotli_window default, 512 KiB); with a flush every
#: slice a compressor state stays near 2 MiB (the default 22 holds ~5 MiB, and without
#: flushes quality 5 buffers the whole input: 40 MiB for 8 MiB)
BROTLI_LGWIN = 19
#: compressor states alive at once in the process (jobs and private pumps); past it
#: on-the-fly brotli is not offered (identity, or a cached result) -- 8 x ~2 MiB
BROTLI_STATES = 8

_states = [0]  # compressor states alive now (one list: module state without ``global``)


def take_state() -> bool:
    """Count one more compressor state; False (nothing counted) when none is free."""
    if _states[0] >= BROTLI_STATES:
        return False
    _states[0] += 1
    return True


def give_state() -> None:
    """A compressor state was released."""
    if _states[0] > 0:
        _states[0] -= 1


def _compressor(quality: int) -> Any:
    return brotli.Compressor(quality=quality, lgwin=BROTLI_LGWIN)


class BrotliJob:
    """One file version compressed once, shared by its readers (``BrotliTee``).

    Owns ``fd`` and one counted compressor state (``take_state`` was called for it);
    both are released when the last input slice is compressed, on failure, or when
    the last reader leaves before the end (``detach``).  ``parts`` holds the output
    so far (one bytes object per step); at the end they are joined into ``data``,
    which is handed to ``done`` (the cache) and read by the readers still sending.
    """

    __slots__ = (
        "comp",
        "data",
        "done",
        "error",
        "fd",
        "left",
        "off",
        "parts",
        "produced",
        "readers",
    )

    def __init__(self, fd: int, size: int, quality: int, done: Callable[[BrotliJob], None]) -> None:
        self.fd = fd
        self.off = 0
        self.left = size
        self.comp: Any = _compressor(quality)
        self.parts: list[bytes] = []
        self.produced = 0
        self.data: bytes | None = None
        self.error: str | None = None
        self.readers = 0
        self.done = done

    @property
    def live(self) -> bool:
        """Whether a new reader may join (the output from byte 0 is still complete)."""
        return self.error is None and (self.data is not None or self.comp is not None)

    def _release(self) -> None:
        fd = self.fd
        if fd >= 0:
            self.fd = -1
            os.close(fd)
        if self.comp is not None:
            self.comp = None
            give_state()

    def step(self) -> None:
        """Compress the next slice (flushed) and append its output; at the end, join."""
        if self.comp is None:
            return
        want = self.left if self.left < COMPRESS_SLICE else COMPRESS_SLICE
        try:
            data = os.pread(self.fd, want, self.off) if want else b""
        except OSError as e:
            self._fail(f"read: {e.strerror or e}")
            return
        if want and not data:
            self._fail("file shrank while being compressed")
            return
        self.off += len(data)
        self.left -= len(data)
        comp = self.comp
        if self.left:
            out = comp.process(data) + comp.flush()
        else:
            out = comp.process(data) + comp.finish() if data else comp.finish()
        if out:
            self.parts.append(out)
            self.produced += len(out)
        if not self.left:
            self._release()
            parts, self.parts = self.parts, []
            self.data = parts[0] if len(parts) == 1 else b"".join(parts)
            self.done(self)

    def _fail(self, why: str) -> None:
        self.error = why
        self._release()
        self.parts = []
        self.done(self)

    def attach(self) -> None:
        """A reader joined."""
        self.readers += 1

    def detach(self) -> None:
        """A reader left; the last one to leave an unfinished job ends it (frees it all)."""
        self.readers -= 1
        if self.readers <= 0 and self.data is None and self.error is None:
            self._fail("abandoned by its readers")


class BrotliTee:
    """One response reading a shared ``BrotliJob`` at its own offset, as HTTP chunks.

    When it has sent everything compressed so far it compresses the next slice for
    every reader, and yields the rest of the round.  Its own cost is the offset.
    """

    __slots__ = ("idx", "job", "off", "pos")

    def __init__(self, job: BrotliJob) -> None:
        self.job: BrotliJob | None = job
        self.pos = 0  # bytes of output sent
        self.idx = 0  # while the job runs: the part being sent ...
        self.off = 0  # ... and the offset in it
        job.attach()

    def close(self) -> None:
        """Leave the job (idempotent)."""
        job = self.job
        if job is not None:
            self.job = None
            job.detach()

    def __call__(self, c: Connection, budget: int) -> int:
        """Queue one chunk of output; -1 once the last chunk is queued."""
        try:
            return self._step(c, budget)
        except BaseException:
            self.close()  # the manager drops a pump that raised: leave the job
            raise

    def _step(self, c: Connection, budget: int) -> int:
        job = self.job
        if job is None:
            return -1
        n = self._send(c, job)
        if n:
            return n
        if job.data is not None:  # all sent
            self.close()
            send_http_chunk(c, b"")
            return -1
        if job.error is not None:
            why = job.error
            self.close()
            c.error(why)
            return -1
        job.step()  # caught up: compress the next slice for every reader
        n = self._send(c, job)
        return budget if budget > n else n  # one slice per round: let the others run

    def _send(self, c: Connection, job: BrotliJob) -> int:
        data = job.data
        pos = self.pos
        if data is not None:
            n = len(data) - pos
            if n <= 0:
                return 0
            if n > SEND_SLICE:
                n = SEND_SLICE
            send_http_chunk(c, data[pos : pos + n])
        else:
            parts = job.parts
            if self.idx >= len(parts):
                return 0
            part = parts[self.idx]
            n = len(part) - self.off
            if n > SEND_SLICE:
                n = SEND_SLICE
            send_http_chunk(c, part if n == len(part) else part[self.off : self.off + n])
            self.off += n
            if self.off >= len(part):
                self.idx += 1
                self.off = 0
        self.pos = pos + n
        return n


class BrotliPump:
    """A private brotli stream for one response (nothing shared or kept), as HTTP chunks.

    Compresses one flushed ``COMPRESS_SLICE`` per call -- the manager calls a pump only
    when the send queue is empty, so it never runs ahead of what the socket takes --
    and keeps nothing.  Owns ``fd`` and one counted compressor state (``take_state``
    was called for it), released at the end or by ``close()``.
    """

    __slots__ = ("comp", "fd", "left", "off")

    def __init__(self, fd: int, size: int, quality: int) -> None:
        self.fd = fd
        self.off = 0
        self.left = size
        self.comp: Any = _compressor(quality)

    def close(self) -> None:
        """Release the file descriptor and the compressor (idempotent)."""
        fd = self.fd
        if fd >= 0:
            self.fd = -1
            os.close(fd)
        if self.comp is not None:
            self.comp = None
            give_state()

    def __call__(self, c: Connection, budget: int) -> int:
        """Compress and queue one slice; -1 once the last chunk is queued."""
        try:
            return self._step(c, budget)
        except BaseException:
            self.close()
            raise

    def _step(self, c: Connection, budget: int) -> int:
        comp = self.comp
        if comp is None:
            return -1
        want = self.left if self.left < COMPRESS_SLICE else COMPRESS_SLICE
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
        last = self.left == 0
        out = comp.process(data) if data else b""
        out += comp.finish() if last else comp.flush()
        if last:
            self.close()
        if out:
            send_http_chunk(c, out)
        if last:
            send_http_chunk(c, b"")
            return -1
        return budget if budget > 0 else 1  # one slice per round: let the others run

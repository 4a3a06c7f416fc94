"""The Manager's write path: flushing ``send_mbuf``, body producers (pumps), ``sendfile``,
``shutdown_write``, the last word during ``close()``, and returning freed memory.

``Writer`` is a base class of ``Manager``.  Reads and the poll loop stay in
``manager.py``; docs/internals.md describes pumps and direct writes.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._consts import (
    _CLOSE_IMMEDIATELY,
    _CONNECTING,
    _RESOLVING,
    _SHUT_DONE,
    _W,
    EV_SEND,
    EV_WRITABLE,
)
from .conn import Connection
from .memtrim import TRIM_INTERVAL, trim
from .timers import TimerHandle

if TYPE_CHECKING:
    from ..events import Ev

__all__ = ["Writer"]

log = logging.getLogger("mgpy")

#: bytes one connection's pump may move per poll round, so big downloads share the loop
_PUMP_BUDGET = 4 * 1024 * 1024


class Writer:
    """Writing to sockets (a base class of ``Manager``)."""

    if TYPE_CHECKING:  # provided by Manager
        monotonic: float
        bytes_out: int
        _closed: bool
        _soon: list[tuple[Callable[..., None], tuple[Any, ...]]]
        _trim_h: TimerHandle | None
        _trim_next: float

        def _call(self, c: Connection, ev: Ev, data: Any) -> None: ...
        def _after(self, c: Connection) -> None: ...
        def _fail(self, c: Connection, why: str) -> None: ...
        def _set_mask(self, c: Connection, mask: int) -> None: ...
        def _handler_raised(self, c: Connection, ev: Any) -> None: ...
        def _now_mono(self) -> float: ...
        def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> TimerHandle: ...

    def _flush(self, c: Connection) -> None:
        buf = c.send_mbuf.buf
        try:
            n = c.sock.send(buf)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError as e:
            self._fail(c, f"send: {e.strerror or e}")
            return
        if n:
            self.bytes_out += n
            c._wprog = self.monotonic
            if n == len(buf):
                try:
                    buf.clear()
                except BufferError:
                    c.send_mbuf.remove(n)
                    buf = c.send_mbuf.buf
            else:
                c.send_mbuf.remove(n)
                buf = c.send_mbuf.buf
            try:
                c._h(c, EV_SEND, n)
            except Exception:
                self._handler_raised(c, EV_SEND)
        if buf:
            if not c._mask & _W:
                self._set_mask(c, c._mask | _W)
        else:
            if c._mask & _W:
                self._set_mask(c, c._mask & ~_W)
        if c._above_high and len(buf) <= c.limits.send_low_water:
            c._above_high = False
            self._call(c, EV_WRITABLE, len(buf))

    def _run_pump(self, c: Connection) -> None:
        """Let the connection's body producer write (e.g. sendfile slices), within a budget.

        ``c.pump(c, budget)`` writes to the socket itself (``c.sendfile``) or queues into
        ``send_mbuf``; it returns the bytes it moved, 0 when the socket would block, or -1
        when the body is complete.
        """
        budget = _PUMP_BUDGET
        while True:
            pump = c._pump
            if pump is None or c._closed or c._flags & _CLOSE_IMMEDIATELY:
                return
            if c.send_mbuf.buf:
                if c._tls is not None:
                    c._tls.flush()
                else:
                    self._flush(c)
                if c.send_mbuf.buf or c._closed:
                    return
            if budget <= 0:
                # more next round, other connections first: held until then, or the pump's
                # own sends (which mark c dirty) would run it again within this same poll
                # and one fast reader (or a compressing pump) could hold the loop
                c._x_get()["held"] = True
                self._soon.append((self._resume_pump, (c,)))
                return
            try:
                n = pump(c, budget)
            except Exception:
                log.exception("body producer failed on %r", c)
                c._pump = None
                self._fail(c, "body producer failed")
                return
            if c._sent:
                sent, c._sent = c._sent, 0
                self._call(c, EV_SEND, sent)
            if n < 0:
                c._pump = None
                return
            if n == 0:
                if not c.send_mbuf.buf and not c._mask & _W:
                    self._set_mask(c, c._mask | _W)
                return
            budget -= n

    def _resume_pump(self, c: Connection) -> None:
        x = c._x
        if x is not None:
            x.pop("held", None)
        self._after(c)

    def _sendfile(self, c: Connection, fd: int, offset: int, count: int) -> int:
        """``c.sendfile``: zero-copy file bytes to the socket; count them and fire SEND."""
        n = os.sendfile(c.sock.fileno(), fd, offset, count)
        if n:
            c._wprog = self.monotonic
            c.total_queued += n
            self.bytes_out += n
            c._sent += n  # SEND follows once the pump returns (_run_pump)
        return n

    def _shutdown_write(self, c: Connection) -> None:
        """``c.shutdown_write()`` once the queue is empty: FIN (after close_notify on TLS)."""
        if c._mask & _W or c.sock is None or c._flags & (_CONNECTING | _RESOLVING):
            return  # still writing (or not connected yet): called again from _after
        if c._tls is not None and not c._tls.shutdown_ok():
            return  # close_notify not fully written yet
        c._shut = _SHUT_DONE
        try:
            c.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the peer is gone already: the next read reports it

    def _trim_soon(self) -> None:
        """Big buffers were freed: give the memory back to the OS soon (memtrim)."""
        if self._trim_h is None and not self._closed:
            delay = max(0.0, self._trim_next - self._now_mono())
            self._trim_h = self.call_later(delay, self._trim)

    def _trim(self) -> None:
        self._trim_h = None
        self._trim_next = self._now_mono() + TRIM_INTERVAL
        trim()

    def _last_word(self, c: Connection) -> None:
        """During ``close()``: write what a CLOSE handler queued, once, without blocking."""
        try:
            if c._tls is not None:
                c._tls.last_word()
            else:
                c.sock.send(c.send_mbuf.buf)
        except OSError:
            pass

"""Connection: one socket (listener, accepted or outbound), its buffers and its timers.

A Connection belongs to one Manager and is only touched from the thread that polls
it.  Data queued with ``send`` goes to ``send_mbuf`` and is written by the manager
right after the current event returns (not a poll later), so several sends in one
handler leave in one write; a send to a connection other than the one being handled
is written at once.  Events go to ``proto_handler`` when one is set (it forwards to
``handler``), else to ``handler``.

Everything a protocol needs is public and documented in docs/protocols.md: the
buffers (``recv_mbuf.buf`` is parsed in place), ``send``/``sendv``, ``close``/
``abort``/``error``/``shutdown_write``, ``call_later``/``call_soon``, ``total_queued``,
``unsend``, ``peer_eof``, ``pump``/``sendfile``, ``proto_data``.  Underscored
members belong to ``mgpy.core`` alone.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import Error, LocalProtocolError
from ..events import F
from ..limits import Limits
from ..mbuf import Mbuf
from ._consts import (
    _CLOSE_IMMEDIATELY,
    _CLOSING,
    _LISTENING,
    _SEND_AND_CLOSE,
    _SHUT_NONE,
    _SHUT_PENDING,
    _SSL,
    _UDP,
)
from .timers import TimerHandle, check_delay

if TYPE_CHECKING:
    from .manager import Manager

__all__ = ["Connection", "Data", "Handler", "Pump"]

log = logging.getLogger("mgpy")

#: ``handler(c, ev, ev_data)``.  The connection is typed Any so that a handler annotated
#: with ``mgpy.Connection`` (the facade's subclass every manager creates) fits anywhere
Handler = Callable[[Any, Any, Any], None]
Data = bytes | bytearray | memoryview | str
#: a body producer: ``pump(c, budget) -> bytes moved, 0 (socket full) or -1 (done)``
Pump = Callable[["Connection", int], int]

#: flags under which a send is never written straight away
_NOT_DIRECT = int(F.UDP | F.CONNECTING | F.RESOLVING | F.LISTENING | F.CLOSE_IMMEDIATELY)
_WRITE = 2  # selectors.EVENT_WRITE
#: a body this large is written at once even from its own handler: batching gains nothing
_DIRECT_BIG = 16384
_FLAG_CACHE: dict[int, F] = {}


class Connection:
    """A connection managed by a ``Manager``: listener, accepted or outbound.

    Attributes users touch: ``recv_mbuf``, ``send_mbuf``, ``flags``, ``user_data``,
    ``handler``, ``proto_handler``, ``proto_data``, ``peer``, ``local``, ``listener``
    (the listening Connection that accepted this one), ``mgr`` and ``limits``.
    """

    __slots__ = (
        "__weakref__",
        "_above_high",
        "_closed",
        "_error",
        "_flags",
        "_h",
        "_handler",
        "_handles",
        "_high",
        "_last_word",
        "_mask",
        "_proto",
        "_pump",
        "_rtime",
        "_send_h",
        "_sent",
        "_shut",
        "_timer",
        "_timer_h",
        "_tls",
        "_wprog",
        "_x",
        "limits",
        "listener",
        "mgr",
        "peer",
        "proto_data",
        "recv_mbuf",
        "send_mbuf",
        "sock",
        "total_queued",
        "user_data",
    )

    def __init__(self, mgr: Manager, sock: Any, handler: Handler, limits: Limits) -> None:
        self.mgr = mgr
        self.sock = sock
        self._handler = handler
        self._proto: Handler | None = None
        self._h: Handler = handler
        #: the protocol's per-connection state (an HTTP exchange, a WebSocket, ...)
        self.proto_data: Any = None
        self.user_data: Any = None
        self._flags = 0
        self.recv_mbuf = Mbuf(max_size=limits.max_recv_buffer)
        self.send_mbuf = Mbuf(max_size=limits.max_send_buffer)
        self.peer: Any = None
        self.limits = limits
        self.listener: Connection | None = None
        #: bytes ever queued for sending (a running total, read-only for protocols: HTTP
        #: finds where a response ends with it)
        self.total_queued = 0
        self._timer = 0.0  # the user's set_timer deadline (wall clock), 0 = none
        self._timer_h: TimerHandle | None = None
        #: handles that may be in the timer heap: None, one handle, or a list of them
        self._handles: TimerHandle | list[TimerHandle] | None = None
        self._send_h: TimerHandle | None = None  # send_timeout watchdog
        self._mask = 0
        self._closed = False
        self._last_word = False  # CLOSE during Manager.close(): a goodbye may still be sent
        self._above_high = False
        self._error: str | None = None
        self._tls: Any = None
        self._x: dict[str, Any] | None = None  # rarely used extras (UDP children, dialing)
        self._pump: Pump | None = None
        self._high = limits.send_high_water
        self._sent = 0  # bytes written by a direct send whose SEND is not delivered yet
        self._wprog = 0.0  # monotonic time of the last write progress (send_timeout)
        self._rtime = mgr.monotonic  # monotonic time the socket was last readable
        self._shut = _SHUT_NONE

    # -- handlers and flags -------------------------------------------------------
    @property
    def handler(self) -> Handler:
        """The user's event handler ``fn(c, ev, ev_data)``."""
        return self._handler

    @handler.setter
    def handler(self, fn: Handler) -> None:
        self._handler = fn
        if self._proto is None:
            self._h = fn

    @property
    def proto_handler(self) -> Handler | None:
        """The protocol handler that runs in front of ``handler`` (mongoose's proto_handler).

        A protocol switches the connection to another protocol by assigning it
        (HTTP does on a WebSocket 101).
        """
        return self._proto

    @proto_handler.setter
    def proto_handler(self, fn: Handler | None) -> None:
        self._proto = fn
        if self._h is not _quiet:  # a TLS handshake in progress keeps events hidden
            self._h = fn if fn is not None else self._handler

    @property
    def flags(self) -> F:
        """Connection flags (``F``); set SEND_AND_CLOSE, CLOSE_IMMEDIATELY or USER_* here."""
        v = self._flags
        f = _FLAG_CACHE.get(v)
        if f is None:
            f = F(v)
            if len(_FLAG_CACHE) < 4096:
                _FLAG_CACHE[v] = f
        return f

    @flags.setter
    def flags(self, value: int) -> None:
        v = int(value)
        if v & _CLOSING and not self._flags & _CLOSING:
            # set from another connection's handler or between polls: close in this
            # round, not after the next select() sleeps
            self.mgr._dirty.append(self)
        self._flags = v

    @property
    def local(self) -> Any:
        """Local socket address, e.g. ``("127.0.0.1", 8000)``."""
        try:
            return self.sock.getsockname() if self.sock is not None else None
        except OSError:
            return None

    @property
    def closed(self) -> bool:
        """True once CLOSE has been delivered."""
        return self._closed

    @property
    def is_closing(self) -> bool:
        """True once a close was asked for (SEND_AND_CLOSE or CLOSE_IMMEDIATELY set).

        Protocols that deliver several events from one read stop when it turns True.
        """
        return bool(self._flags & _CLOSING)

    @property
    def is_listener(self) -> bool:
        """True for a listening connection (TCP or UDP)."""
        return bool(self._flags & _LISTENING)

    @property
    def is_tls(self) -> bool:
        """True when the connection (or listener) speaks TLS."""
        return bool(self._flags & _SSL)

    @property
    def is_websocket(self) -> bool:
        """True once the connection has switched to WebSocket framing."""
        return bool(self._flags & F.IS_WEBSOCKET)

    @property
    def peer_eof(self) -> bool:
        """True once the peer has finished sending (FIN, or TLS close_notify)."""
        x = self._x
        return x is not None and "eof" in x

    @property
    def last_read(self) -> float:
        """Monotonic time (``mgr.monotonic`` clock) the socket was last readable: data or
        EOF arrived.  Until then, when the connection was made.  The core closes the
        longest-idle reclaimable connections first when it runs out of descriptors."""
        return self._rtime

    @property
    def above_high_water(self) -> bool:
        """True while the send queue passed ``Limits.send_high_water`` and has not yet
        drained below ``send_low_water`` (WRITABLE fires when it has)."""
        return self._above_high

    @property
    def error_reason(self) -> str | None:
        """The reason delivered with ERROR when the connection closes (None: no ERROR).

        Set it to have a later close (e.g. after an error response was written) report
        the error; ``error(reason)`` sets it and closes at once.
        """
        return self._error

    @error_reason.setter
    def error_reason(self, reason: str | None) -> None:
        self._error = reason

    def _x_get(self) -> dict[str, Any]:
        x = self._x
        if x is None:
            x = self._x = {}
        return x

    # -- sending ----------------------------------------------------------------
    def send(self, data: Data) -> int:
        """Queue ``data`` (bytes or str, UTF-8) for sending; return the bytes queued.

        The data is written as soon as the current event handler returns.  A send
        that would grow ``send_mbuf`` past ``Limits.max_send_buffer`` is refused
        (returns 0) and the connection is closed with an ERROR event.  On a
        listener (e.g. from a broadcast to every connection) nothing is sent: 0.
        """
        if self._closed and not self._last_word:
            return 0
        if isinstance(data, str):
            data = data.encode()
        if self._flags & _NOT_DIRECT or self._shut:
            if self._flags & _LISTENING:
                return 0  # writing to a listening socket would fail and close the listener
            if self._flags & _UDP:
                return self.mgr._udp_send(self, data)
            if self._shut:
                return 0  # shutdown_write(): nothing may follow the FIN
        else:
            mgr = self.mgr
            if (
                mgr._cur is not self
                and not self.send_mbuf.buf
                and not self._mask & _WRITE
                and self._pump is None
                and self._tls is None
                and self.sock is not None
            ):
                # Written straight away when this connection is not the one whose event is
                # being handled (a push from another connection, a timer, a broadcast): a
                # loop pushing to many clients becomes back-to-back writes.  Its own
                # handler's sends are batched and leave in one write after the event.
                return self._send_now(mgr, data)
        mb = self.send_mbuf
        buf = mb.buf
        n = len(data)
        if len(buf) + n <= mb.size:  # fits the capacity: Mbuf.append inlined
            try:
                buf += data
            except BufferError:
                mb.append(data)
        elif not mb.append(data):
            if not n:
                return 0
            self._error = "send queue limit exceeded (Limits.max_send_buffer)"
            self._flags |= _CLOSE_IMMEDIATELY
            log.warning("%r: %s", self, self._error)
            return 0
        self.total_queued += n
        if len(mb.buf) > self._high:
            self._above_high = True
        self.mgr._dirty.append(self)
        return n

    def _send_now(self, mgr: Manager, *parts: bytes | bytearray | memoryview) -> int:
        """Write ``parts`` to the socket now; queue what the kernel does not take."""
        n = 0
        for p in parts:
            n += len(p)
        try:
            sent = self.sock.send(parts[0]) if len(parts) == 1 else self.sock.sendmsg(parts)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as e:
            self._error = f"send: {e.strerror or e}"
            self._flags |= _CLOSE_IMMEDIATELY
            mgr._dirty.append(self)
            return 0
        self.total_queued += n
        if sent:
            mgr.bytes_out += sent
            self._sent += sent  # SEND is delivered after the current event (no re-entry)
        if sent < n:
            mb = self.send_mbuf
            skip = sent
            for p in parts:
                if skip >= len(p):
                    skip -= len(p)
                    continue
                if not mb.append(memoryview(p)[skip:]):
                    self._error = "send queue limit exceeded (Limits.max_send_buffer)"
                    self._flags |= _CLOSE_IMMEDIATELY
                    break
                skip = 0
            if len(mb.buf) > self._high:
                self._above_high = True
        mgr._dirty.append(self)
        return n

    def sendv(self, head: bytes, body: bytes | bytearray | memoryview) -> int:
        """Send ``head + body`` without joining them (one ``sendmsg`` when written at once).

        For a big payload behind a small header (a WebSocket frame, a response):
        the payload is not copied to glue the header on.
        """
        mgr = self.mgr
        if (
            (mgr._cur is not self or len(body) >= _DIRECT_BIG)
            and not self._flags & _NOT_DIRECT
            and not self._shut
            and not self.send_mbuf.buf
            and not self._mask & _WRITE
            and self._pump is None
            and self._tls is None
            and self.sock is not None
        ):
            return self._send_now(mgr, head, body)
        return self.send(head) + self.send(body)

    def printf(self, fmt: str, *args: Any) -> int:
        """Queue ``fmt % args`` (UTF-8); return the bytes queued."""
        return self.send(fmt % args if args else fmt)

    def unsend(self, n: int) -> int:
        """Drop up to the last ``n`` queued bytes that have not been written yet.

        Returns how many were dropped (``total_queued`` goes down by as much).  HTTP uses
        it to cut a body sent past a response's end while it is still queued.
        """
        buf = self.send_mbuf.buf
        cut = n if n <= len(buf) else len(buf)
        if cut <= 0:
            return 0
        try:
            del buf[len(buf) - cut :]
        except BufferError:
            return 0
        self.total_queued -= cut
        return cut

    # -- closing ------------------------------------------------------------------------
    def close(self) -> None:
        """Close gracefully: everything queued is sent first (``F.SEND_AND_CLOSE``).

        ``abort()`` drops queued data instead, ``error(reason)`` closes with an ERROR
        event, and ``ws_close(code, reason)`` does a WebSocket close handshake.
        """
        self._flags |= _SEND_AND_CLOSE
        self.mgr._dirty.append(self)

    def abort(self) -> None:
        """Close at the end of this event, dropping queued data (``F.CLOSE_IMMEDIATELY``)."""
        self._flags |= _CLOSE_IMMEDIATELY
        self.mgr._dirty.append(self)

    def error(self, reason: str) -> None:
        """Fail the connection: ERROR(``reason``) then CLOSE, queued data dropped.

        mongoose 7's ``mg_error``.  The first reason given wins.
        """
        if self._error is None:
            self._error = str(reason)
        self.abort()

    def shutdown_write(self) -> None:
        """Half-close: once everything queued is written, send FIN (TLS: close_notify first).

        Reading goes on, so the peer's answer (or its EOF) still arrives; later sends
        are dropped.  The connection stays open until it is closed or the peer closes.
        """
        if self._shut or self._flags & _LISTENING:
            return
        self._shut = _SHUT_PENDING
        self.mgr._dirty.append(self)

    # -- timers --------------------------------------------------------------------------
    def set_timer(self, when: float) -> float:
        """Deliver Ev.TIMER at wall-clock time ``when`` (``time.time()`` based); 0 cancels.

        Returns the previous deadline (0 if none).  The timer fires once; re-arm it
        from the TIMER handler for periodic work.  Raises ``ValueError``/``TypeError``
        for a deadline that is not a finite number >= 0.  This timer is the
        application's: protocols use ``call_later``.
        """
        if when.__class__ is not float or not 0.0 <= when < math.inf:
            when = check_delay(when, "set_timer deadline")
        prev = self._timer
        self._timer = when
        if self._closed:
            return prev
        h = self._timer_h
        if not when:
            if h is not None:
                h.cancel()
                self._timer_h = None
            return prev
        if h is None:
            h = self._timer_h = TimerHandle(self.mgr, self, self.mgr._fire_timer, (self,))
        h.arm_at(self.mgr._wall_to_mono(when))
        return prev

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> TimerHandle:
        """Run ``fn(*args)`` after ``delay`` seconds (monotonic clock); return its handle.

        The call is cancelled if the connection closes first.  What ``fn`` queues is
        written right after it returns, and an exception it raises closes only this
        connection (logged).  Use it for protocol timeouts; ``set_timer`` stays the
        application's.
        """
        delay = check_delay(delay)
        if self._closed:
            raise Error("call_later on a closed connection")
        h = TimerHandle(self.mgr, self, fn, args)
        h.arm_at(self.mgr._now_mono() + delay)
        return h

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` in this poll round, after the current I/O (skipped if closed).

        Like ``call_later(0, ...)`` without a timer: for work deferred out of the
        current event (resume parsing, re-deliver data).  What ``fn`` queues is written
        right after it returns.
        """
        self.mgr._soon.append((self.mgr._run_for, (self, fn, args)))

    def _list(self, h: TimerHandle) -> None:
        hs = self._handles
        if hs is None:
            self._handles = h  # the usual case: one handle, no list object
        elif isinstance(hs, list):
            hs.append(h)
        else:
            self._handles = [hs, h]

    def _unlist(self, h: TimerHandle) -> None:
        hs = self._handles
        if hs is h:
            self._handles = None
        elif isinstance(hs, list):
            try:
                hs.remove(h)
            except ValueError:
                return
            if len(hs) == 1:
                self._handles = hs[0]

    def _release_timers(self) -> None:
        """Closed: cancel every handle (each drops what it references)."""
        hs = self._handles
        self._handles = None
        if isinstance(hs, list):
            for h in hs:
                h._listed = False
                h.cancel()
        elif hs is not None:
            hs._listed = False
            hs.cancel()
        for t in (self._timer_h, self._send_h):
            if t is not None:
                t.cancel()
        self._timer_h = self._send_h = None

    # -- body producers ------------------------------------------------------------------
    @property
    def pump(self) -> Pump | None:
        """The body producer, ``fn(c, budget) -> int``, run whenever the send queue is empty.

        It moves at most ``budget`` bytes (with ``c.send`` or ``c.sendfile``) and
        returns how many it moved, 0 when the socket is full (it runs again when the
        socket has room), or -1 when the body is complete (it is then removed).
        Assigning a new one releases the old one (its ``close()`` is called if it has
        one); ``close()`` is also called when the connection closes.  A graceful close
        waits for the pump to finish.
        """
        return self._pump

    @pump.setter
    def pump(self, fn: Pump | None) -> None:
        old = self._pump
        if old is not None and old is not fn:
            release = getattr(old, "close", None)
            if release is not None:
                release()
        self._pump = fn
        if fn is not None and not self._closed:
            self.mgr._dirty.append(self)

    def sendfile(self, fd: int, offset: int, count: int) -> int:
        """Write up to ``count`` bytes of file ``fd`` from ``offset`` straight to the socket.

        Zero-copy (``os.sendfile``), for a pump.  Returns the bytes written (counted in
        ``total_queued``, SEND fires), 0 when the socket is full.  Raises ``OSError``
        when sendfile cannot be used (TLS: ``LocalProtocolError``; use ``c.send``).
        """
        if self._tls is not None or self.sock is None:
            raise LocalProtocolError("sendfile() needs a plain TCP connection")
        return self.mgr._sendfile(self, fd, offset, count)

    # -- dialling --------------------------------------------------------------------------
    def redial(self) -> None:
        """Outbound only: drop the socket and dial the same address again on this object.

        Buffers are cleared; the handler gets CONNECT again (0 or an error code) as for
        the first connect.  HTTP uses it to retry a request on a fresh connection.
        """
        self.mgr._redial(self)

    def __repr__(self) -> str:
        kind = "listener" if self._flags & _LISTENING else "conn"
        return f"<Connection {kind} peer={self.peer!r}{' closed' if self._closed else ''}>"


def _quiet(c: Connection, ev: Any, ev_data: Any) -> None:
    """The event sink of a TLS server connection whose handshake is not done."""

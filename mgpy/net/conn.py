"""Connection: one socket (listener, accepted or outbound) and its buffers.

A Connection belongs to one Manager and is only touched from the thread that
polls it.  Data queued with ``send`` goes to ``send_mbuf`` and is written by
the manager right after the current event returns (not a poll later), so
several sends in one handler leave in one write.  Events are delivered to
``proto_handler`` when one is set (it forwards to ``handler``), else to
``handler``.  Internals the manager and protocol handlers use start with ``_``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..events import F, Headers
from ..limits import Limits
from ..mbuf import Mbuf
from ._consts import (
    _CLOSE_IMMEDIATELY,
    _CLOSING,
    _LISTENING,
    _SEND_AND_CLOSE,
    _UDP,
)

if TYPE_CHECKING:
    from .manager import Manager

__all__ = ["Connection", "Handler"]

log = logging.getLogger("mgpy")

Handler = Callable[["Connection", Any, Any], None]
Data = bytes | bytearray | memoryview | str

#: flags under which a send is never written straight away
_NOT_DIRECT = int(F.UDP | F.CONNECTING | F.RESOLVING | F.LISTENING | F.CLOSE_IMMEDIATELY)
_WRITE = 2  # selectors.EVENT_WRITE
#: a body this large is written at once even from its own handler: batching gains nothing
_DIRECT_BIG = 16384
_FLAG_CACHE: dict[int, F] = {}


class Connection:
    """A connection managed by a ``Manager``: listener, accepted or outbound.

    Attributes users touch: ``recv_mbuf``, ``send_mbuf``, ``flags``,
    ``user_data``, ``handler``, ``proto_handler``, ``proto_data``, ``peer``,
    ``local``, ``listener`` (the listening Connection that accepted this one),
    ``mgr`` and ``limits``.
    """

    __slots__ = (
        "__weakref__",
        "_above_high",
        "_closed",
        "_error",
        "_expire_at",
        "_expire_q",
        "_flags",
        "_h",
        "_handler",
        "_high",
        "_mask",
        "_nq",
        "_on_expire",
        "_proto",
        "_pump",
        "_sent",
        "_timer",
        "_timer_q",
        "_tls",
        "_wprog",
        "_wq",
        "_x",
        "limits",
        "listener",
        "mgr",
        "peer",
        "proto_data",
        "recv_mbuf",
        "send_mbuf",
        "sock",
        "user_data",
    )

    def __init__(self, mgr: Manager, sock: Any, handler: Handler, limits: Limits) -> None:
        self.mgr = mgr
        self.sock = sock
        self._handler = handler
        self._proto: Handler | None = None
        self._h: Handler = handler
        self.proto_data: Any = None
        self.user_data: Any = None
        self._flags = 0
        self.recv_mbuf = Mbuf(max_size=limits.max_recv_buffer)
        self.send_mbuf = Mbuf(max_size=limits.max_send_buffer)
        self.peer: Any = None
        self.limits = limits
        self.listener: Connection | None = None
        self._timer = 0.0
        self._timer_q = 0.0  # the deadline of the timer entry queued in the manager's heap
        self._expire_at = 0.0
        self._expire_q = 0.0
        self._on_expire: Callable[[Connection], None] | None = None
        self._mask = 0
        self._closed = False
        self._above_high = False
        self._error: str | None = None
        self._tls: Any = None
        self._x: dict[str, Any] | None = None  # rarely used extras (UDP children, connect state)
        self._nq = 0  # bytes ever queued with send(): protocol layers track responses with it
        #: a body producer (e.g. sendfile), see Manager._run_pump
        self._pump: Callable[[Connection, int], int] | None = None
        self._high = limits.send_high_water
        self._sent = 0  # bytes written by a direct send whose SEND is not delivered yet
        self._wprog = 0.0  # monotonic time of the last write progress (send_timeout)
        self._wq = False  # a send_timeout heap entry is queued

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
        """The protocol handler that runs in front of ``handler`` (mongoose's proto_handler)."""
        return self._proto

    @proto_handler.setter
    def proto_handler(self, fn: Handler | None) -> None:
        self._proto = fn
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
    def is_websocket(self) -> bool:
        """True once the connection has switched to WebSocket framing."""
        return bool(self._flags & F.IS_WEBSOCKET)

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
        if self._closed:
            return 0
        if isinstance(data, str):
            data = data.encode()
        if self._flags & _NOT_DIRECT:
            if self._flags & _LISTENING:
                return 0  # writing to a listening socket would fail and close the listener
            if self._flags & _UDP:
                return self.mgr._udp_send(self, data)
        else:
            mgr = self.mgr
            if (
                mgr._cur is not self
                and not self.send_mbuf._buf
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
        buf = mb._buf
        n = len(data)
        if len(buf) + n <= mb._size:  # fits the capacity: Mbuf.append inlined
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
        self._nq += n
        if len(mb._buf) > self._high:
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
        self._nq += n
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
            if len(mb._buf) > self._high:
                self._above_high = True
        mgr._dirty.append(self)
        return n

    def _sendv(self, head: bytes, body: bytes) -> int:
        """Send ``head + body`` without joining them (one write when written at once)."""
        mgr = self.mgr
        if (
            (mgr._cur is not self or len(body) >= _DIRECT_BIG)
            and not self._flags & _NOT_DIRECT
            and not self.send_mbuf._buf
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

    def close(self) -> None:
        """Close gracefully: everything queued is sent first (``F.SEND_AND_CLOSE``).

        Use ``c.flags |= F.CLOSE_IMMEDIATELY`` to drop queued data instead, and
        ``c.ws_close(code, reason)`` for a WebSocket close handshake.
        """
        self._flags |= _SEND_AND_CLOSE
        self.mgr._dirty.append(self)

    def set_timer(self, when: float) -> float:
        """Deliver Ev.TIMER at wall-clock time ``when`` (``time.time()`` based); 0 cancels.

        Returns the previous deadline (0 if none).  The timer fires once; re-arm it
        from the TIMER handler for periodic work.
        """
        prev = self._timer
        self._timer = when
        if when and not self._closed and (not self._timer_q or when < self._timer_q):
            # one heap entry per connection: a later deadline is re-queued when the
            # earlier entry pops, so re-arming on every RECV does not grow the heap
            self.mgr._schedule_timer(self, when)
        return prev

    # -- HTTP / WebSocket helpers (implemented in mgpy.net.http) -----------------
    def set_protocol_http_websocket(self) -> None:
        """Speak HTTP/1.1 + WebSocket on this connection (or on every accepted one)."""
        _net_http.set_protocol_http_websocket(self)

    def send_head(self, code: int, length: int = -1, headers: Headers = None) -> None:
        """Send a response head; ``length`` -1 means chunked (HTTP/1.1) or close-delimited."""
        _net_respond.send_head(self, code, length, headers)

    def send_http_chunk(self, data: Data) -> None:
        """Send one chunk of a chunked response; an empty chunk ends the response."""
        _net_respond.send_http_chunk(self, data)

    def printf_http_chunk(self, fmt: str, *args: Any) -> None:
        """Send ``fmt % args`` as one chunk of a chunked response."""
        self.send_http_chunk(fmt % args if args else fmt)

    def send_websocket_frame(self, op: int, data: Data = b"") -> None:
        """Send a WebSocket frame; OR ``WS_DONT_FIN`` into ``op`` for a non-final fragment."""
        _net_ws.send_websocket_frame(self, op, data)

    def printf_websocket_frame(self, op: int, fmt: str, *args: Any) -> None:
        """Send ``fmt % args`` as a WebSocket frame."""
        self.send_websocket_frame(op, fmt % args if args else fmt)

    def ws_close(self, code: int = 1000, reason: str = "") -> None:
        """Start the WebSocket close handshake; the TCP connection closes after the reply."""
        _net_ws.ws_close(self, code, reason)

    def __repr__(self) -> str:
        kind = "listener" if self._flags & F.LISTENING else "conn"
        return f"<Connection {kind} peer={self.peer!r}{' closed' if self._closed else ''}>"


# bound once, at the end: these modules use Connection (no import-time cycle)
from . import http as _net_http  # noqa: E402
from . import respond as _net_respond  # noqa: E402
from . import ws as _net_ws  # noqa: E402

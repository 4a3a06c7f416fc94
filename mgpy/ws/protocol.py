"""The WebSocket protocol handler: frames in, keepalive, close handshake.

Installed as ``c.proto_handler`` on the 101 (server: ``mgpy.ws.upgrade``; client: a
verified handshake reply, ``mgpy.ws.client``), replacing the HTTP handler, as
mongoose switches ``c->pfn`` to ``mg_ws_cb``.  Its state, ``WsState``, replaces the
HTTP state in ``c.proto_data``.  Frames in ``recv_mbuf`` become WS_FRAME /
WS_CONTROL_FRAME events for the handler that accepted the upgrade; pongs and close
echoes are sent automatically.

Close: a peer's close is echoed and TCP is closed after it is written (a client waits
for the server to close, RFC 6455 7.1.1); our ``ws_close`` waits
``Limits.ws_close_timeout`` for the peer's reply.  A protocol error sends the close
code the core names (1002/1007/1009) and closes.  ``Manager.close()`` tells an open
peer 1001 "going away" (the manager writes a CLOSE handler's last word).

Keepalive: after ``ws_ping_interval`` without receiving anything a ping is sent; if
nothing (pong or data) arrives within ``ws_pong_timeout`` the connection closes with
1011.  One ``TimerHandle`` per connection carries the ping, pong and close deadlines.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..errors import RemoteProtocolError
from ..events import WS_OP_PING, Ev, F, WsMessage
from ..http.access import log_ws
from ..proto import ws as _core
from ..proto.deflate import DeflateParams
from ..proto.deflate_codec import Compressors

if TYPE_CHECKING:
    from ..core import Connection, Handler, Manager, TimerHandle

__all__ = [
    "WsState",
    "arm_close_timeout",
    "compressors",
    "queue_full",
    "start_close",
    "ws_handler",
    "ws_recv",
    "ws_start",
]

log = logging.getLogger("mgpy")

_RECV = Ev.RECV
_CLOSE = Ev.CLOSE
_EV_WS_FRAME = Ev.WS_FRAME
_EV_WS_CONTROL_FRAME = Ev.WS_CONTROL_FRAME
_NEED_DATA = _core.NEED_DATA
_OPEN = _core.OPEN
_CLOSED = _core.CLOSED
_NO_DEFRAG = F.WEBSOCKET_NO_DEFRAG
_MESSAGES = "ws.messages"  # Manager.counters key
#: the payload of our keepalive pings
_PING_PAYLOAD = b"mgpy"
_COMPRESSORS = "ws.compressors"  # Manager.proto_state key


def compressors(mgr: Manager) -> Compressors:
    """The Manager's pool of zlib compressors for messages sent without context (RFC 7692).

    One compressor per setting serves every connection of the Manager (each message
    ends with a full flush, which resets it): no compressor is made per message.
    """
    pool: Compressors | None = mgr.proto_state.get(_COMPRESSORS)
    if pool is None:
        pool = mgr.proto_state[_COMPRESSORS] = Compressors()
    return pool


class WsState:
    """Per-connection WebSocket state, in ``c.proto_data`` once the connection upgraded."""

    __slots__ = ("client", "dropped", "h", "log", "ping_pending", "timer", "ws")

    def __init__(self, ws: _core.WsProtocol, h: Handler, client: bool) -> None:
        self.ws = ws
        #: the handler that accepted the upgrade (an endpoint's, or the connection's)
        self.h = h
        self.client = client
        self.ping_pending = False
        #: messages dropped under the "drop" slow-consumer policy
        self.dropped = 0
        self.timer: TimerHandle | None = None
        #: access log: (path, monotonic open time) when the manager logs requests
        self.log: tuple[str, float] | None = None


def ws_start(
    c: Connection,
    h: Handler,
    side: str,
    timer: TimerHandle | None = None,
    deflate: DeflateParams | None = None,
) -> WsState:
    """Switch ``c`` to WebSocket framing (after a 101): install the protocol handler.

    ``timer`` is the deadline handle HTTP hands over; it becomes the keepalive timer.
    ``deflate``: the permessage-deflate parameters agreed in the handshake, if any.
    """
    lim = c.limits
    ws = _core.WsProtocol(
        "server" if side == "server" else "client",
        max_message=lim.ws_max_message,
        defrag=not c.flags & _NO_DEFRAG,
        max_fragments=lim.ws_max_fragments,
        deflate=deflate,
        compressors=None if deflate is None else compressors(c.mgr),
    )
    st = WsState(ws, h, side != "server")
    c.proto_data = st
    c.proto_handler = ws_handler
    c.flags |= F.IS_WEBSOCKET
    c.mgr.counters.setdefault(_MESSAGES, 0)
    if timer is not None:
        timer.retarget(_timeout, c, st)
        if lim.ws_ping_interval:
            timer.reschedule(lim.ws_ping_interval)
        else:
            timer.cancel()
            timer = None
        st.timer = timer
    elif lim.ws_ping_interval:
        st.timer = c.call_later(lim.ws_ping_interval, _timeout, c, st)
    return st


def ws_handler(c: Connection, ev: Any, ev_data: Any) -> None:
    """Protocol handler of a WebSocket connection."""
    st = c.proto_data
    if ev == _RECV:
        st.h(c, ev, ev_data)
        ws_recv(c, st)
        return
    if ev == _CLOSE:
        if c.mgr.stopping:
            _goodbye(c, st)
        if st.log is not None:
            log_ws(c.peer, st.log[0], "closed", c.mgr.monotonic - st.log[1])
    st.h(c, ev, ev_data)


def ws_recv(c: Connection, st: WsState) -> None:
    """Turn the frames in recv_mbuf into WS_FRAME / WS_CONTROL_FRAME events."""
    ws = st.ws
    mb = c.recv_mbuf
    ws.defrag = not c.flags & _NO_DEFRAG
    lim = c.limits
    if lim.ws_ping_interval and ws.state == _OPEN and st.timer is not None:
        # anything received proves the peer alive: the next ping is an interval away
        st.ping_pending = False
        st.timer.reschedule(lim.ws_ping_interval)
    counters = c.mgr.counters
    while mb.buf and not c.is_closing:  # closed by a handler: deliver no more
        try:
            ev, n = ws.next_event(mb.buf)
        except RemoteProtocolError as e:
            _failed(c, st, e)
            return
        if n:
            mb.remove(n)
        if ev is _NEED_DATA:
            break
        msg: WsMessage = ev  # type: ignore[assignment]
        if msg.flags & 0x08:  # a control frame (RFC 6455 5.5: opcodes 0x8-0xF)
            out = ws.data_to_send()
            if out and not (msg.opcode == WS_OP_PING and queue_full(c, len(out))):
                c.send(out)
            st.h(c, _EV_WS_CONTROL_FRAME, msg)
            if ws.state == _CLOSED:
                # RFC 6455 7.1.1: the server closes TCP first; a client waits for
                # that (the manager closes at EOF), bounded by ws_close_timeout.
                if not st.client:
                    c.close()
                mb.clear()
                arm_close_timeout(c, st)
                return
        else:
            counters[_MESSAGES] += 1
            st.h(c, _EV_WS_FRAME, msg)
        if c.is_closing:
            return


def queue_full(c: Connection, n: int) -> bool:
    """Would ``n`` more bytes push a non-empty send queue past ``Limits.ws_send_queue``?

    Automatic pongs obey the cap too: a peer that floods pings without reading the
    pongs would otherwise grow the queue to ``max_send_buffer``.  RFC 6455 5.5.3 lets
    an endpoint answer only the most recent ping, so skipping some pongs is allowed.
    """
    cap = c.limits.ws_send_queue
    queued = len(c.send_mbuf.buf)
    return bool(cap and queued and queued + n > cap)


def _failed(c: Connection, st: WsState, e: RemoteProtocolError) -> None:
    out = st.ws.data_to_send()
    if out:
        c.send(out)
    c.error_reason = f"WebSocket protocol error ({e.ws_code}): {e}"
    log.debug("%r: %s", c, c.error_reason)
    c.recv_mbuf.clear()
    c.close()
    arm_close_timeout(c, st)


def arm_close_timeout(c: Connection, st: WsState) -> None:
    """Our close frame went out (or the peer's arrived): give the peer that long to finish."""
    t = c.limits.ws_close_timeout or 1.0
    if st.timer is None or st.timer.cancelled:
        st.timer = c.call_later(t, _timeout, c, st)
    else:
        st.timer.reschedule(t)


def start_close(c: Connection, st: WsState, code: int, reason: str) -> None:
    """Send a close frame; TCP closes when the peer answers (or after ws_close_timeout)."""
    frame = st.ws.close(code, reason)
    if frame:
        c.send(frame)
    if st.ws.state == _CLOSED:
        c.close()
    arm_close_timeout(c, st)


def _timeout(c: Connection, st: WsState) -> None:
    """The WebSocket deadline passed: send a ping, or give up on a silent peer."""
    if c.proto_data is not st:
        return
    ws = st.ws
    if ws.state != _OPEN or c.is_closing:
        if ws.state != _CLOSED and c.error_reason is None:
            c.error_reason = "WebSocket close timed out"
        c.abort()  # (a client whose server kept TCP open after the close is no error)
        return
    lim = c.limits
    if st.ping_pending:
        c.error_reason = "WebSocket keepalive: no pong within ws_pong_timeout"
        start_close(c, st, 1011, "keepalive ping timeout")
        return
    c.send(ws.send(WS_OP_PING, _PING_PAYLOAD))
    assert st.timer is not None
    if lim.ws_pong_timeout:
        st.ping_pending = True
        st.timer.reschedule(lim.ws_pong_timeout)
    elif lim.ws_ping_interval:
        st.timer.reschedule(lim.ws_ping_interval)


def _goodbye(c: Connection, st: WsState) -> None:
    """The manager is shutting down: tell an open peer 1001 "going away" (best effort)."""
    ws = st.ws
    if ws.state == _OPEN:
        c.send(ws.close(1001, "server shutting down"))

"""WebSocket glue: handshakes, frame events, sending with slow-consumer limits, keepalive.

Server side: an upgrade request is validated (``check_client_handshake``:
426 for a wrong version, 400 for a bad key), then WS_HANDSHAKE_REQUEST goes
to the (endpoint) handler, which may answer it with any status to refuse, or
call ``ws_accept(c, protocol=..., headers=...)`` to pick one of the offered
subprotocols and add headers.  Otherwise the 101 goes out and
WS_HANDSHAKE_DONE follows.  Then frames from ``recv_mbuf`` become WS_FRAME /
WS_CONTROL_FRAME events; pongs and close echoes are sent automatically.

Close: a peer's close is echoed and TCP is closed after it is written; our
``ws_close`` waits ``Limits.ws_close_timeout`` for the peer's reply.  A
protocol error sends the close code the core names (1002/1007/1009) and closes.

Keepalive: after ``ws_ping_interval`` without receiving anything a ping is
sent; if nothing (pong or data) arrives within ``ws_pong_timeout`` the
connection closes with 1011.

Slow consumers: a frame that would push the send queue past
``Limits.ws_send_queue`` closes the connection with 1008 (policy "close") or is
dropped (policy "drop", counted in ``ws_dropped(c)``).  Ev.WRITABLE fires when
the queue drains below ``Limits.send_low_water`` after passing high water, so
producers can pace themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import LocalProtocolError, RemoteProtocolError
from ..events import WS_DONT_FIN, Headers, HttpMessage, WsMessage
from ..proto import ws as _core
from ..proto.http1 import response_head
from . import auth as _auth
from . import http as _http
from ._consts import (
    _CLOSE_IMMEDIATELY,
    _CLOSING,
    _IS_WEBSOCKET,
    _NO_DEFRAG,
    _SEND_AND_CLOSE,
    EV_WS_CONTROL_FRAME,
    EV_WS_FRAME,
    EV_WS_HANDSHAKE_DONE,
    EV_WS_HANDSHAKE_REQUEST,
)

if TYPE_CHECKING:
    from .conn import Connection

__all__ = ["send_websocket_frame", "ws_accept", "ws_close", "ws_dropped"]

log = logging.getLogger("mgpy")


_WS_NEED_DATA = _core.NEED_DATA
#: payloads from this size up go out as header + payload, without joining them
_BIG_FRAME = 16384
_OPEN = _core.OPEN
_CLOSED = _core.CLOSED


class WsExtra:
    """Per-connection WebSocket extras (internal): handshake choice, keepalive, drops."""

    __slots__ = ("dropped", "headers", "key", "offered", "ping_pending", "protocol")

    def __init__(self, key: str = "", offered: list[str] | None = None) -> None:
        self.key = key
        self.offered: Sequence[str] = offered or ()
        self.protocol: str | None = None
        self.headers: Sequence[tuple[str, str]] = ()
        self.ping_pending = False
        self.dropped = 0


def ws_accept(c: Connection, protocol: str | None = None, headers: Headers = None) -> None:
    """In WS_HANDSHAKE_REQUEST: accept, choosing ``protocol`` (one offered) and adding headers."""
    st = _http.require_state(c)
    x = st.ws_x
    if not isinstance(x, WsExtra) or st.ws is not None:
        raise LocalProtocolError("ws_accept() is only valid while handling WS_HANDSHAKE_REQUEST")
    if protocol is not None and protocol not in x.offered:
        raise LocalProtocolError(f"subprotocol {protocol!r} was not offered by the client")
    x.protocol = protocol
    from .respond import normalize_headers

    x.headers = normalize_headers(headers)


def ws_dropped(c: Connection) -> int:
    """Number of messages dropped for ``c`` under the "drop" slow-consumer policy."""
    st = c.proto_data
    x = getattr(st, "ws_x", None)
    return x.dropped if isinstance(x, WsExtra) else 0


def ws_server_upgrade(c: Connection, st: _http.HttpState, hm: HttpMessage) -> None:
    """Handle an ``Upgrade: websocket`` request: validate, ask the handler, answer 101."""
    try:
        key = _core.check_client_handshake(hm)
        offered = _core.client_subprotocols(hm)
    except RemoteProtocolError as e:
        st.h = _http._route(st, c, hm.uri)
        _http._protocol_error(c, st, e)
        return
    h = st.h = _http._route(st, c, hm.uri)
    x = st.ws_x = WsExtra(key, offered)
    st.phase = _http._WAIT
    st.resp_started = False
    st.resp_close = True  # a refused handshake closes the connection
    st.nq0 = nq0 = c._nq
    c._expire_at = 0.0
    if st.endpoints:
        opts = _http._endpoint_opts(st, h)
        if opts and opts.get("auth_file"):
            if not _auth.endpoint_auth_ok(c, hm, opts):
                return
    try:
        h(c, EV_WS_HANDSHAKE_REQUEST, hm)
    except Exception:
        _http._app_error(c, st, "WS_HANDSHAKE_REQUEST")
        return
    if c._nq != nq0 or c._flags & _CLOSING or c._closed:
        _http.check_done(c, st)  # refused with a response (or closed by the handler)
        if st.phase == _http._WAIT:
            st.phase = _http._DEAD
            c._flags |= _SEND_AND_CLOSE
        return
    headers = _core.server_handshake_headers(key, x.protocol) + list(x.headers)
    c.send(response_head(101, headers))
    x.key, x.offered, x.headers = "", (), ()  # keep idle WebSockets small
    st.resp_started = True
    ws_start(c, st, "server")
    try:
        h(c, EV_WS_HANDSHAKE_DONE, hm)
    except Exception:
        _http._app_error(c, st, "WS_HANDSHAKE_DONE")
        return
    if c.recv_mbuf._buf:
        ws_recv(c, st)


def ws_start(c: Connection, st: _http.HttpState, side: str) -> None:
    """Switch ``c`` to WebSocket framing (after a 101)."""
    lim = c.limits
    st.ws = _core.WsProtocol(
        "server" if side == "server" else "client",
        max_message=lim.ws_max_message,
        defrag=not c._flags & _NO_DEFRAG,
    )
    if st.ws_x is None:
        st.ws_x = WsExtra()
    st.phase = _http._WS
    st.reader = None
    c._flags |= _IS_WEBSOCKET
    c._on_expire = _http._expired
    mgr = c.mgr
    mgr._set_expire(c, mgr._mono + lim.ws_ping_interval if lim.ws_ping_interval else 0.0)


def ws_recv(c: Connection, st: _http.HttpState) -> None:
    """Turn the frames in recv_mbuf into WS_FRAME / WS_CONTROL_FRAME events."""
    ws = st.ws
    assert ws is not None
    mb = c.recv_mbuf
    mgr = c.mgr
    ws.defrag = not c._flags & _NO_DEFRAG
    x = st.ws_x
    lim = c.limits
    if lim.ws_ping_interval and ws.state == _OPEN:
        # anything received proves the peer alive: the next ping is an interval away
        if x.ping_pending:
            x.ping_pending = False
            mgr._set_expire(c, mgr._mono + lim.ws_ping_interval)
        else:
            c._expire_at = mgr._mono + lim.ws_ping_interval
    while mb._buf and not c._flags & _CLOSING:  # closed by a handler: deliver no more
        try:
            ev, n = ws.next_event(mb._buf)
        except RemoteProtocolError as e:
            _ws_failed(c, st, e)
            return
        if n:
            mb.remove(n)
        if ev is _WS_NEED_DATA:
            break
        msg: WsMessage = ev  # type: ignore[assignment]
        if msg.flags & 0x08:
            out = ws.data_to_send()
            if out and not (msg.flags & 0x0F == 0x9 and _queue_full(c, len(out))):
                c.send(out)
            st.h(c, EV_WS_CONTROL_FRAME, msg)
            if ws.state == _CLOSED:
                # RFC 6455 7.1.1: the server closes TCP first; a client waits for
                # that (the manager closes at EOF), bounded by ws_close_timeout.
                if not st.client:
                    c._flags |= _SEND_AND_CLOSE
                mb.clear()
                _arm_close_timeout(c)
                return
        else:
            mgr.ws_messages += 1
            st.h(c, EV_WS_FRAME, msg)
        if c._flags & _CLOSING:
            return


def _queue_full(c: Connection, n: int) -> bool:
    """Would ``n`` more bytes push a non-empty send queue past ``Limits.ws_send_queue``?

    Automatic pongs obey the cap too: a peer that floods pings without reading the
    pongs would otherwise grow the queue to ``max_send_buffer``.  RFC 6455 5.5.3 lets
    an endpoint answer only the most recent ping, so skipping some pongs is allowed.
    """
    cap = c.limits.ws_send_queue
    queued = len(c.send_mbuf._buf)
    return bool(cap and queued and queued + n > cap)


def _ws_failed(c: Connection, st: _http.HttpState, e: RemoteProtocolError) -> None:
    ws = st.ws
    assert ws is not None
    out = ws.data_to_send()
    if out:
        c.send(out)
    c._error = f"WebSocket protocol error ({e.ws_code}): {e}"
    log.debug("%r: %s", c, c._error)
    c.recv_mbuf.clear()
    c._flags |= _SEND_AND_CLOSE
    _arm_close_timeout(c)


def _arm_close_timeout(c: Connection) -> None:
    t = c.limits.ws_close_timeout
    mgr = c.mgr
    mgr._set_expire(c, mgr._mono + (t if t else 1.0))


def ws_expired(c: Connection, st: _http.HttpState) -> None:
    """The WebSocket deadline passed: send a ping, or give up on a silent peer."""
    ws = st.ws
    if ws is None or ws.state != _OPEN or c._flags & _CLOSING:
        if ws is None or ws.state != _CLOSED:
            c._error = c._error or "WebSocket close timed out"
        c._flags |= _CLOSE_IMMEDIATELY  # (a client whose server kept TCP open is no error)
        return
    x = st.ws_x
    lim = c.limits
    mgr = c.mgr
    if x.ping_pending:
        c._error = "WebSocket keepalive: no pong within ws_pong_timeout"
        ws_close(c, 1011, "keepalive ping timeout")
        return
    c.send(ws.send(_core_ping_op(), b"mgpy"))
    if lim.ws_pong_timeout:
        x.ping_pending = True
        mgr._set_expire(c, mgr._mono + lim.ws_pong_timeout)
    elif lim.ws_ping_interval:
        mgr._set_expire(c, mgr._mono + lim.ws_ping_interval)


def _core_ping_op() -> int:
    return 0x9


def send_websocket_frame(c: Connection, op: int, data: Any = b"") -> None:
    """Send a WebSocket frame (``WS_OP_TEXT``/``BINARY``/``PING``/``PONG``/``CLOSE``/``CONTINUE``).

    OR ``WS_DONT_FIN`` into ``op`` to send a fragment that is not the last.
    Sending on a connection that is not a WebSocket raises LocalProtocolError;
    after our close frame (or the peer's) data is silently discarded.

    Slow consumers: a data frame that would make the send queue exceed
    ``Limits.ws_send_queue`` is refused by policy (a frame sent into an empty
    queue is always accepted, so one message may be larger than the cap).
    "close" starts the close handshake with 1008; "drop" discards a whole
    message (counted by ``ws_dropped``), but a fragment cannot be dropped
    without corrupting its message, so it closes with 1008 too.
    """
    st = c.proto_data
    ws = getattr(st, "ws", None)
    if ws is None:
        raise LocalProtocolError("send_websocket_frame() on a connection that is not a WebSocket")
    if c._closed or ws.state != _OPEN:
        return  # closing: RFC 6455 5.5.1, nothing may follow a close frame
    opcode = op & 0xF
    if opcode == 0x8:
        frame = ws.send(op, data)  # validates the code and reason, enters CLOSING
        c.send(frame)
        _arm_close_timeout(c)
        return
    if isinstance(data, str):
        data = data.encode("utf-8")
    lim = c.limits
    cap = lim.ws_send_queue
    if cap and opcode < 8:
        queued = len(c.send_mbuf._buf)
        if queued and queued + _core.frame_length(len(data), st.client) > cap:
            if lim.ws_slow_policy == "drop" and opcode and not op & WS_DONT_FIN:
                st.ws_x.dropped += 1
                return
            c._error = "WebSocket slow consumer: send queue over Limits.ws_send_queue"
            log.warning("%r: %s; closing with 1008", c, c._error)
            ws_close(c, 1008, "slow consumer")
            return
    if len(data) < _BIG_FRAME or st.client:
        c.send(ws.send(op, data))
        return
    hdr, payload = ws.send_parts(op, data)  # a big payload is not copied to join its header
    if payload:
        c._sendv(hdr, payload)
    else:
        c.send(hdr)


def ws_close(c: Connection, code: int = 1000, reason: str = "") -> None:
    """Send a close frame and close TCP when the peer answers (or after ws_close_timeout)."""
    st = c.proto_data
    ws = getattr(st, "ws", None)
    if ws is None:
        raise LocalProtocolError("ws_close() on a connection that is not a WebSocket")
    frame = ws.close(code, reason)
    if frame:
        c.send(frame)
    if ws.state == _CLOSED:
        c._flags |= _SEND_AND_CLOSE
    _arm_close_timeout(c)


def ws_goodbye(c: Connection, st: _http.HttpState) -> None:
    """The manager is shutting down: tell an open WebSocket peer 1001 "going away" (best effort)."""
    ws = st.ws
    if ws is None or ws.state != _OPEN or c.sock is None or c._tls is not None:
        return
    try:
        c.sock.send(bytes(c.send_mbuf.view()) + ws.close(1001, "server shutting down"))
    except OSError:
        pass

"""The HTTP/1.1 + WebSocket protocol handler (mongoose's mg_http_handler).

``set_protocol_http_websocket(c)`` puts ``http_handler`` in front of the
user's handler.  It forwards every raw event (POLL, RECV, SEND, CLOSE ...) to
the user handler (or the endpoint handler chosen for the current request) and
turns the bytes in ``recv_mbuf`` into HTTP and WebSocket events by driving the
sans-IO cores in ``mgpy.proto``.

Server request flow, per connection (state in ``c.proto_data``, an ``HttpState``):

    head --(no body)--------------------------------> HTTP_REQUEST
    head --(body)--> HTTP_CHUNK* (while incomplete) -> HTTP_REQUEST (body = what was not deleted)
    head --(multipart/form-data)--> HTTP_MULTIPART_REQUEST, PART_BEGIN/DATA/END*,
                                    MULTIPART_REQUEST_END
    head --(Upgrade: websocket)--> WS_HANDSHAKE_REQUEST -> 101 -> WS_HANDSHAKE_DONE -> WS_FRAME* ...

Responses are tracked (``mgpy.net.respond``) so pipelined requests are
answered in order: the next request is parsed only once the current response
is complete.  A handler that writes a raw response with ``c.send`` instead of
the helpers is treated as having answered when it returns.  Protocol errors
answer with the status the core names (400/413/414/431/501/505) and close
with a lingering close (``linger_close``): write side shut down, input
drained until the client closes (at most 5 s idle, 30 s in all).

Timeouts (``Limits``): ``header_timeout`` from the first byte of a request head
(slowloris), ``keepalive_timeout`` while idle between requests,
``body_timeout`` between body reads.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING, Any

from ..errors import LimitExceeded, LocalProtocolError, ProtocolError
from ..events import HttpMessage
from ..proto.http1 import END, NEED_DATA, HttpReader
from ..proto.httputil import glob_match
from ._consts import (
    _CLOSE_IMMEDIATELY,
    _CLOSING,
    _DELETE_CHUNK,
    _LISTENING,
    _SEND_AND_CLOSE,
    EV_HTTP_CHUNK,
    EV_HTTP_REQUEST,
)

if TYPE_CHECKING:
    from ..proto.ws import WsProtocol
    from .conn import Connection, Handler

__all__ = [
    "HttpState",
    "http_handler",
    "register_http_endpoint",
    "send_head",
    "send_http_chunk",
    "send_websocket_frame",
    "set_protocol_http_websocket",
    "ws_close",
]

log = logging.getLogger("mgpy")


#: HTTP_CHUNK follows every read while the body kept so far is at most this large
_CHUNK_EVERY_READ = 16 * 1024

#: RFC 9112 9.6 lingering close after an error answer (nginx lingering_timeout 5 s,
#: lingering_time 30 s): longest silence, and longest total time, spent draining
_LINGER_TIMEOUT = 5.0
_LINGER_TIME = 30.0

# phases of the server side
_IDLE = 0  # waiting for a request head (keep-alive idle if nothing buffered)
_BODY = 1  # receiving a request body
_WAIT = 2  # request dispatched, response not complete yet
_WS = 3  # switched to WebSocket
_DEAD = 4  # protocol error answered; ignore input


class HttpState:
    """Per-connection HTTP state, stored in ``c.proto_data`` (internal)."""

    __slots__ = (
        "answered",
        "body",
        "client",
        "client_x",
        "endpoints",
        "h",
        "hdr_armed",
        "hm",
        "http10",
        "in_recv",
        "keep_alive",
        "linger",
        "mark",
        "method",
        "mp",
        "nq0",
        "phase",
        "reader",
        "resp_chunked",
        "resp_close",
        "resp_end",
        "resp_nobody",
        "resp_started",
        "shut",
        "ws",
        "ws_x",
    )

    def __init__(self, c: Connection, client: bool) -> None:
        self.client = client
        self.reader: HttpReader | None = HttpReader("client" if client else "server", c.limits)
        self.h: Handler = c._handler
        self.phase = _IDLE
        self.hm: HttpMessage | None = None
        self.body: bytearray | None = None
        self.mark = 0
        self.method = "GET"
        self.keep_alive = True
        self.http10 = False
        self.nq0 = 0
        self.resp_end = -1
        self.resp_chunked = False
        self.resp_started = False
        self.resp_close = False
        self.resp_nobody = False  # the response may carry no body (HEAD, 1xx, 204, 304)
        #: the current request's response is complete: another one would be a stray
        #: response (the client would take it for the answer to its next request)
        self.answered = False
        self.in_recv = False
        self.hdr_armed = False
        lst = c.listener
        eps = None
        if lst is not None and isinstance(lst.proto_data, HttpListener):
            eps = lst.proto_data.endpoints or None
        self.endpoints: list[tuple[Any, ...]] | None = eps
        self.ws: WsProtocol | None = None
        self.ws_x: Any = None  # WebSocket extras (handshake choice, ping state)
        self.mp: Any = None  # multipart state while a form is streaming
        self.client_x: Any = None  # client side: the request to send, auth retry state
        self.linger = 0.0  # lingering close: the monotonic time it ends (0: not lingering)
        self.shut = False  # lingering close: our write side is shut down

    def hold_on_eof(self, c: Connection) -> bool:
        """The client half-closed (``Manager._on_eof``): keep ``c`` if an answer is pending.

        A client may shut its sending side right after its request and still read
        the response; an answer given later (a timer, another connection) must reach
        it.  The connection then closes once that response is complete.
        """
        if self.client or self.phase != _WAIT:
            return False
        self.keep_alive = False
        return True


class HttpListener:
    """``proto_data`` of an HTTP listener: its registered endpoints."""

    __slots__ = ("endpoints",)

    def __init__(self) -> None:
        self.endpoints: list[tuple[Any, ...]] = []


def set_protocol_http_websocket(c: Connection) -> None:
    """Attach the HTTP/WebSocket protocol handler to ``c`` (a listener or a connection)."""
    c.proto_handler = http_handler
    if c._flags & _LISTENING:
        if not isinstance(c.proto_data, HttpListener):
            c.proto_data = HttpListener()
    elif not isinstance(c.proto_data, HttpState):
        c.proto_data = HttpState(c, client=False)
        _arm_idle(c, c.proto_data, first=True)


def register_http_endpoint(
    listener: Connection, pattern: str, handler: Handler, **opts: Any
) -> None:
    """Route requests whose path matches glob ``pattern`` to ``handler``.

    ``*`` matches within a path segment, ``**`` across segments, ``?`` one
    character and ``|`` separates alternatives; a literal pattern also matches
    as a prefix ending at ``/``.  The longest match wins.  The endpoint handler
    receives the request's events and every later event of that connection.
    Options: ``auth_domain``/``auth_file`` protect the endpoint with Digest auth.
    """
    set_protocol_http_websocket(listener)
    st = listener.proto_data
    assert isinstance(st, HttpListener)
    auth_file = opts.get("auth_file")
    if isinstance(auth_file, (str, os.PathLike)):
        from .static_fs import protect  # (static_fs imports this module)

        protect(auth_file)  # a credentials file is never served as a static file
    st.endpoints.append((pattern, handler, opts, len(st.endpoints)))


def _route(st: HttpState, c: Connection, uri: str) -> Handler:
    eps = st.endpoints
    if not eps:
        return c._handler
    best: tuple[int, int, int] | None = None
    best_h: Handler = c._handler
    for pattern, handler, _opts, order in eps:
        n = glob_match(pattern, uri)
        if n < 0:
            continue
        key = (n, len(pattern), -order)
        if best is None or key > best:
            best, best_h = key, handler
    return best_h


def _endpoint_opts(st: HttpState, handler: Handler) -> dict[str, Any] | None:
    for _pattern, h, opts, _order in st.endpoints or ():
        if h is handler:
            return opts  # type: ignore[no-any-return]
    return None


# --------------------------------------------------------------------------------
# the protocol handler
# --------------------------------------------------------------------------------
def http_handler(c: Connection, ev: Any, ev_data: Any) -> None:
    """Protocol handler: HTTP/1.1 and WebSocket in front of the user handler."""
    st = c.proto_data
    if ev == 3:  # RECV
        st.h(c, ev, ev_data)
        if st.phase == _WS:
            _ws.ws_recv(c, st)
        elif st.client:
            _client.client_recv(c, st)
        elif st.phase != _DEAD and not st.in_recv:
            _server_recv(c, st)
        elif st.linger:
            _linger_recv(c, st)
        return
    if ev == 0 or ev == 4:  # POLL, SEND
        if st.__class__ is HttpListener:
            c._handler(c, ev, ev_data)
            return
        st.h(c, ev, ev_data)
        if st.phase == _WAIT:
            check_done(c, st)
        elif st.linger and not st.shut:
            _linger_shut(c, st)
        if st.mp is not None:
            _formdata.mp_poll(c, st)
        return
    if ev == 1:  # ACCEPT
        st = c.proto_data = HttpState(c, client=False)
        _arm_idle(c, st, first=True)
        st.h(c, ev, ev_data)
        return
    if ev == 5:  # CLOSE
        if st.__class__ is HttpListener:
            c._handler(c, ev, ev_data)
            return
        if st.mp is not None:
            _formdata.mp_abort(c, st)
        if st.client:
            _client.client_close(c, st)
        elif st.ws is not None and c.mgr._stopping:
            _ws.ws_goodbye(c, st)
        st.h(c, ev, ev_data)
        return
    if ev == 2:  # CONNECT
        if st.client and ev_data == 0:
            _client.client_connected(c, st)
            return
        st.h(c, ev, ev_data)
        return
    if st.__class__ is HttpListener:
        c._handler(c, ev, ev_data)
    else:
        st.h(c, ev, ev_data)
        if ev == 6 and st.phase == _WAIT:  # TIMER: an asynchronous answer may be complete
            check_done(c, st)
        elif ev == 7 and st.phase == _IDLE and not st.client and not st.in_recv:  # WRITABLE
            if c.recv_mbuf._buf and not c._flags & _CLOSING:
                _server_recv(c, st)  # the responses queued so far drained: read on


def _server_recv(c: Connection, st: HttpState) -> None:
    """Parse requests from recv_mbuf until more data is needed or a response is pending."""
    mb = c.recv_mbuf
    reader = st.reader
    assert reader is not None
    st.in_recv = True
    try:
        # reader.in_body: after a body's last byte, END comes from one more call (no bytes)
        while (mb._buf or reader.in_body) and st.phase <= _BODY and not c._flags & _CLOSING:
            if st.mp is not None and st.mp.pending:
                break  # the handler has not consumed the last part data: stay paused
            if c._above_high and st.phase == _IDLE:
                # Backpressure: a client that pipelines requests without reading the
                # answers gets no more of them answered until the send queue drains
                # below low water (Ev.WRITABLE resumes), so queued responses stay near
                # send_high_water instead of growing to max_send_buffer per connection.
                # No timeout meanwhile: a slow reader is not a slow sender.
                c._expire_at = 0.0
                break
            try:
                ev, n = reader.next_event(mb._buf)
            except ProtocolError as e:
                _protocol_error(c, st, e)
                return
            if n:
                buf = mb._buf
                if n == len(buf):
                    try:
                        buf.clear()
                    except BufferError:
                        mb.remove(n)
                else:
                    mb.remove(n)
            if ev is NEED_DATA:
                break
            cls = ev.__class__
            if cls is HttpMessage:
                if reader.in_body or ev.upgrade or st.endpoints:  # type: ignore[attr-defined]
                    _on_head(c, st, ev)  # type: ignore[arg-type]
                    continue
                # the hot path: a request without a body, no routing: _on_head and
                # _dispatch_request inlined
                c.mgr.requests += 1
                st.hdr_armed = False
                st.method = ev.method  # type: ignore[attr-defined]
                st.keep_alive = ev.keep_alive  # type: ignore[attr-defined]
                st.http10 = ev.proto == "HTTP/1.0"  # type: ignore[attr-defined]
                h = st.h = c._handler
                st.phase = _WAIT
                st.resp_end = -1
                st.resp_started = st.resp_chunked = st.resp_close = st.resp_nobody = False
                st.answered = False
                st.nq0 = c._nq
                c._expire_at = 0.0
                try:
                    h(c, EV_HTTP_REQUEST, ev)
                except Exception:
                    _app_error(c, st, "HTTP_REQUEST")
                    return
                if st.phase == _WAIT:
                    check_done(c, st)
            elif cls is bytes:
                _on_body(c, st, ev)  # type: ignore[arg-type]
            elif ev is END:
                _on_end(c, st)
        if st.phase == _BODY and not c._flags & _CLOSING:
            _body_progress(c, st)
        elif st.phase == _IDLE and mb._buf and not st.hdr_armed and not c._above_high:
            _arm_header(c, st)  # part of a head is here: it must complete in header_timeout
    finally:
        st.in_recv = False


def _on_head(c: Connection, st: HttpState, hm: HttpMessage) -> None:
    mgr = c.mgr
    mgr.requests += 1
    st.hdr_armed = False
    st.method = hm.method
    st.resp_started = False
    st.answered = False
    st.keep_alive = hm.keep_alive
    st.http10 = hm.proto == "HTTP/1.0"
    reader = st.reader
    assert reader is not None
    if hm.upgrade == "websocket":
        if reader.in_body:
            _protocol_error(c, st, ProtocolError("WebSocket upgrade request with a body"))
            return
        _ws.ws_server_upgrade(c, st, hm)
        return
    if reader.in_body:
        st.phase = _BODY
        st.hm = hm
        st.body = bytearray()
        st.mark = 0
        mgr._set_expire(c, mgr._mono + c.limits.body_timeout if c.limits.body_timeout else 0.0)
        ctype = hm.header("content-type")
        if ctype is not None and ctype[:19].lower() == "multipart/form-data":
            if not _formdata.mp_start(c, st, hm, ctype):
                return
        if hm.expect_continue and not c._flags & _CLOSING:
            c.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        return
    _dispatch_request(c, st, hm)


def _on_body(c: Connection, st: HttpState, data: bytes) -> None:
    if st.mp is not None:
        _formdata.mp_data(c, st, data)
        return
    body = st.body
    assert body is not None
    body += data
    if len(body) > c.limits.max_body:
        # a streaming handler takes (and deletes) the body so far before the limit applies
        _body_progress(c, st, force=True)
        if st.phase == _BODY and len(body) > c.limits.max_body:
            _protocol_error(c, st, LimitExceeded("request body larger than Limits.max_body", 413))


def _body_progress(c: Connection, st: HttpState, force: bool = False) -> None:
    """More body is on its way: refresh body_timeout, deliver HTTP_CHUNK (deliver_chunk)."""
    mgr = c.mgr
    if c.limits.body_timeout:
        mgr._set_expire(c, mgr._mono + c.limits.body_timeout)
    if st.mp is not None:
        return
    st.h = _route(st, c, st.hm.uri) if st.hm is not None else st.h
    try:
        deliver_chunk(c, st, force)
    except Exception:
        _app_error(c, st, "HTTP_CHUNK")


def deliver_chunk(c: Connection, st: HttpState, force: bool = False) -> None:
    """Fire HTTP_CHUNK with the body received so far (server and client); honour DELETE_CHUNK.

    While the handler keeps the body (no DELETE_CHUNK), each event copies all of it
    into ``hm.body``: past ``_CHUNK_EVERY_READ`` bytes kept, HTTP_CHUNK waits until the
    body has grown by a quarter, so a body dripped in tiny reads costs O(n), not O(n^2).
    """
    body = st.body
    hm = st.hm
    if body is None or hm is None:
        return
    kept = st.mark
    grown = len(body) - kept
    if not grown or (kept > _CHUNK_EVERY_READ and grown < kept >> 2 and not force):
        return
    hm.body = bytes(body)
    c._flags &= ~_DELETE_CHUNK
    st.h(c, EV_HTTP_CHUNK, hm)
    if c._flags & _DELETE_CHUNK:
        c._flags &= ~_DELETE_CHUNK
        body.clear()
        hm.body = b""
    st.mark = len(body)


def _on_end(c: Connection, st: HttpState) -> None:
    hm = st.hm
    assert hm is not None
    if st.mp is not None:
        _formdata.mp_end(c, st)
        return
    body = st.body
    hm.body = bytes(body) if body else b""
    st.body = None
    st.hm = None
    _dispatch_request(c, st, hm)


def _dispatch_request(c: Connection, st: HttpState, hm: HttpMessage) -> None:
    h = st.h = _route(st, c, hm.uri) if st.endpoints else c._handler
    st.phase = _WAIT
    st.resp_end = -1
    st.resp_started = False
    st.resp_chunked = False
    st.resp_close = False
    st.resp_nobody = False
    st.hm = None
    st.nq0 = c._nq
    c._expire_at = 0.0
    if st.endpoints:
        opts = _endpoint_opts(st, h)
        if opts and opts.get("auth_file"):
            if not _auth.endpoint_auth_ok(c, hm, opts):
                return
    try:
        h(c, EV_HTTP_REQUEST, hm)
    except Exception:
        _app_error(c, st, "HTTP_REQUEST")
        return
    if st.phase == _WAIT:
        check_done(c, st)


def check_done(c: Connection, st: HttpState) -> None:
    """Finish the current response if its last byte has been queued.

    A response started with the helpers ends when its Content-Length worth of
    body was queued (or its last chunk); a handler that wrote a raw response
    with ``c.send`` is taken to have answered in full.
    """
    if st.resp_started:
        end = st.resp_end
        if 0 <= end <= c._nq:
            if end != c._nq:
                _overrun(c, st, c._nq - end)
            response_done(c)
    elif c._nq != st.nq0:
        response_done(c)


def _overrun(c: Connection, st: HttpState, n: int) -> None:
    """The handler sent ``n`` bytes past the end of its response: drop them, or close.

    A body after a HEAD head (send_head + c.send, mongoose style), or a Content-Length
    counted in characters for a UTF-8 body, would otherwise reach a keep-alive client
    as the start of the next response (response splitting with the body's bytes).
    The excess is removed while it is still queued; if some already left, the
    connection closes after this response.
    """
    buf = c.send_mbuf._buf
    cut = n if n <= len(buf) else len(buf)
    try:
        del buf[len(buf) - cut :]
    except BufferError:
        cut = 0
    c._nq -= cut
    if cut < n:
        st.resp_close = True
        log.warning("%r: %d bytes were sent past the end of the response; closing", c, n)
    elif st.resp_nobody:
        log.debug("%r: body of a HEAD/204/304 response dropped", c)
    else:
        log.warning("%r: %d bytes past the response's Content-Length dropped", c, n)


def _app_error(c: Connection, st: HttpState, what: str) -> None:
    log.exception("handler raised on %s for %r; answering 500 and closing", what, c)
    if c._error is None:
        c._error = "handler raised an exception"
    if (st.phase == _WAIT and not st.resp_started and c._nq == st.nq0) or (
        st.phase == _BODY and not st.resp_started
    ):
        st.resp_close = True  # the 500 says Connection: close
        try:
            _respond.http_send_error(c, 500)
        except Exception:
            pass
    elif st.answered and not c._flags & _CLOSE_IMMEDIATELY:
        linger_close(c, st)  # the answer is complete: deliver it, then close
    else:
        c._flags |= _CLOSE_IMMEDIATELY  # a response is cut short: drop it
    if not st.linger and not c._flags & _CLOSING:
        c._flags |= _SEND_AND_CLOSE
    st.phase = _DEAD


def _protocol_error(c: Connection, st: HttpState, e: ProtocolError) -> None:
    """The peer broke HTTP: answer with the status the core named, then close."""
    st.phase = _DEAD
    c._error = f"bad request: {e}"
    log.debug("%r: %s", c, c._error)
    if st.mp is not None:
        _formdata.mp_abort(c, st)
    if not st.resp_started and not st.client:
        c.recv_mbuf.clear()
        st.answered = False  # the error answers the request that broke the protocol
        _respond.http_send_error(c, e.status if 400 <= e.status < 600 else 400)
    linger_close(c, st)


def response_done(c: Connection) -> None:
    """The response to the current request is complete: close or read the next request."""
    st = c.proto_data
    if not isinstance(st, HttpState) or st.phase != _WAIT:
        return
    st.answered = True
    if not st.keep_alive or st.resp_close:
        if c.recv_mbuf._buf:
            linger_close(c, st)  # the client sent more (pipelined) than will be answered
        else:
            c._flags |= _SEND_AND_CLOSE
            st.phase = _DEAD
        return
    st.phase = _IDLE
    st.resp_started = False
    st.hdr_armed = False
    t = c.limits.keepalive_timeout
    if t:  # inline _arm_idle: extending an armed deadline is one assignment
        mgr = c.mgr
        when = mgr._mono + t
        c._on_expire = _expired
        if c._expire_q and c._expire_q <= when:
            c._expire_at = when
        else:
            mgr._set_expire(c, when)
    else:
        c._expire_at = 0.0
    if c.recv_mbuf._buf and not st.in_recv:
        c.mgr._soon.append((_resume, (c,)))


def _resume(c: Connection) -> None:
    st = c.proto_data
    if not c._closed and isinstance(st, HttpState) and st.phase == _IDLE:
        _server_recv(c, st)
        c.mgr._after(c)


def linger_close(c: Connection, st: HttpState) -> None:
    """Close once the queued response is written, draining what the client still sends.

    RFC 9112 9.6: a server closing while the client may still be sending
    SHOULD half-close and keep reading for a while, or the reset its close
    provokes can destroy the response before the client reads it.
    """
    st.phase = _DEAD
    if c._tls is not None or c.sock is None or st.client or st.linger:
        c._flags |= _SEND_AND_CLOSE
        return
    mgr = c.mgr
    st.linger = mgr._mono + _LINGER_TIME
    c.recv_mbuf.clear()
    c._on_expire = _expired
    mgr._set_expire(c, mgr._mono + _LINGER_TIMEOUT)
    _linger_shut(c, st)


def _linger_shut(c: Connection, st: HttpState) -> None:
    """Once the response is written, shut our write side: the client reads it and EOF."""
    if c.send_mbuf._buf or c._pump is not None or c._closed:
        return
    st.shut = True
    try:
        c.sock.shutdown(socket.SHUT_WR)
    except OSError:
        c._flags |= _CLOSE_IMMEDIATELY


def _linger_recv(c: Connection, st: HttpState) -> None:
    """Discard what arrives while lingering; the client's EOF (or the deadline) closes."""
    c.recv_mbuf.clear()
    mgr = c.mgr
    at = mgr._mono + _LINGER_TIMEOUT
    c._expire_at = at if at < st.linger else st.linger


# --------------------------------------------------------------------------------
# timeouts
# --------------------------------------------------------------------------------
def _arm_idle(c: Connection, st: HttpState, first: bool = False) -> None:
    """Wait for the next request: header_timeout for a new connection, else keepalive_timeout."""
    mgr = c.mgr
    lim = c.limits
    c._on_expire = _expired
    t = lim.header_timeout if first else lim.keepalive_timeout
    mgr._set_expire(c, mgr._mono + t if t else 0.0)


def _arm_header(c: Connection, st: HttpState) -> None:
    """First bytes of a request head arrived: the head must complete within header_timeout."""
    st.hdr_armed = True
    t = c.limits.header_timeout
    if t:
        mgr = c.mgr
        mgr._set_expire(c, mgr._mono + t)


def _expired(c: Connection) -> None:
    st = c.proto_data
    if not isinstance(st, HttpState):
        c._flags |= _CLOSE_IMMEDIATELY
        return
    if st.phase == _WS:
        _ws.ws_expired(c, st)
        return
    if st.phase == _WAIT:
        return
    if st.phase == _BODY or (st.phase == _IDLE and c.recv_mbuf._buf):
        c._error = "request timed out"
        st.phase = _DEAD
        st.answered = False
        _respond.http_send_error(c, 408)
        linger_close(c, st)
        return
    c._flags |= _CLOSE_IMMEDIATELY  # idle keep-alive connection


# --------------------------------------------------------------------------------
# thin wrappers used by Connection methods
# --------------------------------------------------------------------------------
def send_head(c: Connection, code: int, length: int = -1, headers: Any = None) -> None:
    """Send a response head (see ``mgpy.net.respond.send_head``)."""
    _respond.send_head(c, code, length, headers)


def send_http_chunk(c: Connection, data: Any) -> None:
    """Send one chunk of a chunked response (see ``mgpy.net.respond``)."""
    _respond.send_http_chunk(c, data)


def send_websocket_frame(c: Connection, op: int, data: Any = b"") -> None:
    """Send a WebSocket frame (see ``mgpy.net.ws``)."""
    _ws.send_websocket_frame(c, op, data)


def ws_close(c: Connection, code: int = 1000, reason: str = "") -> None:
    """Start the WebSocket close handshake (see ``mgpy.net.ws``)."""
    _ws.ws_close(c, code, reason)


def require_state(c: Connection) -> HttpState:
    """Return ``c``'s HttpState or raise LocalProtocolError if it does not speak HTTP."""
    st = c.proto_data
    if not isinstance(st, HttpState):
        raise LocalProtocolError(
            "connection does not speak HTTP: call set_protocol_http_websocket()"
        )
    return st


# imported last: these modules use the names above at call time
from . import auth as _auth  # noqa: E402
from . import client as _client  # noqa: E402
from . import formdata as _formdata  # noqa: E402
from . import respond as _respond  # noqa: E402
from . import ws as _ws  # noqa: E402

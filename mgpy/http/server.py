"""The HTTP/1.1 server protocol handler (mongoose's mg_http_handler).

``set_protocol_http_websocket(c)`` puts ``http_handler`` in front of the user's
handler.  It forwards every raw event (POLL, RECV, SEND, CLOSE ...) to the user
handler (or the endpoint handler chosen for the current request) and turns the
bytes in ``recv_mbuf`` into HTTP events by driving ``mgpy.proto.http1.HttpReader``.
The exchange's state and its transitions live in ``exchange``; this module parses
and dispatches::

    head --(no body)--------------------------------> HTTP_REQUEST
    head --(body)--> HTTP_HEADERS, HTTP_CHUNK* (while incomplete),
                     HTTP_REQUEST (body = what was not deleted)
    head --(multipart/form-data)--> HTTP_HEADERS, HTTP_MULTIPART_REQUEST,
                                    PART_BEGIN/DATA/END*, MULTIPART_REQUEST_END  (``multipart``)
    head --(Upgrade: <token> registered with register_upgrade)--> that protocol takes over

Early answers (mongoose 7's MG_EV_HTTP_HDRS).  A request with a body is routed and
authenticated (an endpoint's 401) on its head, then its handler gets
``Ev.HTTP_HEADERS`` (103) with the head (``hm.body == b""``) before any of the body is
read.  An answer given there -- any status: 404, 405 with its ``Allow``, 413 for a
quota -- ends the request at once: no HTTP_CHUNK or HTTP_REQUEST follows, the body is
never read (``Expect: 100-continue`` gets the answer, never a 100), and the connection
closes once the answer is written.  Doing nothing reads the body as before.  A request
without a body gets no HTTP_HEADERS: its HTTP_REQUEST comes at head time anyway.  When
the declared Content-Length is above ``Limits.max_body``, the first HTTP_CHUNK comes at
once, with no body yet: a handler that streams sets ``F.DELETE_CHUNK`` there as in every
HTTP_CHUNK and reads any size; one that does not (it buffers) gets 413 before the client
sends the body.  A chunked body is still refused once it passes ``max_body``.

HTTP knows nothing of WebSocket: ``mgpy.ws`` registers the ``websocket`` upgrade
(``register_upgrade``) and, on the 101, switches the connection's ``proto_handler``
to its own handler, as mongoose does.  An ``Upgrade`` nobody registered is ignored
(RFC 9110 7.8: the request is served as HTTP/1.1).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import LimitExceeded, ProtocolError
from ..events import Ev, F, HttpMessage
from ..proto.http1 import END, NEED_DATA
from . import multipart as _mp
from .auth import NONCE_MAX_AGE, HtDigest
from .endpoints import add_endpoint, dispatch_handler
from .exchange import (
    BODY,
    DEAD,
    IDLE,
    WAIT,
    HttpListener,
    HttpState,
    app_error,
    arm_header,
    arm_idle,
    arm_timer,
    await_response,
    begin_body,
    begin_request,
    check_done,
    head_answered,
    install_parser,
    linger_recv,
    protocol_error,
    read_body,
    start_request,
    take_handler,
)

if TYPE_CHECKING:
    from ..core import Connection, Handler

__all__ = [
    "UpgradeFn",
    "deliver_chunk",
    "http_handler",
    "register_http_endpoint",
    "register_upgrade",
    "set_protocol_http_websocket",
]

log = logging.getLogger("mgpy")

#: HTTP_CHUNK follows every read while the body kept so far is at most this large
_CHUNK_EVERY_READ = 16 * 1024

_POLL = Ev.POLL
_ACCEPT = Ev.ACCEPT
_RECV = Ev.RECV
_SEND = Ev.SEND
_CLOSE = Ev.CLOSE
_TIMER = Ev.TIMER
_WRITABLE = Ev.WRITABLE
_EV_HTTP_REQUEST = Ev.HTTP_REQUEST
_EV_HTTP_CHUNK = Ev.HTTP_CHUNK
_EV_HTTP_HEADERS = Ev.HTTP_HEADERS
_DELETE_CHUNK = F.DELETE_CHUNK

#: ``fn(c, st, hm)`` takes over a request carrying ``Upgrade: <token>``
UpgradeFn = Callable[["Connection", HttpState, HttpMessage], None]
_upgrades: dict[str, UpgradeFn] = {}


def register_upgrade(token: str, fn: UpgradeFn) -> None:
    """Hand requests with ``Connection: upgrade`` + ``Upgrade: token`` to ``fn(c, st, hm)``.

    ``fn`` answers (a refusal, or a 101 after which it assigns ``c.proto_handler``)
    with the functions of ``exchange`` and ``endpoints``.  ``mgpy.ws`` registers
    "websocket".
    """
    _upgrades[token.lower()] = fn


def set_protocol_http_websocket(c: Connection) -> None:
    """Speak HTTP/1.1 (and WebSocket, via its upgrade) on ``c``, or on every accepted one."""
    c.proto_handler = http_handler
    if c.is_listener:
        if not isinstance(c.proto_data, HttpListener):
            c.proto_data = HttpListener()
    elif not isinstance(c.proto_data, HttpState):
        st = c.proto_data = HttpState(c, client=False)
        arm_idle(c, st, first=True)


def register_http_endpoint(
    listener: Connection,
    pattern: str,
    handler: Handler,
    *,
    auth_file: HtDigest | None = None,
    auth_domain: str | None = None,
    auth_max_age: float = NONCE_MAX_AGE,
) -> None:
    """Route requests whose path matches glob ``pattern`` to ``handler``.

    ``*`` matches within a path segment, ``**`` across segments, ``?`` one
    character and ``|`` separates alternatives; a literal pattern also matches
    as a prefix ending at ``/``.  The longest match wins.  The endpoint handler
    receives the request's events and every later event of that connection.

    ``auth_file`` (an htdigest path or a ``{(user, realm): HA1}`` mapping) protects the
    endpoint with Digest auth for realm ``auth_domain`` (default "mgpy"); nonces live
    ``auth_max_age`` seconds.  Options are keyword-only: a misspelt one raises
    ``TypeError`` instead of leaving the endpoint unprotected.

    Example::

        mgpy.register_http_endpoint(lc, "/api/**", api, auth_file="htdigest", auth_domain="x")
    """
    set_protocol_http_websocket(listener)
    st = listener.proto_data
    assert isinstance(st, HttpListener)
    add_endpoint(st, pattern, handler, auth_file, auth_domain, auth_max_age)


# --------------------------------------------------------------------------------
# the protocol handler
# --------------------------------------------------------------------------------
def http_handler(c: Connection, ev: Any, ev_data: Any) -> None:
    """Protocol handler: HTTP/1.1 in front of the user (or endpoint) handler."""
    st = c.proto_data
    if ev == _RECV:
        st.h(c, ev, ev_data)
        if st.phase != DEAD:
            if not st.in_recv:
                _server_recv(c, st)
        elif st.linger:
            linger_recv(c, st)
        return
    if ev == _POLL or ev == _SEND:
        if st.__class__ is HttpListener:
            c.handler(c, ev, ev_data)
            return
        st.h(c, ev, ev_data)
        if st.phase == WAIT:
            check_done(c, st)
        if st.mp is not None:
            st.mp.poll(c, st)
        return
    if ev == _ACCEPT:
        st = c.proto_data = HttpState(c, client=False)
        arm_idle(c, st, first=True)
        st.h(c, ev, ev_data)
        return
    if st.__class__ is HttpListener:
        c.handler(c, ev, ev_data)
        return
    if ev == _CLOSE:
        if st.mp is not None:
            st.mp.abort(c, st)
        st.h(c, ev, ev_data)
        return
    st.h(c, ev, ev_data)
    if ev == _TIMER and st.phase == WAIT:  # an asynchronous answer may be complete
        check_done(c, st)
    elif ev == _WRITABLE and st.phase == IDLE and not st.in_recv:
        if c.recv_mbuf.buf and not c.is_closing:
            _server_recv(c, st)  # the responses queued so far drained: read on


def _server_recv(c: Connection, st: HttpState) -> None:
    """Parse requests from recv_mbuf until more data is needed or a response is pending."""
    mb = c.recv_mbuf
    reader = st.reader
    assert reader is not None
    st.in_recv = True
    try:
        # reader.in_body: after a body's last byte, END comes from one more call (no bytes)
        while (mb.buf or reader.in_body) and st.phase <= BODY and not c.is_closing:
            if st.mp is not None and st.mp.pending:
                break  # the handler has not consumed the last part data: stay paused
            if c.send_mbuf.buf and st.phase == IDLE and c.above_high_water:
                # Backpressure: a client that pipelines requests without reading the
                # answers gets no more of them answered until the send queue drains
                # below low water (Ev.WRITABLE resumes), so queued responses stay near
                # send_high_water instead of growing to max_send_buffer per connection.
                # No timeout meanwhile: a slow reader is not a slow sender.
                if st.timer is not None:
                    st.timer.cancel()
                    st.timer = None
                break
            try:
                ev, n = reader.next_event(mb.buf)
            except ProtocolError as e:
                protocol_error(c, st, e)
                return
            if n:
                buf = mb.buf
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
                hm: HttpMessage = ev  # type: ignore[assignment]
                if reader.in_body or hm.upgrade or st.endpoints:
                    _on_head(c, st, hm)
                    continue
                # the hot path: a request without a body, no routing
                h = start_request(c, st, hm)
                try:
                    h(c, _EV_HTTP_REQUEST, hm)
                except Exception:
                    app_error(c, st, "HTTP_REQUEST")
                    return
                if st.phase == WAIT:
                    check_done(c, st)
            elif cls is bytes:
                _on_body(c, st, ev)  # type: ignore[arg-type]
            elif ev is END:
                _on_end(c, st)
        if st.phase == BODY and not c.is_closing:
            _body_progress(c, st)
        elif st.phase == IDLE and mb.buf and not st.hdr_armed and not c.above_high_water:
            arm_header(c, st)  # part of a head is here: it must complete in header_timeout
    finally:
        st.in_recv = False


install_parser(_server_recv)


def _on_head(c: Connection, st: HttpState, hm: HttpMessage) -> None:
    begin_request(c, st, hm)
    reader = st.reader
    assert reader is not None
    if hm.upgrade:
        up = _upgrades.get(hm.upgrade)
        if up is not None:
            if reader.in_body:
                protocol_error(c, st, ProtocolError("upgrade request with a body"))
                return
            up(c, st, hm)
            return
    if reader.in_body:
        _body_head(c, st, hm)
        return
    _dispatch_request(c, st, hm)


def _body_head(c: Connection, st: HttpState, hm: HttpMessage) -> None:
    """Decide a request with a body on its head (``exchange``: refusing on the head)."""
    begin_body(c, st, hm)
    parser = None
    ctype = hm.header("content-type")
    if ctype is not None and ctype[:19].lower() == "multipart/form-data":
        parser = _mp.mp_parser(c, st, ctype)  # 400 for a bad boundary
        if parser is None:
            return
    if dispatch_handler(c, st, hm, take_handler) is None:
        return  # the endpoint answered 401
    try:
        st.h(c, _EV_HTTP_HEADERS, hm)
    except Exception:
        app_error(c, st, "HTTP_HEADERS")
        return
    if head_answered(c, st):
        return
    if parser is not None:
        if not _mp.mp_start(c, st, hm, parser):
            return
    elif hm.content_length > c.limits.max_body and not _streams(c, st, hm):
        if not head_answered(c, st):
            protocol_error(c, st, LimitExceeded("declared body larger than Limits.max_body", 413))
        return
    read_body(c, st)


def _streams(c: Connection, st: HttpState, hm: HttpMessage) -> bool:
    """Does the handler stream the body?  Asked when the declared Content-Length is above
    ``Limits.max_body``: a first HTTP_CHUNK, with no body yet, comes at once, and a
    handler that streams sets ``F.DELETE_CHUNK`` in it as in every HTTP_CHUNK.
    """
    if c.flags & _DELETE_CHUNK:
        c.flags &= ~_DELETE_CHUNK
    try:
        st.h(c, _EV_HTTP_CHUNK, hm)
    except Exception:
        app_error(c, st, "HTTP_CHUNK")
        return False
    if c.flags & _DELETE_CHUNK:
        c.flags &= ~_DELETE_CHUNK
        return not head_answered(c, st)
    return False


def _on_body(c: Connection, st: HttpState, data: bytes) -> None:
    if st.mp is not None:
        st.mp.data(c, st, data)
        return
    body = st.body
    assert body is not None
    body += data
    if len(body) > c.limits.max_body:
        # a streaming handler takes (and deletes) the body so far before the limit applies
        _body_progress(c, st, force=True)
        if st.phase == BODY and len(body) > c.limits.max_body:
            protocol_error(c, st, LimitExceeded("request body larger than Limits.max_body", 413))


def _body_progress(c: Connection, st: HttpState, force: bool = False) -> None:
    """More body is on its way: refresh body_timeout, deliver HTTP_CHUNK (deliver_chunk)."""
    if c.limits.body_timeout:
        arm_timer(c, st, c.limits.body_timeout)
    if st.mp is not None:
        return
    try:
        deliver_chunk(c, st, force)
    except Exception:
        app_error(c, st, "HTTP_CHUNK")


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
    if c.flags & _DELETE_CHUNK:
        c.flags &= ~_DELETE_CHUNK
    st.h(c, _EV_HTTP_CHUNK, hm)
    if c.flags & _DELETE_CHUNK:
        c.flags &= ~_DELETE_CHUNK
        body.clear()
        hm.body = b""
    st.mark = len(body)


def _on_end(c: Connection, st: HttpState) -> None:
    hm = st.hm
    assert hm is not None
    if st.mp is not None:
        st.mp.end(c, st)
        return
    body = st.body
    hm.body = bytes(body) if body else b""
    st.body = None
    st.hm = None
    await_response(c, st, st.h)  # routed (and authenticated) on the head
    _deliver_request(c, st, st.h, hm)


def _dispatch_request(c: Connection, st: HttpState, hm: HttpMessage) -> None:
    h = dispatch_handler(c, st, hm, await_response)
    if h is None:
        return  # the endpoint answered 401
    _deliver_request(c, st, h, hm)


def _deliver_request(c: Connection, st: HttpState, h: Handler, hm: HttpMessage) -> None:
    try:
        h(c, _EV_HTTP_REQUEST, hm)
    except Exception:
        app_error(c, st, "HTTP_REQUEST")
        return
    if st.phase == WAIT:
        check_done(c, st)

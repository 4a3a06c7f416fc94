"""HTTP and WebSocket clients: ``connect_http`` and ``connect_ws``.

The connection is an ordinary outbound Connection with the HTTP protocol
handler in front.  On CONNECT (status 0) the request is written; the handler
then sees HTTP_CHUNK while a response body arrives and HTTP_REPLY with the
whole response (read-until-close bodies end at the server's close, just before
CLOSE).  ``connect_ws`` sends the upgrade request with a fresh random key,
verifies the 101 and ``Sec-WebSocket-Accept`` and delivers WS_HANDSHAKE_DONE
with the response (``resp_code == 101`` on success; any other status is
delivered too and the connection closes).  A 101 that fails verification
gives ERROR and CLOSE without WS_HANDSHAKE_DONE.  ``user:pass@`` in the URL
sends Basic credentials, and answers one Digest challenge per request.
"""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING, Any

from ..errors import Error, ProtocolError
from ..events import Headers, HttpMessage
from ..proto import ws as _wscore
from ..proto.http1 import END, NEED_DATA, HttpReader, request_head
from ..proto.httputil import basic_auth_header
from . import http as _http
from . import ws as _ws
from ._consts import (
    _CLOSE_IMMEDIATELY,
    _CONNECTING,
    _SEND_AND_CLOSE,
    _SSL,
    EV_CONNECT,
    EV_ERROR,
    EV_HTTP_REPLY,
    EV_WS_HANDSHAKE_DONE,
)
from .addr import parse_addr

if TYPE_CHECKING:
    from ..limits import Limits
    from .conn import Connection, Handler
    from .manager import Manager

__all__ = ["connect_http", "connect_ws"]

log = logging.getLogger("mgpy")


class ClientX:
    """The request a client connection sends (internal)."""

    __slots__ = (
        "addr",
        "auth_tried",
        "body",
        "done",
        "headers",
        "key",
        "method",
        "offered",
        "retry_auth",
        "ws",
    )

    def __init__(self, addr: Any, method: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.addr = addr
        self.method = method
        self.headers = headers
        self.body = body
        self.ws = False
        self.key = ""
        self.offered: list[str] = []
        self.auth_tried = False
        self.done = False
        self.retry_auth: str | None = None  # Authorization for the request after a reconnect


def _new_client(
    mgr: Manager,
    url: str,
    default_scheme: str,
    handler: Handler,
    limits: Limits | None,
    user_data: Any,
    tls: Any,
) -> tuple[Connection, Any]:
    a = parse_addr(url, default_scheme, need_host=True)
    if a.scheme in ("tcp", "udp"):
        raise Error(f"{url!r}: expected an http://, https://, ws:// or wss:// URL")
    c = mgr._connect_addr(a, handler, limits, user_data, tls)
    c.proto_handler = _http.http_handler
    st = c.proto_data = _http.HttpState(c, client=True)
    return c, st


def connect_http(
    mgr: Manager,
    url: str,
    handler: Handler,
    method: str | None = None,
    headers: Headers = None,
    body: bytes | str | None = None,
    *,
    limits: Limits | None = None,
    user_data: Any = None,
    tls: Any = None,
) -> Connection:
    """Send one HTTP request to ``url``; the handler gets HTTP_CHUNK*/HTTP_REPLY."""
    from .respond import normalize_headers

    if isinstance(body, str):
        body = body.encode()
    m = (method or ("POST" if body else "GET")).upper()
    hs = normalize_headers(headers)
    # refuse a bad method, target or header now (LocalProtocolError), not at CONNECT time
    request_head(m, parse_addr(url, "http", need_host=True).path, hs)
    c, st = _new_client(mgr, url, "http", handler, limits, user_data, tls)
    st.client_x = ClientX(c._x_get()["addr"], m, hs, body or b"")
    return c


def connect_ws(
    mgr: Manager,
    url: str,
    handler: Handler,
    protocol: str | list[str] | None = None,
    headers: Headers = None,
    *,
    limits: Limits | None = None,
    user_data: Any = None,
    tls: Any = None,
) -> Connection:
    """Open a WebSocket to ``url`` (ws://, wss://, http://, or no scheme)."""
    from .respond import normalize_headers

    c, st = _new_client(mgr, url, "ws", handler, limits, user_data, tls)
    x = st.client_x = ClientX(c._x_get()["addr"], "GET", normalize_headers(headers), b"")
    x.ws = True
    if isinstance(protocol, str):
        x.offered = [p.strip() for p in protocol.split(",") if p.strip()]
    elif protocol:
        x.offered = list(protocol)
    return c


def client_connected(c: Connection, st: _http.HttpState) -> None:
    """CONNECT(0): tell the handler, then write the request."""
    x = st.client_x
    if x is not None and x.retry_auth is not None:
        auth, x.retry_auth = x.retry_auth, None  # reconnected for a Digest retry: no CONNECT
        _send_request(c, st, auth)
        return
    st.h(c, EV_CONNECT, 0)
    if not c._closed and not c._flags & _CLOSE_IMMEDIATELY:
        _send_request(c, st)


def _send_request(c: Connection, st: _http.HttpState, auth: str | None = None) -> None:
    x = st.client_x
    a = x.addr
    names = {k.lower() for k, _ in x.headers}
    hs: list[tuple[str, str]] = []
    if "host" not in names:
        hs.append(("Host", a.hostport))
    if x.ws:
        x.key = _wscore.new_client_key()
        hs += [
            h
            for h in _wscore.client_handshake_headers(a.hostport, x.key, x.offered or None)
            if h[0].lower() != "host"
        ]
    elif x.body or x.method in ("POST", "PUT", "PATCH"):
        if "content-length" not in names and "transfer-encoding" not in names:
            hs.append(("Content-Length", str(len(x.body))))
    if auth is not None:
        hs.append(("Authorization", auth))
    elif a.user is not None and "authorization" not in names:
        hs.append(("Authorization", basic_auth_header(a.user, a.password or "")))
    hs += x.headers
    c.send(request_head(x.method, a.path, hs) + x.body)
    reader = st.reader
    assert reader is not None
    reader.expect_response(x.method)
    lim = c.limits
    if lim.body_timeout:
        c._on_expire = _client_timeout
        c.mgr._set_expire(c, c.mgr._mono + lim.body_timeout)


def _client_timeout(c: Connection) -> None:
    c._error = "no response from the server within Limits.body_timeout"
    c._flags |= _CLOSE_IMMEDIATELY


def client_recv(c: Connection, st: _http.HttpState) -> None:
    """Parse the response from recv_mbuf."""
    mb = c.recv_mbuf
    reader = st.reader
    if reader is None:
        return
    lim = c.limits
    if lim.body_timeout and c._expire_at:
        c._expire_at = c.mgr._mono + lim.body_timeout
    while (
        (mb._buf or reader.in_body)
        and st.phase != _http._WS
        and not (c._flags & _CLOSE_IMMEDIATELY)
    ):
        if st.phase == _http._DEAD:
            break  # the reply was delivered; whatever follows it is ignored
        try:
            ev, n = reader.next_event(mb._buf)
        except ProtocolError as e:
            c._error = f"bad response: {e}"
            c._flags |= _CLOSE_IMMEDIATELY
            st.phase = _http._DEAD
            return
        if n:
            mb.remove(n)
        if ev is NEED_DATA:
            _progress(c, st)
            break
        if ev.__class__ is HttpMessage:
            _on_head(c, st, ev)
        elif ev.__class__ is bytes:
            body = st.body
            if body is not None:
                body += ev
                if len(body) > lim.max_body:
                    _progress(c, st)  # a streaming handler deletes the body so far first
                if len(body) > lim.max_body:
                    c._error = "response body larger than Limits.max_body"
                    c._flags |= _CLOSE_IMMEDIATELY
                    return
        elif ev is END:
            _on_end(c, st)


def _on_head(c: Connection, st: _http.HttpState, hm: HttpMessage) -> None:
    x = st.client_x
    reader = st.reader
    assert reader is not None
    if x.ws:
        if hm.resp_code == 101:
            try:
                _wscore.check_server_handshake(hm, x.key, x.offered or None)
            except ProtocolError as e:
                c._error = f"WebSocket handshake failed: {e}"
                c._flags |= _CLOSE_IMMEDIATELY
                return
            _ws.ws_start(c, st, "client")
            c._expire_at = 0.0
            c._on_expire = _http._expired
            lim = c.limits
            c.mgr._set_expire(
                c, c.mgr._mono + lim.ws_ping_interval if lim.ws_ping_interval else 0.0
            )
            st.h(c, EV_WS_HANDSHAKE_DONE, hm)
            if c.recv_mbuf._buf:
                _ws.ws_recv(c, st)
            return
        # refused: read the body like any response; _deliver gives WS_HANDSHAKE_DONE
    if not reader.in_body:
        _deliver(c, st, hm)
        return
    st.hm = hm
    st.body = bytearray()
    st.mark = 0
    st.phase = _http._BODY


def _progress(c: Connection, st: _http.HttpState) -> None:
    if not st.client_x.ws:
        _http.deliver_chunk(c, st)


def _on_end(c: Connection, st: _http.HttpState) -> None:
    hm = st.hm
    assert hm is not None
    body = st.body
    hm.body = bytes(body) if body else b""
    st.hm = None
    st.body = None
    _deliver(c, st, hm)


def _deliver(c: Connection, st: _http.HttpState, hm: HttpMessage) -> None:
    x = st.client_x
    if hm.resp_code == 401 and not x.auth_tried and x.addr.user is not None:
        chal = _digest_challenge(hm)
        if chal is not None:
            x.auth_tried = True
            from ..proto.digest import create_digest_auth_header

            try:
                auth = create_digest_auth_header(
                    x.addr.user, x.addr.password or "", x.method, x.addr.path, chal
                )
            except ProtocolError as e:
                log.debug("%r: cannot answer the Digest challenge: %s", c, e)
            else:
                if hm.keep_alive:
                    st.phase = _http._IDLE
                    _send_request(c, st, auth)
                    return
                if _reconnect(c, st, auth):
                    return
    x.done = True
    st.phase = _http._DEAD if not hm.keep_alive else _http._IDLE
    c._expire_at = 0.0
    if x.ws:
        # a refused WebSocket handshake: the response (with its body), then close
        st.phase = _http._DEAD
        st.h(c, EV_WS_HANDSHAKE_DONE, hm)
        c._flags |= _SEND_AND_CLOSE
        return
    st.h(c, EV_HTTP_REPLY, hm)
    # one request per connection: close once the handler has seen the reply
    st.phase = _http._DEAD
    c._flags |= _SEND_AND_CLOSE


def _reconnect(c: Connection, st: _http.HttpState, auth: str) -> bool:
    """The server closes after its 401: dial it again on the same Connection, then send
    the request with ``auth``.  The handler sees no second CONNECT; a failed reconnect
    gives CONNECT(error) and CLOSE."""
    sock = c.sock
    if sock is None or c._closed or c.peer is None:
        return False
    mgr = c.mgr
    family = sock.family
    mgr._set_mask(c, 0)
    try:
        sock.close()
    except OSError:
        pass
    c.sock = None
    if c._tls is not None:
        c._tls.release()
        c._tls = None
        c._flags &= ~_SSL
    c.recv_mbuf.clear()
    c.send_mbuf.clear()
    c._flags = (c._flags & ~(_SEND_AND_CLOSE | _CLOSE_IMMEDIATELY)) | _CONNECTING
    c._x_get().pop("eof", None)
    st.reader = HttpReader("client", c.limits)
    st.phase = _http._IDLE
    st.hm = None
    st.body = None
    st.client_x.retry_auth = auth
    lim = c.limits
    c._on_expire = _client_timeout
    mgr._set_expire(c, mgr._mono + lim.connect_timeout if lim.connect_timeout else 0.0)
    mgr._soon.append((mgr._start_connect, (c, [(family, socket.SOCK_STREAM, 0, "", c.peer)])))
    return True


def _digest_challenge(hm: HttpMessage) -> str | None:
    for v in hm.header_all("www-authenticate"):
        if v[:7].lower() == "digest ":
            return v
    return None


def client_close(c: Connection, st: _http.HttpState) -> None:
    """The connection is closing: finish a read-until-close response first."""
    reader = st.reader
    x = st.client_x
    if reader is None or x is None or x.done or st.phase == _http._WS:
        return
    mb = c.recv_mbuf
    try:
        while True:
            ev, n = reader.next_event(mb._buf, eof=True)
            if n:
                mb.remove(n)
            if ev is NEED_DATA:
                break
            if ev.__class__ is HttpMessage:
                _on_head(c, st, ev)
            elif ev.__class__ is bytes and st.body is not None:
                st.body += ev
            elif ev is END:
                _on_end(c, st)
                break
    except ProtocolError as e:
        if c._error is None:
            c._error = f"incomplete response: {e}"
            # the manager checked for an error before CLOSE: deliver ERROR here, still first
            st.h(c, EV_ERROR, c._error)
        return
    if not x.done and c._error is None and c._x is not None and c._x.get("eof"):
        c._error = "the server closed the connection before responding"
        st.h(c, EV_ERROR, c._error)

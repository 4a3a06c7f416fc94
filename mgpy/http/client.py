"""The HTTP client: ``connect_http``, and the request half of an upgrading client.

The connection is an ordinary outbound Connection with ``http_client_handler`` in
front.  On CONNECT (status 0) the request is written; the handler then sees
HTTP_CHUNK while a response body arrives and HTTP_REPLY with the whole response
(read-until-close bodies end at the server's close, just before CLOSE).  One request
per connection: the connection closes once the handler has seen the reply.
``user:pass@`` in the URL sends Basic credentials, and answers one Digest challenge
per request (on the same connection if the server keeps it open, else after
``c.redial()``).

An upgrading client (``mgpy.ws.connect_ws``) uses the same request machinery with a
``ClientX.on_101`` callback: a 101 response head goes to it (it verifies the
handshake and switches ``c.proto_handler``); any other response is read like a
normal one and delivered as ``reply_ev`` (WS_HANDSHAKE_DONE for a refused WebSocket).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..core import Addr, parse_addr
from ..errors import Error, ProtocolError
from ..events import Ev, Headers, HttpMessage
from ..proto.digest import create_digest_auth_header
from ..proto.http1 import END, NEED_DATA, HttpReader, request_head
from ..proto.httputil import basic_auth_header
from .exchange import BODY, DEAD, IDLE, UPGRADED, HttpState, arm_timer
from .heads import normalize_headers
from .server import deliver_chunk

if TYPE_CHECKING:
    from ..core import Connection, Handler, Manager
    from ..limits import Limits

__all__ = ["ClientX", "connect_http", "http_client_handler", "new_client"]

log = logging.getLogger("mgpy")

_CONNECT = Ev.CONNECT
_RECV = Ev.RECV
_CLOSE = Ev.CLOSE
_EV_ERROR = Ev.ERROR
_EV_HTTP_REPLY = Ev.HTTP_REPLY

#: ``on_101(c, st, hm)``: the server accepted a protocol upgrade (the 101 response head)
UpgradeFn = Callable[["Connection", HttpState, HttpMessage], None]
#: ``extra_headers()``: headers added to each attempt of the request (a fresh WebSocket key)
HeadersFn = Callable[[], list[tuple[str, str]]]


class ClientX:
    """The request a client connection sends, and its retry state."""

    __slots__ = (
        "addr",
        "auth_tried",
        "body",
        "done",
        "extra_headers",
        "headers",
        "method",
        "on_101",
        "reply_ev",
        "retry_auth",
    )

    def __init__(
        self, addr: Addr, method: str, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        self.addr = addr
        self.method = method
        self.headers = headers
        self.body = body
        self.auth_tried = False
        self.done = False
        self.retry_auth: str | None = None  # Authorization for the request after a redial
        self.on_101: UpgradeFn | None = None
        self.extra_headers: HeadersFn | None = None
        #: the event a (non-101) response is delivered as
        self.reply_ev: Ev = _EV_HTTP_REPLY


def new_client(
    mgr: Manager,
    url: str,
    default_scheme: str,
    handler: Handler,
    method: str,
    headers: list[tuple[str, str]],
    body: bytes,
    limits: Limits | None,
    user_data: Any,
    tls: Any,
) -> tuple[Connection, HttpState, ClientX]:
    """Open an outbound connection to ``url`` that sends one request when connected.

    The request head is checked now: a bad method, target or header raises
    ``LocalProtocolError`` at the call, not at CONNECT time.
    """
    a = parse_addr(url, default_scheme, need_host=True)
    if a.scheme in ("tcp", "udp"):
        raise Error(f"{url!r}: expected an http://, https://, ws:// or wss:// URL")
    request_head(method, a.path, headers)
    c = mgr.connect(a, handler, limits=limits, user_data=user_data, tls=tls)
    c.proto_handler = http_client_handler
    st = c.proto_data = HttpState(c, client=True)
    x = st.client_x = ClientX(a, method, headers, body)
    return c, st, x


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
    """Send one HTTP request to ``url``; the handler gets HTTP_CHUNK*, then HTTP_REPLY.

    ``method`` defaults to GET (POST when a ``body`` is given); ``user:pass@`` in the
    URL sends Basic credentials (and answers a Digest challenge once).
    """
    if isinstance(body, str):
        body = body.encode()
    m = (method or ("POST" if body else "GET")).upper()
    c, _st, _x = new_client(
        mgr,
        url,
        "http",
        handler,
        m,
        normalize_headers(headers),
        body or b"",
        limits,
        user_data,
        tls,
    )
    return c


# --------------------------------------------------------------------------------
# the protocol handler
# --------------------------------------------------------------------------------
def http_client_handler(c: Connection, ev: Any, ev_data: Any) -> None:
    """Protocol handler of an HTTP client connection."""
    st = c.proto_data
    if ev == _RECV:
        st.h(c, ev, ev_data)
        _client_recv(c, st)
    elif ev == _CONNECT and ev_data == 0:
        _connected(c, st)
    elif ev == _CLOSE:
        _client_close(c, st)
        st.h(c, ev, ev_data)
    else:
        st.h(c, ev, ev_data)


def _connected(c: Connection, st: HttpState) -> None:
    """CONNECT(0): tell the handler, then write the request."""
    x: ClientX = st.client_x
    if x.retry_auth is not None:
        auth, x.retry_auth = x.retry_auth, None  # redialled for a Digest retry: no CONNECT
        _send_request(c, st, auth)
        return
    st.h(c, _CONNECT, 0)
    if not c.closed and not c.is_closing:
        _send_request(c, st)


def _send_request(c: Connection, st: HttpState, auth: str | None = None) -> None:
    x: ClientX = st.client_x
    a = x.addr
    names = {k.lower() for k, _ in x.headers}
    hs: list[tuple[str, str]] = []
    if "host" not in names:
        hs.append(("Host", a.hostport))
    if x.extra_headers is not None:
        hs += [h for h in x.extra_headers() if h[0].lower() != "host"]
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
    if c.limits.body_timeout:
        arm_timer(c, st, c.limits.body_timeout)


def _client_recv(c: Connection, st: HttpState) -> None:
    """Parse the response from recv_mbuf."""
    mb = c.recv_mbuf
    reader = st.reader
    if reader is None:
        return
    lim = c.limits
    t = st.timer
    if lim.body_timeout and t is not None and t.active:
        t.reschedule(lim.body_timeout)
    while (mb.buf or reader.in_body) and st.phase != UPGRADED and not c.is_closing:
        if st.phase == DEAD:
            break  # the reply was delivered; whatever follows it is ignored
        try:
            ev, n = reader.next_event(mb.buf)
        except ProtocolError as e:
            st.phase = DEAD
            c.error(f"bad response: {e}")
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
                    c.error("response body larger than Limits.max_body")
                    return
        elif ev is END:
            _on_end(c, st)


def _on_head(c: Connection, st: HttpState, hm: HttpMessage) -> None:
    x: ClientX = st.client_x
    reader = st.reader
    assert reader is not None
    if x.on_101 is not None and hm.resp_code == 101:
        st.phase = UPGRADED  # on_101 takes the deadline handle over (hand_over_timer)
        x.done = True
        x.on_101(c, st, hm)  # verifies, then switches the connection's protocol
        return
    if not reader.in_body:
        _deliver(c, st, hm)
        return
    st.hm = hm
    st.body = bytearray()
    st.mark = 0
    st.phase = BODY


def _progress(c: Connection, st: HttpState) -> None:
    if st.client_x.reply_ev == _EV_HTTP_REPLY:
        deliver_chunk(c, st)


def _on_end(c: Connection, st: HttpState) -> None:
    hm = st.hm
    assert hm is not None
    body = st.body
    hm.body = bytes(body) if body else b""
    st.hm = None
    st.body = None
    _deliver(c, st, hm)


def _deliver(c: Connection, st: HttpState, hm: HttpMessage) -> None:
    x: ClientX = st.client_x
    if hm.resp_code == 401 and not x.auth_tried and x.addr.user is not None:
        chal = _digest_challenge(hm)
        if chal is not None:
            x.auth_tried = True
            try:
                auth = create_digest_auth_header(
                    x.addr.user, x.addr.password or "", x.method, x.addr.path, chal
                )
            except ProtocolError as e:
                log.debug("%r: cannot answer the Digest challenge: %s", c, e)
            else:
                if hm.keep_alive:
                    st.phase = IDLE
                    _send_request(c, st, auth)
                    return
                if _redial(c, st, auth):
                    return
    x.done = True
    st.phase = DEAD
    if st.timer is not None:
        st.timer.cancel()
        st.timer = None
    # one request per connection (a refused upgrade too): close once the handler has it
    st.h(c, x.reply_ev, hm)
    c.close()


def _redial(c: Connection, st: HttpState, auth: str) -> bool:
    """The server closes after its 401: dial it again on the same Connection, then send
    the request with ``auth``.  The handler sees no second CONNECT; a failed redial
    gives CONNECT(error) and CLOSE."""
    if c.sock is None or c.closed or c.peer is None:
        return False
    c.redial()
    st.reader = HttpReader("client", c.limits)
    st.phase = IDLE
    st.hm = None
    st.body = None
    st.client_x.retry_auth = auth
    return True


def _digest_challenge(hm: HttpMessage) -> str | None:
    for v in hm.header_all("www-authenticate"):
        if v[:7].lower() == "digest ":
            return v
    return None


def _client_close(c: Connection, st: HttpState) -> None:
    """The connection is closing: finish a read-until-close response first."""
    reader = st.reader
    x: ClientX | None = st.client_x
    if reader is None or x is None or x.done or st.phase == UPGRADED:
        return
    mb = c.recv_mbuf
    try:
        while True:
            ev, n = reader.next_event(mb.buf, eof=True)
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
        if c.error_reason is None:
            c.error_reason = f"incomplete response: {e}"
            # the manager checked for an error before CLOSE: deliver ERROR here, still first
            st.h(c, _EV_ERROR, c.error_reason)
        return
    if not x.done and c.error_reason is None and c.peer_eof:
        c.error_reason = "the server closed the connection before responding"
        st.h(c, _EV_ERROR, c.error_reason)

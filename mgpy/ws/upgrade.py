"""The server side of the WebSocket upgrade (RFC 6455 4.2), plugged into HTTP.

``mgpy.http.server`` hands a request with ``Upgrade: websocket`` to ``upgrade``
(registered with ``register_upgrade`` when ``mgpy.ws`` is imported).  The request is
validated (``check_client_handshake``: 426 for a wrong version, 400 for a bad key),
routed and auth-checked like any request (``dispatch_handler``), then
WS_HANDSHAKE_REQUEST goes to the handler, which may refuse it by answering with any
status, or call ``ws_accept(c, protocol=..., headers=...)`` to pick one of the offered
subprotocols and add headers.  Otherwise the 101 goes out, the connection switches
to the WebSocket protocol handler (``ws_start``) and WS_HANDSHAKE_DONE follows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import LocalProtocolError, RemoteProtocolError
from ..events import Ev, Headers, HttpMessage
from ..http.endpoints import dispatch_handler, route
from ..http.exchange import (
    WAIT,
    HttpState,
    app_error,
    await_response,
    protocol_error,
    require_state,
    upgrade_accepted,
    upgrade_refused,
)
from ..http.heads import normalize_headers
from ..http.server import register_upgrade
from ..proto import ws as _core
from ..proto.deflate import DeflateOptions, DeflateParams, negotiate
from ..proto.http1 import response_head
from .compression import listener_compression
from .protocol import ws_recv, ws_start

if TYPE_CHECKING:
    from ..core import Connection, Handler

__all__ = ["WsUpgrade", "upgrade", "ws_accept"]

log = logging.getLogger("mgpy")

_EV_WS_HANDSHAKE_REQUEST = Ev.WS_HANDSHAKE_REQUEST
_EV_WS_HANDSHAKE_DONE = Ev.WS_HANDSHAKE_DONE


class WsUpgrade:
    """An upgrade request being decided (``HttpState.upgrade``): the handler's choices."""

    __slots__ = ("compression", "headers", "key", "offered", "protocol")

    def __init__(self, key: str, offered: list[str], compression: DeflateOptions | None) -> None:
        self.key = key
        self.offered: Sequence[str] = offered
        self.protocol: str | None = None
        self.headers: Sequence[tuple[str, str]] = ()
        #: what permessage-deflate may be negotiated with (None: not at all)
        self.compression = compression


_UNSET: Any = object()


def ws_accept(
    c: Connection,
    protocol: str | None = None,
    headers: Headers = None,
    *,
    compression: DeflateOptions | None = _UNSET,
) -> None:
    """In WS_HANDSHAKE_REQUEST: accept, choosing ``protocol`` (one offered) and adding headers.

    ``compression`` overrides the listener's permessage-deflate setting for this
    connection: ``DeflateOptions(...)``, or None to refuse compression.

    Example::

        if ev == Ev.WS_HANDSHAKE_REQUEST:
            mgpy.ws_accept(c, protocol="chat.v1")
    """
    st = require_state(c)
    x = st.upgrade
    if not isinstance(x, WsUpgrade) or st.phase != WAIT:
        raise LocalProtocolError("ws_accept() is only valid while handling WS_HANDSHAKE_REQUEST")
    if protocol is not None and protocol not in x.offered:
        raise LocalProtocolError(f"subprotocol {protocol!r} was not offered by the client")
    x.protocol = protocol
    x.headers = normalize_headers(headers)
    if compression is not _UNSET:
        if compression is not None and not isinstance(compression, DeflateOptions):
            raise TypeError(f"compression must be a DeflateOptions or None, got {compression!r}")
        x.compression = compression


def _enter(c: Connection, st: HttpState, h: Handler) -> None:
    await_response(c, st, h)
    st.resp_close = True  # a refused handshake closes the connection


def upgrade(c: Connection, st: HttpState, hm: HttpMessage) -> None:
    """Handle an ``Upgrade: websocket`` request: validate, ask the handler, answer 101."""
    try:
        key = _core.check_client_handshake(hm)
        offered = _core.client_subprotocols(hm)
    except RemoteProtocolError as e:
        st.h = route(st, c, hm.uri)
        protocol_error(c, st, e)
        return
    up = st.upgrade = WsUpgrade(key, offered, listener_compression(c))
    h = dispatch_handler(c, st, hm, _enter)
    if h is None:
        return  # the endpoint answered 401
    nq0 = c.total_queued
    try:
        h(c, _EV_WS_HANDSHAKE_REQUEST, hm)
    except Exception:
        app_error(c, st, "WS_HANDSHAKE_REQUEST")
        return
    if c.total_queued != nq0 or c.is_closing or c.closed:
        upgrade_refused(c, st)  # refused with a response (or closed by the handler)
        return
    params, ext = _negotiate(hm, up.compression)
    headers = _core.server_handshake_headers(key, up.protocol, ext) + list(up.headers)
    c.send(response_head(101, headers))
    wst = ws_start(c, h, "server", upgrade_accepted(c, st), params)
    if st.log:
        wst.log = (hm.uri, c.mgr.monotonic)
    try:
        h(c, _EV_WS_HANDSHAKE_DONE, hm)
    except Exception:
        log.exception("handler raised on WS_HANDSHAKE_DONE for %r; closing", c)
        c.error("handler raised an exception")
        return
    if c.recv_mbuf.buf:
        ws_recv(c, wst)


def _negotiate(
    hm: HttpMessage, options: DeflateOptions | None
) -> tuple[DeflateParams | None, str | None]:
    """RFC 7692 5: accept the first permessage-deflate offer we can, or none."""
    if options is None:
        return None, None
    values = hm.header_all("sec-websocket-extensions")
    if not values:
        return None, None
    agreed = negotiate(values, options)
    if agreed is None:
        return None, None
    return agreed


register_upgrade("websocket", upgrade)

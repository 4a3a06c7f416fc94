"""The WebSocket client: ``connect_ws``.

The upgrade request goes out through the HTTP client (``mgpy.http.client``) with a
fresh random key per attempt.  A 101 reply is verified (``Sec-WebSocket-Accept``, the
subprotocol) and the connection switches to the WebSocket protocol handler; the
handler then gets WS_HANDSHAKE_DONE with the response (``resp_code == 101``).  Any
other status is read like a normal response and delivered as WS_HANDSHAKE_DONE too,
then the connection closes.  A 101 that fails verification gives ERROR and CLOSE
without WS_HANDSHAKE_DONE.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ProtocolError
from ..events import Ev, Headers, HttpMessage
from ..http.client import new_client
from ..http.exchange import HttpState, hand_over_timer
from ..http.heads import normalize_headers
from ..proto import ws as _core
from ..proto.deflate import DeflateOptions, offer
from ..proto.ws_handshake import check_server_response
from .compression import DEFAULT_COMPRESSION
from .protocol import ws_recv, ws_start

if TYPE_CHECKING:
    from ..core import Connection, Handler, Manager
    from ..limits import Limits

__all__ = ["connect_ws"]

_EV_WS_HANDSHAKE_DONE = Ev.WS_HANDSHAKE_DONE


class _Handshake:
    """The client's side of one upgrade: the key of the current attempt, the offers."""

    __slots__ = ("compression", "hostport", "key", "offered")

    def __init__(
        self, hostport: str, offered: list[str], compression: DeflateOptions | None
    ) -> None:
        self.hostport = hostport
        self.offered = offered
        self.compression = compression
        self.key = ""

    def headers(self) -> list[tuple[str, str]]:
        """The upgrade headers of one attempt (RFC 6455 4.1: a fresh nonce each time)."""
        self.key = _core.new_client_key()
        ext = offer(self.compression) if self.compression is not None else None
        return _core.client_handshake_headers(
            self.hostport, self.key, self.offered or None, extensions=ext
        )

    def on_101(self, c: Connection, st: HttpState, hm: HttpMessage) -> None:
        """The server switched protocols: verify it, then speak WebSocket."""
        try:
            _sub, params = check_server_response(
                hm, self.key, self.offered or None, self.compression
            )
        except ProtocolError as e:
            c.error(f"WebSocket handshake failed: {e}")
            return
        wst = ws_start(c, st.h, "client", hand_over_timer(st), params)
        st.h(c, _EV_WS_HANDSHAKE_DONE, hm)
        if c.recv_mbuf.buf and not c.is_closing:
            ws_recv(c, wst)


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
    compression: DeflateOptions | None = DEFAULT_COMPRESSION,
) -> Connection:
    """Open a WebSocket to ``url`` (ws://, wss://, http://, https:// or no scheme).

    ``protocol`` offers subprotocols (a list, or a comma-separated string).
    ``compression`` offers permessage-deflate (on by default; None: not offered).  The
    handler gets CONNECT, then WS_HANDSHAKE_DONE (check ``resp_code == 101``), then
    WS_FRAME ...  A bad URL, path or header raises at the call.

    Example::

        c = mgr.connect_ws("ws://127.0.0.1:8000/ws", handler)
    """
    if isinstance(protocol, str):
        offered = [p.strip() for p in protocol.split(",") if p.strip()]
    else:
        offered = list(protocol or ())
    c, _st, x = new_client(
        mgr, url, "ws", handler, "GET", normalize_headers(headers), b"", limits, user_data, tls
    )
    if compression is not None and not isinstance(compression, DeflateOptions):
        raise TypeError(f"compression must be a DeflateOptions or None, got {compression!r}")
    hs = _Handshake(x.addr.hostport, offered, compression)
    x.extra_headers = hs.headers
    x.on_101 = hs.on_101
    x.reply_ev = _EV_WS_HANDSHAKE_DONE
    return c

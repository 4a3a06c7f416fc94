"""The WebSocket client: ``connect_ws``, once or reconnecting.

The upgrade request goes out through the HTTP client (``mgpy.http.client``) with a
fresh random key per attempt.  A 101 reply is verified (``Sec-WebSocket-Accept``, the
subprotocol) and the connection switches to the WebSocket protocol handler; the
handler then gets WS_HANDSHAKE_DONE with the response (``resp_code == 101``).  Any
other status is read like a normal response and delivered as WS_HANDSHAKE_DONE too,
then the connection closes.  A 101 that fails verification gives ERROR and CLOSE
without WS_HANDSHAKE_DONE.

Reconnecting (``connect_ws(..., reconnect=ReconnectOpts())``) returns a ``WsReconnect``
handle that owns a series of connections to the same URL, one at a time.  The handler
sees each attempt's events with that attempt's Connection (CONNECT, ERROR,
WS_HANDSHAKE_DONE on every success, WS_FRAME ...), but not its CLOSE: when an attempt
fails or an open WebSocket drops, the handler gets ``WsEv.RECONNECTING`` (the handle,
with ``reason`` and ``delay``) and the next attempt is dialled after an exponential
backoff with jitter.  CLOSE is delivered once, when the series ends: ``close()`` on the
handle, a close the handler asked for on its connection (``c.close()``, ``c.ws_close()``,
``c.abort()``, ``c.error()``), a certificate the client does not trust, a refusal that
is not 5xx, the server's close code 1000 (normal closure: the session is over),
``max_tries`` failures in a row, or ``Manager.close()``.  ``rc.reason`` says which.
"""

from __future__ import annotations

import enum
import logging
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

from ..errors import Error, ProtocolError
from ..events import WS_OP_CLOSE, Ev, Headers, HttpMessage
from ..http.client import new_client
from ..http.exchange import HttpState, hand_over_timer
from ..http.heads import normalize_headers
from ..proto import ws as _core
from ..proto.deflate import DeflateOptions, offer
from ..proto.ws_handshake import check_server_response, parse_close
from .compression import DEFAULT_COMPRESSION
from .protocol import WsState, ws_recv, ws_start
from .send import send_websocket_frame, ws_close

if TYPE_CHECKING:
    from ..core import Connection, Handler, Manager
    from ..limits import Limits

__all__ = ["ReconnectOpts", "WsEv", "WsReconnect", "connect_ws"]

log = logging.getLogger("mgpy")

_EV_WS_HANDSHAKE_DONE = Ev.WS_HANDSHAKE_DONE
_CLOSE = Ev.CLOSE
_ERROR = Ev.ERROR
_CONTROL = Ev.WS_CONTROL_FRAME
_OPEN = _core.OPEN
_NORMAL_CLOSURE = 1000  # RFC 6455 7.4.1


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


@overload
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
    reconnect: None = None,
) -> Connection: ...


@overload
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
    reconnect: ReconnectOpts,
) -> WsReconnect: ...


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
    reconnect: ReconnectOpts | None = None,
) -> Connection | WsReconnect:
    """Open a WebSocket to ``url`` (ws://, wss://, http://, https:// or no scheme).

    ``protocol`` offers subprotocols (a list, or a comma-separated string).
    ``compression`` offers permessage-deflate (on by default; None: not offered).  The
    handler gets CONNECT, then WS_HANDSHAKE_DONE (check ``resp_code == 101``), then
    WS_FRAME ...  A bad URL, path or header raises at the call.

    ``reconnect=ReconnectOpts(...)`` keeps the WebSocket: it returns a ``WsReconnect``
    handle instead of the Connection, re-dials after drops and refused connections
    (``WsEv.RECONNECTING`` between attempts) and delivers CLOSE only when it stops
    (``rc.close()``; see the module notes for the other reasons).

    Example::

        c = mgr.connect_ws("ws://127.0.0.1:8000/ws", handler)
        rc = mgpy.connect_ws(mgr, "wss://feed.example/ws", handler,
                             reconnect=mgpy.ReconnectOpts(max_delay=10))
    """
    if isinstance(protocol, str):
        offered = [p.strip() for p in protocol.split(",") if p.strip()]
    else:
        offered = list(protocol or ())
    if compression is not None and not isinstance(compression, DeflateOptions):
        raise TypeError(f"compression must be a DeflateOptions or None, got {compression!r}")
    hs = normalize_headers(headers)
    if reconnect is None:
        return _dial(mgr, url, handler, offered, hs, limits, user_data, tls, compression)
    if not isinstance(reconnect, ReconnectOpts):
        raise TypeError(f"reconnect must be a ReconnectOpts or None, got {reconnect!r}")
    rc = WsReconnect(
        mgr, url, handler, reconnect, (offered, hs, limits, user_data, tls, compression)
    )
    rc.dial()
    return rc


def _dial(
    mgr: Manager,
    url: str,
    handler: Handler,
    offered: list[str],
    headers: list[tuple[str, str]],
    limits: Limits | None,
    user_data: Any,
    tls: Any,
    compression: DeflateOptions | None,
) -> Connection:
    """One attempt: the upgrade request, with the handshake check on its 101."""
    c, _st, x = new_client(mgr, url, "ws", handler, "GET", headers, b"", limits, user_data, tls)
    hs = _Handshake(x.addr.hostport, offered, compression)
    x.extra_headers = hs.headers
    x.on_101 = hs.on_101
    x.reply_ev = _EV_WS_HANDSHAKE_DONE
    return c


# --------------------------------------------------------------------------------
# reconnecting
# --------------------------------------------------------------------------------
class WsEv(enum.IntEnum):
    """Events of a reconnecting WebSocket (the numbers after mongoose's WS block)."""

    #: ev_data: the ``WsReconnect`` handle.  An attempt failed or the WebSocket dropped
    #: (``rc.reason``); the next attempt starts in ``rc.delay`` seconds.  Delivered
    #: with the connection that ended, instead of its CLOSE.
    RECONNECTING = 115


@dataclass(frozen=True)
class ReconnectOpts:
    """How ``connect_ws(..., reconnect=)`` re-dials.

    The n-th failed attempt in a row waits ``min(max_delay, min_delay * 2**(n-1))``
    seconds, spread by +-``jitter`` (0.2: +-20 %) so that many clients do not come back
    in lockstep; a successful handshake starts again from ``min_delay``.
    ``max_tries`` failed attempts in a row end it (0: never give up).
    """

    min_delay: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.2
    max_tries: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.min_delay <= self.max_delay:
            raise ValueError("ReconnectOpts needs 0 < min_delay <= max_delay")
        if not 0 <= self.jitter < 1:
            raise ValueError("ReconnectOpts.jitter must be in [0, 1)")
        if self.max_tries < 0:
            raise ValueError("ReconnectOpts.max_tries must be >= 0")

    def delay(self, failures: int) -> float:
        """The wait before the next attempt after ``failures`` (>= 1) failures in a row."""
        base = min(self.max_delay, self.min_delay * 2.0 ** min(failures - 1, 60))
        return float(base * random.uniform(1 - self.jitter, 1 + self.jitter))


def _closing(c: Connection) -> bool:
    """Has a close started on ``c`` (the socket, or the WebSocket close handshake)?"""
    if c.is_closing or c.closed:
        return True
    st: Any = c.proto_data
    return st.__class__ is WsState and st.ws.state != _OPEN


class WsReconnect:
    """A WebSocket that comes back: the handle ``connect_ws(..., reconnect=...)`` returns.

    ``conn`` is the current attempt's Connection (None between attempts); ``up`` is
    True while its WebSocket is open; ``failures`` counts failed attempts since the
    last success; ``delay`` is the wait announced by the last ``WsEv.RECONNECTING``;
    ``reason`` says why the last connection ended (or why the series stopped);
    ``stopped`` is True once CLOSE was delivered or is on its way.
    """

    def __init__(
        self,
        mgr: Manager,
        url: str,
        handler: Handler,
        opts: ReconnectOpts,
        dial_args: tuple[Any, ...],
    ) -> None:
        self.mgr = mgr
        self.url = url
        self.handler = handler
        self.opts = opts
        self.conn: Connection | None = None
        self.last: Connection | None = None
        self.up = False
        self.failures = 0
        self.delay = 0.0
        self.reason = ""
        self.stopped = False
        self._final = ""  # why the series ends with this connection ("" = go on)
        self._retry: Any = None
        self._args = dial_args  # for _dial: offered, headers, limits, user_data, tls, compression

    def __repr__(self) -> str:
        state = "stopped" if self.stopped else "up" if self.up else "reconnecting"
        return f"<WsReconnect {self.url} {state}>"

    def dial(self) -> None:
        """Start the next attempt (connect_ws starts the first; the backoff timer the others)."""
        self._retry = None
        if self.stopped:
            return
        self.reason = ""
        offered, hs, limits, user_data, tls, compression = self._args
        try:
            self.conn = self.last = _dial(
                self.mgr, self.url, self._on_event, offered, hs, limits, user_data, tls, compression
            )
        except Error as e:
            if self.last is None:
                raise  # the first attempt: the caller of connect_ws gets it
            log.warning("%r: cannot dial again: %s", self, e)
            self._final = f"cannot dial again: {e}"
            self.stopped = True
            self._closed_while_waiting()

    def _on_event(self, c: Connection, ev: Any, ev_data: Any) -> None:
        if ev == _CLOSE:
            self._ended(c)
            return
        if ev == _ERROR:
            self.reason = str(ev_data)
            if "certificate verify failed" in self.reason:
                self._final = self.reason  # not transient: the same failure every time
        elif ev == _EV_WS_HANDSHAKE_DONE:
            self._handshake_done(ev_data)
        elif ev == _CONTROL and ev_data.opcode == WS_OP_CLOSE and not self._final:
            code = parse_close(ev_data.data)[0]  # (the core validated it already)
            self.reason = f"the server closed the WebSocket ({code})"
            if code == _NORMAL_CLOSURE:
                self._final = self.reason
        before = _closing(c)
        self.handler(c, ev, ev_data)
        if not before and _closing(c) and not self._final:
            self._final = "closed by the application"

    def _handshake_done(self, hm: HttpMessage) -> None:
        code = hm.resp_code
        if code == 101:
            self.up = True
            self.failures = 0
            self.reason = ""
            return
        self.reason = f"the server refused the WebSocket: {code} {hm.resp_status_msg}".rstrip()
        if not 500 <= code < 600:
            self._final = self.reason  # 4xx (and 3xx, not followed): asking again changes nothing

    def _ended(self, c: Connection) -> None:
        """An attempt's connection closed: go on with the next one, or deliver CLOSE."""
        if c is not self.conn:
            return
        self.conn = None
        was_up, self.up = self.up, False
        if not was_up:
            self.failures += 1
        if not self.reason:
            self.reason = c.error_reason or ("connection lost" if was_up else "cannot connect")
        max_tries = self.opts.max_tries
        if self._final or self.stopped or self.mgr.stopping:
            self.reason = self._final or self.reason
        elif max_tries and self.failures >= max_tries:
            self.reason = f"gave up after {self.failures} failed attempts ({self.reason})"
        else:
            self.delay = self.opts.delay(max(self.failures, 1))
            self._retry = self.mgr.call_later(self.delay, self.dial)
            self.handler(c, WsEv.RECONNECTING, self)
            return
        self.stopped = True
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self.handler(c, _CLOSE, None)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Stop: close the WebSocket (``code``, ``reason``) or cancel the wait; CLOSE follows."""
        if self.stopped:
            return
        self.stopped = True
        if not self._final:
            self._final = "closed by the application"
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        c = self.conn
        if c is None:  # between attempts: CLOSE with the connection that ended last
            self.mgr.call_soon(self._closed_while_waiting)
        elif self.up and not _closing(c):
            ws_close(c, code, reason)
        else:
            c.close()

    def _closed_while_waiting(self) -> None:
        self.reason = self._final
        if self.last is not None:
            self.handler(self.last, _CLOSE, None)

    def send_websocket_frame(self, op: int, data: Any = b"") -> bool:
        """Send on the current WebSocket; False (nothing sent) while it is not up."""
        c = self.conn
        if c is None or not self.up or _closing(c):
            return False
        send_websocket_frame(c, op, data)
        return True

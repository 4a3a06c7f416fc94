"""The facade's ``Manager`` and ``Connection``: the core's, plus the mongoose-style methods.

``mgpy.core`` knows no protocol, so its ``Connection`` has no ``send_head`` and its
``Manager`` no ``connect_ws``.  Users get these subclasses from ``mgpy``: every
protocol method is a one-line call of the function that does the work
(``c.send_websocket_frame(op, data)`` is ``mgpy.send_websocket_frame(c, op, data)``),
so both spellings mongoose users know work and stay identical.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast, overload

from . import core
from .events import Headers
from .http.client import connect_http
from .http.respond import send_head, send_http_chunk
from .http.server import set_protocol_http_websocket
from .limits import Limits
from .mqtt import connect_mqtt
from .proto.deflate import DeflateOptions
from .ws.client import ReconnectOpts, WsReconnect, connect_ws
from .ws.compression import DEFAULT_COMPRESSION, set_compression
from .ws.send import printf_websocket_frame, send_websocket_frame, ws_close

__all__ = ["Connection", "Handler", "Manager"]

#: ``handler(c, ev, ev_data)``
Handler = Callable[["Connection", Any, Any], None]


class Connection(core.Connection):
    """A connection (listener, accepted or outbound); see ``mgpy.core.Connection``.

    Adds the mongoose-style protocol methods, each the same as the ``mgpy`` function
    of the same name with ``c`` first.
    """

    __slots__ = ()

    def set_protocol_http_websocket(self) -> None:
        """Speak HTTP/1.1 + WebSocket on this connection (or on every accepted one)."""
        set_protocol_http_websocket(self)

    def send_head(self, code: int, length: int = -1, headers: Headers = None) -> None:
        """Send a response head; ``length`` -1 means chunked (HTTP/1.1) or close-delimited."""
        send_head(self, code, length, headers)

    def send_http_chunk(self, data: core.Data) -> None:
        """Send one chunk of a chunked response; an empty chunk ends the response."""
        send_http_chunk(self, data)

    def printf_http_chunk(self, fmt: str, *args: Any) -> None:
        """Send ``fmt % args`` as one chunk of a chunked response."""
        send_http_chunk(self, fmt % args if args else fmt)

    def send_websocket_frame(self, op: int, data: core.Data = b"") -> None:
        """Send a WebSocket frame; OR ``WS_DONT_FIN`` into ``op`` for a non-final fragment."""
        send_websocket_frame(self, op, data)

    def printf_websocket_frame(self, op: int, fmt: str, *args: Any) -> None:
        """Send ``fmt % args`` as a WebSocket frame."""
        printf_websocket_frame(self, op, fmt, *args)

    def ws_close(self, code: int = 1000, reason: str = "") -> None:
        """Start the WebSocket close handshake; the TCP connection closes after the reply."""
        ws_close(self, code, reason)


class Manager(core.Manager):
    """Owns connections and runs the event loop, one ``poll`` at a time.

    ``mgpy.core.Manager`` plus ``connect_http``/``connect_ws`` and the protocol
    counters; the connections it creates are ``mgpy.Connection`` objects.

    Example::

        def handler(c, ev, ev_data):
            if ev == mgpy.Ev.RECV:
                c.send(bytes(c.recv_mbuf))     # echo
                c.recv_mbuf.clear()

        with mgpy.Manager() as mgr:
            mgr.bind("tcp://127.0.0.1:1234", handler)
            while True:
                mgr.poll(1000)
    """

    connection_class = Connection

    def __enter__(self) -> Manager:
        return self

    @property
    def connections(self) -> list[Connection]:  # type: ignore[override]
        """A snapshot list of live connections (listeners included)."""
        return cast("list[Connection]", super().connections)

    @property
    def requests(self) -> int:
        """HTTP requests received so far (all HTTP connections)."""
        return self.counters.get("http.requests", 0)

    @property
    def ws_messages(self) -> int:
        """WebSocket data messages received so far."""
        return self.counters.get("ws.messages", 0)

    def bind(
        self,
        addr: str | int,
        handler: Handler,
        *,
        limits: Limits | None = None,
        user_data: Any = None,
        tls: Any = None,
        backlog: int = 1024,
        reuse_port: bool = False,
        compression: DeflateOptions | None = DEFAULT_COMPRESSION,
    ) -> Connection:
        """Listen on ``addr``; see ``mgpy.core.Manager.bind``.

        ``compression``: the permessage-deflate options its WebSocket connections
        negotiate (on by default; None turns WebSocket compression off).
        """
        c = super().bind(
            addr,
            cast(core.Handler, handler),
            limits=limits,
            user_data=user_data,
            tls=tls,
            backlog=backlog,
            reuse_port=reuse_port,
        )
        if compression is not DEFAULT_COMPRESSION:
            set_compression(c, compression)
        return cast(Connection, c)

    def connect(
        self,
        addr: str | core.Addr,
        handler: Handler,
        *,
        limits: Limits | None = None,
        user_data: Any = None,
        tls: Any = None,
    ) -> Connection:
        """Open an outbound connection; see ``mgpy.core.Manager.connect``."""
        c = super().connect(
            addr, cast(core.Handler, handler), limits=limits, user_data=user_data, tls=tls
        )
        return cast(Connection, c)

    def connect_http(
        self,
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
        """Send an HTTP request to ``url``; the handler gets HTTP_CHUNK* and HTTP_REPLY.

        ``method`` defaults to GET (POST when a ``body`` is given); ``user:pass@``
        in the URL sends Basic credentials (and answers a Digest challenge once).
        """
        self._check_open()
        c = connect_http(
            self,
            url,
            cast(core.Handler, handler),
            method,
            headers,
            body,
            limits=limits,
            user_data=user_data,
            tls=tls,
        )
        return cast(Connection, c)

    @overload
    def connect_ws(
        self,
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
        self,
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
        self,
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
        """Open a WebSocket to ``url``; the handler gets WS_HANDSHAKE_DONE, then WS_FRAME...

        ``compression`` offers permessage-deflate (on by default; None: not offered).
        ``reconnect=mgpy.ReconnectOpts(...)`` re-dials after drops with backoff and
        returns a ``WsReconnect`` handle instead of the connection.
        """
        self._check_open()
        h = cast(core.Handler, handler)
        if reconnect is not None:
            return connect_ws(
                self,
                url,
                h,
                protocol,
                headers,
                limits=limits,
                user_data=user_data,
                tls=tls,
                compression=compression,
                reconnect=reconnect,
            )
        c = connect_ws(
            self,
            url,
            h,
            protocol,
            headers,
            limits=limits,
            user_data=user_data,
            tls=tls,
            compression=compression,
        )
        return cast(Connection, c)

    def connect_mqtt(self, url: str, handler: Handler, **kw: Any) -> Connection:
        """Connect to an MQTT broker (``mqtt://``, ``mqtts://``, ``ws://``, ``wss://``).

        The handler gets ``Ev.MQTT_CONNACK``, then ``MQTT_PUBLISH`` ...; keyword options
        as ``mgpy.connect_mqtt`` (client_id, username, password, clean_start, will,
        keepalive, version, session ...).
        """
        self._check_open()
        return cast(Connection, connect_mqtt(self, url, cast(core.Handler, handler), **kw))

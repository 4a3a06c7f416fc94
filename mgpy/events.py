"""Event numbers, connection flags and the payload classes handlers receive.

The numbering follows mongoose 6 so code ported from C reads the same:
``Ev.HTTP_REQUEST == 100`` and ``F.SEND_AND_CLOSE == 1 << 10``.  Events that
mongoose 6 lacks (``WRITABLE``, ``ERROR``, ``HTTP_HEADERS`` -- mongoose 7's
MG_EV_HTTP_HDRS) use numbers mongoose 6 never used.

Payload classes are plain ``__slots__`` objects: they are created on the hot
path (one ``HttpMessage`` per request, one ``WsMessage`` per frame), so they
carry no behaviour beyond small accessors.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

__all__ = [
    "WS_DONT_FIN",
    "WS_OP_BINARY",
    "WS_OP_CLOSE",
    "WS_OP_CONTINUE",
    "WS_OP_PING",
    "WS_OP_PONG",
    "WS_OP_TEXT",
    "Ev",
    "F",
    "Headers",
    "HttpMessage",
    "MultipartPart",
    "WsMessage",
]


class Ev(enum.IntEnum):
    """Event numbers passed as ``ev`` to ``handler(c, ev, ev_data)``."""

    POLL = 0  #: ev_data: current time (float); every connection, every poll
    ACCEPT = 1  #: ev_data: peer address
    CONNECT = 2  #: ev_data: int status, 0 = connected, else an errno-like code
    RECV = 3  #: ev_data: int bytes just appended to ``c.recv_mbuf``
    SEND = 4  #: ev_data: int bytes just written to the socket
    CLOSE = 5  #: ev_data: None; always the last event of a connection
    TIMER = 6  #: ev_data: the deadline (float) given to ``set_timer``
    WRITABLE = 7  #: ev_data: int bytes still queued; send queue fell below low water
    ERROR = 8  #: ev_data: str reason; fired just before CLOSE when closing on an error
    HTTP_REQUEST = 100  #: ev_data: HttpMessage (server side)
    HTTP_REPLY = 101  #: ev_data: HttpMessage (client side)
    HTTP_CHUNK = 102  #: ev_data: HttpMessage with the body so far
    #: ev_data: HttpMessage (server side, body b""): the head of a request with a body,
    #: before any of it is read; answer now to refuse it without reading the body
    HTTP_HEADERS = 103
    WS_HANDSHAKE_REQUEST = 111  #: ev_data: HttpMessage (server side)
    WS_HANDSHAKE_DONE = 112  #: ev_data: HttpMessage (request on server, response on client)
    WS_FRAME = 113  #: ev_data: WsMessage (a whole data message unless WEBSOCKET_NO_DEFRAG)
    WS_CONTROL_FRAME = 114  #: ev_data: WsMessage (ping, pong or close)
    WS_RECONNECTING = 115  #: ev_data: WsReconnect (a reconnecting client is down, will re-dial)
    MQTT_CONNACK = 130  #: ev_data: Connack (client: the broker answered our CONNECT)
    MQTT_PUBLISH = 131  #: ev_data: Publish (a message for us)
    MQTT_SUBACK = 132  #: ev_data: Suback
    MQTT_UNSUBACK = 133  #: ev_data: Unsuback
    MQTT_PUBLISH_DONE = 134  #: ev_data: PublishDone (our QoS 1/2 publish completed)
    MQTT_DISCONNECT = 135  #: ev_data: Disconnect (the peer's)
    MQTT_SESSION_LOST = 136  #: ev_data: list of messages a dropped session discarded
    MQTT_CLIENT_CONNECT = 137  #: ev_data: Connect (broker: a client connected)
    MQTT_SUBSCRIBE = 138  #: ev_data: Subscribe (broker)
    MQTT_UNSUBSCRIBE = 139  #: ev_data: Unsubscribe (broker)
    HTTP_MULTIPART_REQUEST = 121  #: ev_data: HttpMessage (headers only)
    HTTP_PART_BEGIN = 122  #: ev_data: MultipartPart (no data)
    HTTP_PART_DATA = 123  #: ev_data: MultipartPart with data
    HTTP_PART_END = 124  #: ev_data: MultipartPart, status 0 = clean, < 0 = aborted
    HTTP_MULTIPART_REQUEST_END = 125  #: ev_data: MultipartPart, status 0 or < 0


class F(enum.IntFlag):
    """Connection flags (``c.flags``), with mongoose 6 bit values.

    Only flags mgpy implements exist; mongoose's WANT_READ/WANT_WRITE, RECV_AND_CLOSE
    and ENABLE_BROADCAST (bits 6, 7, 9, 14) have no meaning here and are left out.
    """

    LISTENING = 1 << 0  #: a listening socket (read-only)
    UDP = 1 << 1  #: a UDP socket (read-only)
    RESOLVING = 1 << 2  #: outbound, resolving the host name (read-only)
    CONNECTING = 1 << 3  #: outbound, connecting (read-only)
    SSL = 1 << 4  #: TLS is on (read-only)
    SSL_HANDSHAKE_DONE = 1 << 5  #: the TLS handshake completed (read-only)
    IS_WEBSOCKET = 1 << 8  #: the connection speaks WebSocket (set on the 101)
    SEND_AND_CLOSE = 1 << 10  #: flush the send queue, then close
    CLOSE_IMMEDIATELY = 1 << 11  #: close at the end of this event, dropping queued data
    WEBSOCKET_NO_DEFRAG = 1 << 12  #: deliver each WebSocket fragment as its own WS_FRAME
    DELETE_CHUNK = 1 << 13  #: set in HTTP_CHUNK: drop the body received so far
    USER_1 = 1 << 20
    USER_2 = 1 << 21
    USER_3 = 1 << 22
    USER_4 = 1 << 23
    USER_5 = 1 << 24
    USER_6 = 1 << 25

    # ``c.flags & F.IS_WEBSOCKET`` runs in every handler: answer it with a plain int at C
    # speed (Flag.__and__ is Python code, ~0.5 us) -- truth tests and comparisons are unchanged
    __and__ = int.__and__  # type: ignore[assignment]
    __rand__ = int.__rand__  # type: ignore[assignment]


WS_OP_CONTINUE = 0x0
WS_OP_TEXT = 0x1
WS_OP_BINARY = 0x2
WS_OP_CLOSE = 0x8
WS_OP_PING = 0x9
WS_OP_PONG = 0xA
#: OR into an opcode to send a fragment that is not the last one of its message.
WS_DONT_FIN = 0x100

#: What every ``headers=`` argument accepts.
Headers = dict[str, str] | Iterable[tuple[str, str]] | None


def find_header(
    headers: Iterable[tuple[str, str]], name: str, default: str | None = None
) -> str | None:
    """Return the first value of header ``name`` (case-insensitive), or ``default``."""
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            return v
    return default


class HttpMessage:
    """A parsed HTTP request (server side) or response (client side).

    ``method``, ``uri`` (raw path, not percent-decoded), ``query_string``,
    ``proto``, ``resp_status_msg`` are ``str``; ``headers`` is a list of
    ``(name, value)`` pairs in wire order; ``body`` is ``bytes``;
    ``resp_code`` is an ``int`` (0 for requests).  ``message`` is the whole
    message as received (head and body).
    """

    __slots__ = (
        "body",
        "chunked",
        "content_length",
        "expect_continue",
        "head",
        "headers",
        "keep_alive",
        "method",
        "proto",
        "query_string",
        "resp_code",
        "resp_status_msg",
        "upgrade",
        "uri",
    )

    method: str
    uri: str
    query_string: str
    proto: str
    headers: list[tuple[str, str]]
    body: bytes
    resp_code: int
    resp_status_msg: str
    #: the raw head bytes (request/status line and header lines, ending CRLF CRLF)
    head: bytes
    #: False when the connection must close after this message (Connection: close, HTTP/1.0)
    keep_alive: bool
    #: declared Content-Length, or -1 (chunked, read-until-close or no body)
    content_length: int
    #: True when the body uses chunked transfer coding
    chunked: bool
    #: lower-cased Upgrade header value when ``Connection: upgrade`` was sent, else ""
    upgrade: str
    #: True when the request carried ``Expect: 100-continue``
    expect_continue: bool

    def __init__(
        self,
        method: str = "",
        uri: str = "",
        query_string: str = "",
        proto: str = "HTTP/1.1",
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        resp_code: int = 0,
        resp_status_msg: str = "",
        head: bytes = b"",
    ) -> None:
        self.method = method
        self.uri = uri
        self.query_string = query_string
        self.proto = proto
        self.headers = headers if headers is not None else []
        self.body = body
        self.resp_code = resp_code
        self.resp_status_msg = resp_status_msg
        self.head = head
        self.keep_alive = True
        self.content_length = -1
        self.chunked = False
        self.upgrade = ""
        self.expect_continue = False

    @property
    def message(self) -> bytes:
        """The whole message as received: head followed by the body."""
        return self.head + self.body

    def header(self, name: str, default: str | None = None) -> str | None:
        """Return the first header called ``name`` (case-insensitive), or ``default``."""
        return find_header(self.headers, name, default)

    def header_all(self, name: str) -> list[str]:
        """Return every value of header ``name`` (case-insensitive), in wire order."""
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def __repr__(self) -> str:
        if self.resp_code:
            return f"<HttpMessage {self.proto} {self.resp_code} {self.resp_status_msg!r}>"
        q = "?" + self.query_string if self.query_string else ""
        return f"<HttpMessage {self.method} {self.uri}{q} {self.proto}>"


class WsMessage:
    """A WebSocket message or frame: ``data`` (bytes) and ``flags`` (first frame byte)."""

    __slots__ = ("data", "flags")

    def __init__(self, data: bytes, flags: int) -> None:
        self.data = data
        self.flags = flags

    @property
    def opcode(self) -> int:
        """The frame opcode (``WS_OP_TEXT``, ``WS_OP_BINARY``, ``WS_OP_PING`` ...)."""
        return self.flags & 0x0F

    @property
    def fin(self) -> bool:
        """True for the last frame of a message."""
        return bool(self.flags & 0x80)

    @property
    def text(self) -> str:
        """``data`` decoded as UTF-8 (text messages are validated on receipt)."""
        return self.data.decode("utf-8")

    def __repr__(self) -> str:
        return f"<WsMessage op={self.opcode} fin={self.fin} len={len(self.data)}>"


class MultipartPart:
    """One part of a multipart/form-data request, as seen by HTTP_PART_* events."""

    __slots__ = (
        "data",
        "file_name",
        "headers",
        "num_data_consumed",
        "status",
        "user_data",
        "var_name",
    )

    def __init__(
        self,
        var_name: str | None = None,
        file_name: str | None = None,
        data: bytes = b"",
        status: int = 0,
        headers: list[tuple[str, str]] | None = None,
        user_data: Any = None,
    ) -> None:
        self.var_name = var_name
        self.file_name = file_name
        self.data = data
        self.status = status
        self.headers = headers if headers is not None else []
        self.user_data = user_data
        #: in HTTP_PART_DATA: how much of ``data`` the handler used (default: all).
        #: Set it lower and the rest is delivered again later, reading paused meanwhile.
        self.num_data_consumed = len(data)

    def header(self, name: str, default: str | None = None) -> str | None:
        """Return the part header ``name`` (case-insensitive), or ``default``."""
        return find_header(self.headers, name, default)

    def __repr__(self) -> str:
        return (
            f"<MultipartPart var={self.var_name!r} file={self.file_name!r} "
            f"len={len(self.data)} status={self.status}>"
        )

"""mgpy: mongoose-style event-driven networking in one thread."""

from __future__ import annotations

from typing import Any

from ._api import Connection, Handler, Manager
from ._version import __version__
from .core import TimerHandle, TlsInfo, TlsOpts, tls_info
from .errors import Error, LimitExceeded, LocalProtocolError, ProtocolError, RemoteProtocolError
from .events import (
    WS_DONT_FIN,
    WS_OP_BINARY,
    WS_OP_CLOSE,
    WS_OP_CONTINUE,
    WS_OP_PING,
    WS_OP_PONG,
    WS_OP_TEXT,
    Ev,
    F,
    HttpMessage,
    MultipartPart,
    WsMessage,
)
from .http.access import enable_access_log
from .http.auth import (
    AuthResult,
    check_digest_auth,
    get_http_basic_auth,
    send_basic_auth_request,
    send_digest_auth_request,
)
from .http.respond import (
    http_reply,
    http_send_error,
    http_send_redirect,
    send_head,
    send_http_chunk,
)
from .http.server import register_http_endpoint, set_protocol_http_websocket
from .http.static.serve import ServeOpts, serve_file, serve_http
from .http.upload import file_upload_handler
from .limits import Limits
from .mbuf import Mbuf
from .mqtt import (
    MqttBroker,
    MqttEv,
    mqtt_broker,
    mqtt_disconnect,
    mqtt_ping,
    mqtt_publish,
    mqtt_session,
    mqtt_subscribe,
    mqtt_unsubscribe,
)
from .proto.deflate import DeflateOptions
from .proto.digest import create_digest_auth_header
from .proto.httputil import get_http_var, http_parse_header, url_decode, url_encode
from .proto.ws import WsProtocol
from .pubsub import (
    Hub,
    Published,
    SseStream,
    get_hub,
    publish,
    sse_comment,
    sse_end,
    sse_send,
    sse_start,
    sse_stream,
    subscribe,
    unsubscribe,
)
from .workers import Worker, current_worker, run_workers
from .ws import (
    ReconnectOpts,
    WsReconnect,
    printf_websocket_frame,
    send_websocket_frame,
    ws_accept,
    ws_broadcast,
    ws_close,
    ws_compression,
    ws_dropped,
)


def get_http_header(hm: HttpMessage, name: str) -> str | None:
    """Return the first header ``name`` of ``hm`` (case-insensitive), or None."""
    return hm.header(name)


def printf_http_chunk(c: Connection, fmt: str, *args: object) -> None:
    """Send ``fmt % args`` as one chunk of a chunked response (mongoose's mg_printf_http_chunk)."""
    send_http_chunk(c, fmt % args if args else fmt)


def send(c: Connection, data: bytes | bytearray | memoryview | str) -> int:
    """Queue ``data`` on ``c`` (mongoose's mg_send); ``c.send(data)``."""
    return c.send(data)


def printf(c: Connection, fmt: str, *args: object) -> int:
    """Queue ``fmt % args`` on ``c`` (mongoose's mg_printf); ``c.printf(fmt, *args)``."""
    return c.printf(fmt, *args)


def set_timer(c: Connection, when: float) -> float:
    """Deliver TIMER at wall-clock ``when`` (mongoose's mg_set_timer); ``c.set_timer(when)``."""
    return c.set_timer(when)


def bind(mgr: Manager, addr: str | int, handler: Handler, **kw: object) -> Connection:
    """``mgr.bind(addr, handler, ...)`` as a function (mongoose's mg_bind)."""
    return mgr.bind(addr, handler, **kw)  # type: ignore[arg-type]


def connect(mgr: Manager, addr: str, handler: Handler, **kw: object) -> Connection:
    """``mgr.connect(addr, handler, ...)`` as a function (mongoose's mg_connect)."""
    return mgr.connect(addr, handler, **kw)  # type: ignore[arg-type]


def connect_http(mgr: Manager, url: str, handler: Handler, **kw: object) -> Connection:
    """``mgr.connect_http(url, handler, ...)`` as a function (mongoose's mg_connect_http)."""
    return mgr.connect_http(url, handler, **kw)  # type: ignore[arg-type]


def connect_mqtt(mgr: Manager, url: str, handler: Handler, **kw: object) -> Connection:
    """``mgr.connect_mqtt(url, handler, ...)`` as a function (mongoose's mg_mqtt_connect)."""
    return mgr.connect_mqtt(url, handler, **kw)


def connect_ws(mgr: Manager, url: str, handler: Handler, **kw: Any) -> Connection | WsReconnect:
    """``mgr.connect_ws(url, handler, ...)`` as a function (mongoose's mg_connect_ws).

    With ``reconnect=mgpy.ReconnectOpts(...)`` it returns the ``WsReconnect`` handle.
    """
    result: Connection | WsReconnect = mgr.connect_ws(url, handler, **kw)
    return result


__all__ = [
    "WS_DONT_FIN",
    "WS_OP_BINARY",
    "WS_OP_CLOSE",
    "WS_OP_CONTINUE",
    "WS_OP_PING",
    "WS_OP_PONG",
    "WS_OP_TEXT",
    "AuthResult",
    "Connection",
    "DeflateOptions",
    "Error",
    "Ev",
    "F",
    "HttpMessage",
    "Hub",
    "LimitExceeded",
    "Limits",
    "LocalProtocolError",
    "Manager",
    "Mbuf",
    "MqttBroker",
    "MqttEv",
    "MultipartPart",
    "ProtocolError",
    "Published",
    "ReconnectOpts",
    "RemoteProtocolError",
    "ServeOpts",
    "SseStream",
    "TimerHandle",
    "TlsInfo",
    "TlsOpts",
    "Worker",
    "WsMessage",
    "WsProtocol",
    "WsReconnect",
    "__version__",
    "bind",
    "check_digest_auth",
    "connect",
    "connect_http",
    "connect_mqtt",
    "connect_ws",
    "create_digest_auth_header",
    "current_worker",
    "enable_access_log",
    "file_upload_handler",
    "get_http_basic_auth",
    "get_http_header",
    "get_http_var",
    "get_hub",
    "http_parse_header",
    "http_reply",
    "http_send_error",
    "http_send_redirect",
    "mqtt_broker",
    "mqtt_disconnect",
    "mqtt_ping",
    "mqtt_publish",
    "mqtt_session",
    "mqtt_subscribe",
    "mqtt_unsubscribe",
    "printf",
    "printf_http_chunk",
    "printf_websocket_frame",
    "publish",
    "register_http_endpoint",
    "run_workers",
    "send",
    "send_basic_auth_request",
    "send_digest_auth_request",
    "send_head",
    "send_http_chunk",
    "send_websocket_frame",
    "serve_file",
    "serve_http",
    "set_protocol_http_websocket",
    "set_timer",
    "sse_comment",
    "sse_end",
    "sse_send",
    "sse_start",
    "sse_stream",
    "subscribe",
    "tls_info",
    "unsubscribe",
    "url_decode",
    "url_encode",
    "ws_accept",
    "ws_broadcast",
    "ws_close",
    "ws_compression",
    "ws_dropped",
]

"""mgpy: mongoose-style event-driven networking in one thread."""

from __future__ import annotations

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
from .limits import Limits
from .mbuf import Mbuf
from .net.auth import (
    check_digest_auth,
    get_http_basic_auth,
    send_basic_auth_request,
    send_digest_auth_request,
)
from .net.conn import Connection
from .net.http import register_http_endpoint, set_protocol_http_websocket
from .net.manager import Manager
from .net.respond import http_reply, http_send_error, http_send_redirect
from .net.static import ServeOpts, serve_file, serve_http
from .net.tls import TlsInfo, TlsOpts, tls_info
from .net.upload import file_upload_handler
from .net.ws import ws_accept, ws_dropped
from .proto.digest import create_digest_auth_header
from .proto.httputil import get_http_var, http_parse_header, url_decode, url_encode
from .proto.ws import WsProtocol


def get_http_header(hm: HttpMessage, name: str) -> str | None:
    """Return the first header ``name`` of ``hm`` (case-insensitive), or None."""
    return hm.header(name)


__version__ = "0.1.0"

__all__ = [
    "WS_DONT_FIN",
    "WS_OP_BINARY",
    "WS_OP_CLOSE",
    "WS_OP_CONTINUE",
    "WS_OP_PING",
    "WS_OP_PONG",
    "WS_OP_TEXT",
    "Connection",
    "Error",
    "Ev",
    "F",
    "HttpMessage",
    "LimitExceeded",
    "Limits",
    "LocalProtocolError",
    "Manager",
    "Mbuf",
    "MultipartPart",
    "ProtocolError",
    "RemoteProtocolError",
    "ServeOpts",
    "TlsInfo",
    "TlsOpts",
    "WsMessage",
    "WsProtocol",
    "check_digest_auth",
    "create_digest_auth_header",
    "file_upload_handler",
    "get_http_basic_auth",
    "get_http_header",
    "get_http_var",
    "http_parse_header",
    "http_reply",
    "http_send_error",
    "http_send_redirect",
    "register_http_endpoint",
    "send_basic_auth_request",
    "send_digest_auth_request",
    "serve_file",
    "serve_http",
    "set_protocol_http_websocket",
    "tls_info",
    "url_decode",
    "url_encode",
    "ws_accept",
    "ws_dropped",
]

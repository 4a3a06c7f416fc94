"""HTTP/1.1: the server protocol handler, responses, endpoints, the client, multipart,
uploads, Digest/Basic auth and static files.  Built on ``mgpy.core``'s public protocol
interface only; the state machine of an exchange lives in ``exchange``.

``mgpy.ws`` plugs WebSocket in through ``server.register_upgrade``; nothing here
imports it.
"""

from __future__ import annotations

from .access import enable_access_log
from .auth import (
    AuthResult,
    check_digest_auth,
    get_http_basic_auth,
    send_basic_auth_request,
    send_digest_auth_request,
)
from .client import connect_http
from .respond import http_reply, http_send_error, http_send_redirect, send_head, send_http_chunk
from .server import register_http_endpoint, register_upgrade, set_protocol_http_websocket
from .static.serve import ServeOpts, serve_file, serve_http
from .upload import file_upload_handler

__all__ = [
    "AuthResult",
    "ServeOpts",
    "check_digest_auth",
    "connect_http",
    "enable_access_log",
    "file_upload_handler",
    "get_http_basic_auth",
    "http_reply",
    "http_send_error",
    "http_send_redirect",
    "register_http_endpoint",
    "register_upgrade",
    "send_basic_auth_request",
    "send_digest_auth_request",
    "send_head",
    "send_http_chunk",
    "serve_file",
    "serve_http",
    "set_protocol_http_websocket",
]

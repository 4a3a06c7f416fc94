"""WebSocket (RFC 6455): the server upgrade, the protocol handler installed on the 101,
sending with slow-consumer limits, keepalive, and the client.  Built on ``mgpy.http``
and ``mgpy.core``'s public interfaces; importing this package registers the
``websocket`` upgrade with the HTTP server.
"""

from __future__ import annotations

from .client import ReconnectOpts, WsEv, WsReconnect, connect_ws
from .compression import DEFAULT_COMPRESSION, set_compression, ws_broadcast, ws_compression
from .protocol import WsState
from .send import printf_websocket_frame, send_websocket_frame, ws_close, ws_dropped
from .upgrade import ws_accept

__all__ = [
    "DEFAULT_COMPRESSION",
    "ReconnectOpts",
    "WsEv",
    "WsReconnect",
    "WsState",
    "connect_ws",
    "printf_websocket_frame",
    "send_websocket_frame",
    "set_compression",
    "ws_accept",
    "ws_broadcast",
    "ws_close",
    "ws_compression",
    "ws_dropped",
]

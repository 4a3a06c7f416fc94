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

__version__ = "0.1.0"

__all__ = [
    "WS_DONT_FIN",
    "WS_OP_BINARY",
    "WS_OP_CLOSE",
    "WS_OP_CONTINUE",
    "WS_OP_PING",
    "WS_OP_PONG",
    "WS_OP_TEXT",
    "Error",
    "Ev",
    "F",
    "HttpMessage",
    "LimitExceeded",
    "Limits",
    "LocalProtocolError",
    "Mbuf",
    "MultipartPart",
    "ProtocolError",
    "RemoteProtocolError",
    "WsMessage",
]

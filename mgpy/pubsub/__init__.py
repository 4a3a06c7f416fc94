"""Push at scale: topics (subscribe WebSockets and SSE streams, publish), Server-Sent
Events streams, and a Redis bridge that carries topics across processes and hosts.

Everything runs on the Manager's loop; see ``topics`` (the hub), ``sse`` (event
streams) and ``redis`` (the bridge), and docs/push_protocol.md for the CLI's use.
"""

from __future__ import annotations

from .replay import Published
from .sse import (
    KEEPALIVE_INTERVAL,
    SseStream,
    sse_comment,
    sse_end,
    sse_send,
    sse_start,
    sse_stream,
)
from .topics import Hub, get_hub, publish, subscribe, unsubscribe

__all__ = [
    "KEEPALIVE_INTERVAL",
    "Hub",
    "Published",
    "SseStream",
    "get_hub",
    "publish",
    "sse_comment",
    "sse_end",
    "sse_send",
    "sse_start",
    "sse_stream",
    "subscribe",
    "unsubscribe",
]

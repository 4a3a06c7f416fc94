"""permessage-deflate settings per listener and per connection, and broadcast.

Compression (RFC 7692) is on by default, as in aiohttp and websockets: a listener
negotiates it with ``DeflateOptions()`` unless ``bind(..., compression=None)`` (or
``set_compression(lc, None)``) turned it off or chose other options, and a
WS_HANDSHAKE_REQUEST handler may decide per connection with ``ws_accept(c,
compression=...)``.  The defaults (``mgpy.proto.deflate.DeflateOptions``) keep memory
bounded: every message is compressed on its own (both no-context-takeover flags), so an
idle connection holds no zlib state and one message pushed to many connections is
compressed once.

``ws_broadcast(conns, op, data)`` is that push: one frame is built per distinct set of
negotiated parameters (server frames are unmasked, and without server context takeover
a message compresses to the same bytes on every connection: uWebSockets'
SHARED_COMPRESSOR idea) and the same bytes are sent to each connection, under the same
slow-consumer policy as ``send_websocket_frame``.  A connection that cannot share frames
(context takeover, inside a fragmented message, a client) gets its own frame.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..errors import LocalProtocolError
from ..events import WS_OP_BINARY, WS_OP_TEXT
from ..proto.deflate import DeflateOptions, DeflateParams
from ..proto.ws import OPEN, broadcast_frame
from .protocol import WsState, compressors
from .send import queue_admits, send_websocket_frame

if TYPE_CHECKING:
    from ..core import Connection

__all__ = [
    "DEFAULT_COMPRESSION",
    "listener_compression",
    "set_compression",
    "ws_broadcast",
    "ws_compression",
]

#: what a listener (and connect_ws) negotiates unless told otherwise
DEFAULT_COMPRESSION = DeflateOptions()

#: Manager.counters key: bytes ws_broadcast put on the wire (frames, all recipients)
_WIRE = "ws.broadcast_wire"

_by_listener: weakref.WeakKeyDictionary[Connection, DeflateOptions | None] = (
    weakref.WeakKeyDictionary()
)


def set_compression(lc: Connection, options: DeflateOptions | None) -> None:
    """Set what listener ``lc`` negotiates: ``DeflateOptions(...)``, or None for no compression."""
    if options is not None and not isinstance(options, DeflateOptions):
        raise TypeError(f"compression must be a DeflateOptions or None, got {options!r}")
    _by_listener[lc] = options


def listener_compression(c: Connection) -> DeflateOptions | None:
    """What an accepted connection ``c`` negotiates (its listener's setting, or the default)."""
    lst = c.listener
    if lst is None:
        return DEFAULT_COMPRESSION
    return _by_listener.get(lst, DEFAULT_COMPRESSION)


def ws_compression(c: Connection) -> DeflateParams | None:
    """The permessage-deflate parameters WebSocket ``c`` agreed on, or None (uncompressed)."""
    st: Any = c.proto_data
    return st.ws.deflate if st.__class__ is WsState else None


def ws_broadcast(conns: Iterable[Connection], op: int, data: bytes | str) -> int:
    """Send one text or binary message to every WebSocket in ``conns``; return how many got it.

    Builds each distinct frame once (per negotiated compression parameters) and writes
    the same bytes to every connection that can take them; others get their own frame.
    Connections that are not open WebSockets are skipped.  Slow consumers are handled as
    by ``send_websocket_frame`` (``Limits.ws_send_queue``, ``ws_slow_policy``).

    Example::

        mgpy.ws_broadcast(push_clients, mgpy.WS_OP_TEXT, json.dumps(stats))
    """
    if op != WS_OP_TEXT and op != WS_OP_BINARY:
        raise LocalProtocolError(f"ws_broadcast sends text or binary messages, not {op:#x}")
    if isinstance(data, str):
        data = data.encode("utf-8")
    elif not isinstance(data, bytes):
        data = bytes(data)
    frames: dict[DeflateParams | None, bytes] = {}
    n = 0
    wire = 0
    mgr = None
    last_key: Any = frames  # (no connection's key): the key of the frame used last
    frame = b""
    for c in conns:
        st: Any = c.proto_data
        if st.__class__ is not WsState or c.closed:
            continue
        ws = st.ws
        if ws.state != OPEN:
            continue
        mgr = c.mgr
        if not ws.can_share_frames:
            q0 = c.total_queued
            send_websocket_frame(c, op, data)
            sent = c.total_queued - q0
            if sent:  # (nothing when the slow-consumer policy refused it)
                wire += sent
                n += 1
            continue
        key = ws.deflate
        if key is not last_key:  # (equal parameters are one object: deflate._params)
            last_key = key
            got = frames.get(key)
            if got is None:
                got = broadcast_frame(op, data, key, None if key is None else compressors(mgr))
            frame = frames[key] = got
        if not c.send_mbuf.buf or queue_admits(c, st, op, len(frame)):
            c.send(frame)
            wire += len(frame)
            n += 1
    if mgr is not None:
        counters = mgr.counters
        counters[_WIRE] = counters.get(_WIRE, 0) + wire
    return n

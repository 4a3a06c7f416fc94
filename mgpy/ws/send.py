"""Sending WebSocket frames, with the slow-consumer policy; starting the close handshake.

Slow consumers: a data frame that would push the send queue past
``Limits.ws_send_queue`` closes the connection with 1008 (policy "close") or is
dropped (policy "drop", counted in ``ws_dropped(c)``).  Ev.WRITABLE fires when the
queue drains below ``Limits.send_low_water`` after passing high water, so producers
can pace themselves.  A frame sent into an empty queue is always accepted, so one
message may be larger than the cap.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..errors import LocalProtocolError
from ..events import WS_DONT_FIN, WS_OP_CLOSE
from ..proto import ws as _core
from .protocol import WsState, arm_close_timeout, start_close

if TYPE_CHECKING:
    from ..core import Connection

__all__ = [
    "printf_websocket_frame",
    "queue_admits",
    "send_websocket_frame",
    "ws_close",
    "ws_dropped",
]

log = logging.getLogger("mgpy")

#: payloads from this size up go out as header + payload, without joining them
_BIG_FRAME = 16384
_OPEN = _core.OPEN
_CONTROL = 0x8  # RFC 6455 5.5: opcodes from 0x8 up are control frames
_OPCODE_MASK = 0xF


def send_websocket_frame(c: Connection, op: int, data: Any = b"") -> None:
    """Send a WebSocket frame (``WS_OP_TEXT``/``BINARY``/``PING``/``PONG``/``CLOSE``/``CONTINUE``).

    OR ``WS_DONT_FIN`` into ``op`` to send a fragment that is not the last.
    Sending on a connection that is not a WebSocket raises LocalProtocolError;
    after our close frame (or the peer's) data is silently discarded.

    Slow consumers: a data frame that would make the send queue exceed
    ``Limits.ws_send_queue`` is refused by policy (a frame sent into an empty
    queue is always accepted, so one message may be larger than the cap).
    "close" starts the close handshake with 1008; "drop" discards a whole
    message (counted by ``ws_dropped``), but a fragment cannot be dropped
    without corrupting its message, so it closes with 1008 too.

    Example::

        mgpy.send_websocket_frame(c, mgpy.WS_OP_TEXT, '{"temp": 21.5}')
    """
    st = c.proto_data
    if st.__class__ is not WsState:
        raise LocalProtocolError("send_websocket_frame() on a connection that is not a WebSocket")
    ws = st.ws
    if c.closed or ws.state != _OPEN:
        return  # closing: RFC 6455 5.5.1, nothing may follow a close frame
    opcode = op & _OPCODE_MASK
    if opcode == WS_OP_CLOSE:
        c.send(ws.send(op, data))  # validates the code and reason, enters CLOSING
        arm_close_timeout(c, st)
        return
    if isinstance(data, str):
        data = data.encode("utf-8")
    if (
        opcode < _CONTROL
        and c.send_mbuf.buf  # an empty queue always takes a frame: skip the check
        and not queue_admits(c, st, op, _core.frame_length(len(data), st.client))
    ):
        return
    if len(data) < _BIG_FRAME or st.client:
        c.send(ws.send(op, data))
        return
    hdr, payload = ws.send_parts(op, data)  # a big payload is not copied to join its header
    if payload:
        c.sendv(hdr, payload)
    else:
        c.send(hdr)


def queue_admits(c: Connection, st: WsState, op: int, size: int) -> bool:
    """May a data frame of ``size`` bytes be queued on ``c``?  Applies the slow-consumer policy.

    A frame sent into an empty queue is always accepted.  Otherwise, past
    ``Limits.ws_send_queue``: "drop" discards a whole message (counted), "close" (and a
    fragment, which cannot be dropped without corrupting its message) starts the close
    handshake with 1008.
    """
    lim = c.limits
    cap = lim.ws_send_queue
    if not cap:
        return True
    queued = len(c.send_mbuf.buf)
    if not queued or queued + size <= cap:
        return True
    if lim.ws_slow_policy == "drop" and op & _OPCODE_MASK and not op & WS_DONT_FIN:
        st.dropped += 1
        return False
    c.error_reason = "WebSocket slow consumer: send queue over Limits.ws_send_queue"
    log.warning("%r: %s; closing with 1008", c, c.error_reason)
    start_close(c, st, 1008, "slow consumer")
    return False


def printf_websocket_frame(c: Connection, op: int, fmt: str, *args: Any) -> None:
    """Send ``fmt % args`` as a WebSocket frame."""
    send_websocket_frame(c, op, fmt % args if args else fmt)


def ws_close(c: Connection, code: int = 1000, reason: str = "") -> None:
    """Start the close handshake; TCP closes after the peer's reply (or ws_close_timeout)."""
    st = c.proto_data
    if st.__class__ is not WsState:
        raise LocalProtocolError("ws_close() on a connection that is not a WebSocket")
    start_close(c, st, code, reason)


def ws_dropped(c: Connection) -> int:
    """Number of messages dropped for ``c`` under the "drop" slow-consumer policy."""
    st = c.proto_data
    return st.dropped if isinstance(st, WsState) else 0

"""One MQTT network connection, over TCP (or TLS) or over WebSocket: framing and failure.

Theory of operation
-------------------
``MqttLink`` is the part the client (``ClientLink``) and the broker (``BrokerLink``)
share: the ``MqttReader`` of the connection, the transport, and what happens when the
peer breaks the protocol.  It owns no MQTT state machine: sessions live in
``mgpy.proto.mqtt.Session``, and each subclass decides what a packet means.

Transports.  Over TCP the link is ``c.proto_data`` and its packets are parsed in place
from ``c.recv_mbuf`` (``feed_mbuf``); bytes go out with ``c.send``.  Over WebSocket
(subprotocol "mqtt", MQTT 5.0 6.0) ``c.proto_data`` stays the ``WsState`` and the link
is the WebSocket's handler (``WsState.h``): each binary message is appended to the
link's own buffer and parsed from there (``feed_ws``), since a message may hold several
packets or part of one; what the link sends goes out as one binary message per write
[MQTT-6.0.0-1].  A text message closes the connection [MQTT-6.0.0-1].

Failure.  An ``MqttError`` from the reader or the session ends the connection: the
reply ``error_reply`` names (a CONNACK or a 5.0 DISCONNECT with the reason code, or
nothing where 3.1.1 says just close) is written, then the connection closes with
ERROR(reason) [MQTT-4.13.1-1]; nothing more is read.  The reason text goes to the
application only, never to the peer.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..events import WS_OP_BINARY, Ev, WsMessage
from ..proto.mqtt import MqttError, MqttReader, Packet, ReasonCode, error_reply
from ..ws.send import send_websocket_frame, ws_close

if TYPE_CHECKING:
    from ..core import Connection, Handler

__all__ = ["COUNTER_MESSAGES", "MqttLink"]

log = logging.getLogger("mgpy")

#: Manager.counters key: PUBLISH packets received by every MQTT connection
COUNTER_MESSAGES = "mqtt.messages"
_WS_FRAME = Ev.WS_FRAME
_CLOSE = Ev.CLOSE
#: WebSocket close codes (RFC 6455 7.4.1): normal, and protocol error
_WS_NORMAL = 1000
_WS_PROTOCOL_ERROR = 1002


class MqttLink:
    """Per-connection MQTT state shared by client and broker connections (see module doc)."""

    __slots__ = ("acked", "c", "ending", "h", "rbuf", "reader", "ws")

    def __init__(self, c: Connection, h: Handler, reader: MqttReader, ws: bool) -> None:
        self.c = c
        #: the application's handler: MQTT events and the raw events are forwarded to it
        self.h = h
        self.reader = reader
        #: True when MQTT travels in WebSocket binary messages
        self.ws = ws
        #: WebSocket only: received bytes not yet parsed (a partial packet)
        self.rbuf = bytearray()
        #: the CONNACK was sent (broker) or received (client)
        self.acked = False
        #: the link is being closed: input is ignored from now on
        self.ending = False
        c.mgr.counters.setdefault(COUNTER_MESSAGES, 0)

    @property
    def version(self) -> int:
        """Protocol level of the connection: 4 (3.1.1) or 5 (5.0); 0 before the CONNECT."""
        return self.reader.version or 0

    # -- output ----------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Send ``data`` (whole MQTT packets) on the transport."""
        if self.ws:
            send_websocket_frame(self.c, WS_OP_BINARY, data)
        else:
            self.c.send(data)

    def queued(self) -> int:
        """Bytes waiting in this connection's send queue."""
        return len(self.c.send_mbuf.buf)

    # -- input -----------------------------------------------------------------------
    def feed_mbuf(self) -> None:
        """TCP: parse and handle every whole packet in ``c.recv_mbuf``."""
        c = self.c
        mb = c.recv_mbuf
        reader = self.reader
        if self.ending:
            mb.clear()
            return
        try:
            while mb.buf and not c.is_closing:
                pkt, n = reader.next_event(mb.buf)
                if not n:
                    return
                mb.remove(n)
                self.on_packet(pkt)  # type: ignore[arg-type]
        except MqttError as e:
            mb.clear()
            self.fail(e)

    def feed_ws(self, data: bytes) -> None:
        """WebSocket: add one binary message's bytes, handle every whole packet."""
        if self.ending:
            return
        c = self.c
        buf = self.rbuf
        buf += data
        reader = self.reader
        try:
            while buf and not c.is_closing:
                pkt, n = reader.next_event(buf)
                if not n:
                    return
                del buf[:n]
                self.on_packet(pkt)  # type: ignore[arg-type]
        except MqttError as e:
            buf.clear()
            self.fail(e)

    def __call__(self, c: Connection, ev: Any, ev_data: Any) -> None:
        """The WebSocket's handler (``WsState.h``) while MQTT runs over WebSocket."""
        if ev == _WS_FRAME:
            msg: WsMessage = ev_data
            if msg.opcode != WS_OP_BINARY:
                # [MQTT-6.0.0-1]: MQTT travels in binary messages only
                c.error_reason = "MQTT over WebSocket: a text message"
                self.end(_WS_PROTOCOL_ERROR)
                return
            self.feed_ws(msg.data)
            self.after_input()
            return
        if ev == _CLOSE:
            self.on_close()
        self.h(c, ev, ev_data)

    # -- what subclasses define --------------------------------------------------------
    def on_packet(self, pkt: Packet) -> None:
        """Handle one received packet."""
        raise NotImplementedError

    def after_input(self) -> None:
        """Called after each batch of received packets (the broker flushes its fan-out)."""

    def on_close(self) -> None:
        """The connection is closing (CLOSE is about to reach the application)."""

    # -- ending ------------------------------------------------------------------------
    def fail(self, e: MqttError) -> None:
        """The peer broke MQTT: send the reply the error names, then close [MQTT-4.13.1-1]."""
        if self.ending:
            return
        out = error_reply(e, self.reader, self.acked)
        if out:
            self.write(out)
        code = ReasonCode(e.reason_code)
        self.c.error_reason = f"MQTT protocol error (0x{code:02X} {code.name}): {e}"
        log.debug("%r: %s", self.c, self.c.error_reason)
        self.end(_WS_PROTOCOL_ERROR)

    def end(self, ws_code: int = _WS_NORMAL) -> None:
        """Close the transport once what is queued was written; ignore further input."""
        self.ending = True
        c = self.c
        if self.ws and not c.closed:
            ws_close(c, ws_code)
        else:
            c.close()

"""MQTT session state: packet identifiers, the in-flight window and the QoS 1 / QoS 2
handshakes in both directions, kept across reconnections (MQTT 5.0 4.1, 4.3, 4.4, 4.9).

Theory of operation
-------------------
A ``Session`` is the same object on a client and on a broker (one per client there):
everything in MQTT's QoS flows is symmetric.  It holds no socket and no clock; the
connection layer feeds it the packets its ``MqttReader`` decoded and sends the bytes
it returns.  One owner per state: this module alone decides what is in flight, what
is acknowledged and what is re-sent.

Sending (``publish``).  QoS 0 is encoded and returned at once.  QoS 1/2 gets a
packet identifier not in use [MQTT-2.2.1-3] [MQTT-4.3.2-1] [MQTT-4.3.3-1] and goes in
flight while fewer than the window are: ``min(max_inflight, the peer's Receive
Maximum)`` [MQTT-3.3.4-7] [MQTT-3.3.4-9] [MQTT-4.9.0-2]; otherwise it waits in the
queue (at most ``max_queued``, then ``QueueFull``).  Per in-flight message::

    QoS 1: WAIT_PUBACK  --PUBACK-->  done                         [MQTT-4.3.2-3]
    QoS 2: WAIT_PUBREC  --PUBREC < 0x80--> WAIT_PUBCOMP (send PUBREL) [MQTT-4.3.3-4]
           WAIT_PUBREC  --PUBREC >= 0x80--> done, not re-sent          [MQTT-4.4.0-2]
           WAIT_PUBCOMP --PUBCOMP--> done                              [MQTT-4.3.3-5]

Each completion returns a ``PublishDone`` event and fills the freed slot from the
queue; a QoS 2 completion reports the PUBREC's reason code (the receiver owns the
message from then on, and a PUBCOMP 0x92 after a reconnection is "not an error during
recovery", 3.7.2.1).  An acknowledgement for an identifier not in flight is ignored,
except a PUBREC, which is answered with PUBREL (0x92 Packet Identifier not found in
5.0) so the peer can finish.

Receiving.  QoS 0 and 1 PUBLISH are delivered (1 with a PUBACK [MQTT-4.3.2-4]);
QoS 2 uses the spec's "method B": the packet identifier is stored and the message
delivered on first receipt with a PUBREC [MQTT-4.3.3-8]; until the PUBREL, a PUBLISH
with that identifier is acknowledged again but NOT delivered again [MQTT-4.3.3-10];
PUBREL forgets it and is answered with PUBCOMP [MQTT-4.3.3-11] [MQTT-4.3.3-12].  So
delivery is exactly once however the handshake is interrupted.  More QoS 2 messages
awaiting PUBREL than our Receive Maximum is 0x93 [MQTT-3.3.4-9]; 5.0 Topic Aliases
are resolved here and forgotten with the connection [MQTT-3.3.2-7]; an alias above
our maximum is 0x94 [MQTT-3.3.2-10] [MQTT-3.3.2-12].

Reconnecting.  ``connection_lost()`` keeps everything but the aliases.  On the next
connection ``connection_made(...)`` returns, in their original order [MQTT-4.6.0-1],
every unacknowledged PUBLISH with DUP set [MQTT-3.3.1-1] and every PUBREL not yet
completed [MQTT-4.4.0-1] (a PUBLISH is never re-sent once its PUBREL was
[MQTT-4.3.3-6]), then what the queue may add; ``clear()`` discards the session for a
clean start [MQTT-3.1.2-4] or a CONNACK without Session Present [MQTT-3.2.2-5].  A
message larger than the peer's Maximum Packet Size is discarded by a broker as if it
had been sent [MQTT-3.1.2-25] and refused to a client's application [MQTT-3.2.2-15].
"""

from __future__ import annotations

import collections
import dataclasses
import struct
from typing import Final, Literal

from ..errors import Error, LocalProtocolError
from .mqtt_codes import (
    DEFAULT_MAX_INFLIGHT,
    DEFAULT_MAX_QUEUED,
    DEFAULT_MAX_TOPIC_ALIAS,
    MAX_PACKET_ID,
    MQTT_V5,
    MqttError,
    PacketType,
    ReasonCode,
    protocol_error,
)
from .mqtt_packets import (
    Packet,
    PubAck,
    PubComp,
    Publish,
    PublishTemplate,
    PubRec,
    PubRel,
    Suback,
    Subscribe,
    Subscription,
    Unsuback,
    Unsubscribe,
)
from .mqtt_wire import NO_PROPERTIES, Properties

__all__ = ["PublishDone", "QueueFull", "Session"]

_U16: Final = struct.Struct("!H")
WAIT_PUBACK: Final = 1
WAIT_PUBREC: Final = 2
WAIT_PUBCOMP: Final = 3
#: a peer that sends no Receive Maximum allows 65,535 (MQTT 5.0 3.1.2.11.3, 3.2.2.3.3)
DEFAULT_RECEIVE_MAXIMUM: Final = 65_535
_ACK_HEAD: Final = {
    t: bytes(((t << 4) | (2 if t == PacketType.PUBREL else 0), 2))
    for t in (PacketType.PUBACK, PacketType.PUBREC, PacketType.PUBREL, PacketType.PUBCOMP)
}


class QueueFull(Error):
    """More QoS 1/2 messages are waiting than ``max_queued`` allows (mosquitto drops them)."""


@dataclasses.dataclass(slots=True)
class PublishDone:
    """Our QoS 1/2 PUBLISH is finished: acknowledged (``reason_code`` < 0x80) or refused."""

    packet_id: int
    reason_code: ReasonCode
    message: PublishTemplate
    qos: int


@dataclasses.dataclass(slots=True)
class _InFlight:
    message: PublishTemplate
    qos: int
    retain: bool
    sub_ids: tuple[int, ...]
    state: int
    #: the PUBREC's reason code: what a QoS 2 completion reports (a PUBCOMP with 0x92
    #: after a reconnection is "not an error during recovery", 3.7.2.1)
    reason: int = ReasonCode.SUCCESS


def _ack(t: PacketType, pid: int) -> bytes:
    """A 2-byte-body acknowledgement (reason 0x00, no properties, 3.4.2.1)."""
    return _ACK_HEAD[t] + _U16.pack(pid)


class Session:
    """The QoS state of one MQTT session, for either side (see the module docstring).

    Example (broker side, per client)::

        s = Session("server", version=connect.version)
        out = s.connection_made(peer_receive_maximum=connect.properties.receive_maximum)
        out += s.publish(template, qos=1)          # bytes to write (b"" when queued)
        event, out = s.receive(packet)             # a PUBLISH to deliver, PublishDone, ...
    """

    __slots__ = (
        "_aliases",
        "_ids",
        "_in_qos2",
        "_next_id",
        "_out",
        "_queue",
        "connected",
        "dropped",
        "max_inflight",
        "max_queued",
        "peer_max_packet_size",
        "peer_maximum_qos",
        "peer_receive_maximum",
        "receive_maximum",
        "side",
        "topic_alias_maximum",
        "version",
    )

    def __init__(
        self,
        side: Literal["server", "client"],
        version: int = MQTT_V5,
        *,
        max_inflight: int = DEFAULT_MAX_INFLIGHT,
        max_queued: int = DEFAULT_MAX_QUEUED,
        receive_maximum: int = DEFAULT_RECEIVE_MAXIMUM,
        topic_alias_maximum: int = DEFAULT_MAX_TOPIC_ALIAS,
    ) -> None:
        if side not in ("server", "client"):
            raise ValueError("side must be 'server' or 'client'")
        self.side = side
        #: protocol level of the current (or last) connection
        self.version = version
        #: True between connection_made() and connection_lost()
        self.connected = False
        #: our cap on QoS 1/2 PUBLISHes in flight (0 = only the peer's Receive Maximum)
        self.max_inflight = max_inflight
        #: QoS 1/2 messages waiting for a slot; more -> QueueFull
        self.max_queued = max_queued
        #: QoS 2 messages we accept awaiting PUBREL (what we announce as Receive Maximum)
        self.receive_maximum = receive_maximum
        #: Topic Aliases the peer may use towards us (what we announce; 0 = none)
        self.topic_alias_maximum = topic_alias_maximum
        self.peer_receive_maximum = DEFAULT_RECEIVE_MAXIMUM
        self.peer_max_packet_size: int | None = None
        self.peer_maximum_qos = 2
        #: messages discarded because they were larger than the peer accepts
        self.dropped = 0
        self._out: dict[int, _InFlight] = {}
        self._queue: collections.deque[tuple[PublishTemplate, int, bool, tuple[int, ...]]]
        self._queue = collections.deque()
        self._in_qos2: set[int] = set()
        self._ids: set[int] = set()  # SUBSCRIBE / UNSUBSCRIBE identifiers awaiting an ack
        self._next_id = 1
        self._aliases: dict[int, str] = {}

    def __repr__(self) -> str:
        return (
            f"<Session {self.side} v{self.version} in_flight={len(self._out)} "
            f"queued={len(self._queue)} awaiting_pubrel={len(self._in_qos2)}>"
        )

    # -- state queries -----------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        """Our QoS 1/2 PUBLISHes not yet completed."""
        return len(self._out)

    @property
    def queued(self) -> int:
        """Our QoS 1/2 messages waiting for a slot in the window."""
        return len(self._queue)

    @property
    def awaiting_pubrel(self) -> frozenset[int]:
        """Packet ids of received QoS 2 messages whose PUBREL has not come yet."""
        return frozenset(self._in_qos2)

    @property
    def window(self) -> int:
        """How many QoS 1/2 PUBLISHes may be in flight at once."""
        peer = self.peer_receive_maximum if self.version == MQTT_V5 else DEFAULT_RECEIVE_MAXIMUM
        return min(self.max_inflight, peer) if self.max_inflight else peer

    # -- connection lifecycle ----------------------------------------------------------
    def connection_made(
        self,
        version: int | None = None,
        *,
        peer_receive_maximum: int | None = None,
        peer_max_packet_size: int | None = None,
        peer_maximum_qos: int | None = None,
    ) -> bytes:
        """The CONNECT/CONNACK exchange succeeded: return what must be (re-)sent now.

        The ``peer_*`` values come from the peer's CONNECT (broker) or CONNACK (client)
        properties; None means absent (65,535 / no limit / QoS 2).
        """
        if version is not None:
            self.version = version
        self.peer_receive_maximum = peer_receive_maximum or DEFAULT_RECEIVE_MAXIMUM
        self.peer_max_packet_size = peer_max_packet_size
        self.peer_maximum_qos = 2 if peer_maximum_qos is None else peer_maximum_qos
        self.connected = True
        self._aliases = {}
        out: list[bytes] = []
        # [MQTT-4.4.0-1]: unacknowledged PUBLISH and PUBREL, original ids, original
        # order [MQTT-4.6.0-1]; DUP on the PUBLISH [MQTT-3.3.1-1]
        for pid, f in self._out.items():
            if f.state == WAIT_PUBCOMP:
                out.append(_ack(PacketType.PUBREL, pid))
            else:
                out.append(f.message.encode(self.version, f.qos, pid, f.retain, True, f.sub_ids))
        out.append(self._fill())
        return b"".join(out)

    def connection_lost(self) -> None:
        """The network connection closed: keep the session, forget the Topic Aliases."""
        self.connected = False
        self._aliases = {}  # [MQTT-3.3.2-7]

    def clear(self) -> list[PublishTemplate]:
        """Discard the session state [MQTT-3.1.2-4] [MQTT-3.2.2-5]; return the messages
        that were in flight or queued, so an application may publish them again."""
        lost = [f.message for f in self._out.values()] + [q[0] for q in self._queue]
        self._out.clear()
        self._queue.clear()
        self._in_qos2.clear()
        self._ids.clear()
        self._aliases = {}
        return lost

    # -- packet identifiers ------------------------------------------------------------
    def allocate_id(self) -> int:
        """Return a packet identifier not in use [MQTT-2.2.1-3] [MQTT-2.2.1-4]."""
        pid = self._next_id
        for _ in range(MAX_PACKET_ID):
            if pid not in self._out and pid not in self._ids:
                self._next_id = pid % MAX_PACKET_ID + 1
                return pid
            pid = pid % MAX_PACKET_ID + 1
        raise LocalProtocolError("all 65535 packet identifiers are in use")

    # -- sending -------------------------------------------------------------------------
    def publish(
        self,
        message: PublishTemplate,
        qos: int = 0,
        retain: bool = False,
        subscription_ids: tuple[int, ...] = (),
    ) -> bytes:
        """Send ``message`` at ``qos``: return the bytes to write now (b"" if queued or
        discarded).  Raises QueueFull when the queue is full."""
        if qos > self.peer_maximum_qos and self.side == "client":
            # [MQTT-3.2.2-11]: the server's Maximum QoS binds the client
            raise LocalProtocolError(f"QoS {qos} above the server's maximum")
        if not self._fits(message, qos, subscription_ids):
            return b""
        if not qos:
            if not self.connected:
                return b""  # QoS 0 is not kept for offline clients (mosquitto default)
            return message.encode(self.version, 0, 0, retain, False, subscription_ids)
        if self.connected and len(self._out) < self.window and not self._queue:
            return self._send_new(message, qos, retain, subscription_ids)
        if len(self._queue) >= self.max_queued:
            raise QueueFull(f"{len(self._queue)} messages already queued")
        self._queue.append((message, qos, retain, subscription_ids))
        return b""

    def _fits(self, message: PublishTemplate, qos: int, sub_ids: tuple[int, ...]) -> bool:
        limit = self.peer_max_packet_size
        if limit is None or message.size(self.version, qos, sub_ids) <= limit:
            return True
        if self.side == "client":
            raise LocalProtocolError("PUBLISH larger than the server's Maximum Packet Size")
        self.dropped += 1  # [MQTT-3.1.2-25]: discarded as if it had been sent
        return False

    def _send_new(
        self, message: PublishTemplate, qos: int, retain: bool, sub_ids: tuple[int, ...]
    ) -> bytes:
        pid = self.allocate_id()
        self._out[pid] = _InFlight(
            message, qos, retain, sub_ids, WAIT_PUBACK if qos == 1 else WAIT_PUBREC
        )
        # [MQTT-4.3.2-2] [MQTT-4.3.3-2]: first sent with DUP 0
        return message.encode(self.version, qos, pid, retain, False, sub_ids)

    def _fill(self) -> bytes:
        """Move queued messages into free slots of the window; return their bytes."""
        if not self._queue or not self.connected:
            return b""
        out = []
        while self._queue and len(self._out) < self.window:
            out.append(self._send_new(*self._queue.popleft()))
        return b"".join(out)

    def subscribe(
        self, subscriptions: list[Subscription], properties: Properties = NO_PROPERTIES
    ) -> bytes:
        """Return a SUBSCRIBE with a fresh packet identifier (client side)."""
        pid = self.allocate_id()
        data = Subscribe(pid, subscriptions, properties).encode(self.version)
        self._ids.add(pid)
        return data

    def unsubscribe(
        self, topic_filters: list[str], properties: Properties = NO_PROPERTIES
    ) -> bytes:
        """Return an UNSUBSCRIBE with a fresh packet identifier (client side)."""
        pid = self.allocate_id()
        data = Unsubscribe(pid, topic_filters, properties).encode(self.version)
        self._ids.add(pid)
        return data

    # -- receiving ---------------------------------------------------------------------
    def receive(self, pkt: Packet) -> tuple[Packet | PublishDone | None, bytes]:
        """Apply a received packet: return ``(event, bytes to send)``.

        The event is the PUBLISH to deliver (None for a QoS 2 duplicate), a
        ``PublishDone`` for a completed send, None for a handshake step, or the packet
        itself for every other type.  Raises MqttError (0x93, 0x94, 0x82).
        """
        t = type(pkt)
        if t is Publish:
            return self._receive_publish(pkt)  # type: ignore[arg-type]
        if t is PubAck:
            return self._done(pkt.packet_id, WAIT_PUBACK, pkt.reason_code)  # type: ignore[union-attr]
        if t is PubRec:
            return self._receive_pubrec(pkt)  # type: ignore[arg-type]
        if t is PubComp:
            return self._done(pkt.packet_id, WAIT_PUBCOMP, pkt.reason_code)  # type: ignore[union-attr]
        if t is PubRel:
            pid = pkt.packet_id  # type: ignore[union-attr]
            if pid in self._in_qos2:
                self._in_qos2.discard(pid)
                return None, _ack(PacketType.PUBCOMP, pid)  # [MQTT-4.3.3-11]
            if self.version == MQTT_V5:
                code = ReasonCode.PACKET_IDENTIFIER_NOT_FOUND
                return None, PubComp(pid, code).encode(MQTT_V5)
            return None, _ack(PacketType.PUBCOMP, pid)
        if t is Suback or t is Unsuback:
            self._ids.discard(pkt.packet_id)  # type: ignore[union-attr]
        return pkt, b""

    def _receive_publish(self, pkt: Publish) -> tuple[Publish | None, bytes]:
        if self.version == MQTT_V5:
            alias = pkt.properties.topic_alias
            if alias is not None:
                self._resolve_alias(pkt, alias)
        qos = pkt.qos
        if not qos:
            return pkt, b""
        pid = pkt.packet_id
        if qos == 1:
            return pkt, _ack(PacketType.PUBACK, pid)  # [MQTT-4.3.2-4]
        if pid in self._in_qos2:
            return None, _ack(PacketType.PUBREC, pid)  # [MQTT-4.3.3-10]: not again
        if self.version == MQTT_V5 and len(self._in_qos2) >= self.receive_maximum:
            raise MqttError(
                "more QoS 2 messages than Receive Maximum", ReasonCode.RECEIVE_MAXIMUM_EXCEEDED
            )
        self._in_qos2.add(pid)
        return pkt, _ack(PacketType.PUBREC, pid)  # [MQTT-4.3.3-8]

    def _resolve_alias(self, pkt: Publish, alias: int) -> None:
        if alias > self.topic_alias_maximum:
            raise MqttError(
                f"Topic Alias {alias} > {self.topic_alias_maximum}",
                ReasonCode.TOPIC_ALIAS_INVALID,
            )
        if pkt.topic:
            self._aliases[alias] = pkt.topic
            return
        topic = self._aliases.get(alias)
        if topic is None:
            raise protocol_error(f"Topic Alias {alias} was never set")  # 3.3.2.3.4
        pkt.topic = topic

    def _receive_pubrec(self, pkt: PubRec) -> tuple[PublishDone | None, bytes]:
        pid = pkt.packet_id
        f = self._out.get(pid)
        if f is None or f.qos != 2:
            if self.version == MQTT_V5:
                code = ReasonCode.PACKET_IDENTIFIER_NOT_FOUND
                return None, PubRel(pid, code).encode(MQTT_V5)
            return None, _ack(PacketType.PUBREL, pid)
        if f.state == WAIT_PUBREC and pkt.reason_code >= ReasonCode.UNSPECIFIED_ERROR:
            return self._done(pid, WAIT_PUBREC, pkt.reason_code)  # [MQTT-4.4.0-2]
        if f.state == WAIT_PUBREC:
            f.state = WAIT_PUBCOMP
            f.reason = pkt.reason_code
            del self._out[pid]
            self._out[pid] = f  # PUBRELs are re-sent in PUBREC order [MQTT-4.6.0-4]
        return None, _ack(PacketType.PUBREL, pid)  # [MQTT-4.3.3-4]

    def _done(self, pid: int, state: int, reason: int) -> tuple[PublishDone | None, bytes]:
        f = self._out.get(pid)
        if f is None or f.state != state:
            return None, b""  # not ours to complete: ignored
        del self._out[pid]
        if state == WAIT_PUBCOMP:
            reason = f.reason  # the receiver owns the message since its PUBREC
        code = reason if type(reason) is ReasonCode else ReasonCode(reason)
        return PublishDone(pid, code, f.message, f.qos), self._fill() if self._queue else b""

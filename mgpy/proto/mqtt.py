"""Sans-IO MQTT 3.1.1 / 5.0: the incremental packet reader, and the MQTT core's public names.

Theory of operation
-------------------
The MQTT core is split by concept; this module is its front door and re-exports
the public names of the others:

* ``mqtt_codes``    packet types, ``ReasonCode``, ``PropertyId``, errors, default limits;
* ``mqtt_wire``     Variable Byte Integers, UTF-8 strings, ``Properties``;
* ``mqtt_packets``  one dataclass per control packet, ``encode(version)``,
                    ``PublishTemplate`` (one message encoded once for many receivers);
* ``mqtt_decode``   packet bodies -> packet objects;
* ``mqtt_topics``   topic name / filter rules, ``SubscriptionIndex``;
* ``mqtt_retained`` ``RetainedStore``;
* ``mqtt_session``  QoS 1/2 state machines, packet ids, in-flight window, resume;
* ``mqtt_keepalive`` keepalive deadlines from a ``now`` the caller passes.

``MqttReader`` reads one direction of one connection.  Like the HTTP and WebSocket
cores it never owns the receive buffer: ``next_event(buf)`` parses from the front of
the caller's buffer and returns ``(packet, consumed)`` or ``(NEED_DATA, 0)``; the caller
deletes ``consumed`` bytes from the front before calling again.  MQTT packets are
length-prefixed, so nothing is consumed until a whole packet is there, and a packet is
only waited for if its declared size is within ``max_packet_size``: the first byte is
checked as soon as it arrives (type, fixed-header flags [MQTT-2.1.3-1], direction,
phase: one lookup in the set of first bytes acceptable in the current phase), the size
as soon as the Remaining Length is complete.  Fed whole, byte by byte
or with trailing bytes, the events and errors are the same.  States::

    server: AWAIT_CONNECT --CONNECT--> OPEN      (the CONNECT says 3.1.1 or 5.0)
    client: AWAIT_CONNACK --CONNACK--> OPEN      (AUTH may come first in 5.0)
    any --MqttError--> FAILED                    (every later call raises it again)

Refused: anything but CONNECT first [MQTT-3.1.0-1], a second CONNECT [MQTT-3.1.0-2] or
CONNACK [MQTT-3.2.0-2], packets of the other direction, reserved type 0 (and 15 in
3.1.1), Remaining Lengths over 4 bytes or not minimal [MQTT-1.5.5-1], packets larger
than ``max_packet_size`` (0x95), and everything ``mqtt_decode`` refuses.  The error
carries the 5.0 reason code; ``error_reply`` turns it into the CONNACK or DISCONNECT
to send before closing (MQTT 5.0 4.13), or nothing where 3.1.1 says just close.
"""

from __future__ import annotations

from typing import Final, Literal

from ._sentinel import NEED_DATA, Sentinel
from .mqtt_codes import (
    DEFAULT_KEEPALIVE,
    DEFAULT_MAX_INFLIGHT,
    DEFAULT_MAX_PACKET_SIZE,
    DEFAULT_MAX_QUEUED,
    DEFAULT_MAX_TOPIC_ALIAS,
    DEFAULT_MAX_TOPIC_LENGTH,
    DEFAULT_MAX_TOPIC_LEVELS,
    MQTT_V5,
    MQTT_V311,
    VALID_REASONS,
    MqttError,
    MqttLimitExceeded,
    PacketType,
    PropertyId,
    ReasonCode,
    malformed,
    protocol_error,
)
from .mqtt_decode import DecodeContext, decode_body, decode_publish
from .mqtt_keepalive import Keepalive
from .mqtt_packets import (
    REQUIRED_FLAGS,
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    PingResp,
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
    Will,
)
from .mqtt_retained import RetainedStore
from .mqtt_session import PublishDone, QueueFull, Session
from .mqtt_topics import (
    SubOptions,
    SubscriptionIndex,
    is_valid_topic_filter,
    is_valid_topic_name,
    parse_shared,
    topic_filter_problem,
    topic_matches,
    topic_name_problem,
)
from .mqtt_wire import NO_PROPERTIES, Properties, encode_varint

__all__ = [
    "DEFAULT_KEEPALIVE",
    "DEFAULT_MAX_INFLIGHT",
    "DEFAULT_MAX_PACKET_SIZE",
    "DEFAULT_MAX_QUEUED",
    "DEFAULT_MAX_TOPIC_ALIAS",
    "DEFAULT_MAX_TOPIC_LENGTH",
    "DEFAULT_MAX_TOPIC_LEVELS",
    "MQTT_V5",
    "MQTT_V311",
    "NEED_DATA",
    "NO_PROPERTIES",
    "Auth",
    "Connack",
    "Connect",
    "Disconnect",
    "Keepalive",
    "MqttError",
    "MqttLimitExceeded",
    "MqttReader",
    "Packet",
    "PacketType",
    "PingReq",
    "PingResp",
    "Properties",
    "PropertyId",
    "PubAck",
    "PubComp",
    "PubRec",
    "PubRel",
    "Publish",
    "PublishDone",
    "PublishTemplate",
    "QueueFull",
    "ReasonCode",
    "RetainedStore",
    "Session",
    "SubOptions",
    "Suback",
    "Subscribe",
    "Subscription",
    "SubscriptionIndex",
    "Unsuback",
    "Unsubscribe",
    "Will",
    "encode_varint",
    "error_reply",
    "is_valid_topic_filter",
    "is_valid_topic_name",
    "parse_shared",
    "topic_filter_problem",
    "topic_matches",
    "topic_name_problem",
]

_AWAIT_CONNECT: Final = 0
_AWAIT_CONNACK: Final = 1
_OPEN: Final = 2

T = PacketType
#: the packet types each side may receive (MQTT 5.0 2.1.2, "Direction of flow")
_TO_SERVER: Final = frozenset(
    {T.CONNECT, T.PUBLISH, T.PUBACK, T.PUBREC, T.PUBREL, T.PUBCOMP, T.SUBSCRIBE}
    | {T.UNSUBSCRIBE, T.PINGREQ, T.DISCONNECT, T.AUTH}
)
_TO_CLIENT: Final = frozenset(
    {T.CONNACK, T.PUBLISH, T.PUBACK, T.PUBREC, T.PUBREL, T.PUBCOMP, T.SUBACK}
    | {T.UNSUBACK, T.PINGRESP, T.DISCONNECT, T.AUTH}
)
_LEN_CONT: Final = 0x80
_LEN_BITS: Final = 0x7F
_LEN_MAX_BYTES: Final = 4
_PUBLISH: Final = int(T.PUBLISH)
_CONNECT: Final = int(T.CONNECT)
#: (phase, side, is 5.0) -> the first bytes a packet may start with
_FIRST_BYTES: dict[tuple[int, str, bool], frozenset[int]] = {}


class MqttReader:
    """Incremental reader for the packets one side of an MQTT connection receives.

    ``side="server"`` reads what a client sends: the first packet must be a CONNECT,
    whose protocol level (4 = 3.1.1, 5 = 5.0) sets ``version``; pass ``version`` to
    accept only that one (others get 0x84).  ``side="client"`` needs the ``version``
    its CONNECT announced.  Example::

        r = MqttReader(side="server")
        pkt, n = r.next_event(buf)      # a packet object or NEED_DATA
        del buf[:n]
    """

    __slots__ = (
        "_ctx",
        "_failed",
        "_ok",
        "_saw_connect",
        "_state",
        "_want",
        "max_packet_size",
        "side",
    )

    def __init__(
        self,
        version: int | None = None,
        max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
        max_topic_length: int = DEFAULT_MAX_TOPIC_LENGTH,
        side: Literal["server", "client"] = "server",
        *,
        max_topic_levels: int = DEFAULT_MAX_TOPIC_LEVELS,
    ) -> None:
        if side not in ("server", "client"):
            raise ValueError("side must be 'server' or 'client'")
        if version not in (None, MQTT_V311, MQTT_V5):
            raise ValueError("version must be None, 4 (MQTT 3.1.1) or 5 (MQTT 5.0)")
        if side == "client" and version is None:
            raise ValueError("a client reader needs the version of its CONNECT")
        #: "server" (reads client packets) or "client"
        self.side = side
        #: largest whole packet accepted, fixed header included; larger -> 0x95
        self.max_packet_size = max_packet_size
        self._want = version
        # version 0 = not known yet: a server learns it from the CONNECT
        self._ctx = DecodeContext(
            version or 0, side == "server", max_topic_length, max_topic_levels
        )
        self._state = _AWAIT_CONNECT if side == "server" else _AWAIT_CONNACK
        self._failed: MqttError | None = None
        self._saw_connect = False
        #: first bytes acceptable now: the hot path checks a packet's type, flags,
        #: direction and phase with one set lookup
        self._ok = self._accepting()

    def __repr__(self) -> str:
        return f"<MqttReader {self.side} version={self.version} state={self._state}>"

    @property
    def version(self) -> int | None:
        """Protocol level in use (4 or 5); None on a server before a CONNECT was read."""
        return self._ctx.version or None

    @property
    def connected(self) -> bool:
        """True once the CONNECT (server) or CONNACK (client) was read."""
        return self._state == _OPEN

    @property
    def connect_received(self) -> bool:
        """True once a whole CONNECT was read, valid or not (server side)."""
        return self._saw_connect

    @property
    def failed(self) -> MqttError | None:
        """The error that ended this reader, or None."""
        return self._failed

    def next_event(self, buf: bytes | bytearray) -> tuple[Packet | Sentinel, int]:
        """Parse the front of ``buf``; return ``(packet or NEED_DATA, bytes consumed)``.

        Raises MqttError (MqttLimitExceeded for 0x95); later calls raise it again.
        """
        if self._failed is not None:
            f = self._failed
            raise type(f)(f"reader already failed: {f}", f.reason_code)
        n = len(buf)
        if not n:
            return NEED_DATA, 0
        b0 = buf[0]
        if b0 not in self._ok:
            raise self._fail(self._header_problem(b0) or protocol_error("unexpected packet"))
        if n < 2:
            return NEED_DATA, 0
        b1 = buf[1]
        if b1 < _LEN_CONT:
            start = 2
            total = b1 + 2
        else:
            start, total = self._long_length(buf, n)
            if not total:
                return NEED_DATA, 0
        if total > self.max_packet_size:
            raise self._fail(MqttLimitExceeded(f"packet of {total} bytes > {self.max_packet_size}"))
        if total > n:
            return NEED_DATA, 0
        ptype = b0 >> 4
        if ptype == _CONNECT:
            self._saw_connect = True
        try:
            if ptype == _PUBLISH:
                pkt: Packet = decode_publish(b0 & 0x0F, buf, start, total, self._ctx)
            else:
                pkt = decode_body(ptype, b0 & 0x0F, buf, start, total, self._ctx)
        except MqttError as exc:
            raise self._fail(exc) from None
        if self._state != _OPEN:
            self._opened(pkt)
        return pkt, total

    def _long_length(self, buf: bytes | bytearray, n: int) -> tuple[int, int]:
        """``(header size, packet size)`` for a multi-byte Remaining Length; (0, 0) if
        it is not complete yet."""
        value = 0
        shift = 0
        for i in range(1, _LEN_MAX_BYTES + 1):
            if i >= n:
                return 0, 0
            b = buf[i]
            value |= (b & _LEN_BITS) << shift
            if not b & _LEN_CONT:
                if not b:
                    raise self._fail(malformed("Remaining Length not minimal"))  # [MQTT-1.5.5-1]
                return i + 1, value + i + 1
            shift += 7
        raise self._fail(malformed("Remaining Length longer than 4 bytes"))  # 2.1.4

    def _accepting(self) -> frozenset[int]:
        """The first bytes a packet may start with in the current phase (memoised)."""
        key = (self._state, self.side, self._ctx.version == MQTT_V5)
        ok = _FIRST_BYTES.get(key)
        if ok is None:
            ok = _FIRST_BYTES[key] = frozenset(
                b0 for b0 in range(256) if self._header_problem(b0) is None
            )
        return ok

    def _header_problem(self, b0: int) -> MqttError | None:
        """Why a packet may not start with ``b0`` here (type, flags, phase), or None."""
        ptype = b0 >> 4
        v5 = self._ctx.version == MQTT_V5
        if ptype == 0 or (ptype == T.AUTH and not v5 and self._state == _OPEN):
            return malformed(f"reserved packet type {ptype}")  # 2.1.2
        t = T(ptype)
        if t is not T.PUBLISH and b0 & 0x0F != REQUIRED_FLAGS[t]:
            # [MQTT-2.1.3-1] (3.1.1: [MQTT-2.2.2-2]); PUBREL [MQTT-3.6.1-1], SUBSCRIBE
            # [MQTT-3.8.1-1], UNSUBSCRIBE [MQTT-3.10.1-1], AUTH [MQTT-3.15.1-1]
            return malformed(f"{t.name} with fixed header flags {b0 & 0x0F:#x}")
        if self._state == _AWAIT_CONNECT:
            if t is not T.CONNECT:
                return protocol_error(f"{t.name} before CONNECT")  # [MQTT-3.1.0-1]
            return None
        if self._state == _AWAIT_CONNACK:
            if t is not T.CONNACK and not (t is T.AUTH and v5):
                return protocol_error(f"{t.name} before CONNACK")  # [MQTT-3.2.0-1]
            return None
        if t not in (_TO_SERVER if self.side == "server" else _TO_CLIENT):
            return protocol_error(f"{t.name} sent to the {self.side}")
        if t is T.CONNECT:
            return protocol_error("second CONNECT")  # [MQTT-3.1.0-2]
        if t is T.CONNACK:
            return protocol_error("second CONNACK")  # [MQTT-3.2.0-2]
        if t is T.DISCONNECT and not v5 and self.side == "client":
            return protocol_error("DISCONNECT from a 3.1.1 server")  # 3.14 (3.1.1)
        return None

    def _opened(self, pkt: Packet) -> None:
        """CONNECT (server) or CONNACK (client) was read: the connection is open."""
        if isinstance(pkt, Connect):
            if self._want is not None and pkt.version != self._want:
                raise self._fail(
                    MqttError(
                        f"MQTT level {pkt.version} not accepted",
                        ReasonCode.UNSUPPORTED_PROTOCOL_VERSION,
                    )
                )
            self._state = _OPEN
        elif isinstance(pkt, Connack):
            self._state = _OPEN
        self._ok = self._accepting()

    def _fail(self, exc: MqttError) -> MqttError:
        if self._failed is None:
            self._failed = exc
        return exc


def error_reply(err: MqttError, reader: MqttReader, connack_sent: bool = True) -> bytes:
    """Return what to send before closing the connection for ``err`` (maybe ``b""``).

    MQTT 5.0 4.13: an error in the CONNECT may be answered with a CONNACK holding the
    reason code [MQTT-3.1.4-1], a later one with a DISCONNECT; the connection is then
    closed [MQTT-4.13.1-1] [MQTT-4.13.2-1].  3.1.1 has no DISCONNECT from the server
    and answers a bad CONNECT only for an unacceptable protocol level [MQTT-3.1.2-2] or
    an identifier rejected [MQTT-3.1.3-8]; otherwise it just closes [MQTT-3.1.4-1].
    A server sends no DISCONNECT before its CONNACK [MQTT-3.14.0-1]: pass
    ``connack_sent=False`` while the CONNACK is still to be sent.
    """
    version = reader.version
    code = err.reason_code
    if reader.side == "server" and not reader.connected:
        if version is None or not reader.connect_received:
            return b""  # not even a CONNECT: nothing MQTT to answer in
        if version == MQTT_V311 and code not in (
            ReasonCode.UNSUPPORTED_PROTOCOL_VERSION,
            ReasonCode.CLIENT_IDENTIFIER_NOT_VALID,
        ):
            return b""
        if code not in VALID_REASONS[T.CONNACK]:
            code = ReasonCode.UNSPECIFIED_ERROR
        return Connack(False, code).encode(version)
    if version != MQTT_V5 or (reader.side == "server" and not connack_sent):
        return b""
    if code not in VALID_REASONS[T.DISCONNECT]:
        code = ReasonCode.PROTOCOL_ERROR
    return Disconnect(code).encode(MQTT_V5)

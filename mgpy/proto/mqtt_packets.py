"""MQTT control packets as typed objects, and their encoding (MQTT 3.1.1 and 5.0, ch. 3).

Strategy: one slots dataclass per packet type; ``packet.encode(version)`` returns the
whole packet (fixed header, variable header, payload) for protocol level 4 (3.1.1) or
5 (5.0).  Encoding refuses, with ``LocalProtocolError``, what a peer would have to
refuse: QoS 3, a packet identifier of 0 or missing where QoS > 0 [MQTT-2.2.1-3] or
present at QoS 0 [MQTT-2.2.1-2], DUP at QoS 0 [MQTT-3.3.1-2], wildcards in a topic
name [MQTT-3.3.2-2], an empty SUBSCRIBE/UNSUBSCRIBE [MQTT-3.8.3-2] [MQTT-3.10.3-2],
reason codes a packet may not carry, properties on 3.1.1, a 3.1.1 password without a
user name [MQTT-3.1.2-22 (3.1.1)].  Reason codes are 5.0 codes; a 3.1.1 CONNACK or
SUBACK gets the 3.1.1 equivalent.  Acknowledgements with reason 0 and no properties
take the short 2-byte form (3.4.2.1).

``PublishTemplate`` encodes one application message for many receivers: the bytes
before and after the packet identifier are built once per (version, QoS, RETAIN, DUP,
subscription identifiers), so a fan-out to N subscribers costs one join per QoS > 0
receiver and nothing at all per QoS 0 receiver (they share one ``bytes``).
"""

from __future__ import annotations

import dataclasses
import struct
from typing import ClassVar, Final, TypeAlias

from ..errors import LocalProtocolError
from .mqtt_codes import (
    DEFAULT_KEEPALIVE,
    MAX_PACKET_ID,
    MQTT_V5,
    MQTT_V311,
    PROTOCOL_NAME,
    VALID_REASONS,
    PacketType,
    ReasonCode,
    connack_code_to_v3,
)
from .mqtt_topics import topic_filter_problem, topic_name_problem
from .mqtt_wire import (
    NO_PROPERTIES,
    WILL,
    Properties,
    encode_binary,
    encode_properties,
    encode_string,
    encode_varint,
)

__all__ = [
    "Auth",
    "Connack",
    "Connect",
    "Disconnect",
    "Packet",
    "PingReq",
    "PingResp",
    "PubAck",
    "PubComp",
    "PubRec",
    "PubRel",
    "Publish",
    "PublishTemplate",
    "Suback",
    "Subscribe",
    "Subscription",
    "Unsuback",
    "Unsubscribe",
    "Will",
]

_U16: Final = struct.Struct("!H")
_VERSIONS: Final = (MQTT_V311, MQTT_V5)

# CONNECT flags (3.1.2.3)
CF_CLEAN: Final = 0x02
CF_WILL: Final = 0x04
CF_WILL_QOS_SHIFT: Final = 3
CF_WILL_RETAIN: Final = 0x20
CF_PASSWORD: Final = 0x40
CF_USERNAME: Final = 0x80
# PUBLISH flags (3.3.1)
PF_DUP: Final = 0x08
PF_QOS_SHIFT: Final = 1
PF_RETAIN: Final = 0x01
# Subscription Options (3.8.3.1)
SO_QOS: Final = 0x03
SO_NO_LOCAL: Final = 0x04
SO_RETAIN_AS_PUBLISHED: Final = 0x08
SO_RETAIN_HANDLING_SHIFT: Final = 4
SO_RESERVED: Final = 0xC0
#: the fixed header flags every type but PUBLISH must carry [MQTT-2.1.3-1]
REQUIRED_FLAGS: Final = {t: 0 for t in PacketType} | {
    PacketType.PUBREL: 0x2,
    PacketType.SUBSCRIBE: 0x2,
    PacketType.UNSUBSCRIBE: 0x2,
}
#: SUBACK return codes a 3.1.1 packet may carry (3.9.3); any failure is 0x80
_V3_SUBACK: Final = frozenset((0x00, 0x01, 0x02, 0x80))


def _check_version(version: int) -> None:
    if version not in _VERSIONS:
        raise LocalProtocolError(f"unsupported MQTT protocol level {version}")


def _check_qos(qos: int, what: str = "QoS") -> None:
    if qos not in (0, 1, 2):
        raise LocalProtocolError(f"{what} {qos} is not 0, 1 or 2")  # [MQTT-3.3.1-4]


def _check_pid(packet_id: int) -> None:
    # [MQTT-2.2.1-3] [MQTT-2.2.1-4]: a non-zero 16-bit packet identifier
    if not 0 < packet_id <= MAX_PACKET_ID:
        raise LocalProtocolError(f"packet identifier {packet_id} is not in 1..65535")


def _check_reason(ptype: PacketType, code: int) -> None:
    if code not in VALID_REASONS[ptype]:
        raise LocalProtocolError(f"reason code {code:#x} is not valid in {ptype.name}")


def _packet(ptype: PacketType, flags: int, body: bytes) -> bytes:
    """Prefix ``body`` with the fixed header (type, flags, Remaining Length)."""
    return bytes(((ptype << 4) | flags,)) + encode_varint(len(body)) + body


def _empty(props: Properties) -> bool:
    """True for no properties (``NO_PROPERTIES`` or an equal ``Properties()``)."""
    return props is NO_PROPERTIES or props == NO_PROPERTIES


def _no_props_v3(version: int, props: Properties) -> None:
    if version != MQTT_V5 and not _empty(props):
        raise LocalProtocolError("properties need MQTT 5.0")


# -- CONNECT / CONNACK ----------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class Will:
    """The Will Message of a CONNECT (3.1.2.5, 3.1.3.2-3.1.3.4)."""

    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    properties: Properties = NO_PROPERTIES


@dataclasses.dataclass(slots=True)
class Connect:
    """CONNECT (3.1).  ``version`` is the protocol level: 4 (3.1.1) or 5 (5.0)."""

    client_id: str = ""
    clean_start: bool = True
    keepalive: int = DEFAULT_KEEPALIVE
    username: str | None = None
    password: bytes | None = None
    will: Will | None = None
    properties: Properties = NO_PROPERTIES
    version: int = MQTT_V5
    TYPE: ClassVar[PacketType] = PacketType.CONNECT

    def encode(self, version: int | None = None) -> bytes:
        """Encode; ``version`` must be None or ``self.version``."""
        v = self.version
        if version is not None and version != v:
            raise LocalProtocolError(f"CONNECT of version {v} encoded as version {version}")
        _check_version(v)
        _no_props_v3(v, self.properties)
        if not 0 <= self.keepalive <= 0xFFFF:
            raise LocalProtocolError(f"keepalive {self.keepalive} does not fit 16 bits")
        flags = CF_CLEAN if self.clean_start else 0
        if v == MQTT_V311 and not self.client_id and not self.clean_start:
            # [MQTT-3.1.3-7] (3.1.1): a zero-byte ClientId needs CleanSession 1
            raise LocalProtocolError("an empty client id needs clean_start in MQTT 3.1.1")
        payload = [encode_string(self.client_id, "client id")]
        w = self.will
        if w is not None:
            _check_qos(w.qos, "will QoS")
            if topic_name_problem(w.topic) is not None:
                raise LocalProtocolError(f"invalid will topic {w.topic!r}")
            flags |= CF_WILL | (w.qos << CF_WILL_QOS_SHIFT) | (CF_WILL_RETAIN if w.retain else 0)
            if v == MQTT_V5:
                payload.append(encode_properties(w.properties, WILL))
            else:
                _no_props_v3(v, w.properties)
            payload.append(encode_string(w.topic, "will topic"))
            payload.append(encode_binary(w.payload, "will payload"))
        if self.username is not None:
            flags |= CF_USERNAME
            payload.append(encode_string(self.username, "user name"))
        if self.password is not None:
            if v == MQTT_V311 and self.username is None:
                raise LocalProtocolError("a password needs a user name in MQTT 3.1.1")
            flags |= CF_PASSWORD
            payload.append(encode_binary(self.password, "password"))
        head = encode_string(PROTOCOL_NAME) + bytes((v, flags)) + _U16.pack(self.keepalive)
        if v == MQTT_V5:
            head += encode_properties(self.properties, PacketType.CONNECT)
        return _packet(PacketType.CONNECT, 0, head + b"".join(payload))


@dataclasses.dataclass(slots=True)
class Connack:
    """CONNACK (3.2).  ``reason_code`` is a 5.0 code; 3.1.1 gets its return-code twin."""

    session_present: bool = False
    reason_code: int = ReasonCode.SUCCESS
    properties: Properties = NO_PROPERTIES
    TYPE: ClassVar[PacketType] = PacketType.CONNACK

    def encode(self, version: int) -> bytes:
        _check_version(version)
        _check_reason(PacketType.CONNACK, self.reason_code)
        if self.session_present and self.reason_code:
            # [MQTT-3.2.2-6]: a refusal carries Session Present 0
            raise LocalProtocolError("session_present with a refusal")
        flags = 1 if self.session_present else 0
        if version == MQTT_V311:
            _no_props_v3(version, self.properties)
            return _packet(
                PacketType.CONNACK, 0, bytes((flags, connack_code_to_v3(self.reason_code)))
            )
        body = bytes((flags, self.reason_code))
        return _packet(
            PacketType.CONNACK, 0, body + encode_properties(self.properties, PacketType.CONNACK)
        )


# -- PUBLISH and its acknowledgements ---------------------------------------------------


@dataclasses.dataclass(slots=True)
class Publish:
    """PUBLISH (3.3).  ``packet_id`` is 0 for QoS 0.  ``topic`` may be "" in 5.0 when
    ``properties.topic_alias`` names it (a received one is resolved by the session)."""

    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int = 0
    properties: Properties = NO_PROPERTIES
    TYPE: ClassVar[PacketType] = PacketType.PUBLISH

    def encode(self, version: int) -> bytes:
        _check_version(version)
        _check_qos(self.qos)
        if self.qos:
            _check_pid(self.packet_id)
        elif self.packet_id:
            raise LocalProtocolError("a QoS 0 PUBLISH has no packet identifier")  # [MQTT-2.2.1-2]
        elif self.dup:
            raise LocalProtocolError("DUP set on a QoS 0 PUBLISH")  # [MQTT-3.3.1-2]
        topic = self.topic
        if topic or version != MQTT_V5 or self.properties.topic_alias is None:
            problem = topic_name_problem(topic)
            if problem is not None:
                raise LocalProtocolError(problem)
        flags = (
            (PF_DUP if self.dup else 0)
            | (self.qos << PF_QOS_SHIFT)
            | (PF_RETAIN if self.retain else 0)
        )
        parts = [encode_string(topic, "topic")]
        if self.qos:
            parts.append(_U16.pack(self.packet_id))
        if version == MQTT_V5:
            parts.append(encode_properties(self.properties, PacketType.PUBLISH))
        else:
            _no_props_v3(version, self.properties)
        parts.append(bytes(self.payload))
        return _packet(PacketType.PUBLISH, flags, b"".join(parts))


@dataclasses.dataclass(slots=True)
class _Ack:
    """PUBACK, PUBREC, PUBREL and PUBCOMP share one layout (3.4-3.7)."""

    packet_id: int
    reason_code: int = ReasonCode.SUCCESS
    properties: Properties = NO_PROPERTIES
    TYPE: ClassVar[PacketType]

    def encode(self, version: int) -> bytes:
        _check_version(version)
        _check_pid(self.packet_id)
        t = self.TYPE
        flags = REQUIRED_FLAGS[t]
        pid = _U16.pack(self.packet_id)
        if version == MQTT_V311 or (not self.reason_code and _empty(self.properties)):
            if version == MQTT_V311:
                _no_props_v3(version, self.properties)
                if self.reason_code:
                    raise LocalProtocolError(f"{t.name} reason codes need MQTT 5.0")
            return bytes(((t << 4) | flags, 2)) + pid
        _check_reason(t, self.reason_code)
        if _empty(self.properties):
            return bytes(((t << 4) | flags, 3)) + pid + bytes((self.reason_code,))
        return _packet(
            t, flags, pid + bytes((self.reason_code,)) + encode_properties(self.properties, t)
        )


@dataclasses.dataclass(slots=True)
class PubAck(_Ack):
    """PUBACK: QoS 1 delivery done (3.4)."""

    TYPE: ClassVar[PacketType] = PacketType.PUBACK


@dataclasses.dataclass(slots=True)
class PubRec(_Ack):
    """PUBREC: QoS 2 delivery, part 1 (3.5)."""

    TYPE: ClassVar[PacketType] = PacketType.PUBREC


@dataclasses.dataclass(slots=True)
class PubRel(_Ack):
    """PUBREL: QoS 2 delivery, part 2 (3.6)."""

    TYPE: ClassVar[PacketType] = PacketType.PUBREL


@dataclasses.dataclass(slots=True)
class PubComp(_Ack):
    """PUBCOMP: QoS 2 delivery, part 3 (3.7)."""

    TYPE: ClassVar[PacketType] = PacketType.PUBCOMP


# -- SUBSCRIBE / UNSUBSCRIBE -----------------------------------------------------------


@dataclasses.dataclass(slots=True)
class Subscription:
    """One Topic Filter and its Subscription Options (3.8.3.1)."""

    topic_filter: str
    qos: int = 0
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0

    def options_byte(self, version: int) -> int:
        _check_qos(self.qos)
        if version == MQTT_V311:
            return self.qos
        if self.retain_handling not in (0, 1, 2):
            raise LocalProtocolError(f"retain handling {self.retain_handling} is not 0, 1 or 2")
        return (
            self.qos
            | (SO_NO_LOCAL if self.no_local else 0)
            | (SO_RETAIN_AS_PUBLISHED if self.retain_as_published else 0)
            | (self.retain_handling << SO_RETAIN_HANDLING_SHIFT)
        )


@dataclasses.dataclass(slots=True)
class Subscribe:
    """SUBSCRIBE (3.8)."""

    packet_id: int
    subscriptions: list[Subscription]
    properties: Properties = NO_PROPERTIES
    TYPE: ClassVar[PacketType] = PacketType.SUBSCRIBE

    def encode(self, version: int) -> bytes:
        _check_version(version)
        _check_pid(self.packet_id)
        if not self.subscriptions:
            raise LocalProtocolError("SUBSCRIBE without a topic filter")  # [MQTT-3.8.3-2]
        parts = [_U16.pack(self.packet_id)]
        if version == MQTT_V5:
            parts.append(encode_properties(self.properties, PacketType.SUBSCRIBE))
        else:
            _no_props_v3(version, self.properties)
        for s in self.subscriptions:
            problem = topic_filter_problem(s.topic_filter)
            if problem is not None:
                raise LocalProtocolError(problem)
            if s.no_local and s.topic_filter.startswith("$share/"):
                raise LocalProtocolError("no_local on a shared subscription")  # [MQTT-3.8.3-4]
            parts.append(encode_string(s.topic_filter, "topic filter"))
            parts.append(bytes((s.options_byte(version),)))
        return _packet(PacketType.SUBSCRIBE, REQUIRED_FLAGS[PacketType.SUBSCRIBE], b"".join(parts))


@dataclasses.dataclass(slots=True)
class Suback:
    """SUBACK (3.9): one reason code per requested filter, in order [MQTT-3.9.3-1]."""

    packet_id: int
    reason_codes: list[int]
    properties: Properties = NO_PROPERTIES
    TYPE: ClassVar[PacketType] = PacketType.SUBACK

    def encode(self, version: int) -> bytes:
        _check_version(version)
        _check_pid(self.packet_id)
        for code in self.reason_codes:
            _check_reason(PacketType.SUBACK, code)
        if version == MQTT_V311:
            _no_props_v3(version, self.properties)
            # 3.9.3 (3.1.1): 0x00-0x02 granted, 0x80 failure
            codes = bytes(
                c if c in _V3_SUBACK else ReasonCode.UNSPECIFIED_ERROR for c in self.reason_codes
            )
            return _packet(PacketType.SUBACK, 0, _U16.pack(self.packet_id) + codes)
        body = (
            _U16.pack(self.packet_id)
            + encode_properties(self.properties, PacketType.SUBACK)
            + bytes(self.reason_codes)
        )
        return _packet(PacketType.SUBACK, 0, body)


@dataclasses.dataclass(slots=True)
class Unsubscribe:
    """UNSUBSCRIBE (3.10)."""

    packet_id: int
    topic_filters: list[str]
    properties: Properties = NO_PROPERTIES
    TYPE: ClassVar[PacketType] = PacketType.UNSUBSCRIBE

    def encode(self, version: int) -> bytes:
        _check_version(version)
        _check_pid(self.packet_id)
        if not self.topic_filters:
            raise LocalProtocolError("UNSUBSCRIBE without a topic filter")  # [MQTT-3.10.3-2]
        parts = [_U16.pack(self.packet_id)]
        if version == MQTT_V5:
            parts.append(encode_properties(self.properties, PacketType.UNSUBSCRIBE))
        else:
            _no_props_v3(version, self.properties)
        for f in self.topic_filters:
            problem = topic_filter_problem(f)
            if problem is not None:
                raise LocalProtocolError(problem)
            parts.append(encode_string(f, "topic filter"))
        flags = REQUIRED_FLAGS[PacketType.UNSUBSCRIBE]
        return _packet(PacketType.UNSUBSCRIBE, flags, b"".join(parts))


@dataclasses.dataclass(slots=True)
class Unsuback:
    """UNSUBACK (3.11).  3.1.1 has no reason codes: decoded ones are an empty list."""

    packet_id: int
    reason_codes: list[int] = dataclasses.field(default_factory=list)
    properties: Properties = NO_PROPERTIES
    TYPE: ClassVar[PacketType] = PacketType.UNSUBACK

    def encode(self, version: int) -> bytes:
        _check_version(version)
        _check_pid(self.packet_id)
        if version == MQTT_V311:
            _no_props_v3(version, self.properties)
            return _packet(PacketType.UNSUBACK, 0, _U16.pack(self.packet_id))
        for code in self.reason_codes:
            _check_reason(PacketType.UNSUBACK, code)
        body = (
            _U16.pack(self.packet_id)
            + encode_properties(self.properties, PacketType.UNSUBACK)
            + bytes(self.reason_codes)
        )
        return _packet(PacketType.UNSUBACK, 0, body)


# -- the rest -------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class PingReq:
    """PINGREQ (3.12)."""

    TYPE: ClassVar[PacketType] = PacketType.PINGREQ

    def encode(self, version: int) -> bytes:
        return bytes((PacketType.PINGREQ << 4, 0))


@dataclasses.dataclass(slots=True)
class PingResp:
    """PINGRESP (3.13)."""

    TYPE: ClassVar[PacketType] = PacketType.PINGRESP

    def encode(self, version: int) -> bytes:
        return bytes((PacketType.PINGRESP << 4, 0))


@dataclasses.dataclass(slots=True)
class Disconnect:
    """DISCONNECT (3.14).  In 3.1.1 only the client sends it and it carries nothing."""

    reason_code: int = ReasonCode.NORMAL_DISCONNECTION
    properties: Properties = NO_PROPERTIES
    TYPE: ClassVar[PacketType] = PacketType.DISCONNECT

    def encode(self, version: int) -> bytes:
        _check_version(version)
        if version == MQTT_V311:
            _no_props_v3(version, self.properties)
            if self.reason_code:
                raise LocalProtocolError("DISCONNECT reason codes need MQTT 5.0")
            return bytes((PacketType.DISCONNECT << 4, 0))
        _check_reason(PacketType.DISCONNECT, self.reason_code)
        if _empty(self.properties):
            if not self.reason_code:
                return bytes((PacketType.DISCONNECT << 4, 0))  # 3.14.2.1: length 0 = 0x00
            return bytes((PacketType.DISCONNECT << 4, 1, self.reason_code))
        body = bytes((self.reason_code,)) + encode_properties(
            self.properties, PacketType.DISCONNECT
        )
        return _packet(PacketType.DISCONNECT, 0, body)


@dataclasses.dataclass(slots=True)
class Auth:
    """AUTH (3.15), MQTT 5.0 only: enhanced authentication exchange."""

    reason_code: int = ReasonCode.SUCCESS
    properties: Properties = NO_PROPERTIES
    TYPE: ClassVar[PacketType] = PacketType.AUTH

    def encode(self, version: int) -> bytes:
        if version != MQTT_V5:
            raise LocalProtocolError("AUTH needs MQTT 5.0")
        _check_reason(PacketType.AUTH, self.reason_code)
        if not self.reason_code and _empty(self.properties):
            return bytes((PacketType.AUTH << 4, 0))  # 3.15.2.1
        body = bytes((self.reason_code,)) + encode_properties(self.properties, PacketType.AUTH)
        return _packet(PacketType.AUTH, 0, body)


Packet: TypeAlias = (
    Connect
    | Connack
    | Publish
    | PubAck
    | PubRec
    | PubRel
    | PubComp
    | Subscribe
    | Suback
    | Unsubscribe
    | Unsuback
    | PingReq
    | PingResp
    | Disconnect
    | Auth
)


# -- one message, many receivers ----------------------------------------------------------


class PublishTemplate:
    """One application message, encoded once per distinct PUBLISH layout.

    ``encode(version, qos, packet_id, retain, dup, subscription_ids)`` returns the
    PUBLISH a receiver gets.  QoS 0 receivers with the same layout share one ``bytes``
    object; QoS 1/2 ones get ``head + packet id + tail`` with head and tail cached.
    ``properties`` are sent unaltered [MQTT-3.3.2-4] [MQTT-3.3.2-15..20] except the
    Subscription Identifiers, which are each receiver's own [MQTT-3.3.4-3], and a
    Topic Alias, which is never forwarded (aliases belong to one connection,
    [MQTT-3.3.2-7]).

    Example (a broker forwarding one message)::

        t = PublishTemplate(pub.topic, pub.payload, pub.properties)
        for session, opts in index.match(pub.topic).items():
            conn.send(t.encode(5, min(pub.qos, opts.qos), packet_id=...))
    """

    __slots__ = ("_cache", "_topic", "payload", "properties", "topic")

    def __init__(
        self, topic: str, payload: bytes = b"", properties: Properties = NO_PROPERTIES
    ) -> None:
        problem = topic_name_problem(topic)
        if problem is not None:
            raise LocalProtocolError(problem)
        self.topic = topic
        self.payload = bytes(payload)
        if properties.topic_alias is not None or properties.subscription_identifiers:
            properties = dataclasses.replace(
                properties, topic_alias=None, subscription_identifiers=()
            )
        self.properties = properties
        self._topic = encode_string(topic, "topic")
        self._cache: dict[tuple[int, int, bool, bool, tuple[int, ...]], tuple[bytes, bytes]] = {}

    def encode(
        self,
        version: int,
        qos: int = 0,
        packet_id: int = 0,
        retain: bool = False,
        dup: bool = False,
        subscription_ids: tuple[int, ...] = (),
    ) -> bytes:
        """Return the PUBLISH for one receiver (see the class docstring)."""
        key = (version, qos, retain, dup, subscription_ids)
        parts = self._cache.get(key)
        if parts is None:
            parts = self._cache[key] = self._build(*key)
        if not qos:
            return parts[0]
        if not 0 < packet_id <= MAX_PACKET_ID:
            _check_pid(packet_id)
        return b"".join((parts[0], _U16.pack(packet_id), parts[1]))

    def size(self, version: int, qos: int, subscription_ids: tuple[int, ...] = ()) -> int:
        """Bytes of the PUBLISH ``encode`` returns for this layout."""
        key = (version, qos, False, False, subscription_ids)
        parts = self._cache.get(key)
        if parts is None:
            parts = self._cache[key] = self._build(*key)
        return len(parts[0]) + len(parts[1]) + (2 if qos else 0)

    def _build(
        self, version: int, qos: int, retain: bool, dup: bool, sub_ids: tuple[int, ...]
    ) -> tuple[bytes, bytes]:
        _check_version(version)
        _check_qos(qos)
        if dup and not qos:
            raise LocalProtocolError("DUP set on a QoS 0 PUBLISH")  # [MQTT-3.3.1-2]
        if version == MQTT_V5:
            props = self.properties
            if sub_ids:
                props = dataclasses.replace(props, subscription_identifiers=sub_ids)
            tail = encode_properties(props, PacketType.PUBLISH) + self.payload
        else:
            tail = self.payload
        n = len(self._topic) + len(tail) + (2 if qos else 0)
        b0 = (
            (PacketType.PUBLISH << 4)
            | (PF_DUP if dup else 0)
            | (qos << PF_QOS_SHIFT)
            | (PF_RETAIN if retain else 0)
        )
        head = bytes((b0,)) + encode_varint(n) + self._topic
        if not qos:
            return head + tail, b""
        return head, tail

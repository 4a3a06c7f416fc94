"""MQTT packet bodies -> packet objects (MQTT 3.1.1 and 5.0, chapter 3).

Strategy: ``decode_body`` gets the type and flags of a fixed header already checked by
the reader and the span ``buf[pos:end]`` holding exactly the Remaining Length bytes.
Every field must end exactly at ``end``: a field running past it or bytes left over
is a Malformed Packet (0x81).  What parses but is forbidden is a Protocol Error (0x82),
or the specific code the specification names (0x84, 0x85, 0x8F, 0x90, 0x99).  The
``DecodeContext`` carries the protocol level (set by the CONNECT a server receives),
the direction and the topic limits.  PUBLISH, the hot path, is decoded inline: one
slice per field, no per-byte Python loop; its payload is copied once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from .mqtt_codes import (
    DEFAULT_MAX_TOPIC_LENGTH,
    DEFAULT_MAX_TOPIC_LEVELS,
    MQTT_V5,
    MQTT_V31,
    MQTT_V311,
    PROTOCOL_NAME,
    PROTOCOL_NAME_V31,
    VALID_REASONS,
    MqttError,
    PacketType,
    ReasonCode,
    V3ConnackCode,
    connack_code_from_v3,
    malformed,
    protocol_error,
)
from .mqtt_packets import (
    CF_CLEAN,
    CF_PASSWORD,
    CF_USERNAME,
    CF_WILL,
    CF_WILL_QOS_SHIFT,
    CF_WILL_RETAIN,
    SO_NO_LOCAL,
    SO_QOS,
    SO_RESERVED,
    SO_RETAIN_AS_PUBLISHED,
    SO_RETAIN_HANDLING_SHIFT,
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
    PubRec,
    PubRel,
    Suback,
    Subscribe,
    Subscription,
    Unsuback,
    Unsubscribe,
    Will,
)
from .mqtt_topics import SHARE_PREFIX, topic_filter_problem, topic_name_problem
from .mqtt_wire import (
    NO_PROPERTIES,
    WILL,
    Buffer,
    Properties,
    decode_properties,
    decode_text,
    read_binary,
    read_string,
)

__all__ = ["DecodeContext", "decode_body"]

#: the connect flag reserved bit [MQTT-3.1.2-3]
CF_RESERVED: Final = 0x01
#: CONNACK acknowledge flags: only bit 0 (Session Present) is defined [MQTT-3.2.2-1]
CA_RESERVED: Final = 0xFE
#: Subscription Options bits that 3.1.1 reserves (all but the QoS) [MQTT-3-8.3-4 (3.1.1)]
SO_RESERVED_V3: Final = 0xFC
PAYLOAD_UTF8: Final = 1
#: payloads at least this long are copied out through a memoryview (one copy, not two)
_BIG: Final = 2048
#: 3.1.1 SUBACK return codes (3.9.3)
_V3_SUBACK: Final = frozenset((0x00, 0x01, 0x02, 0x80))


class DecodeContext:
    """What a body decoder needs to know about its connection."""

    __slots__ = ("from_client", "max_topic_length", "max_topic_levels", "version")

    def __init__(
        self,
        version: int,
        from_client: bool,
        max_topic_length: int = DEFAULT_MAX_TOPIC_LENGTH,
        max_topic_levels: int = DEFAULT_MAX_TOPIC_LEVELS,
    ) -> None:
        #: protocol level of the connection (4 or 5)
        self.version = version
        #: True when decoding what a client sent (we are the server)
        self.from_client = from_client
        self.max_topic_length = max_topic_length
        self.max_topic_levels = max_topic_levels


def _copy(buf: Buffer, a: int, b: int) -> bytes:
    """Return ``buf[a:b]`` as bytes, copied once."""
    if type(buf) is bytes:
        return buf[a:b]
    if b - a < _BIG:
        return bytes(buf[a:b])
    with memoryview(buf) as view:
        return view[a:b].tobytes()


def _u16(buf: Buffer, pos: int, end: int) -> int:
    if end - pos < 2:
        raise malformed("truncated two byte integer")
    return (buf[pos] << 8) | buf[pos + 1]


def _pid(buf: Buffer, pos: int, end: int) -> int:
    pid = _u16(buf, pos, end)
    if not pid:
        raise protocol_error("packet identifier 0")  # [MQTT-2.2.1-3] [MQTT-2.3.1-1 (3.1.1)]
    return pid


def _props(buf: Buffer, pos: int, end: int, ctx: DecodeContext, t: int) -> tuple[Properties, int]:
    if ctx.version != MQTT_V5:
        return NO_PROPERTIES, pos
    if pos < end and buf[pos] == 0:
        return NO_PROPERTIES, pos + 1
    return decode_properties(buf, pos, end, t)


def _reason_props(
    buf: Buffer, pos: int, end: int, ctx: DecodeContext, t: int
) -> tuple[Properties, int]:
    """Properties after a reason code: absent when the packet ends there (3.4.2.2)."""
    if pos == end:
        return NO_PROPERTIES, pos
    return _props(buf, pos, end, ctx, t)


def _done(pos: int, end: int) -> None:
    if pos != end:
        raise malformed("bytes after the last field of the packet")


def _check_message_props(props: Properties, payload: bytes, what: str) -> None:
    """Rules of the message properties shared by PUBLISH and the Will (3.3.2.3)."""
    rt = props.response_topic
    if rt is not None and topic_name_problem(rt) is not None:
        raise protocol_error(f"invalid Response Topic in {what}")  # [MQTT-3.3.2-14]
    if props.payload_format_indicator == PAYLOAD_UTF8:
        # 3.3.2.3.2: the receiver may check a payload declared as UTF-8
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError:
            raise MqttError(
                f"{what} payload is not the UTF-8 it claims", ReasonCode.PAYLOAD_FORMAT_INVALID
            ) from None


# -- CONNECT / CONNACK -------------------------------------------------------------------


def _connect(flags: int, buf: Buffer, pos: int, end: int, ctx: DecodeContext) -> Connect:
    name, pos = read_string(buf, pos, end)
    if pos >= end:
        raise malformed("CONNECT without a protocol level")
    level = buf[pos]
    pos += 1
    # errors from here on are reported in the client's own version (a CONNACK it reads)
    ctx.version = MQTT_V5 if level == MQTT_V5 else MQTT_V311
    if name != PROTOCOL_NAME or level not in (MQTT_V311, MQTT_V5):
        # [MQTT-3.1.2-1] [MQTT-3.1.2-2]: refuse with 0x84 (3.1.1: return code 0x01)
        what = "MQTT 3.1" if (name, level) == (PROTOCOL_NAME_V31, MQTT_V31) else "protocol"
        raise MqttError(
            f"unsupported {what} {name!r} level {level}", ReasonCode.UNSUPPORTED_PROTOCOL_VERSION
        )
    v5 = level == MQTT_V5
    if end - pos < 3:
        raise malformed("truncated CONNECT variable header")
    cf = buf[pos]
    keepalive = (buf[pos + 1] << 8) | buf[pos + 2]
    pos += 3
    if cf & CF_RESERVED:
        raise malformed("CONNECT reserved flag set")  # [MQTT-3.1.2-3]
    will_qos = (cf >> CF_WILL_QOS_SHIFT) & SO_QOS
    if not cf & CF_WILL and (will_qos or cf & CF_WILL_RETAIN):
        # [MQTT-3.1.2-11] [MQTT-3.1.2-13] (3.1.1: [MQTT-3.1.2-11] [MQTT-3.1.2-15])
        raise malformed("will QoS or retain without a will")
    if will_qos == 3:
        raise malformed("will QoS 3")  # [MQTT-3.1.2-12] (3.1.1: [MQTT-3.1.2-14])
    if not v5 and cf & CF_PASSWORD and not cf & CF_USERNAME:
        raise malformed("password without user name")  # [MQTT-3.1.2-22] (3.1.1)
    props, pos = _props(buf, pos, end, ctx, PacketType.CONNECT)
    if props.authentication_data is not None and props.authentication_method is None:
        raise protocol_error("Authentication Data without a method")  # 3.1.2.11.10
    client_id, pos = read_string(buf, pos, end)  # [MQTT-3.1.3-3] [MQTT-3.1.3-4]
    clean = bool(cf & CF_CLEAN)
    if not v5 and not client_id and not clean:
        # [MQTT-3.1.3-8] (3.1.1): CONNACK 0x02 Identifier rejected
        raise MqttError(
            "empty client id without clean session", ReasonCode.CLIENT_IDENTIFIER_NOT_VALID
        )
    will = None
    if cf & CF_WILL:  # [MQTT-3.1.2-9]: will properties, topic and payload follow
        wprops, pos = _props(buf, pos, end, ctx, WILL)
        wtopic, pos = read_string(buf, pos, end)
        problem = topic_name_problem(wtopic, ctx.max_topic_length, ctx.max_topic_levels)
        if problem is not None:
            raise MqttError(f"will topic: {problem}", ReasonCode.TOPIC_NAME_INVALID)
        wpayload, pos = read_binary(buf, pos, end)
        _check_message_props(wprops, wpayload, "will")
        will = Will(wtopic, wpayload, will_qos, bool(cf & CF_WILL_RETAIN), wprops)
    username = password = None
    if cf & CF_USERNAME:
        username, pos = read_string(buf, pos, end)  # [MQTT-3.1.2-17]
    if cf & CF_PASSWORD:
        password, pos = read_binary(buf, pos, end)  # [MQTT-3.1.2-19]
    _done(pos, end)  # [MQTT-3.1.4-1]
    return Connect(client_id, clean, keepalive, username, password, will, props, level)


def _connack(flags: int, buf: Buffer, pos: int, end: int, ctx: DecodeContext) -> Connack:
    if end - pos < 2:
        raise malformed("truncated CONNACK")
    ack, code = buf[pos], buf[pos + 1]
    pos += 2
    if ack & CA_RESERVED:
        raise malformed("CONNACK reserved flags set")  # [MQTT-3.2.2-1]
    if ctx.version == MQTT_V5:
        if code not in VALID_REASONS[PacketType.CONNACK]:
            raise protocol_error(f"CONNACK reason code {code:#x}")  # [MQTT-3.2.2-8]
        reason = ReasonCode(code)
    else:
        if code > max(V3ConnackCode):
            raise protocol_error(f"CONNACK return code {code}")  # 3.2.2.3: 6-255 reserved
        reason = connack_code_from_v3(code)
    if ack and code:
        # [MQTT-3.2.2-6] (3.1.1: [MQTT-3.2.2-4]): a refusal has Session Present 0
        raise protocol_error("Session Present with a refusal")
    props, pos = _props(buf, pos, end, ctx, PacketType.CONNACK)
    _done(pos, end)
    return Connack(bool(ack), reason, props)


# -- PUBLISH and acknowledgements -----------------------------------------------------------


def decode_publish(flags: int, buf: Buffer, pos: int, end: int, ctx: DecodeContext) -> Publish:
    """Decode a PUBLISH body (3.3): the hot path of the codec."""
    qos = (flags >> 1) & SO_QOS
    if qos == 3:
        raise malformed("PUBLISH with QoS 3")  # [MQTT-3.3.1-4]
    if flags & 0x08 and not qos:
        raise malformed("DUP on a QoS 0 PUBLISH")  # [MQTT-3.3.1-2]
    if end - pos < 2:
        raise malformed("truncated topic length")
    s = pos + 2
    e = s + ((buf[pos] << 8) | buf[pos + 1])
    if e > end:
        raise malformed("topic runs past the end of the packet")
    topic = decode_text(buf[s:e])  # [MQTT-3.3.2-1]
    if topic:
        problem = topic_name_problem(topic, ctx.max_topic_length, ctx.max_topic_levels, e - s)
        if problem is not None:
            raise MqttError(problem, ReasonCode.TOPIC_NAME_INVALID)  # [MQTT-3.3.2-2]
    pos = e
    pid = 0
    if qos:
        pid = _pid(buf, pos, end)
        pos += 2
    props = NO_PROPERTIES
    if ctx.version == MQTT_V5:
        if pos < end and buf[pos] == 0:
            pos += 1
        else:
            props, pos = decode_properties(buf, pos, end, PacketType.PUBLISH)
    payload = _copy(buf, pos, end)
    if props is not NO_PROPERTIES:
        if props.subscription_identifiers and ctx.from_client:
            raise protocol_error("Subscription Identifier from a client")  # [MQTT-3.3.4-6]
        _check_message_props(props, payload, "PUBLISH")
    if not topic and props.topic_alias is None:
        # 3.3.2.3.4 / [MQTT-4.7.3-1]: no topic and no alias to stand for it
        raise protocol_error("empty topic name without a Topic Alias")
    return Publish(topic, payload, qos, bool(flags & 1), bool(flags & 0x08), pid, props)


def _ack(
    cls: type[PubAck] | type[PubRec] | type[PubRel] | type[PubComp],
) -> Callable[[int, Buffer, int, int, DecodeContext], Packet]:
    valid = VALID_REASONS[cls.TYPE]

    def decode(flags: int, buf: Buffer, pos: int, end: int, ctx: DecodeContext) -> Packet:
        if end - pos == 2:  # the common short form: 3.4.2.1, no reason code means 0x00
            pid = (buf[pos] << 8) | buf[pos + 1]
            if pid:
                return cls(pid)
        pid = _pid(buf, pos, end)
        pos += 2
        if pos == end:
            return cls(pid)
        if ctx.version != MQTT_V5:
            raise malformed(f"{cls.TYPE.name} longer than 2 bytes")
        code = buf[pos]
        if code not in valid:
            # [MQTT-3.4.2-1] [MQTT-3.5.2-1] [MQTT-3.6.2-1] [MQTT-3.7.2-1]
            raise protocol_error(f"{cls.TYPE.name} reason code {code:#x}")
        props, pos = _reason_props(buf, pos + 1, end, ctx, cls.TYPE)
        _done(pos, end)
        return cls(pid, ReasonCode(code), props)

    return decode


# -- SUBSCRIBE / UNSUBSCRIBE -------------------------------------------------------------


def _filter(buf: Buffer, pos: int, end: int, ctx: DecodeContext) -> tuple[str, int]:
    start = pos
    f, pos = read_string(buf, pos, end)  # [MQTT-3.8.3-1] [MQTT-3.10.3-1]
    problem = topic_filter_problem(f, ctx.max_topic_length, ctx.max_topic_levels, pos - start - 2)
    if problem is not None:
        raise MqttError(problem, ReasonCode.TOPIC_FILTER_INVALID)
    return f, pos


def _subscribe(flags: int, buf: Buffer, pos: int, end: int, ctx: DecodeContext) -> Subscribe:
    pid = _pid(buf, pos, end)
    props, pos = _props(buf, pos + 2, end, ctx, PacketType.SUBSCRIBE)
    v5 = ctx.version == MQTT_V5
    reserved = SO_RESERVED if v5 else SO_RESERVED_V3
    subs: list[Subscription] = []
    while pos < end:
        f, pos = _filter(buf, pos, end, ctx)
        if pos >= end:
            raise malformed("topic filter without subscription options")
        opt = buf[pos]
        pos += 1
        if opt & reserved:
            # [MQTT-3.8.3-5] (3.1.1: [MQTT-3-8.3-4]): reserved bits are malformed
            raise malformed("subscription options reserved bits set")
        qos = opt & SO_QOS
        if qos == 3:
            raise malformed("subscription QoS 3")  # 3.8.3.1 (3.1.1: [MQTT-3-8.3-4])
        rh = opt >> SO_RETAIN_HANDLING_SHIFT
        if rh == 3:
            raise protocol_error("retain handling 3")  # 3.8.3.1
        no_local = bool(opt & SO_NO_LOCAL)
        if no_local and f.startswith(SHARE_PREFIX):
            raise protocol_error("no local on a shared subscription")  # [MQTT-3.8.3-4]
        subs.append(Subscription(f, qos, no_local, bool(opt & SO_RETAIN_AS_PUBLISHED), rh))
    if not subs:
        raise protocol_error("SUBSCRIBE without a topic filter")  # [MQTT-3.8.3-2] (3.1.1 -3)
    return Subscribe(pid, subs, props)


def _suback(flags: int, buf: Buffer, pos: int, end: int, ctx: DecodeContext) -> Suback:
    pid = _pid(buf, pos, end)
    props, pos = _props(buf, pos + 2, end, ctx, PacketType.SUBACK)
    codes = list(buf[pos:end])
    if not codes:
        raise protocol_error("SUBACK without a reason code")  # [MQTT-3.8.4-6]
    valid = VALID_REASONS[PacketType.SUBACK] if ctx.version == MQTT_V5 else _V3_SUBACK
    for c in codes:
        if c not in valid:
            raise protocol_error(f"SUBACK reason code {c:#x}")  # [MQTT-3.9.3-2]
    return Suback(pid, [ReasonCode(c) for c in codes], props)


def _unsubscribe(flags: int, buf: Buffer, pos: int, end: int, ctx: DecodeContext) -> Unsubscribe:
    pid = _pid(buf, pos, end)
    props, pos = _props(buf, pos + 2, end, ctx, PacketType.UNSUBSCRIBE)
    filters: list[str] = []
    while pos < end:
        f, pos = _filter(buf, pos, end, ctx)
        filters.append(f)
    if not filters:
        raise protocol_error("UNSUBSCRIBE without a topic filter")  # [MQTT-3.10.3-2]
    return Unsubscribe(pid, filters, props)


def _unsuback(flags: int, buf: Buffer, pos: int, end: int, ctx: DecodeContext) -> Unsuback:
    pid = _pid(buf, pos, end)
    if ctx.version != MQTT_V5:
        _done(pos + 2, end)  # 3.11 (3.1.1): the packet identifier only
        return Unsuback(pid)
    props, pos = _props(buf, pos + 2, end, ctx, PacketType.UNSUBACK)
    codes = list(buf[pos:end])
    if not codes:
        raise protocol_error("UNSUBACK without a reason code")  # [MQTT-3.11.3-1]
    for c in codes:
        if c not in VALID_REASONS[PacketType.UNSUBACK]:
            raise protocol_error(f"UNSUBACK reason code {c:#x}")  # [MQTT-3.11.3-2]
    return Unsuback(pid, [ReasonCode(c) for c in codes], props)


# -- the rest ------------------------------------------------------------------------------


def _pingreq(flags: int, buf: Buffer, pos: int, end: int, ctx: DecodeContext) -> PingReq:
    _done(pos, end)  # 3.12: no variable header, no payload
    return PingReq()


def _pingresp(flags: int, buf: Buffer, pos: int, end: int, ctx: DecodeContext) -> PingResp:
    _done(pos, end)  # 3.13
    return PingResp()


def _disconnect(flags: int, buf: Buffer, pos: int, end: int, ctx: DecodeContext) -> Disconnect:
    if pos == end:
        return Disconnect()  # 3.14.2.1: no reason code means 0x00
    if ctx.version != MQTT_V5:
        raise malformed("DISCONNECT with a body")  # 3.14 (3.1.1)
    code = buf[pos]
    if code not in VALID_REASONS[PacketType.DISCONNECT]:
        raise protocol_error(f"DISCONNECT reason code {code:#x}")
    props, pos = _reason_props(buf, pos + 1, end, ctx, PacketType.DISCONNECT)
    _done(pos, end)
    if props.session_expiry_interval is not None and not ctx.from_client:
        raise protocol_error("Session Expiry Interval in a server DISCONNECT")  # [MQTT-3.14.2-2]
    return Disconnect(ReasonCode(code), props)


def _auth(flags: int, buf: Buffer, pos: int, end: int, ctx: DecodeContext) -> Auth:
    if pos == end:
        return Auth()  # 3.15.2.1: no reason code means 0x00 Success
    code = buf[pos]
    if code not in VALID_REASONS[PacketType.AUTH]:
        raise protocol_error(f"AUTH reason code {code:#x}")  # [MQTT-3.15.2-1]
    props, pos = _reason_props(buf, pos + 1, end, ctx, PacketType.AUTH)
    _done(pos, end)
    return Auth(ReasonCode(code), props)


_Decoder = Callable[[int, Buffer, int, int, DecodeContext], Packet]
DECODERS: Final[dict[int, _Decoder]] = {
    PacketType.CONNECT: _connect,
    PacketType.CONNACK: _connack,
    PacketType.PUBLISH: decode_publish,
    PacketType.PUBACK: _ack(PubAck),
    PacketType.PUBREC: _ack(PubRec),
    PacketType.PUBREL: _ack(PubRel),
    PacketType.PUBCOMP: _ack(PubComp),
    PacketType.SUBSCRIBE: _subscribe,
    PacketType.SUBACK: _suback,
    PacketType.UNSUBSCRIBE: _unsubscribe,
    PacketType.UNSUBACK: _unsuback,
    PacketType.PINGREQ: _pingreq,
    PacketType.PINGRESP: _pingresp,
    PacketType.DISCONNECT: _disconnect,
    PacketType.AUTH: _auth,
}


def decode_body(
    ptype: int, flags: int, buf: Buffer, pos: int, end: int, ctx: DecodeContext
) -> Packet:
    """Decode the body ``buf[pos:end]`` of a packet whose fixed header was checked."""
    return DECODERS[ptype](flags, buf, pos, end, ctx)

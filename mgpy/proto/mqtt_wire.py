"""MQTT data representation (MQTT 5.0 chapter 1.5, 2.2.2): Variable Byte Integers, UTF-8
strings, binary data and the 5.0 properties, read from and written to bytes.

Strategy: readers take ``(buf, pos, end)`` over a *complete* packet and return
``(value, new_pos)``; running past ``end`` is a Malformed Packet (0x81), because the
fixed header already promised the length.  Writers return bytes and raise
``LocalProtocolError`` for what the application may not send.

Refused on input: Variable Byte Integers longer than 4 bytes or not in their minimal
form [MQTT-1.5.5-1]; strings that are not well-formed UTF-8 or encode surrogates
[MQTT-1.5.4-1] or hold U+0000 [MQTT-1.5.4-2] (a BOM is kept, never stripped
[MQTT-1.5.4-3]); properties not allowed in the packet (Malformed, 2.2.2.2), given twice
when only one is allowed (Protocol Error), or outside their range (Protocol Error:
Receive Maximum 0, Topic Alias 0, a 0/1 byte with another value, ...).
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from typing import Any, Final, TypeAlias

from ..errors import LocalProtocolError
from .mqtt_codes import (
    MAX_STRING,
    MAX_VARINT,
    PacketType,
    PropertyId,
    malformed,
    protocol_error,
)

__all__ = [
    "NO_PROPERTIES",
    "WILL",
    "Buffer",
    "Properties",
    "decode_properties",
    "encode_binary",
    "encode_properties",
    "encode_string",
    "encode_varint",
    "read_binary",
    "read_string",
    "read_varint",
]

Buffer: TypeAlias = bytes | bytearray | memoryview

_U16: Final = struct.Struct("!H")
_U32: Final = struct.Struct("!I")
#: the one-byte Variable Byte Integers, precomputed
_VARINT1: Final = tuple(bytes((i,)) for i in range(128))
_VARINT_CONT: Final = 0x80
_VARINT_BITS: Final = 0x7F
_VARINT_MAX_BYTES: Final = 4


# -- Variable Byte Integer (MQTT 5.0 1.5.5) ------------------------------------------


def encode_varint(n: int) -> bytes:
    """Encode ``n`` (0 .. 268,435,455) in the minimal number of bytes [MQTT-1.5.5-1]."""
    if n < 128:
        if n < 0:
            raise LocalProtocolError(f"variable byte integer {n} < 0")
        return _VARINT1[n]
    if n > MAX_VARINT:
        raise LocalProtocolError(f"variable byte integer {n} > {MAX_VARINT}")
    out = bytearray()
    while n >= 128:
        out.append((n & _VARINT_BITS) | _VARINT_CONT)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_varint(buf: Buffer, pos: int, end: int) -> tuple[int, int]:
    """Read a Variable Byte Integer of a complete packet; Malformed if bad or truncated."""
    value = 0
    shift = 0
    for i in range(_VARINT_MAX_BYTES):
        if pos >= end:
            raise malformed("truncated variable byte integer")
        b = buf[pos]
        pos += 1
        value |= (b & _VARINT_BITS) << shift
        if not b & _VARINT_CONT:
            # [MQTT-1.5.5-1]: the minimum number of bytes (no trailing zero group)
            if b == 0 and i:
                raise malformed("variable byte integer not in minimal form")
            return value, pos
        shift += 7
    raise malformed("variable byte integer longer than 4 bytes")


# -- UTF-8 strings and binary data (MQTT 5.0 1.5.4, 1.5.6) ----------------------------


def check_text(s: str, what: str) -> bytes:
    """Return ``s`` as UTF-8 for sending; LocalProtocolError where a peer would refuse it."""
    if "\x00" in s:
        raise LocalProtocolError(f"{what} contains U+0000")  # [MQTT-1.5.4-2]
    try:
        raw = s.encode("utf-8")
    except UnicodeEncodeError:
        raise LocalProtocolError(f"{what} contains a surrogate") from None  # [MQTT-1.5.4-1]
    if len(raw) > MAX_STRING:
        raise LocalProtocolError(f"{what} longer than {MAX_STRING} bytes of UTF-8")
    return raw


def encode_string(s: str, what: str = "string") -> bytes:
    """Encode a UTF-8 Encoded String: 2-byte length, then the UTF-8 bytes."""
    raw = check_text(s, what)
    return _U16.pack(len(raw)) + raw


def encode_binary(data: bytes, what: str = "binary data") -> bytes:
    """Encode Binary Data: 2-byte length, then the bytes."""
    if len(data) > MAX_STRING:
        raise LocalProtocolError(f"{what} longer than {MAX_STRING} bytes")
    return _U16.pack(len(data)) + bytes(data)


def decode_text(raw: Buffer) -> str:
    """Decode received UTF-8 string data; refuse ill-formed UTF-8 and U+0000 (0x81)."""
    try:
        # CPython's strict UTF-8 codec refuses overlong forms and encoded surrogates
        # ([MQTT-1.5.4-1]); a BOM decodes to U+FEFF and is kept [MQTT-1.5.4-3].
        s = str(raw, "utf-8")
    except UnicodeDecodeError:
        raise malformed("ill-formed UTF-8 in a string") from None
    if "\x00" in s:
        raise malformed("U+0000 in a string")  # [MQTT-1.5.4-2]
    return s


def read_string(buf: Buffer, pos: int, end: int) -> tuple[str, int]:
    """Read a UTF-8 Encoded String of a complete packet."""
    if end - pos < 2:
        raise malformed("truncated string length")
    e = pos + 2 + ((buf[pos] << 8) | buf[pos + 1])
    if e > end:
        raise malformed("string runs past the end of the packet")
    return decode_text(buf[pos + 2 : e]), e


def read_binary(buf: Buffer, pos: int, end: int) -> tuple[bytes, int]:
    """Read Binary Data of a complete packet."""
    if end - pos < 2:
        raise malformed("truncated binary data length")
    e = pos + 2 + ((buf[pos] << 8) | buf[pos + 1])
    if e > end:
        raise malformed("binary data runs past the end of the packet")
    return bytes(buf[pos + 2 : e]), e


# -- properties (MQTT 5.0 2.2.2) -------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True, repr=False)
class Properties:
    """MQTT 5.0 properties of one packet; None (or empty) = absent.  Immutable.

    ``subscription_identifiers`` and ``user_properties`` may repeat; every other
    property appears at most once.  ``NO_PROPERTIES`` is the shared empty instance.
    """

    payload_format_indicator: int | None = None
    message_expiry_interval: int | None = None
    content_type: str | None = None
    response_topic: str | None = None
    correlation_data: bytes | None = None
    subscription_identifiers: tuple[int, ...] = ()
    session_expiry_interval: int | None = None
    assigned_client_identifier: str | None = None
    server_keep_alive: int | None = None
    authentication_method: str | None = None
    authentication_data: bytes | None = None
    request_problem_information: bool | None = None
    will_delay_interval: int | None = None
    request_response_information: bool | None = None
    response_information: str | None = None
    server_reference: str | None = None
    reason_string: str | None = None
    receive_maximum: int | None = None
    topic_alias_maximum: int | None = None
    topic_alias: int | None = None
    maximum_qos: int | None = None
    retain_available: bool | None = None
    user_properties: tuple[tuple[str, str], ...] = ()
    maximum_packet_size: int | None = None
    wildcard_subscription_available: bool | None = None
    subscription_identifier_available: bool | None = None
    shared_subscription_available: bool | None = None

    def __repr__(self) -> str:
        present = []
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v is not None and v != ():
                present.append(f"{f.name}={v!r}")
        return f"Properties({', '.join(present)})"


NO_PROPERTIES: Final = Properties()

# value kinds
_BYTE, _FLAG, _U16K, _U32K, _VARINT, _STR, _BIN, _PAIR = range(8)

P = PropertyId
#: identifier -> (field name, kind); the order of this table is the order written
_SPEC: Final[dict[PropertyId, tuple[str, int]]] = {
    P.PAYLOAD_FORMAT_INDICATOR: ("payload_format_indicator", _BYTE),
    P.MESSAGE_EXPIRY_INTERVAL: ("message_expiry_interval", _U32K),
    P.CONTENT_TYPE: ("content_type", _STR),
    P.RESPONSE_TOPIC: ("response_topic", _STR),
    P.CORRELATION_DATA: ("correlation_data", _BIN),
    P.SUBSCRIPTION_IDENTIFIER: ("subscription_identifiers", _VARINT),
    P.SESSION_EXPIRY_INTERVAL: ("session_expiry_interval", _U32K),
    P.ASSIGNED_CLIENT_IDENTIFIER: ("assigned_client_identifier", _STR),
    P.SERVER_KEEP_ALIVE: ("server_keep_alive", _U16K),
    P.AUTHENTICATION_METHOD: ("authentication_method", _STR),
    P.AUTHENTICATION_DATA: ("authentication_data", _BIN),
    P.REQUEST_PROBLEM_INFORMATION: ("request_problem_information", _FLAG),
    P.WILL_DELAY_INTERVAL: ("will_delay_interval", _U32K),
    P.REQUEST_RESPONSE_INFORMATION: ("request_response_information", _FLAG),
    P.RESPONSE_INFORMATION: ("response_information", _STR),
    P.SERVER_REFERENCE: ("server_reference", _STR),
    P.REASON_STRING: ("reason_string", _STR),
    P.RECEIVE_MAXIMUM: ("receive_maximum", _U16K),
    P.TOPIC_ALIAS_MAXIMUM: ("topic_alias_maximum", _U16K),
    P.TOPIC_ALIAS: ("topic_alias", _U16K),
    P.MAXIMUM_QOS: ("maximum_qos", _BYTE),
    P.RETAIN_AVAILABLE: ("retain_available", _FLAG),
    P.USER_PROPERTY: ("user_properties", _PAIR),
    P.MAXIMUM_PACKET_SIZE: ("maximum_packet_size", _U32K),
    P.WILDCARD_SUBSCRIPTION_AVAILABLE: ("wildcard_subscription_available", _FLAG),
    P.SUBSCRIPTION_IDENTIFIER_AVAILABLE: ("subscription_identifier_available", _FLAG),
    P.SHARED_SUBSCRIPTION_AVAILABLE: ("shared_subscription_available", _FLAG),
}
_BY_NAME: Final = {name: (pid, kind) for pid, (name, kind) in _SPEC.items()}
_FIELD_ORDER: Final = tuple(f.name for f in dataclasses.fields(Properties))

#: the Will Properties of a CONNECT payload (MQTT 5.0 3.1.3.2) are keyed by this
WILL: Final = 0
_COMMON: Final = (P.REASON_STRING, P.USER_PROPERTY)
_MESSAGE: Final = (
    P.PAYLOAD_FORMAT_INDICATOR,
    P.MESSAGE_EXPIRY_INTERVAL,
    P.CONTENT_TYPE,
    P.RESPONSE_TOPIC,
    P.CORRELATION_DATA,
    P.USER_PROPERTY,
)
#: which properties each packet may carry (MQTT 5.0 2.2.2.2, table of identifiers)
ALLOWED: Final[dict[int, frozenset[PropertyId]]] = {
    PacketType.CONNECT: frozenset(
        (
            P.SESSION_EXPIRY_INTERVAL,
            P.AUTHENTICATION_METHOD,
            P.AUTHENTICATION_DATA,
            P.REQUEST_PROBLEM_INFORMATION,
            P.REQUEST_RESPONSE_INFORMATION,
            P.RECEIVE_MAXIMUM,
            P.TOPIC_ALIAS_MAXIMUM,
            P.USER_PROPERTY,
            P.MAXIMUM_PACKET_SIZE,
        )
    ),
    PacketType.CONNACK: frozenset(
        (
            P.SESSION_EXPIRY_INTERVAL,
            P.ASSIGNED_CLIENT_IDENTIFIER,
            P.SERVER_KEEP_ALIVE,
            P.AUTHENTICATION_METHOD,
            P.AUTHENTICATION_DATA,
            P.RESPONSE_INFORMATION,
            P.SERVER_REFERENCE,
            P.RECEIVE_MAXIMUM,
            P.TOPIC_ALIAS_MAXIMUM,
            P.MAXIMUM_QOS,
            P.RETAIN_AVAILABLE,
            P.MAXIMUM_PACKET_SIZE,
            P.WILDCARD_SUBSCRIPTION_AVAILABLE,
            P.SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            P.SHARED_SUBSCRIPTION_AVAILABLE,
            *_COMMON,
        )
    ),
    PacketType.PUBLISH: frozenset((*_MESSAGE, P.TOPIC_ALIAS, P.SUBSCRIPTION_IDENTIFIER)),
    WILL: frozenset((*_MESSAGE, P.WILL_DELAY_INTERVAL)),
    PacketType.PUBACK: frozenset(_COMMON),
    PacketType.PUBREC: frozenset(_COMMON),
    PacketType.PUBREL: frozenset(_COMMON),
    PacketType.PUBCOMP: frozenset(_COMMON),
    PacketType.SUBSCRIBE: frozenset((P.SUBSCRIPTION_IDENTIFIER, P.USER_PROPERTY)),
    PacketType.SUBACK: frozenset(_COMMON),
    PacketType.UNSUBSCRIBE: frozenset((P.USER_PROPERTY,)),
    PacketType.UNSUBACK: frozenset(_COMMON),
    PacketType.DISCONNECT: frozenset((P.SESSION_EXPIRY_INTERVAL, P.SERVER_REFERENCE, *_COMMON)),
    PacketType.AUTH: frozenset((P.AUTHENTICATION_METHOD, P.AUTHENTICATION_DATA, *_COMMON)),
}

#: properties whose value 0 is a Protocol Error (MQTT 5.0 3.1.2.11.3, 3.1.2.11.4,
#: 3.2.2.3.3, 3.2.2.3.6, [MQTT-3.3.2-8], 3.8.2.1.2)
_NONZERO: Final = frozenset(
    (P.RECEIVE_MAXIMUM, P.MAXIMUM_PACKET_SIZE, P.TOPIC_ALIAS, P.SUBSCRIPTION_IDENTIFIER)
)
#: byte properties limited to 0 or 1 (Payload Format Indicator 3.3.2.3.2, Maximum QoS
#: 3.2.2.3.4); the _FLAG kind holds the others
_ZERO_OR_ONE: Final = frozenset((P.PAYLOAD_FORMAT_INDICATOR, P.MAXIMUM_QOS))


def _read_pair(buf: Buffer, pos: int, end: int) -> tuple[tuple[str, str], int]:
    k, pos = read_string(buf, pos, end)
    v, pos = read_string(buf, pos, end)  # [MQTT-1.5.7-1]
    return (k, v), pos


def _read_value(kind: int, buf: Buffer, pos: int, end: int) -> tuple[Any, int]:
    """Read one property value of ``kind``."""
    if kind == _BYTE or kind == _FLAG:
        if pos >= end:
            raise malformed("truncated property")
        return buf[pos], pos + 1
    if kind == _U16K:
        if end - pos < 2:
            raise malformed("truncated property")
        return (buf[pos] << 8) | buf[pos + 1], pos + 2
    if kind == _U32K:
        if end - pos < 4:
            raise malformed("truncated property")
        return _U32.unpack_from(buf, pos)[0], pos + 4
    if kind == _VARINT:
        return read_varint(buf, pos, end)
    if kind == _STR:
        return read_string(buf, pos, end)
    if kind == _BIN:
        return read_binary(buf, pos, end)
    return _read_pair(buf, pos, end)


def decode_properties(buf: Buffer, pos: int, end: int, packet: int) -> tuple[Properties, int]:
    """Read a Property Length and the properties after it, as allowed in ``packet``.

    ``packet`` is a ``PacketType`` or ``WILL``.  Returns ``NO_PROPERTIES`` for a
    Property Length of 0 [MQTT-2.2.2-1].
    """
    n, pos = read_varint(buf, pos, end)
    if not n:
        return NO_PROPERTIES, pos
    stop = pos + n
    if stop > end:
        raise malformed("properties run past the end of the packet")
    allowed = ALLOWED[packet]
    found: dict[str, Any] = {}
    subs: list[int] | None = None
    users: list[tuple[str, str]] | None = None
    while pos < stop:
        ident, pos = read_varint(buf, pos, stop)
        try:
            pid = PropertyId(ident)
        except ValueError:
            raise malformed(f"unknown property identifier {ident:#x}") from None
        if pid not in allowed:
            # 2.2.2.2: an identifier not valid for the packet type -> Malformed Packet
            raise malformed(f"property {pid.name} not allowed in this packet")
        name, kind = _SPEC[pid]
        value, pos = _read_value(kind, buf, pos, stop)
        if pid in _NONZERO and value == 0:
            raise protocol_error(f"property {pid.name} is 0")
        if pid is P.USER_PROPERTY:
            users = users or []
            users.append(value)
            continue
        if pid is P.SUBSCRIPTION_IDENTIFIER:
            # 3.8.2.1.2: more than one in a SUBSCRIBE is a Protocol Error; a PUBLISH
            # carries one per matching subscription (3.3.2.3.8)
            if subs is not None and packet != PacketType.PUBLISH:
                raise protocol_error("Subscription Identifier given twice")
            subs = subs or []
            subs.append(value)
            continue
        if name in found:
            raise protocol_error(f"property {pid.name} given twice")  # 2.2.2.2
        if kind == _FLAG or pid in _ZERO_OR_ONE:
            if value > 1:
                raise protocol_error(f"property {pid.name} is {value}, not 0 or 1")
            if kind == _FLAG:
                value = bool(value)
        found[name] = value
    if pos != stop:
        raise malformed("a property runs past the Property Length")
    if subs is not None:
        found["subscription_identifiers"] = tuple(subs)
    if users is not None:
        found["user_properties"] = tuple(users)
    return Properties(**found), stop


# -- writing -----------------------------------------------------------------------


def _w_byte(v: Any, name: str) -> bytes:
    if not 0 <= int(v) <= 0xFF:
        raise LocalProtocolError(f"property {name} = {v} does not fit a byte")
    return bytes((int(v),))


def _w_u16(v: Any, name: str) -> bytes:
    if not 0 <= v <= 0xFFFF:
        raise LocalProtocolError(f"property {name} = {v} does not fit 16 bits")
    return _U16.pack(v)


def _w_u32(v: Any, name: str) -> bytes:
    if not 0 <= v <= 0xFFFFFFFF:
        raise LocalProtocolError(f"property {name} = {v} does not fit 32 bits")
    return _U32.pack(v)


_WRITERS: Final[dict[int, Callable[[Any, str], bytes]]] = {
    _BYTE: _w_byte,
    _FLAG: _w_byte,
    _U16K: _w_u16,
    _U32K: _w_u32,
    _VARINT: lambda v, name: encode_varint(v),
    _STR: lambda v, name: encode_string(v, name),
    _BIN: lambda v, name: encode_binary(v, name),
    _PAIR: lambda v, name: encode_string(v[0], name) + encode_string(v[1], name),
}

_EMPTY_PROPS: Final = b"\x00"


def encode_properties(props: Properties, packet: int) -> bytes:
    """Encode Property Length + properties for ``packet``; LocalProtocolError if not allowed."""
    if props is NO_PROPERTIES:
        return _EMPTY_PROPS
    allowed = ALLOWED[packet]
    out: list[bytes] = []
    for name in _FIELD_ORDER:
        value = getattr(props, name)
        if value is None or value == ():
            continue
        pid, kind = _BY_NAME[name]
        if pid not in allowed:
            raise LocalProtocolError(f"property {pid.name} is not allowed in this packet")
        if pid in _NONZERO and not isinstance(value, tuple) and value == 0:
            raise LocalProtocolError(f"property {pid.name} may not be 0")
        write = _WRITERS[kind]
        ident = _VARINT1[pid]
        if isinstance(value, tuple):
            for item in value:
                if pid in _NONZERO and item == 0:
                    raise LocalProtocolError(f"property {pid.name} may not be 0")
                out.append(ident + write(item, pid.name))
        else:
            out.append(ident + write(value, pid.name))
    body = b"".join(out)
    return encode_varint(len(body)) + body

"""MQTT constants shared by the codec, the topic index and the session: packet types,
reason codes, property identifiers, the errors, and the default limits.

Strategy: one name per number of the two specifications (MQTT 3.1.1, OASIS 2014 and
MQTT 5.0, OASIS 2019).  Reason codes are the 5.0 ones for both versions: a 3.1.1 CONNACK
return code or SUBACK failure is mapped to and from its 5.0 equivalent at the codec
boundary, so an application compares against one ``ReasonCode`` set.  Nothing here
parses bytes.

Errors: ``MqttError`` (a ``RemoteProtocolError``) carries the 5.0 reason code to send
before closing (0x81 Malformed Packet, 0x82 Protocol Error, 0x84 Unsupported Protocol
Version, 0x85 Client Identifier not valid, 0x8F/0x90 Topic Filter/Name invalid, 0x93
Receive Maximum exceeded, 0x94 Topic Alias invalid, 0x99 Payload format invalid);
``MqttLimitExceeded`` (also a ``LimitExceeded``) is 0x95 Packet too large.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

from ..errors import LimitExceeded, RemoteProtocolError

__all__ = [
    "DEFAULT_KEEPALIVE",
    "DEFAULT_MAX_INFLIGHT",
    "DEFAULT_MAX_PACKET_SIZE",
    "DEFAULT_MAX_QUEUED",
    "DEFAULT_MAX_TOPIC_ALIAS",
    "DEFAULT_MAX_TOPIC_LENGTH",
    "DEFAULT_MAX_TOPIC_LEVELS",
    "MAX_PACKET_ID",
    "MAX_VARINT",
    "MQTT_V5",
    "MQTT_V311",
    "MqttError",
    "MqttLimitExceeded",
    "PacketType",
    "PropertyId",
    "ReasonCode",
    "V3ConnackCode",
    "connack_code_from_v3",
    "connack_code_to_v3",
    "malformed",
    "protocol_error",
]

#: protocol level byte of CONNECT for MQTT 3.1.1 and 5.0
MQTT_V311: Final = 4
MQTT_V5: Final = 5
#: MQTT 3.1 ("MQIsdp"), recognised only to refuse it with the right code
MQTT_V31: Final = 3
PROTOCOL_NAME: Final = "MQTT"
PROTOCOL_NAME_V31: Final = "MQIsdp"

#: the largest Variable Byte Integer (four 7-bit groups, MQTT 5.0 1.5.5 / 3.1.1 2.2.3)
MAX_VARINT: Final = 268_435_455
#: packet identifiers are non-zero 16-bit integers (MQTT 5.0 2.2.1)
MAX_PACKET_ID: Final = 65_535
#: UTF-8 strings and binary data carry a 16-bit length (MQTT 5.0 1.5.4, 1.5.6)
MAX_STRING: Final = 65_535
#: a whole packet: 1 type byte + 4 length bytes + MAX_VARINT
MAX_PACKET_SIZE_SPEC: Final = 1 + 4 + MAX_VARINT

# -- defaults, each named after its precedent ----------------------------------------
#: largest packet accepted, fixed header included.  mosquitto's max_packet_size defaults
#: to "no limit" (MAX_PACKET_SIZE_SPEC, 256 MiB); a library for small devices wants a cap,
#: and EMQX's max_packet_size default of 1 MiB is the precedent taken (it also matches
#: Limits.max_recv_buffer, which must be able to hold one whole packet).
DEFAULT_MAX_PACKET_SIZE: Final = 1024 * 1024
#: longest topic name / filter in bytes: the 16-bit string length, as mosquitto
#: (mosquitto_pub_topic_check2 / mosquitto_sub_topic_check2 refuse > 65535)
DEFAULT_MAX_TOPIC_LENGTH: Final = MAX_STRING
#: most topic levels: mosquitto's TOPIC_HIERARCHY_LIMIT refuses more than 200 "/"
#: (CVE-2019-11779: a 65 KB filter of "/" exhausted the stack), i.e. 201 levels
DEFAULT_MAX_TOPIC_LEVELS: Final = 201
#: QoS 1/2 messages in flight per client (mosquitto max_inflight_messages 20)
DEFAULT_MAX_INFLIGHT: Final = 20
#: QoS 1/2 messages queued above the in-flight ones (mosquitto max_queued_messages 1000)
DEFAULT_MAX_QUEUED: Final = 1000
#: topic aliases a peer may create (mosquitto max_topic_alias 10)
DEFAULT_MAX_TOPIC_ALIAS: Final = 10
#: keepalive a client asks for (paho-mqtt and mosquitto_pub default 60 s)
DEFAULT_KEEPALIVE: Final = 60


class PacketType(IntEnum):
    """MQTT Control Packet types: the high nibble of the first byte (MQTT 5.0 2.1.2)."""

    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14
    AUTH = 15  #: 5.0 only; "Reserved - Forbidden" in 3.1.1


class ReasonCode(IntEnum):
    """MQTT 5.0 reason codes (2.4); a 3.1.1 peer's codes are mapped onto these."""

    SUCCESS = 0x00
    NORMAL_DISCONNECTION = 0x00
    GRANTED_QOS_0 = 0x00
    GRANTED_QOS_1 = 0x01
    GRANTED_QOS_2 = 0x02
    DISCONNECT_WITH_WILL_MESSAGE = 0x04
    NO_MATCHING_SUBSCRIBERS = 0x10
    NO_SUBSCRIPTION_EXISTED = 0x11
    CONTINUE_AUTHENTICATION = 0x18
    RE_AUTHENTICATE = 0x19
    UNSPECIFIED_ERROR = 0x80
    MALFORMED_PACKET = 0x81
    PROTOCOL_ERROR = 0x82
    IMPLEMENTATION_SPECIFIC_ERROR = 0x83
    UNSUPPORTED_PROTOCOL_VERSION = 0x84
    CLIENT_IDENTIFIER_NOT_VALID = 0x85
    BAD_USER_NAME_OR_PASSWORD = 0x86
    NOT_AUTHORIZED = 0x87
    SERVER_UNAVAILABLE = 0x88
    SERVER_BUSY = 0x89
    BANNED = 0x8A
    SERVER_SHUTTING_DOWN = 0x8B
    BAD_AUTHENTICATION_METHOD = 0x8C
    KEEP_ALIVE_TIMEOUT = 0x8D
    SESSION_TAKEN_OVER = 0x8E
    TOPIC_FILTER_INVALID = 0x8F
    TOPIC_NAME_INVALID = 0x90
    PACKET_IDENTIFIER_IN_USE = 0x91
    PACKET_IDENTIFIER_NOT_FOUND = 0x92
    RECEIVE_MAXIMUM_EXCEEDED = 0x93
    TOPIC_ALIAS_INVALID = 0x94
    PACKET_TOO_LARGE = 0x95
    MESSAGE_RATE_TOO_HIGH = 0x96
    QUOTA_EXCEEDED = 0x97
    ADMINISTRATIVE_ACTION = 0x98
    PAYLOAD_FORMAT_INVALID = 0x99
    RETAIN_NOT_SUPPORTED = 0x9A
    QOS_NOT_SUPPORTED = 0x9B
    USE_ANOTHER_SERVER = 0x9C
    SERVER_MOVED = 0x9D
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E
    CONNECTION_RATE_EXCEEDED = 0x9F
    MAXIMUM_CONNECT_TIME = 0xA0
    SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1
    WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2

    @property
    def is_error(self) -> bool:
        """True for 0x80 and above: the operation failed (MQTT 5.0 2.4)."""
        return self >= ReasonCode.UNSPECIFIED_ERROR


R = ReasonCode

_FROM_0X93: Final = range(0x93, 0xA3)
#: the reason codes each packet may carry (MQTT 5.0 3.2.2.2, 3.4.2.1, 3.5.2.1, 3.6.2.1,
#: 3.7.2.1, 3.9.3, 3.11.3, 3.14.2.1, 3.15.2.1)
VALID_REASONS: Final[dict[PacketType, frozenset[int]]] = {
    PacketType.CONNACK: frozenset(
        (0x00, *range(0x80, 0x8B), 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F)
    ),
    PacketType.PUBACK: frozenset((0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99)),
    PacketType.PUBREC: frozenset((0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99)),
    PacketType.PUBREL: frozenset((0x00, 0x92)),
    PacketType.PUBCOMP: frozenset((0x00, 0x92)),
    PacketType.SUBACK: frozenset(
        (0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2)
    ),
    PacketType.UNSUBACK: frozenset((0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91)),
    PacketType.DISCONNECT: frozenset(
        (0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, *range(0x8D, 0x91), *_FROM_0X93)
    ),
    PacketType.AUTH: frozenset((0x00, 0x18, 0x19)),
}


class V3ConnackCode(IntEnum):
    """MQTT 3.1.1 CONNACK return codes (3.2.2.3)."""

    ACCEPTED = 0
    UNACCEPTABLE_PROTOCOL_VERSION = 1
    IDENTIFIER_REJECTED = 2
    SERVER_UNAVAILABLE = 3
    BAD_USER_NAME_OR_PASSWORD = 4
    NOT_AUTHORIZED = 5


_FROM_V3: Final = {
    V3ConnackCode.ACCEPTED: R.SUCCESS,
    V3ConnackCode.UNACCEPTABLE_PROTOCOL_VERSION: R.UNSUPPORTED_PROTOCOL_VERSION,
    V3ConnackCode.IDENTIFIER_REJECTED: R.CLIENT_IDENTIFIER_NOT_VALID,
    V3ConnackCode.SERVER_UNAVAILABLE: R.SERVER_UNAVAILABLE,
    V3ConnackCode.BAD_USER_NAME_OR_PASSWORD: R.BAD_USER_NAME_OR_PASSWORD,
    V3ConnackCode.NOT_AUTHORIZED: R.NOT_AUTHORIZED,
}
_TO_V3: Final = {v: k for k, v in _FROM_V3.items()}
#: 5.0 refusals with a close 3.1.1 equivalent; the rest become "server unavailable"
_TO_V3.update(
    {
        R.BANNED: V3ConnackCode.NOT_AUTHORIZED,
        R.BAD_AUTHENTICATION_METHOD: V3ConnackCode.NOT_AUTHORIZED,
        R.SERVER_BUSY: V3ConnackCode.SERVER_UNAVAILABLE,
    }
)


def connack_code_from_v3(code: int) -> ReasonCode:
    """Map a 3.1.1 CONNACK return code to its 5.0 reason code (KeyError if reserved)."""
    return _FROM_V3[V3ConnackCode(code)]


def connack_code_to_v3(reason: int) -> V3ConnackCode:
    """Map a 5.0 CONNACK reason code to the 3.1.1 return code a 3.1.1 client understands."""
    return _TO_V3.get(ReasonCode(reason), V3ConnackCode.SERVER_UNAVAILABLE)


class PropertyId(IntEnum):
    """MQTT 5.0 property identifiers (2.2.2.2)."""

    PAYLOAD_FORMAT_INDICATOR = 0x01
    MESSAGE_EXPIRY_INTERVAL = 0x02
    CONTENT_TYPE = 0x03
    RESPONSE_TOPIC = 0x08
    CORRELATION_DATA = 0x09
    SUBSCRIPTION_IDENTIFIER = 0x0B
    SESSION_EXPIRY_INTERVAL = 0x11
    ASSIGNED_CLIENT_IDENTIFIER = 0x12
    SERVER_KEEP_ALIVE = 0x13
    AUTHENTICATION_METHOD = 0x15
    AUTHENTICATION_DATA = 0x16
    REQUEST_PROBLEM_INFORMATION = 0x17
    WILL_DELAY_INTERVAL = 0x18
    REQUEST_RESPONSE_INFORMATION = 0x19
    RESPONSE_INFORMATION = 0x1A
    SERVER_REFERENCE = 0x1C
    REASON_STRING = 0x1F
    RECEIVE_MAXIMUM = 0x21
    TOPIC_ALIAS_MAXIMUM = 0x22
    TOPIC_ALIAS = 0x23
    MAXIMUM_QOS = 0x24
    RETAIN_AVAILABLE = 0x25
    USER_PROPERTY = 0x26
    MAXIMUM_PACKET_SIZE = 0x27
    WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28
    SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29
    SHARED_SUBSCRIPTION_AVAILABLE = 0x2A


# -- errors ------------------------------------------------------------------------


class MqttError(RemoteProtocolError):
    """The peer broke MQTT.  ``reason_code`` is the 5.0 reason code to answer with.

    The I/O layer sends it in a CONNACK (error in the CONNECT) or a DISCONNECT (5.0,
    after the CONNACK), or just closes (3.1.1), then closes the connection
    [MQTT-4.13.1-1]; ``mgpy.proto.mqtt.error_reply`` picks the packet.  The message
    is for logs only.
    """

    def __init__(
        self,
        msg: str,
        reason_code: int = ReasonCode.MALFORMED_PACKET,
        status: int = 400,
        ws_code: int = 1002,
    ) -> None:
        super().__init__(msg, status, ws_code)
        self.reason_code = ReasonCode(reason_code)


class MqttLimitExceeded(MqttError, LimitExceeded):
    """A packet larger than the receiver's maximum (0x95 Packet too large, close 1009)."""

    def __init__(self, msg: str, reason_code: int = ReasonCode.PACKET_TOO_LARGE) -> None:
        super().__init__(msg, reason_code, 413, 1009)


def malformed(msg: str) -> MqttError:
    """A packet that cannot be parsed by the specification (0x81, MQTT 5.0 1.2)."""
    return MqttError(msg, ReasonCode.MALFORMED_PACKET)


def protocol_error(msg: str) -> MqttError:
    """A packet that parses but holds what the protocol forbids (0x82, MQTT 5.0 1.2)."""
    return MqttError(msg, ReasonCode.PROTOCOL_ERROR)

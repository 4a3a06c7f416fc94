"""Every default limit and timeout in one frozen dataclass.

``Manager(limits=Limits(...))`` sets them for the manager; ``bind`` and the
``connect*`` calls take ``limits=`` to override them per listener or
connection (``dataclasses.replace(mgr.limits, max_body=...)``).  Each default
names its precedent.  Sizes are bytes, times are seconds; a timeout of 0
disables it.  Every field is checked when a ``Limits`` is made: a wrong type, NaN, an
infinity, a negative number, or 0 for a size where 0 means nothing could work, raises
``TypeError``/``ValueError`` at once.
"""

from __future__ import annotations

import dataclasses
import math

__all__ = ["Limits"]

KiB = 1024
MiB = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Limits:
    """Limits and timeouts applied to connections.  Frozen: use ``dataclasses.replace``."""

    # --- connections -----------------------------------------------------
    #: bytes asked of one recv() call (asyncio reads 256 KiB, mongoose 1-2 KiB)
    recv_size: int = 256 * KiB
    #: recv_mbuf cap: reading pauses while it is full (mongoose recv_mbuf_limit)
    max_recv_buffer: int = 1 * MiB
    #: send_mbuf hard cap: a send past it closes the connection with an ERROR
    max_send_buffer: int = 64 * MiB
    #: WRITABLE fires when the send queue drops below low water after
    #: having reached high water (asyncio transports: 64 KiB / 16 KiB)
    send_high_water: int = 64 * KiB
    send_low_water: int = 16 * KiB
    #: a peer that takes none of our queued data for this long is dropped (nginx send_timeout
    #: 60 s); 0 = wait forever
    send_timeout: float = 60.0
    #: peers a UDP listener keeps a child connection for; the longest-silent one is closed
    #: to make room (a UDP "connection" table must not grow with every source address)
    max_udp_peers: int = 4096
    #: outbound connect (DNS + TCP + TLS) deadline (browsers give up after ~30 s)
    connect_timeout: float = 30.0
    #: TLS handshake deadline, accepted and outbound connections (Go's net/http: 10 s)
    tls_handshake_timeout: float = 10.0

    # --- HTTP/1.1 ----------------------------------------------------------
    #: request line incl. CRLF; longer -> 414 (nginx 8 KiB, Apache LimitRequestLine 8190)
    max_request_line: int = 8 * KiB
    #: one header line; longer -> 431 (Apache LimitRequestFieldSize 8190)
    max_header_line: int = 8 * KiB
    #: whole head (request line + headers); larger -> 431 (Node.js max-http-header-size 16 KiB)
    max_headers_size: int = 16 * KiB
    #: header lines per message; more -> 431 (Apache LimitRequestFields 100)
    max_header_count: int = 100
    #: a chunk-size line incl. extensions; longer -> 400 (Node.js limits extensions to 16 KiB)
    max_chunk_line: int = 4 * KiB
    #: body bytes held in memory at once; more -> 413 (aiohttp client_max_size 1 MiB).
    #: A handler streaming with HTTP_CHUNK + DELETE_CHUNK keeps below it for any body size.
    max_body: int = 1 * MiB
    #: deadline for a request head once its first byte arrived
    #: (Apache RequestReadTimeout header=20)
    header_timeout: float = 20.0
    #: idle keep-alive connection between requests (nginx keepalive_timeout 75 s)
    keepalive_timeout: float = 60.0
    #: longest silence while a request body is being received (nginx client_body_timeout 60 s)
    body_timeout: float = 60.0

    # --- WebSocket -----------------------------------------------------------
    #: largest message (or frame when not defragmenting); larger -> close 1009
    #: (websockets max_size 1 MiB)
    ws_max_message: int = 1 * MiB
    #: data frames per message, empty ones included; more -> close 1009 (Node's ws caps them
    #: too: maxFragments).  4096 lets a 1 MiB message arrive in 256-byte fragments; Autobahn
    #: 9.3.1/9.4.1 (4 MiB in 64-byte fragments) need 65537, raise it with ws_max_message
    ws_max_fragments: int = 4096
    #: send a ping after this much silence; 0 = off (websockets ping_interval 20 s)
    ws_ping_interval: float = 20.0
    #: close with 1011 if no pong arrives within this; 0 = off (websockets ping_timeout 20 s)
    ws_pong_timeout: float = 20.0
    #: wait this long for the peer's close frame / TCP close after ours
    #: (websockets close_timeout 10 s)
    ws_close_timeout: float = 10.0
    #: per-connection WebSocket send queue cap for slow consumers (websockets write_limit is 32 KiB
    #: with awaitable drain; without await a larger cap is needed)
    ws_send_queue: int = 4 * MiB
    #: what happens when a send would pass ws_send_queue: "close" (1008, the default) or "drop"
    ws_slow_policy: str = "close"

    # --- multipart -------------------------------------------------------------
    #: parts per request; more -> 400 (Werkzeug max_form_parts 1000)
    max_parts: int = 1000
    #: one part's header section; larger -> 400 (Werkzeug caps part headers at 8 KiB)
    max_part_headers: int = 8 * KiB
    #: largest HTTP_PART_DATA payload delivered at once
    part_data_size: int = 64 * KiB

    # --- MQTT ------------------------------------------------------------------
    #: largest MQTT packet accepted, fixed header included; larger -> 0x95 and close
    #: (EMQX max_packet_size 1 MiB; mosquitto has no cap by default)
    mqtt_max_packet_size: int = 1 * MiB
    #: longest topic name or filter in bytes (mosquitto: the 16-bit string length)
    mqtt_max_topic_length: int = 65535
    #: most topic levels (mosquitto TOPIC_HIERARCHY_LIMIT: 200 "/", CVE-2019-11779)
    mqtt_max_topic_levels: int = 201
    #: QoS 1/2 messages in flight per direction and session (mosquitto max_inflight_messages)
    mqtt_max_inflight: int = 20
    #: QoS 1/2 messages queued per session beyond the in-flight ones (mosquitto
    #: max_queued_messages); more -> the slow-consumer policy
    mqtt_max_queued: int = 1000
    #: Topic Aliases a peer may set towards us, MQTT 5.0 (mosquitto max_topic_alias)
    mqtt_topic_alias_maximum: int = 10
    #: keepalive a client asks for, whole seconds (paho-mqtt and mosquitto_pub: 60)
    mqtt_keepalive: int = 60
    #: a broker closes a connection that sent no CONNECT within this; a client gives up
    #: waiting for the CONNACK after it (EMQX idle_timeout 15 s)
    mqtt_connect_timeout: float = 15.0
    #: bytes queued to one broker client beyond which a message meets the slow-consumer
    #: policy (as ws_send_queue)
    mqtt_send_queue: int = 4 * MiB
    #: what a slow broker client gets: "close" (DISCONNECT 0x97, then close) or "drop"
    #: (the message is dropped and counted), as ws_slow_policy
    mqtt_slow_policy: str = "close"
    #: subscriptions per session; more -> SUBACK 0x97 Quota exceeded (AWS IoT Core allows 50)
    mqtt_max_subscriptions: int = 1000
    #: sessions a broker keeps (connected and persistent offline ones); a new client beyond
    #: it gets CONNACK 0x97 Quota exceeded (mosquitto max_connections; unlimited by default)
    mqtt_max_sessions: int = 10000
    #: retained messages a broker keeps; a new retained topic beyond it is not retained
    #: (mosquitto has no cap; HiveMQ's retained-messages limit is per deployment)
    mqtt_max_retained: int = 10000

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check_field(f.name, f.type, getattr(self, f.name))
        for name in ("ws_slow_policy", "mqtt_slow_policy"):
            if getattr(self, name) not in ("close", "drop"):
                raise ValueError(f"Limits.{name} must be 'close' or 'drop'")
        if self.send_low_water > self.send_high_water:
            raise ValueError("Limits.send_low_water must not exceed send_high_water")


#: sizes and counts that must be at least 1: with 0 nothing could ever be read, sent or
#: parsed (recv_size=0 would end every connection at its first read)
_AT_LEAST_ONE = frozenset(
    (
        "recv_size",
        "max_recv_buffer",
        "max_send_buffer",
        "send_high_water",
        "max_udp_peers",
        "max_request_line",
        "max_header_line",
        "max_headers_size",
        "max_header_count",
        "max_chunk_line",
        "ws_max_message",
        "ws_max_fragments",
        "max_parts",
        "max_part_headers",
        "part_data_size",
        "mqtt_max_packet_size",
        "mqtt_max_topic_length",
        "mqtt_max_topic_levels",
        "mqtt_max_inflight",
        "mqtt_send_queue",
    )
)


def _check_field(name: str, kind: object, value: object) -> None:
    """Refuse a value of the wrong type, NaN, an infinity, a negative or a meaningless 0."""
    kind = getattr(kind, "__name__", kind)
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"Limits.{name} must be an int, got {type(value).__name__}")
        if value < (1 if name in _AT_LEAST_ONE else 0):
            low = "1" if name in _AT_LEAST_ONE else "0"
            raise ValueError(f"Limits.{name} must be >= {low}, got {value}")
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(
                f"Limits.{name} must be a number of seconds, got {type(value).__name__}"
            )
        if not math.isfinite(value) or value < 0:
            raise ValueError(
                f"Limits.{name} must be a finite number >= 0 (0 disables it), got {value!r}"
            )
    elif kind == "str" and not isinstance(value, str):
        raise TypeError(f"Limits.{name} must be a str, got {type(value).__name__}")

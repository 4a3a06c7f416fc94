"""The MQTT client: ``connect_mqtt`` and the mongoose-style ``mqtt_*`` functions.

Theory of operation
-------------------
``connect_mqtt(mgr, url, handler, ...)`` opens the transport -- ``mqtt://`` (TCP, port
1883), ``mqtts://`` (TLS, 8883), ``ws://``/``wss://`` (WebSocket, subprotocol "mqtt",
through ``mgpy.ws``'s client) -- and, once it is up (CONNECT 0, or the 101), writes the
CONNECT packet.  ``ClientLink`` is the one owner of the connection's phases::

    TRANSPORT --up--> AWAIT_CONNACK --CONNACK 0x00--> OPEN --DISCONNECT/close--> closed
                          |  (mqtt_connect_timeout) --> ERROR, CLOSE
                          +--CONNACK >= 0x80--> CONNACK event, ERROR, CLOSE

Before the CONNACK, what the application sends is held: QoS 1/2 PUBLISHes wait in the
session's queue, QoS 0 PUBLISH, SUBSCRIBE and UNSUBSCRIBE in ``early``; on a CONNACK
0x00 the session's resends go first [MQTT-4.4.0-1], then the held packets in the order
they were made, then the CONNACK event is delivered.  The QoS flows in both directions,
the in-flight window (``Limits.mqtt_max_inflight``, and the server's Receive Maximum)
and the queue (``Limits.mqtt_max_queued``, then ``QueueFull``) are the ``Session``'s.

Sessions.  ``clean_start=False`` with the ``Session`` of an earlier connection
(``mqtt_session(old_c)``) resumes it: unacknowledged PUBLISH and PUBREL are re-sent
with their packet identifiers [MQTT-4.4.0-1].  A CONNACK without Session Present then
discards it [MQTT-3.2.2-5] and reports the lost messages (SESSION_LOST); Session
Present without a session to resume is a protocol error [MQTT-3.2.2-4].

Keepalive.  With a keepalive of K seconds a PINGREQ goes out after K seconds without
sending [MQTT-3.1.2-20]; no PINGRESP within K more seconds closes the connection with
ERROR (3.1.2.10).  A 5.0 Server Keep Alive replaces K [MQTT-3.2.2-21].  One
``TimerHandle`` carries the CONNACK deadline and then the keepalive deadline.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..core import Addr, parse_addr
from ..core.tls import TlsOpts
from ..errors import Error, LocalProtocolError
from ..events import Ev, Headers, HttpMessage
from ..proto.mqtt import (
    MQTT_V5,
    MQTT_V311,
    NO_PROPERTIES,
    Connack,
    Connect,
    Disconnect,
    Keepalive,
    MqttReader,
    Packet,
    PingReq,
    PingResp,
    Properties,
    PubAck,
    PubComp,
    Publish,
    PublishDone,
    PublishTemplate,
    PubRec,
    PubRel,
    QueueFull,
    ReasonCode,
    Session,
    Suback,
    Subscription,
    Unsuback,
    Will,
)
from ..proto.mqtt_codes import protocol_error
from ..proto.mqtt_keepalive import KeepaliveAction
from ..ws.client import connect_ws
from .events import MqttEv
from .link import COUNTER_MESSAGES, MqttLink

if TYPE_CHECKING:
    from ..core import Connection, Handler, Manager, TimerHandle
    from ..limits import Limits

__all__ = [
    "ClientLink",
    "connect_mqtt",
    "mqtt_client_handler",
    "mqtt_disconnect",
    "mqtt_ping",
    "mqtt_publish",
    "mqtt_session",
    "mqtt_subscribe",
    "mqtt_unsubscribe",
]

#: default ports (IANA): MQTT over TCP, and over TLS
MQTT_PORT = 1883
MQTTS_PORT = 8883
#: the WebSocket subprotocol of MQTT (MQTT 5.0 6.0)
WS_SUBPROTOCOL = "mqtt"
#: 5.0 Session Expiry Interval meaning "never expires" (3.1.2.11.2)
SESSION_NEVER_EXPIRES = 0xFFFFFFFF
#: a 5.0 peer that sends no Receive Maximum allows this many (3.1.2.11.3)
_RECEIVE_MAXIMUM_DEFAULT = 65_535

_CONNECT = Ev.CONNECT
_RECV = Ev.RECV
_CLOSE = Ev.CLOSE
_WS_HANDSHAKE_DONE = Ev.WS_HANDSHAKE_DONE
_EV_PUBLISH = MqttEv.PUBLISH
_PINGREQ = PingReq().encode(MQTT_V311)


class ClientLink(MqttLink):
    """The client side of one MQTT connection (``c.proto_data`` over TCP)."""

    __slots__ = ("client_id", "connect", "early", "ka", "resuming", "session", "timer")

    def __init__(
        self, c: Connection, h: Handler, connect: Connect, session: Session, ws: bool
    ) -> None:
        lim = c.limits
        reader = MqttReader(
            connect.version,
            lim.mqtt_max_packet_size,
            lim.mqtt_max_topic_length,
            "client",
            max_topic_levels=lim.mqtt_max_topic_levels,
        )
        super().__init__(c, h, reader, ws)
        self.connect = connect
        self.session = session
        #: the client identifier in use (the server may assign one, 5.0)
        self.client_id = connect.client_id
        #: packets (and QoS 1/2 messages) made before the CONNACK, sent after it in order
        self.early: list[bytes | tuple[PublishTemplate, int, bool]] = []
        self.ka = Keepalive("client", connect.keepalive, c.mgr.monotonic)
        self.timer: TimerHandle | None = None
        #: we asked to resume a session we hold state for
        self.resuming = not connect.clean_start

    # -- output --------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        """Write packets now, or hold them until the CONNACK."""
        if not data:
            return
        if not self.acked:
            self.hold(data)
            return
        self.write(data)
        self.ka.sent(self.c.mgr.monotonic)

    def hold(self, item: bytes | tuple[PublishTemplate, int, bool]) -> None:
        """Keep a packet, or a QoS 1/2 message, for after the CONNACK."""
        if len(self.early) >= self.c.limits.mqtt_max_queued:
            raise QueueFull(f"{len(self.early)} packets already wait for the CONNACK")
        self.early.append(item)

    # -- the phases ----------------------------------------------------------------
    def start(self) -> None:
        """The transport is up: send CONNECT, wait for the CONNACK."""
        c = self.c
        if self.connect.clean_start:
            self.session.clear()  # [MQTT-3.1.2-4]: the old session is discarded
        self.session.connection_lost()  # not connected until the CONNACK
        self.write(self.connect.encode())
        self.ka.sent(c.mgr.monotonic)
        t = c.limits.mqtt_connect_timeout
        if t:
            self.timer = c.call_later(t, self._no_connack)

    def _no_connack(self) -> None:
        if not self.acked:
            self.c.error(f"MQTT: no CONNACK within {self.c.limits.mqtt_connect_timeout:g}s")

    def on_packet(self, pkt: Packet) -> None:
        """Handle one packet from the server."""
        c = self.c
        self.ka.received(c.mgr.monotonic)
        t = type(pkt)
        if t is Publish:
            c.mgr.counters[COUNTER_MESSAGES] += 1
        if t is Connack:
            self._connack(pkt)  # type: ignore[arg-type]
            return
        if t is PingResp:
            self.ka.received(c.mgr.monotonic, pingresp=True)
            return
        if t is Disconnect:
            self._disconnected(pkt)  # type: ignore[arg-type]
            return
        if t not in _SESSION_TYPES:
            raise protocol_error(f"{t.__name__} is not supported")  # AUTH: no enhanced auth
        ev, out = self.session.receive(pkt)
        if out:
            self.send(out)
        if ev is None:
            return
        te = type(ev)
        if te is Publish:
            self.h(c, _EV_PUBLISH, ev)
        elif te is PublishDone:
            self.h(c, MqttEv.PUBLISH_DONE, ev)
        elif te is Suback:
            self.h(c, MqttEv.SUBACK, ev)
        elif te is Unsuback:
            self.h(c, MqttEv.UNSUBACK, ev)

    def _connack(self, p: Connack) -> None:
        c = self.c
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if p.reason_code >= ReasonCode.UNSPECIFIED_ERROR:
            self.h(c, MqttEv.CONNACK, p)
            code = ReasonCode(p.reason_code)
            c.error_reason = f"MQTT connection refused (0x{code:02X} {code.name})"
            self.end()  # [MQTT-3.2.2-7]: the server closes; so do we
            return
        if p.session_present and not self.resuming:
            raise protocol_error("Session Present without a session")  # [MQTT-3.2.2-4]
        lost: list[PublishTemplate] = []
        if self.resuming and not p.session_present:
            lost = self.session.clear()  # [MQTT-3.2.2-5]
        self.acked = True
        props = p.properties
        if props.assigned_client_identifier:
            self.client_id = props.assigned_client_identifier  # [MQTT-3.2.2-16]
        if props.server_keep_alive is not None:
            self.ka.set_keepalive(props.server_keep_alive, c.mgr.monotonic)  # [MQTT-3.2.2-21]
        out = self.session.connection_made(
            self.version,
            peer_receive_maximum=props.receive_maximum,
            peer_max_packet_size=props.maximum_packet_size,
            peer_maximum_qos=props.maximum_qos,
        )
        early, self.early = self.early, []
        parts = [out]
        for item in early:  # in the order the application made them
            parts.append(item if isinstance(item, bytes) else self.session.publish(*item))
        self.send(b"".join(parts))
        self._arm_keepalive()
        if lost:
            self.h(c, MqttEv.SESSION_LOST, lost)
        self.h(c, MqttEv.CONNACK, p)

    def _disconnected(self, p: Disconnect) -> None:
        c = self.c
        code = ReasonCode(p.reason_code)
        if code:
            c.error_reason = f"MQTT: the server disconnected (0x{code:02X} {code.name})"
        self.h(c, MqttEv.DISCONNECT, p)
        self.end()  # [MQTT-3.14.4-2] nothing more is sent after a DISCONNECT

    # -- keepalive -----------------------------------------------------------------
    def _arm_keepalive(self) -> None:
        deadline = self.ka.next_deadline()
        if deadline is None:
            return
        delay = max(0.0, deadline - self.c.mgr.monotonic)
        if self.timer is None:
            self.timer = self.c.call_later(delay, self._tick)
        else:
            self.timer.reschedule(delay)

    def _tick(self) -> None:
        c = self.c
        if c.is_closing or self.ending:
            return
        action = self.ka.poll(c.mgr.monotonic)
        if action is KeepaliveAction.TIMEOUT:
            c.error("MQTT keepalive: no PINGRESP from the server")
            return
        if action is KeepaliveAction.SEND_PINGREQ:
            self.write(_PINGREQ)  # [MQTT-3.1.2-20]
        self._arm_keepalive()

    def on_close(self) -> None:
        self.session.connection_lost()
        self.ending = True
        early, self.early = self.early, []
        self.acked = True  # from now on mqtt_publish queues QoS 1/2 in the session
        for item in early:  # QoS 1/2 messages never sent stay in the session for a resume
            if not isinstance(item, bytes):
                try:
                    self.session.publish(*item)
                except QueueFull:
                    break


#: the packets the session handles (the QoS flows, SUBACK, UNSUBACK)
_SESSION_TYPES: frozenset[type] = frozenset(
    (Publish, PubAck, PubRec, PubRel, PubComp, Suback, Unsuback)
)


def mqtt_client_handler(c: Connection, ev: Any, ev_data: Any) -> None:
    """Protocol handler of an MQTT client connection over TCP or TLS."""
    link: ClientLink = c.proto_data
    if ev == _RECV:
        link.h(c, ev, ev_data)
        link.feed_mbuf()
        return
    if ev == _CLOSE:
        if c.mgr.stopping and link.acked and not link.ending:
            link.write(Disconnect().encode(link.version))  # Manager.close(): our last word
        link.on_close()
    link.h(c, ev, ev_data)
    if ev == _CONNECT and ev_data == 0 and not c.is_closing:
        link.start()


class _WsDial:
    """The handler of an MQTT-over-WebSocket client until the 101 switches it to MQTT."""

    __slots__ = ("link",)

    link: ClientLink

    def __call__(self, c: Connection, ev: Any, ev_data: Any) -> None:
        link = self.link
        link.h(c, ev, ev_data)
        if ev == _WS_HANDSHAKE_DONE and not c.is_closing:
            hm: HttpMessage = ev_data
            if hm.resp_code != 101:
                return  # refused: the connection closes after the reply
            if hm.header("Sec-WebSocket-Protocol") != WS_SUBPROTOCOL:
                # [MQTT-6.0.0-4]: the server must select "mqtt"
                c.error("MQTT over WebSocket: the server did not select subprotocol 'mqtt'")
                return
            c.handler = link.h
            c.proto_data.h = link  # WsState.h: MQTT now reads the WebSocket's messages
            link.start()
        elif ev == _CLOSE:
            link.on_close()


def _mqtt_addr(url: str) -> tuple[Addr, bool]:
    """Parse an mqtt:// or mqtts:// URL (default ports 1883 / 8883); (addr, tls)."""
    scheme, _, rest = url.partition("://")
    tls = scheme.lower() == "mqtts"
    netloc = rest.split("/", 1)[0].split("?", 1)[0]
    hostport = netloc.rpartition("@")[2]
    has_port = ":" in (hostport.rpartition("]")[2] if hostport.startswith("[") else hostport)
    if not has_port:
        rest = f"{netloc}:{MQTTS_PORT if tls else MQTT_PORT}{rest[len(netloc) :]}"
    return parse_addr("tcp://" + rest, "tcp", need_host=True), tls


def _build_connect(
    lim: Limits,
    client_id: str,
    username: str | None,
    password: bytes | str | None,
    clean_start: bool,
    session_expiry: int | None,
    will: Will | None,
    keepalive: int | None,
    version: int,
    properties: Properties,
) -> Connect:
    if version not in (MQTT_V311, MQTT_V5):
        raise LocalProtocolError("version must be 4 (MQTT 3.1.1) or 5 (MQTT 5.0)")
    if isinstance(password, str):
        password = password.encode()
    props = properties
    if version == MQTT_V5:
        expiry = session_expiry
        if expiry is None:
            expiry = 0 if clean_start else SESSION_NEVER_EXPIRES
        extra: dict[str, Any] = {}
        if expiry and props.session_expiry_interval is None:
            extra["session_expiry_interval"] = expiry
        if props.maximum_packet_size is None:
            extra["maximum_packet_size"] = lim.mqtt_max_packet_size
        if props.receive_maximum is None and lim.mqtt_max_inflight < _RECEIVE_MAXIMUM_DEFAULT:
            extra["receive_maximum"] = lim.mqtt_max_inflight or _RECEIVE_MAXIMUM_DEFAULT
        if props.topic_alias_maximum is None and lim.mqtt_topic_alias_maximum:
            extra["topic_alias_maximum"] = lim.mqtt_topic_alias_maximum
        props = dataclasses.replace(props, **extra)
    elif session_expiry:
        raise LocalProtocolError("session_expiry needs MQTT 5.0 (3.1.1: clean_start=False)")
    ka = lim.mqtt_keepalive if keepalive is None else keepalive
    c = Connect(client_id, clean_start, ka, username, password, will, props, version)
    c.encode()  # a bad client id, will or property raises here, not at connect time
    return c


def connect_mqtt(
    mgr: Manager,
    url: str,
    handler: Handler,
    *,
    client_id: str = "",
    username: str | None = None,
    password: bytes | str | None = None,
    clean_start: bool = True,
    session_expiry: int | None = None,
    will: Will | None = None,
    keepalive: int | None = None,
    version: int = MQTT_V311,
    properties: Properties = NO_PROPERTIES,
    session: Session | None = None,
    headers: Headers = None,
    limits: Limits | None = None,
    user_data: Any = None,
    tls: Any = None,
) -> Connection:
    """Connect to an MQTT broker at ``url``; the handler gets MqttEv.CONNACK, then traffic.

    ``url``: ``mqtt://host[:1883]``, ``mqtts://host[:8883]`` (TLS; ``tls=TlsOpts(...)``
    for a private CA), ``ws://host:port/path`` or ``wss://...`` (MQTT over WebSocket,
    subprotocol "mqtt").  ``user:pass@`` in an mqtt URL gives username and password.
    ``version`` 4 (3.1.1, the default) or 5; ``keepalive`` defaults to
    ``Limits.mqtt_keepalive`` (0 = off).  ``clean_start=False`` with ``session=`` (the
    ``mqtt_session(c)`` of an earlier connection) resumes a persistent session;
    ``session_expiry`` (5.0) defaults to 0 with a clean start, else "never".
    Application packets sent before the CONNACK are held and written after it.
    Raises at the call for a bad URL, client id, will or property.

    Example::

        def handler(c, ev, ev_data):
            if ev == MqttEv.CONNACK and ev_data.reason_code == 0:
                mqtt_subscribe(c, "cmd/#", qos=1)
            elif ev == MqttEv.PUBLISH:
                print(ev_data.topic, ev_data.payload)

        c = connect_mqtt(mgr, "mqtt://127.0.0.1:1883", handler, client_id="dev1")
    """
    lim = limits if limits is not None else mgr.limits
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in ("mqtt", "mqtts", "tcp", "ws", "wss"):
        raise Error(f"{url!r}: expected an mqtt://, mqtts://, ws:// or wss:// URL")
    ws = scheme in ("ws", "wss")
    addr, use_tls = (parse_addr(url, "ws", need_host=True), False) if ws else _mqtt_addr(url)
    if username is None and addr.user:
        username = addr.user
        if password is None and addr.password:
            password = addr.password
    pkt = _build_connect(
        lim, client_id, username, password, clean_start, session_expiry, will, keepalive,
        version, properties,
    )  # fmt: skip
    if session is None:
        session = Session(
            "client",
            version,
            max_inflight=lim.mqtt_max_inflight,
            max_queued=lim.mqtt_max_queued,
            receive_maximum=lim.mqtt_max_inflight or _RECEIVE_MAXIMUM_DEFAULT,
            topic_alias_maximum=lim.mqtt_topic_alias_maximum,
        )
    if ws:
        dial = _WsDial()
        c = connect_ws(
            mgr, url, dial, WS_SUBPROTOCOL, headers, limits=limits, user_data=user_data, tls=tls
        )
        dial.link = ClientLink(c, handler, pkt, session, True)
        return c
    if use_tls and tls is None:
        tls = TlsOpts(alpn=())  # no "http/1.1" offered to an MQTT server
    c = mgr.connect(addr, handler, limits=limits, user_data=user_data, tls=tls)
    c.proto_handler = mqtt_client_handler
    c.proto_data = ClientLink(c, handler, pkt, session, False)
    return c


# -- the mongoose-style functions ------------------------------------------------------


def _link(c: Connection) -> ClientLink:
    st = c.proto_data
    if isinstance(st, ClientLink):
        return st
    link = getattr(st, "h", None)  # over WebSocket: the WsState's handler is the link
    if isinstance(link, ClientLink):
        return link
    raise LocalProtocolError("not an MQTT client connection (see connect_mqtt)")


def mqtt_publish(
    c: Connection,
    topic: str,
    payload: bytes | str = b"",
    qos: int = 0,
    retain: bool = False,
    properties: Properties = NO_PROPERTIES,
) -> PublishTemplate:
    """Publish a message; return it (MqttEv.PUBLISH_DONE carries it back at QoS 1/2).

    Before the CONNACK the message is held and sent after it.  QoS 1/2 messages beyond
    the in-flight window wait in the session's queue; ``QueueFull`` is raised when
    ``Limits.mqtt_max_queued`` are already waiting.  A bad topic raises
    ``LocalProtocolError``.

    Example::

        mqtt_publish(c, "sensors/kitchen/temp", b"21.5", qos=1, retain=True)
    """
    link = _link(c)
    if isinstance(payload, str):
        payload = payload.encode()
    msg = PublishTemplate(topic, payload, properties)
    if link.acked:
        # QoS 1/2 while offline (after the connection closed) wait in the session's queue
        link.send(link.session.publish(msg, qos, retain))
    elif qos:
        link.hold((msg, qos, retain))  # sent after the CONNACK, in order
    else:
        link.hold(msg.encode(link.connect.version, 0, 0, retain))
    return msg


def _subscriptions(
    topics: str | Subscription | Iterable[str | Subscription], qos: int
) -> list[Subscription]:
    if isinstance(topics, (str, Subscription)):
        topics = [topics]
    return [t if isinstance(t, Subscription) else Subscription(t, qos) for t in topics]


def mqtt_subscribe(
    c: Connection,
    topics: str | Subscription | Iterable[str | Subscription],
    qos: int = 0,
    properties: Properties = NO_PROPERTIES,
) -> int:
    """Subscribe to one or more topic filters; return the packet id MqttEv.SUBACK will carry.

    ``topics`` are filters (each at ``qos``) or ``Subscription`` objects (5.0 options:
    ``no_local``, ``retain_as_published``, ``retain_handling``).
    """
    link = _link(c)
    data = link.session.subscribe(_subscriptions(topics, qos), properties)
    link.send(data)
    return _sub_pid(data)


def _sub_pid(data: bytes) -> int:
    """The packet identifier of an encoded SUBSCRIBE/UNSUBSCRIBE (after the fixed header)."""
    i = 1
    while data[i] & 0x80:
        i += 1
    return int.from_bytes(data[i + 1 : i + 3], "big")


def mqtt_unsubscribe(
    c: Connection, topics: str | Iterable[str], properties: Properties = NO_PROPERTIES
) -> int:
    """Unsubscribe from topic filters; return the packet id MqttEv.UNSUBACK will carry."""
    link = _link(c)
    filters = [topics] if isinstance(topics, str) else list(topics)
    data = link.session.unsubscribe(filters, properties)
    link.send(data)
    return _sub_pid(data)


def mqtt_ping(c: Connection) -> None:
    """Send a PINGREQ now (the keepalive sends them by itself)."""
    link = _link(c)
    link.send(_PINGREQ)


def mqtt_disconnect(
    c: Connection,
    reason_code: int = ReasonCode.NORMAL_DISCONNECTION,
    properties: Properties = NO_PROPERTIES,
) -> None:
    """Send DISCONNECT and close the connection once it is written [MQTT-3.14.4-1].

    With reason 0x00 the server discards the will [MQTT-3.1.2-10]; 0x04 (5.0) asks for
    it to be published.  A session kept by the server (``clean_start=False``) survives.
    """
    link = _link(c)
    if link.ending or c.is_closing:
        return
    if link.acked:
        link.write(Disconnect(reason_code, properties).encode(link.version))
    link.end()


def mqtt_session(c: Connection) -> Session:
    """The QoS session of an MQTT client connection: pass it as ``connect_mqtt(session=)``
    with ``clean_start=False`` to resume it on a new connection (also after CLOSE)."""
    return _link(c).session

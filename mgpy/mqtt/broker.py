"""The MQTT broker: sessions by client id, routing, retained messages, wills, hooks.

Theory of operation
-------------------
One ``MqttBroker`` serves any number of listeners: TCP/TLS ones (``listen``, or
``mqtt_broker(listener)`` on a listener you bound) and MQTT over WebSocket on a path of
an HTTP listener (``serve_websocket``: subprotocol "mqtt", so browsers can connect).
Each client connection is a ``BrokerLink`` (``broker_link``); the broker owns what
outlives a connection:

* ``sessions``: client id -> ``ClientSession``.  A CONNECT with Clean Start discards
  the old session [MQTT-3.1.2-4], otherwise resumes it (CONNACK Session Present
  [MQTT-3.2.2-2]); a second connection with the same id takes the session over
  [MQTT-3.1.4-3].  A session ends with its connection (expiry 0), after its 5.0 Session
  Expiry Interval [MQTT-3.1.2-23], or never (3.1.1 without Clean Session).  While it
  is offline, QoS 1/2 messages for it wait in its queue [MQTT-3.1.2-5].
* ``index`` (``SubscriptionIndex``): filters with ``+``/``#``, the ``$`` rule
  [MQTT-4.7.2-1], shared subscriptions, ``no_local``, subscription identifiers.
* ``retained`` (``RetainedStore``): the last retained message per topic
  [MQTT-3.3.1-5], deleted by an empty one [MQTT-3.3.1-6], sent to new subscriptions
  with RETAIN set [MQTT-3.3.1-9].
* wills: published when a connection ends without a normal DISCONNECT
  [MQTT-3.1.2-8], after the 5.0 Will Delay Interval unless the session resumes first
  [MQTT-3.1.3-9].

Routing (``route``): one ``PublishTemplate`` per message, encoded once per layout, and
one entry per matching subscriber at the lower of the two QoS [MQTT-3.8.4-8]; RETAIN is
kept only for Retain As Published [MQTT-3.3.1-12].  Fan-out is batched: packets for a
client are collected during one round (``BrokerLink.push``) and written by ``flush``
in one write per client.  Slow consumers: a QoS 0 message that would take a client's
send queue past ``Limits.mqtt_send_queue``, or a QoS 1/2 message that finds its session
queue full (``Limits.mqtt_max_queued``), meets ``Limits.mqtt_slow_policy``: "close"
(DISCONNECT 0x97 in 5.0, then close) or "drop" (counted in ``dropped``).

The application publishes into the broker with ``publish`` and watches messages under
a topic prefix with ``on_message``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import LocalProtocolError
from ..events import Ev, HttpMessage
from ..http.respond import http_reply, http_send_error
from ..http.server import register_http_endpoint
from ..proto.mqtt import (
    NO_PROPERTIES,
    Properties,
    Publish,
    PublishTemplate,
    QueueFull,
    RetainedStore,
    Session,
    SubOptions,
    SubscriptionIndex,
    Will,
)
from ..ws.upgrade import ws_accept
from .broker_link import SESSION_NEVER_EXPIRES, BrokerLink, ClientSession, broker_handler

if TYPE_CHECKING:
    from ..core import Connection, Handler, Manager
    from ..limits import Limits

__all__ = ["AuthHook", "MessageHook", "MqttBroker", "mqtt_broker"]

log = logging.getLogger("mgpy")

#: ``auth(client_id, username, password) -> True/False or a CONNACK reason code``
AuthHook = Callable[[str, "str | None", "bytes | None"], "bool | int"]
#: ``fn(message, client_id)``: a message published under a watched prefix ("" = the
#: application or a will without a client)
MessageHook = Callable[[Publish, str], None]
#: the WebSocket subprotocol of MQTT (MQTT 5.0 6.0)
WS_SUBPROTOCOL = "mqtt"
_HTTP_UPGRADE_REQUIRED = 426
#: a Receive Maximum of 0 means the default, 65,535 (3.2.2.3.3)
_RECEIVE_MAXIMUM_DEFAULT = 65_535


def _ignore(c: Connection, ev: Any, ev_data: Any) -> None:
    """The handler of broker connections nobody watches."""


class MqttBroker:
    """An MQTT 3.1.1 / 5.0 broker running in a Manager's loop (see the module docstring).

    Example::

        broker = MqttBroker(mgr)
        broker.listen("127.0.0.1:1883")                 # MQTT over TCP
        broker.serve_websocket(http_lc, "/mqtt")        # and over WebSocket, for browsers
        broker.on_message("sensors/", lambda msg, who: print(msg.topic, msg.payload))
        broker.publish("cmd/lamp", b"on", qos=1)
    """

    def __init__(
        self,
        mgr: Manager,
        *,
        auth: AuthHook | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.mgr = mgr
        #: limits of the broker's sessions (per client: packet size, in-flight, queue ...)
        self.limits = limits if limits is not None else mgr.limits
        if self.limits.mqtt_slow_policy not in ("close", "drop"):
            raise ValueError("Limits.mqtt_slow_policy must be 'close' or 'drop'")
        #: ``auth(client_id, username, password)``: True or 0 allows, False or a CONNACK
        #: reason code (e.g. ReasonCode.BAD_USER_NAME_OR_PASSWORD) refuses
        self.auth = auth
        self.index: SubscriptionIndex[ClientSession] = SubscriptionIndex()
        self.retained: RetainedStore[tuple[PublishTemplate, int]] = RetainedStore()
        #: client id -> session (connected ones and persistent offline ones)
        self.sessions: dict[str, ClientSession] = {}
        #: links with packets waiting for ``flush``
        self.dirty: list[BrokerLink] = []
        self.hooks: list[tuple[str, MessageHook]] = []
        #: messages delivered to subscribers (or queued for offline sessions)
        self.delivered = 0
        #: messages dropped: "drop" policy, full queues of offline sessions
        self.dropped = 0

    def __repr__(self) -> str:
        return f"<MqttBroker sessions={len(self.sessions)} subscriptions={len(self.index)}>"

    @property
    def clients(self) -> int:
        """Connected clients."""
        return sum(1 for cs in self.sessions.values() if cs.link is not None)

    # -- where clients connect ---------------------------------------------------------
    def listen(
        self,
        addr: str | int,
        handler: Handler | None = None,
        *,
        tls: Any = None,
        limits: Limits | None = None,
    ) -> Connection:
        """Listen for MQTT clients on ``addr`` (``"127.0.0.1:1883"``); return the listener.

        ``tls=TlsOpts(cert=..., key=...)`` for MQTT over TLS.  ``handler`` gets every
        client connection's events (MqttEv.CLIENT_CONNECT, PUBLISH, ...).  Raises
        ``mgpy.Error`` when the address cannot be bound.
        """
        lc = self.mgr.bind(addr, handler or _ignore, tls=tls, limits=limits)
        self.attach(lc)
        return lc

    def attach(self, listener: Connection) -> None:
        """Serve MQTT on connections ``listener`` accepts (mongoose's broker handler)."""
        if not listener.is_listener:
            raise LocalProtocolError("attach() needs a listening connection")
        listener.proto_handler = broker_handler
        listener.proto_data = self

    def serve_websocket(
        self, http_listener: Connection, path: str = "/mqtt", handler: Handler | None = None
    ) -> None:
        """Serve MQTT over WebSocket (subprotocol "mqtt") at ``path`` of an HTTP listener."""
        register_http_endpoint(http_listener, path, MqttWsEndpoint(self, handler or _ignore))

    # -- the application's side ---------------------------------------------------------
    def publish(
        self,
        topic: str,
        payload: bytes | str = b"",
        qos: int = 0,
        retain: bool = False,
        properties: Properties = NO_PROPERTIES,
    ) -> int:
        """Publish a message from the application; return how many subscribers get it.

        Raises ``LocalProtocolError`` for a bad topic or QoS.
        """
        if isinstance(payload, str):
            payload = payload.encode()
        if qos not in (0, 1, 2):
            raise LocalProtocolError(f"QoS {qos} is not 0, 1 or 2")
        PublishTemplate(topic)  # validates the topic name
        n = self.route(Publish(topic, bytes(payload), qos, retain, properties=properties), None)
        self.flush()
        return n

    def on_message(self, prefix: str, fn: MessageHook) -> None:
        """Call ``fn(message, client_id)`` for every message whose topic starts with ``prefix``
        (client publishes, wills and ``publish``; "" watches everything)."""
        self.hooks.append((prefix, fn))

    # -- sessions ---------------------------------------------------------------------------
    def open_session(
        self, link: BrokerLink, client_id: str, clean_start: bool
    ) -> tuple[ClientSession, bool]:
        """Attach ``link`` to ``client_id``'s session: (session, Session Present)."""
        cs = self.sessions.get(client_id)
        if cs is not None and cs.link is not None:
            cs.link.taken_over()  # [MQTT-3.1.4-3]
            cs = self.sessions.get(client_id)
        if cs is not None and clean_start:
            self.end_session(cs)  # [MQTT-3.1.2-4]
            cs = None
        present = cs is not None
        if cs is None:
            lim = self.limits
            session = Session(
                "server",
                max_inflight=lim.mqtt_max_inflight,
                max_queued=lim.mqtt_max_queued,
                receive_maximum=lim.mqtt_max_inflight or _RECEIVE_MAXIMUM_DEFAULT,
                topic_alias_maximum=lim.mqtt_topic_alias_maximum,
            )
            cs = self.sessions[client_id] = ClientSession(client_id, session)
        for t in (cs.expiry_timer, cs.will_timer):
            if t is not None:
                t.cancel()  # resumed in time: no expiry, no delayed will [MQTT-3.1.3-9]
        cs.expiry_timer = cs.will_timer = None
        cs.will = None
        cs.link = link
        return cs, present

    def detach(self, cs: ClientSession, publish_will: bool) -> None:
        """``cs``'s connection ended: publish (or schedule) its will, expire the session."""
        cs.link = None
        cs.session.connection_lost()
        will, cs.will = cs.will, None
        if will is not None and publish_will:
            # 3.1.3.2.2: after the Will Delay Interval or when the session ends, if sooner
            delay = min(will.properties.will_delay_interval or 0, cs.expiry)
            if delay:
                cs.will = will
                cs.will_timer = self.mgr.call_later(delay, self._will_due, cs)
            else:
                self.publish_will(cs, will)  # [MQTT-3.1.2-8]
        if not cs.expiry:
            self.end_session(cs)
        elif cs.expiry != SESSION_NEVER_EXPIRES:
            cs.expiry_timer = self.mgr.call_later(cs.expiry, self.end_session, cs)

    def end_session(self, cs: ClientSession) -> None:
        """Discard a session: its subscriptions, queue and QoS state; a pending will goes out."""
        if self.sessions.get(cs.client_id) is cs:
            del self.sessions[cs.client_id]
        if cs.expiry_timer is not None:
            cs.expiry_timer.cancel()
            cs.expiry_timer = None
        if cs.will_timer is not None:
            cs.will_timer.cancel()
            cs.will_timer = None
            will, cs.will = cs.will, None
            if will is not None:
                self.publish_will(cs, will)  # the session ended before the will delay
        for f in list(cs.subs):
            self.index.unsubscribe(f, cs)
        cs.subs.clear()
        cs.session.clear()

    def _will_due(self, cs: ClientSession) -> None:
        cs.will_timer = None
        will, cs.will = cs.will, None
        if will is not None:
            self.publish_will(cs, will)

    def publish_will(self, cs: ClientSession, will: Will) -> None:
        """Publish a will message now (3.1.2.5)."""
        props = will.properties
        if props.will_delay_interval is not None:
            props = dataclasses.replace(props, will_delay_interval=None)  # not a PUBLISH property
        msg = Publish(will.topic, will.payload, will.qos, will.retain, properties=props)
        self.route(msg, None, cs.client_id)
        self.flush()

    # -- routing ------------------------------------------------------------------------------
    def route(self, pub: Publish, origin: ClientSession | None, origin_id: str = "") -> int:
        """Deliver ``pub`` to every matching subscription; return how many get it."""
        topic = pub.topic
        if pub.retain:
            self._retain(pub)
        matches = self.index.match(topic, origin)
        n = 0
        if matches:
            tmpl = PublishTemplate(topic, pub.payload, pub.properties)
            n = self._fan_out(tmpl, pub.qos, pub.retain, matches)
        if self.hooks:
            who = origin.client_id if origin is not None else origin_id
            for prefix, fn in self.hooks:
                if topic.startswith(prefix):
                    try:
                        fn(pub, who)
                    except Exception:
                        log.exception("MQTT on_message hook %r raised", fn)
        return n

    def _fan_out(self, tmpl: PublishTemplate, qos: int, retain: bool, matches: Any) -> int:
        cap = self.limits.mqtt_send_queue
        drop = self.limits.mqtt_slow_policy == "drop"
        n = 0
        for cs, opts in matches.items():
            q = opts.qos if opts.qos < qos else qos  # [MQTT-3.8.4-8]
            r = retain and opts.retain_as_published  # [MQTT-3.3.1-12] [MQTT-3.3.1-13]
            link = cs.link
            n += 1
            if link is not None and link.live:
                if not q:
                    data = tmpl.encode(link.version, 0, 0, r, False, opts.subscription_ids)
                    queued = link.pending_n + len(link.c.send_mbuf.buf)
                    if queued and queued + len(data) > cap:
                        if drop:
                            link.dropped += 1
                            self.dropped += 1
                            continue
                        link.slow("send queue over Limits.mqtt_send_queue")
                        continue
                    link.push(data)
                    continue
                try:
                    data = cs.session.publish(tmpl, q, r, opts.subscription_ids)
                except QueueFull:
                    self.dropped += 1
                    if drop:
                        link.dropped += 1
                    else:
                        link.slow("session queue over Limits.mqtt_max_queued")
                    continue
                if data:
                    link.push(data)
            elif q:
                try:
                    cs.session.publish(tmpl, q, r, opts.subscription_ids)  # offline: queued
                except QueueFull:
                    self.dropped += 1
        self.delivered += n
        return n

    def _retain(self, pub: Publish) -> None:
        topic = pub.topic
        if not pub.payload:
            self.retained.set(topic, None)  # [MQTT-3.3.1-6] [MQTT-3.3.1-7]
            return
        if topic not in self.retained and len(self.retained) >= self.limits.mqtt_max_retained:
            log.warning("MQTT: Limits.mqtt_max_retained reached; %r not retained", topic)
            return
        expiry = pub.properties.message_expiry_interval
        at = self.mgr.monotonic + expiry if expiry is not None else None
        tmpl = PublishTemplate(topic, pub.payload, pub.properties)
        self.retained.set(topic, (tmpl, pub.qos), at)  # [MQTT-3.3.1-5]

    def send_retained(self, cs: ClientSession, topic_filter: str, opts: SubOptions) -> None:
        """Send the retained messages ``topic_filter`` matches to a new subscription."""
        link = cs.link
        if link is None:
            return
        for _topic, (tmpl, rq) in self.retained.match(topic_filter, self.mgr.monotonic):
            q = rq if rq < opts.qos else opts.qos
            try:
                # [MQTT-3.3.1-9]: RETAIN set on messages sent for a new subscription
                data = cs.session.publish(tmpl, q, True, opts.subscription_ids)
            except QueueFull:
                self.dropped += 1
                continue
            if data:
                link.push(data)

    def flush(self) -> None:
        """Write every client's batched packets, one write per client."""
        dirty = self.dirty
        if not dirty:
            return
        self.dirty = []
        for link in dirty:
            parts = link.pending
            link.pending = []
            link.pending_n = 0
            if not link.c.closed:
                link.write(parts[0] if len(parts) == 1 else b"".join(parts))


class MqttWsEndpoint:
    """The HTTP endpoint that turns a WebSocket with subprotocol "mqtt" into a broker client."""

    __slots__ = ("broker", "h")

    def __init__(self, broker: MqttBroker, h: Handler) -> None:
        self.broker = broker
        self.h = h

    def __call__(self, c: Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.WS_HANDSHAKE_REQUEST:
            hm: HttpMessage = ev_data
            offered = [
                p.strip() for v in hm.header_all("Sec-WebSocket-Protocol") for p in v.split(",")
            ]
            n0 = c.total_queued
            self.h(c, ev, ev_data)
            if c.is_closing or c.total_queued != n0:
                return  # the handler refused it (it answered, or closed the connection)
            if WS_SUBPROTOCOL in offered:
                ws_accept(c, protocol=WS_SUBPROTOCOL)  # [MQTT-6.0.0-4]
            else:  # [MQTT-6.0.0-3]: a client must offer "mqtt"
                http_reply(c, 400, "MQTT over WebSocket needs subprotocol 'mqtt'\n")
            return
        if ev == Ev.WS_HANDSHAKE_DONE:
            link = BrokerLink(c, self.broker, self.h, True)
            c.proto_data.h = link  # WsState.h: the link now reads the WebSocket's messages
        elif ev == Ev.HTTP_REQUEST:
            # RFC 9110 15.5.22: 426 names the upgrade (Upgrade + Connection: upgrade)
            http_send_error(
                c, _HTTP_UPGRADE_REQUIRED, "MQTT over WebSocket: use subprotocol 'mqtt'"
            )
            return
        self.h(c, ev, ev_data)


def mqtt_broker(
    listener: Connection,
    broker: MqttBroker | None = None,
    *,
    auth: AuthHook | None = None,
) -> MqttBroker:
    """Serve MQTT on ``listener`` (bound with ``mgr.bind``); return the broker.

    Pass ``broker`` to share one broker between several listeners (TCP, TLS,
    WebSocket); otherwise a new one is made with ``auth`` and the listener's limits.

    Example::

        lc = mgr.bind("127.0.0.1:1883", handler)
        broker = mqtt_broker(lc)
    """
    if broker is None:
        broker = MqttBroker(listener.mgr, auth=auth, limits=listener.limits)
    broker.attach(listener)
    return broker

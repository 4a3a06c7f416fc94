"""The broker's side of one client connection: CONNECT, subscriptions, PUBLISH intake,
keepalive, DISCONNECT and the end of the network connection.

Theory of operation
-------------------
A ``BrokerLink`` is ``c.proto_data`` of a connection accepted by a broker listener (or
the WebSocket handler of an MQTT-over-WebSocket connection).  It is the one owner of
the connection's phases::

    AWAIT_CONNECT --CONNECT accepted--> OPEN --DISCONNECT / close / takeover--> detached
         |  (mqtt_connect_timeout: close)  |
         +--refused: CONNACK >= 0x80, close [MQTT-3.2.2-7]

The session (subscriptions, QoS state, will) is a ``ClientSession`` the broker keeps by
client id; the link attaches to it on CONNECT and detaches when the network connection
ends (``detach``), which is where the will is published or scheduled and where a
session that does not outlive its connection ends.  What the link sends goes through
``push`` into the broker's batch (``MqttBroker.flush`` writes each client's packets of
one round in one write, in order).
"""

from __future__ import annotations

import itertools
import logging
from typing import TYPE_CHECKING, Any

from ..events import Ev
from ..proto.mqtt import (
    MQTT_V5,
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
    PubRec,
    PubRel,
    ReasonCode,
    Session,
    Suback,
    SubOptions,
    Subscribe,
    Unsuback,
    Unsubscribe,
    Will,
)
from ..proto.mqtt_codes import protocol_error
from ..proto.mqtt_keepalive import SERVER_GRACE, KeepaliveAction
from .events import MqttEv
from .link import COUNTER_MESSAGES, MqttLink

if TYPE_CHECKING:
    from ..core import Connection, Handler, TimerHandle
    from .broker import MqttBroker

__all__ = ["SESSION_NEVER_EXPIRES", "BrokerLink", "ClientSession"]

log = logging.getLogger("mgpy")

#: Session Expiry Interval "never" (MQTT 5.0 3.1.2.11.2); a 3.1.1 session without Clean
#: Session lasts as long [MQTT-3.1.2-4 (3.1.1)]
SESSION_NEVER_EXPIRES = 0xFFFFFFFF
#: a Receive Maximum of 65,535 is the default and is not sent (3.2.2.3.3)
_RECEIVE_MAXIMUM_DEFAULT = 65_535
_PINGRESP = PingResp().encode(MQTT_V5)
_EV_PUBLISH = MqttEv.PUBLISH
_ids = itertools.count(1)


class ClientSession:
    """A broker's state for one client id: its QoS session, subscriptions and will.

    It is the subscriber value in the broker's ``SubscriptionIndex`` and outlives the
    network connection when the session is persistent.
    """

    __slots__ = (
        "client_id",
        "expiry",
        "expiry_timer",
        "link",
        "session",
        "subs",
        "will",
        "will_timer",
    )

    def __init__(self, client_id: str, session: Session) -> None:
        self.client_id = client_id
        self.session = session
        #: the connected link, None while offline
        self.link: BrokerLink | None = None
        #: topic filter -> options, as subscribed
        self.subs: dict[str, SubOptions] = {}
        #: seconds the session outlives its connection (0: ends with it)
        self.expiry = 0
        self.expiry_timer: TimerHandle | None = None
        self.will: Will | None = None
        self.will_timer: TimerHandle | None = None

    def __repr__(self) -> str:
        return f"<ClientSession {self.client_id!r} {'online' if self.link else 'offline'}>"


class BrokerLink(MqttLink):
    """One client's network connection to the broker (see the module docstring)."""

    __slots__ = (
        "broker",
        "cs",
        "dropped",
        "ka",
        "live",
        "pending",
        "pending_n",
        "timer",
        "will_ok",
    )

    def __init__(self, c: Connection, broker: MqttBroker, h: Handler, ws: bool) -> None:
        lim = broker.limits
        reader = MqttReader(
            None,
            lim.mqtt_max_packet_size,
            lim.mqtt_max_topic_length,
            "server",
            max_topic_levels=lim.mqtt_max_topic_levels,
        )
        super().__init__(c, h, reader, ws)
        self.broker = broker
        self.cs: ClientSession | None = None
        #: CONNACK sent and not ending: messages may be delivered
        self.live = False
        #: packets queued for the broker's next flush, and their size
        self.pending: list[bytes] = []
        self.pending_n = 0
        #: messages dropped for this client under the "drop" slow-consumer policy
        self.dropped = 0
        #: False once a DISCONNECT 0x00 arrived: the will is not published [MQTT-3.1.2-10]
        self.will_ok = True
        self.ka: Keepalive | None = None
        t = lim.mqtt_connect_timeout
        self.timer: TimerHandle | None = c.call_later(t, self._no_connect) if t else None

    # -- output --------------------------------------------------------------------
    def push(self, data: bytes) -> None:
        """Queue packets for this client; the broker writes them at its next flush."""
        if not self.pending:
            self.broker.dirty.append(self)
        self.pending.append(data)
        self.pending_n += len(data)

    def slow(self, why: str) -> None:
        """The client does not keep up: apply ``Limits.mqtt_slow_policy`` "close"."""
        if not self.live:
            return
        self.live = False
        if self.version == MQTT_V5:
            self.push(Disconnect(ReasonCode.QUOTA_EXCEEDED).encode(MQTT_V5))
        self.c.error_reason = f"MQTT slow consumer: {why}"
        log.warning("%r: %s; closing", self.c, self.c.error_reason)
        self.broker.flush()
        self.end()

    def end(self, ws_code: int = 1000) -> None:
        self.live = False
        super().end(ws_code)

    def after_input(self) -> None:
        self.broker.flush()

    # -- input ---------------------------------------------------------------------
    def on_packet(self, pkt: Packet) -> None:
        """Handle one packet from the client."""
        t = type(pkt)
        cs = self.cs
        if cs is None:
            self._connect(pkt)  # type: ignore[arg-type]
            return
        ka = self.ka
        if ka is not None:
            ka.received(self.c.mgr.monotonic)
        if t is Publish:
            self.c.mgr.counters[COUNTER_MESSAGES] += 1
            ev, out = cs.session.receive(pkt)
            if out:
                self.push(out)
            if ev is not None:
                self.broker.route(ev, cs)  # type: ignore[arg-type]
                self.h(self.c, _EV_PUBLISH, ev)
        elif t is PingReq:
            self.push(_PINGRESP)  # [MQTT-3.12.4-1]
        elif t is Subscribe:
            self._subscribe(cs, pkt)  # type: ignore[arg-type]
        elif t is Unsubscribe:
            self._unsubscribe(cs, pkt)  # type: ignore[arg-type]
        elif t is Disconnect:
            self._disconnect(cs, pkt)  # type: ignore[arg-type]
        elif t in _ACKS:
            _ev, out = cs.session.receive(pkt)
            if out:
                self.push(out)
        else:
            raise protocol_error(f"{t.__name__} is not supported")  # AUTH: no enhanced auth

    # -- CONNECT ------------------------------------------------------------------------
    def _refuse(self, p: Connect, code: ReasonCode, why: str) -> None:
        self.write(Connack(False, code).encode(p.version))  # [MQTT-3.2.2-7]
        self.c.error_reason = f"MQTT CONNECT refused (0x{code:02X} {code.name}): {why}"
        self.end()

    def _check_connect(self, p: Connect) -> tuple[ReasonCode, str]:
        """Why the CONNECT is refused (a CONNACK reason code), or (SUCCESS, "")."""
        b = self.broker
        if p.properties.authentication_method is not None:
            return ReasonCode.BAD_AUTHENTICATION_METHOD, "enhanced authentication"  # 4.12
        if b.auth is not None:
            r = b.auth(p.client_id, p.username, p.password)
            code = (
                (ReasonCode.SUCCESS if r else ReasonCode.NOT_AUTHORIZED)
                if isinstance(r, bool)
                else ReasonCode(r)
            )
            if code:
                return code, "the authentication hook said no"
        if p.client_id not in b.sessions and len(b.sessions) >= b.limits.mqtt_max_sessions:
            return ReasonCode.QUOTA_EXCEEDED, "Limits.mqtt_max_sessions reached"
        return ReasonCode.SUCCESS, ""

    def _connect(self, p: Connect) -> None:
        b = self.broker
        code, why = self._check_connect(p)
        if code:
            self._refuse(p, code, why)
            return
        client_id = p.client_id
        assigned = None
        if not client_id:  # [MQTT-3.1.3-6]: the server assigns a unique id
            client_id = assigned = f"mgpy-{next(_ids):x}-{id(self):x}"
        cs, present = b.open_session(self, client_id, p.clean_start)
        self.cs = cs
        if p.version == MQTT_V5:
            cs.expiry = p.properties.session_expiry_interval or 0
        else:
            cs.expiry = 0 if p.clean_start else SESSION_NEVER_EXPIRES
        cs.will = p.will
        self.push(
            Connack(present, ReasonCode.SUCCESS, self._connack_props(assigned)).encode(p.version)
        )
        self.acked = self.live = True
        props = p.properties
        out = cs.session.connection_made(
            p.version,
            peer_receive_maximum=props.receive_maximum,
            peer_max_packet_size=props.maximum_packet_size,
        )
        if out:
            self.push(out)  # [MQTT-4.4.0-1] resends, then what the queue holds
        self._start_keepalive(p.keepalive)
        self.h(self.c, MqttEv.CLIENT_CONNECT, p)

    def _connack_props(self, assigned: str | None) -> Properties:
        if self.version != MQTT_V5:
            return NO_PROPERTIES
        lim = self.broker.limits
        inflight = lim.mqtt_max_inflight
        return Properties(
            assigned_client_identifier=assigned,  # [MQTT-3.2.2-16]
            receive_maximum=inflight if 0 < inflight < _RECEIVE_MAXIMUM_DEFAULT else None,
            maximum_packet_size=lim.mqtt_max_packet_size,
            topic_alias_maximum=lim.mqtt_topic_alias_maximum or None,
        )

    def _no_connect(self) -> None:
        if self.cs is None and not self.ending:
            lim = self.c.limits.mqtt_connect_timeout
            self.c.error_reason = f"MQTT: no CONNECT within {lim:g}s"
            self.end()

    # -- keepalive -----------------------------------------------------------------------
    def _start_keepalive(self, keepalive: int) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not keepalive:
            return
        now = self.c.mgr.monotonic
        self.ka = Keepalive("server", keepalive, now)
        self._arm(now)

    def _arm(self, now: float) -> None:
        assert self.ka is not None
        deadline = self.ka.next_deadline()
        if deadline is None:
            return
        if self.timer is None:
            self.timer = self.c.call_later(max(0.0, deadline - now), self._tick)
        else:
            self.timer.reschedule(max(0.0, deadline - now))

    def _tick(self) -> None:
        ka = self.ka
        if ka is None or self.ending:
            return
        now = self.c.mgr.monotonic
        if ka.poll(now) is KeepaliveAction.TIMEOUT:  # [MQTT-3.1.2-22]
            if self.version == MQTT_V5:
                self.write(Disconnect(ReasonCode.KEEP_ALIVE_TIMEOUT).encode(MQTT_V5))
            self.c.error_reason = (
                f"MQTT keepalive: nothing from the client for {SERVER_GRACE * ka.keepalive:g}s"
            )
            self.end()
            return
        self._arm(now)

    # -- SUBSCRIBE / UNSUBSCRIBE -----------------------------------------------------------
    def _subscribe(self, cs: ClientSession, p: Subscribe) -> None:
        b = self.broker
        codes: list[int] = []
        retained: list[tuple[str, SubOptions]] = []
        sub_ids = p.properties.subscription_identifiers
        cap = b.limits.mqtt_max_subscriptions
        for s in p.subscriptions:
            f = s.topic_filter
            if f not in cs.subs and len(cs.subs) >= cap:
                codes.append(ReasonCode.QUOTA_EXCEEDED)  # 3.1.1: 0x80 Failure
                continue
            opts = SubOptions(s.qos, s.no_local, s.retain_as_published, s.retain_handling, sub_ids)
            new = b.index.subscribe(f, cs, opts)  # replaces an existing one [MQTT-3.8.4-3]
            cs.subs[f] = opts
            codes.append(s.qos)  # every QoS is supported: granted as asked [MQTT-3.8.4-6]
            # [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11]: Retain Handling 0 / 1 / 2
            if s.retain_handling == 0 or (s.retain_handling == 1 and new):
                retained.append((f, opts))
        self.push(Suback(p.packet_id, codes).encode(self.version))  # [MQTT-3.8.4-1]
        for f, opts in retained:
            b.send_retained(cs, f, opts)
        self.h(self.c, MqttEv.SUBSCRIBE, p)

    def _unsubscribe(self, cs: ClientSession, p: Unsubscribe) -> None:
        codes: list[int] = []
        for f in p.topic_filters:
            removed = self.broker.index.unsubscribe(f, cs)  # [MQTT-3.10.4-1]
            cs.subs.pop(f, None)
            codes.append(ReasonCode.SUCCESS if removed else ReasonCode.NO_SUBSCRIPTION_EXISTED)
        self.push(Unsuback(p.packet_id, codes).encode(self.version))  # [MQTT-3.10.4-4]
        self.h(self.c, MqttEv.UNSUBSCRIBE, p)

    # -- the end of the connection ---------------------------------------------------------
    def _disconnect(self, cs: ClientSession, p: Disconnect) -> None:
        # [MQTT-3.1.2-10]: a normal DISCONNECT discards the will; 0x04 keeps it (5.0)
        self.will_ok = p.reason_code == ReasonCode.DISCONNECT_WITH_WILL_MESSAGE
        expiry = p.properties.session_expiry_interval
        if expiry is not None:
            if not cs.expiry and expiry:
                raise protocol_error("Session Expiry set by DISCONNECT after 0")  # [MQTT-3.14.2-2]
            cs.expiry = expiry
        self.h(self.c, MqttEv.DISCONNECT, p)
        self.end()  # [MQTT-3.14.4-1]

    def taken_over(self) -> None:
        """Another connection took this client id: DISCONNECT 0x8E, close [MQTT-3.1.4-3]."""
        if self.version == MQTT_V5 and self.live:
            self.write(Disconnect(ReasonCode.SESSION_TAKEN_OVER).encode(MQTT_V5))
        self.c.error_reason = "MQTT session taken over by a new connection"
        self.detach()
        self.end()

    def detach(self) -> None:
        """The network connection of the session ended: will, session expiry."""
        cs = self.cs
        if cs is None:
            return
        self.cs = None
        self.live = False
        if self.timer is not None:
            self.timer.cancel()
        self.broker.detach(cs, self.will_ok)

    def on_close(self) -> None:
        self.live = False
        self.ending = True
        self.detach()
        self.broker.flush()


#: acknowledgements of the QoS flows
_ACKS: frozenset[type] = frozenset((PubAck, PubRec, PubRel, PubComp))


def broker_handler(c: Connection, ev: Any, ev_data: Any) -> None:
    """Protocol handler of a broker listener and of the connections it accepts."""
    link = c.proto_data
    if type(link) is BrokerLink:
        if ev == _RECV:
            link.h(c, ev, ev_data)
            link.feed_mbuf()
            link.after_input()
            return
        if ev == _CLOSE:
            if c.mgr.stopping and link.live and link.version == MQTT_V5:
                # Manager.close(): the server's last word (MQTT 5.0 4.13)
                link.write(Disconnect(ReasonCode.SERVER_SHUTTING_DOWN).encode(MQTT_V5))
            link.on_close()
        link.h(c, ev, ev_data)
        return
    if ev == _ACCEPT and c.listener is not None:
        broker = c.listener.proto_data
        c.proto_data = BrokerLink(c, broker, c.handler, False)
    c.handler(c, ev, ev_data)


_RECV = Ev.RECV
_CLOSE = Ev.CLOSE
_ACCEPT = Ev.ACCEPT

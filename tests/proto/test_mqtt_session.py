"""MQTT QoS state machines (MQTT 5.0 4.3, 4.4, 4.9): QoS 1 and 2 in both directions over a
simulated link that goes through the real encoder and reader, cut at every step of the
handshake and resumed; exactly-once delivery, DUP and PUBREL re-sends, the in-flight
window, packet identifiers, topic aliases, and the keepalive bookkeeping."""

from __future__ import annotations

import pytest

from mgpy.errors import LocalProtocolError
from mgpy.proto.mqtt import (
    MQTT_V5,
    MQTT_V311,
    NEED_DATA,
    Connack,
    Connect,
    Keepalive,
    MqttError,
    MqttReader,
    Packet,
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
)
from mgpy.proto.mqtt_keepalive import KeepaliveAction

BOTH = pytest.mark.parametrize("version", [MQTT_V311, MQTT_V5])
SIDES = ("client", "server")


class End:
    """One end of the link: a session and the reader for what it receives."""

    def __init__(self, side: str, version: int, **kw: object) -> None:
        self.side = side
        self.version = version
        self.session = Session(side, version, **kw)  # type: ignore[arg-type]
        self.inbox = bytearray()
        self.reader = self.new_reader()
        self.delivered: list[Publish] = []
        self.done: list[PublishDone] = []
        self.seen: list[Packet] = []  # every packet this end read

    def new_reader(self) -> MqttReader:
        if self.side == "server":
            r = MqttReader(side="server")
            r.next_event(Connect("c", clean_start=False, version=self.version).encode())
        else:
            r = MqttReader(self.version, side="client")
            r.next_event(Connack(True).encode(self.version))
        return r


class Link:
    """A client and a server end; bytes written by one wait in the other's inbox."""

    def __init__(self, version: int = MQTT_V5) -> None:
        self.client = End("client", version)
        self.server = End("server", version)
        self.ends = {"client": self.client, "server": self.server}
        self.connect()

    def other(self, end: End) -> End:
        return self.server if end is self.client else self.client

    def send(self, end: End, data: bytes) -> None:
        self.other(end).inbox += data

    def connect(self) -> None:
        c, s = self.client, self.server
        c.reader, s.reader = c.new_reader(), s.new_reader()
        # the broker resends first (after its CONNACK), then the client (after reading it)
        self.send(s, s.session.connection_made(c.version))
        self.send(c, c.session.connection_made(s.version))

    def cut(self) -> None:
        """The network connection fails: everything on the wire is lost."""
        for end in (self.client, self.server):
            end.inbox.clear()
            end.session.connection_lost()

    def step(self, end: End) -> bool:
        """Let ``end`` read and handle one packet; False if its inbox had none."""
        pkt, n = end.reader.next_event(end.inbox)
        if pkt is NEED_DATA:
            return False
        del end.inbox[:n]
        end.seen.append(pkt)  # type: ignore[arg-type]
        event, out = end.session.receive(pkt)  # type: ignore[arg-type]
        if isinstance(event, Publish):
            end.delivered.append(event)
        elif isinstance(event, PublishDone):
            end.done.append(event)
        self.send(end, out)
        return True

    def run(self) -> None:
        """Deliver everything until both inboxes are empty."""
        while self.step(self.client) or self.step(self.server):
            pass

    def idle(self) -> bool:
        return all(
            e.session.in_flight == 0 and e.session.queued == 0 and not e.session.awaiting_pubrel
            for e in (self.client, self.server)
        )


MSG = PublishTemplate("t/1", b"hello")


class TestQos2Interrupted:
    """Each QoS 2 handshake cut after each step, then resumed: delivered exactly once."""

    @BOTH
    @pytest.mark.parametrize("sender_side", SIDES)
    @pytest.mark.parametrize("steps", [0, 1, 2, 3, 4])
    def test_cut_after_step_then_resume(self, version: int, sender_side: str, steps: int) -> None:
        link = Link(version)
        sender = link.ends[sender_side]
        receiver = link.other(sender)
        link.send(sender, sender.session.publish(MSG, qos=2))
        order = [receiver, sender, receiver, sender]  # PUBLISH, PUBREC, PUBREL, PUBCOMP read
        for end in order[:steps]:
            assert link.step(end)
        link.cut()
        link.connect()
        link.run()
        assert [p.payload for p in receiver.delivered] == [b"hello"]
        assert [(d.packet_id, d.reason_code) for d in sender.done] == [(1, ReasonCode.SUCCESS)]
        assert link.idle()

    @BOTH
    @pytest.mark.parametrize("sender_side", SIDES)
    @pytest.mark.parametrize(
        ("steps", "resent_type"), [(0, Publish), (1, Publish), (2, PubRel), (3, PubRel)]
    )
    def test_what_is_resent_at_each_cut(
        self, version: int, sender_side: str, steps: int, resent_type: type
    ) -> None:
        """[MQTT-4.4.0-1]: PUBLISH with DUP until the PUBREC arrived, then only the
        PUBREL [MQTT-4.3.3-6], with the original packet identifier."""
        link = Link(version)
        sender = link.ends[sender_side]
        receiver = link.other(sender)
        link.send(sender, sender.session.publish(MSG, qos=2))
        for end in [receiver, sender, receiver][:steps]:
            assert link.step(end)
        link.cut()
        resent = sender.session.connection_made(version)
        r = MqttReader(version, side="client")
        r.next_event(Connack().encode(version))
        pkt, n = r.next_event(resent)
        assert n == len(resent) and type(pkt) is resent_type
        assert pkt.packet_id == 1  # type: ignore[union-attr]
        if isinstance(pkt, Publish):
            assert pkt.dup  # [MQTT-3.3.1-1]

    @BOTH
    def test_cut_at_every_step_repeatedly(self, version: int) -> None:
        link = Link(version)
        c, s = link.client, link.server
        for i in range(5):
            link.send(c, c.session.publish(PublishTemplate(f"m/{i}", b"x"), qos=2))
        for _ in range(40):  # one step, then a cut, forty times over
            link.step(s) or link.step(c)
            link.cut()
            link.connect()
        link.run()
        assert sorted(p.topic for p in s.delivered) == [f"m/{i}" for i in range(5)]
        assert len(c.done) == 5 and link.idle()

    def test_a_pubrec_refusal_ends_the_message_without_pubrel(self) -> None:
        """[MQTT-4.4.0-2]: treated as acknowledged, never re-sent."""
        s = Session("client")
        s.connection_made()
        s.publish(MSG, qos=2)
        event, out = s.receive(PubRec(1, ReasonCode.QUOTA_EXCEEDED))
        assert isinstance(event, PublishDone) and event.reason_code == ReasonCode.QUOTA_EXCEEDED
        assert out == b"" and s.in_flight == 0
        s.connection_lost()
        assert s.connection_made() == b""

    @BOTH
    def test_pubrel_for_an_unknown_id_still_gets_pubcomp(self, version: int) -> None:
        s = Session("server", version)
        s.connection_made()
        _, out = s.receive(PubRel(42))
        if version == MQTT_V5:
            assert out == PubComp(42, ReasonCode.PACKET_IDENTIFIER_NOT_FOUND).encode(version)
        else:
            assert out == PubComp(42).encode(version)

    def test_pubrec_for_an_unknown_id_gets_pubrel_not_found(self) -> None:
        s = Session("server")
        s.connection_made()
        event, out = s.receive(PubRec(42))
        assert event is None
        assert out == PubRel(42, ReasonCode.PACKET_IDENTIFIER_NOT_FOUND).encode(MQTT_V5)

    def test_publish_dup_flag_does_not_matter_to_the_receiver(self) -> None:
        """[MQTT-4.3.3-10]: the same id before PUBREL is never delivered twice."""
        s = Session("server")
        s.connection_made()
        first, out1 = s.receive(Publish("t", b"1", 2, packet_id=5))
        again, out2 = s.receive(Publish("t", b"1", 2, packet_id=5))
        assert first is not None and again is None
        assert out1 == out2 == PubRec(5).encode(MQTT_V5)
        s.receive(PubRel(5))
        new, _ = s.receive(Publish("t", b"2", 2, packet_id=5))  # [MQTT-4.3.3-12]
        assert new is not None


class TestQos1:
    @BOTH
    @pytest.mark.parametrize("sender_side", SIDES)
    def test_flow(self, version: int, sender_side: str) -> None:
        link = Link(version)
        sender = link.ends[sender_side]
        out = sender.session.publish(MSG, qos=1, retain=True)
        link.send(sender, out)
        link.run()
        receiver = link.other(sender)
        assert [(p.topic, p.qos, p.retain, p.dup) for p in receiver.delivered] == [
            ("t/1", 1, True, False)
        ]
        assert isinstance(sender.seen[-1], PubAck)
        assert len(sender.done) == 1 and link.idle()

    @BOTH
    @pytest.mark.parametrize("steps", [0, 1])
    def test_cut_then_resume_delivers_at_least_once(self, version: int, steps: int) -> None:
        link = Link(version)
        c, s = link.client, link.server
        link.send(c, c.session.publish(MSG, qos=1))
        if steps:
            assert link.step(s)  # delivered, PUBACK lost
        link.cut()
        link.connect()
        link.run()
        assert len(s.delivered) == 1 + steps  # [MQTT-4.3.2-5]: a new message each time
        assert s.delivered[-1].dup  # the re-sent copy [MQTT-3.3.1-1]
        assert len(c.done) == 1 and link.idle()

    @BOTH
    def test_qos0_flows_without_state_and_is_not_kept_offline(self, version: int) -> None:
        link = Link(version)
        c, s = link.client, link.server
        link.send(s, s.session.publish(MSG))
        link.run()
        assert len(c.delivered) == 1 and link.idle()
        link.cut()
        assert s.session.publish(MSG) == b""


class TestWindowAndQueue:
    def test_peer_receive_maximum_limits_what_is_in_flight(self) -> None:
        """[MQTT-3.3.4-9] [MQTT-4.9.0-2]: the rest waits, in order."""
        s = Session("server")
        s.connection_made(peer_receive_maximum=2)
        sent = [s.publish(PublishTemplate(f"t/{i}", b""), qos=1) for i in range(5)]
        assert [bool(b) for b in sent] == [True, True, False, False, False]
        assert s.in_flight == 2 and s.queued == 3
        event, out = s.receive(PubAck(1))
        assert isinstance(event, PublishDone)
        assert out == PublishTemplate("t/2", b"").encode(MQTT_V5, 1, 3)
        assert s.in_flight == 2 and s.queued == 2

    def test_3_1_1_uses_the_local_in_flight_cap(self) -> None:
        s = Session("server", MQTT_V311, max_inflight=3)
        s.connection_made(peer_receive_maximum=1)  # ignored: 3.1.1 has no Receive Maximum
        assert sum(bool(s.publish(MSG, qos=2)) for _ in range(5)) == 3

    def test_queue_limit(self) -> None:
        s = Session("server", max_inflight=1, max_queued=2)
        s.connection_made()
        s.publish(MSG, qos=1)
        s.publish(MSG, qos=1)
        s.publish(MSG, qos=1)
        with pytest.raises(QueueFull):
            s.publish(MSG, qos=1)

    def test_messages_published_offline_are_sent_on_connection(self) -> None:
        s = Session("server")
        assert s.publish(MSG, qos=1) == b"" and s.queued == 1
        out = s.connection_made()
        assert out == MSG.encode(MQTT_V5, 1, 1)

    def test_resend_order_publishes_then_pubrels_in_pubrec_order(self) -> None:
        """[MQTT-4.6.0-1]: PUBLISHes in original order; PUBRELs in PUBREC order."""
        s = Session("client")
        s.connection_made()
        for i in range(1, 5):
            s.publish(PublishTemplate(f"t/{i}", b""), qos=2)
        s.receive(PubRec(3))
        s.receive(PubRec(1))
        s.connection_lost()
        out = s.connection_made()
        want = (
            PublishTemplate("t/2", b"").encode(MQTT_V5, 2, 2, dup=True)
            + PublishTemplate("t/4", b"").encode(MQTT_V5, 2, 4, dup=True)
            + PubRel(3).encode(MQTT_V5)
            + PubRel(1).encode(MQTT_V5)
        )
        assert out == want

    def test_clear_discards_the_session(self) -> None:
        s = Session("server", max_inflight=1)
        s.connection_made()
        s.publish(PublishTemplate("a", b""), qos=1)
        s.publish(PublishTemplate("b", b""), qos=1)
        s.receive(Publish("x", b"", 2, packet_id=9))
        lost = s.clear()
        assert [m.topic for m in lost] == ["a", "b"]
        assert s.in_flight == 0 and s.queued == 0 and not s.awaiting_pubrel


class TestPacketIds:
    def test_ids_skip_those_in_use_and_wrap(self) -> None:
        s = Session("client", max_inflight=0)
        s.connection_made()
        s.publish(MSG, qos=1)  # id 1 in flight
        s._next_id = 65_535
        assert s.allocate_id() == 65_535
        assert s.allocate_id() == 2  # wrapped past 0 and the busy 1

    def test_subscribe_ids_are_reserved_until_the_suback(self) -> None:
        s = Session("client")
        s.connection_made()
        wire = s.subscribe([Subscription("a/#", 1)])
        assert wire[2:4] == b"\x00\x01"
        assert s.allocate_id() == 2
        s._next_id = 1
        assert s.allocate_id() == 2  # 1 still awaits its SUBACK
        event, _ = s.receive(Suback(1, [ReasonCode.GRANTED_QOS_1]))
        assert isinstance(event, Suback)
        s._next_id = 1
        assert s.allocate_id() == 1

    def test_acks_for_ids_not_in_flight_are_ignored(self) -> None:
        s = Session("client")
        s.connection_made()
        s.publish(MSG, qos=2)
        assert s.receive(PubAck(1)) == (None, b"")  # a PUBACK for a QoS 2 message
        assert s.receive(PubComp(1)) == (None, b"")  # PUBCOMP before PUBREC
        assert s.receive(PubAck(7)) == (None, b"")
        assert s.in_flight == 1


class TestLimits:
    def test_receive_maximum_exceeded(self) -> None:
        """More QoS 2 awaiting PUBREL than we allow: 0x93."""
        s = Session("server", receive_maximum=2)
        s.connection_made()
        s.receive(Publish("t", b"", 2, packet_id=1))
        s.receive(Publish("t", b"", 2, packet_id=2))
        with pytest.raises(MqttError) as info:
            s.receive(Publish("t", b"", 2, packet_id=3))
        assert info.value.reason_code == ReasonCode.RECEIVE_MAXIMUM_EXCEEDED

    def test_topic_aliases(self) -> None:
        s = Session("server", topic_alias_maximum=2)
        s.connection_made()
        s.receive(Publish("long/topic/name", b"1", properties=Properties(topic_alias=2)))
        p2, _ = s.receive(Publish("", b"2", properties=Properties(topic_alias=2)))
        assert isinstance(p2, Publish) and p2.topic == "long/topic/name"
        with pytest.raises(MqttError) as info:
            s.receive(Publish("x", b"", properties=Properties(topic_alias=3)))
        assert info.value.reason_code == ReasonCode.TOPIC_ALIAS_INVALID
        with pytest.raises(MqttError) as info:
            s.receive(Publish("", b"", properties=Properties(topic_alias=1)))
        assert info.value.reason_code == ReasonCode.PROTOCOL_ERROR
        s.connection_lost()  # [MQTT-3.3.2-7]: not carried to the next connection
        s.connection_made()
        with pytest.raises(MqttError):
            s.receive(Publish("", b"", properties=Properties(topic_alias=2)))

    def test_broker_discards_what_is_too_large_for_the_client(self) -> None:
        """[MQTT-3.1.2-25]."""
        s = Session("server")
        s.connection_made(peer_max_packet_size=20)
        assert s.publish(PublishTemplate("t", b"x" * 30), qos=1) == b""
        assert s.dropped == 1 and s.in_flight == 0
        assert s.publish(PublishTemplate("t", b"x"), qos=1) != b""

    def test_client_may_not_exceed_the_server_limits(self) -> None:
        """[MQTT-3.2.2-15] [MQTT-3.2.2-11]."""
        s = Session("client")
        s.connection_made(peer_max_packet_size=20, peer_maximum_qos=1)
        with pytest.raises(LocalProtocolError):
            s.publish(PublishTemplate("t", b"x" * 30))
        with pytest.raises(LocalProtocolError):
            s.publish(MSG, qos=2)
        assert s.publish(MSG, qos=1)

    def test_subscription_ids_travel_with_the_message(self) -> None:
        link = Link()
        out = link.server.session.publish(MSG, qos=1, subscription_ids=(4, 9))
        link.send(link.server, out)
        link.run()
        assert link.client.delivered[0].properties.subscription_identifiers == (4, 9)


class TestKeepalive:
    def test_server_allows_one_and_a_half_periods(self) -> None:
        """[MQTT-3.1.2-22] (3.1.1 [MQTT-3.1.2-24])."""
        ka = Keepalive("server", 10, now=100.0)
        assert ka.next_deadline() == 115.0
        assert ka.poll(114.9) is KeepaliveAction.NONE
        ka.received(110.0)
        assert ka.poll(124.9) is KeepaliveAction.NONE
        assert ka.poll(125.0) is KeepaliveAction.TIMEOUT

    def test_client_pings_when_it_sent_nothing_for_a_period(self) -> None:
        """[MQTT-3.1.2-20] (3.1.1 [MQTT-3.1.2-23])."""
        ka = Keepalive("client", 10, now=0.0)
        ka.sent(5.0)
        ka.received(14.0)  # receiving does not replace sending
        assert ka.poll(14.9) is KeepaliveAction.NONE
        assert ka.poll(15.0) is KeepaliveAction.SEND_PINGREQ
        assert ka.awaiting_pingresp
        assert ka.poll(20.0) is KeepaliveAction.NONE
        ka.received(21.0, pingresp=True)
        assert not ka.awaiting_pingresp
        assert ka.next_deadline() == 25.0

    def test_client_times_out_without_pingresp(self) -> None:
        ka = Keepalive("client", 10, now=0.0, ping_timeout=3)
        assert ka.poll(10.0) is KeepaliveAction.SEND_PINGREQ
        ka.received(12.0)  # a PUBLISH, not the PINGRESP
        assert ka.poll(12.9) is KeepaliveAction.NONE
        assert ka.poll(13.0) is KeepaliveAction.TIMEOUT

    def test_zero_turns_it_off_and_server_keep_alive_replaces_it(self) -> None:
        """[MQTT-3.2.2-21]."""
        ka = Keepalive("client", 0, now=0.0)
        assert ka.next_deadline() is None and ka.poll(1e9) is KeepaliveAction.NONE
        ka.set_keepalive(5, now=100.0)
        assert ka.poll(105.0) is KeepaliveAction.SEND_PINGREQ

"""mgpy's MQTT broker and client over real sockets on 127.0.0.1: QoS flows, retained
messages, wills, sessions, auth, limits, keepalive and MQTT over WebSocket.

Every test polls the one Manager that runs both the broker and its clients until a
condition holds, with a deadline.  ``RawClient`` drives the protocol byte by byte where a
test must stop a handshake at an exact step.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

import mgpy
from mgpy.mqtt import (
    MqttBroker,
    MqttEv,
    ReasonCode,
    Will,
    connect_mqtt,
    mqtt_disconnect,
    mqtt_publish,
    mqtt_session,
    mqtt_subscribe,
)
from mgpy.proto.mqtt import (
    Connack,
    Disconnect,
    PingResp,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    Suback,
    Subscribe,
    Subscription,
)
from tests.net.test_mqtt_helpers import RawClient, Recorder, wait_for

VERSIONS = [4, 5]


@pytest.fixture
def broker(mgr: mgpy.Manager) -> tuple[MqttBroker, str]:
    b = MqttBroker(mgr)
    lc = b.listen("127.0.0.1:0")
    return b, f"mqtt://127.0.0.1:{lc.local[1]}"


def connected(mgr: mgpy.Manager, url: str, rec: Recorder, **kw: Any) -> mgpy.Connection:
    c = connect_mqtt(mgr, url, rec, **kw)
    wait_for(mgr, lambda: rec.of(c, MqttEv.CONNACK))
    assert rec.of(c, MqttEv.CONNACK)[-1].reason_code == 0
    return c  # type: ignore[return-value]


def subscribed(
    mgr: mgpy.Manager, url: str, rec: Recorder, topic: str, qos: int, **kw: Any
) -> mgpy.Connection:
    c = connected(mgr, url, rec, **kw)
    mqtt_subscribe(c, topic, qos)
    wait_for(mgr, lambda: rec.of(c, MqttEv.SUBACK))
    return c


@pytest.mark.parametrize("version", VERSIONS)
def test_qos_0_1_2_each_delivered_once_in_order(
    mgr: mgpy.Manager, broker: tuple[MqttBroker, str], version: int
) -> None:
    _b, url = broker
    rec = Recorder()
    sub = subscribed(mgr, url, rec, "room/+/temp", 2, client_id="sub", version=version)
    assert rec.of(sub, MqttEv.SUBACK)[0].reason_codes == [2]
    pub = connected(mgr, url, rec, client_id="pub", version=version)
    sent = [mqtt_publish(pub, "room/kitchen/temp", f"q{q}", qos=q) for q in (0, 1, 2)]
    wait_for(
        mgr,
        lambda: (
            len(rec.of(sub, MqttEv.PUBLISH)) == 3 and len(rec.of(pub, MqttEv.PUBLISH_DONE)) == 2
        ),
    )
    got = rec.of(sub, MqttEv.PUBLISH)
    assert [(p.payload, p.qos) for p in got] == [(b"q0", 0), (b"q1", 1), (b"q2", 2)]
    done = rec.of(pub, MqttEv.PUBLISH_DONE)
    assert [d.message for d in done] == sent[1:] and all(d.reason_code == 0 for d in done)
    for _ in range(20):
        mgr.poll(5)
    assert len(rec.of(sub, MqttEv.PUBLISH)) == 3  # no duplicate after the handshakes


def test_retained_message_for_late_subscribers_and_empty_one_deletes_it(
    mgr: mgpy.Manager, broker: tuple[MqttBroker, str]
) -> None:
    b, url = broker
    rec = Recorder()
    pub = connected(mgr, url, rec, client_id="p")
    mqtt_publish(pub, "lamp/state", b"on", qos=1, retain=True)
    wait_for(mgr, lambda: rec.of(pub, MqttEv.PUBLISH_DONE))
    late = subscribed(mgr, url, rec, "lamp/#", 1, client_id="late")
    wait_for(mgr, lambda: rec.of(late, MqttEv.PUBLISH))
    msg = rec.of(late, MqttEv.PUBLISH)[0]
    assert (msg.topic, msg.payload, msg.retain) == ("lamp/state", b"on", True)  # [MQTT-3.3.1-9]
    mqtt_publish(pub, "lamp/state", b"", qos=1, retain=True)
    wait_for(mgr, lambda: len(rec.of(pub, MqttEv.PUBLISH_DONE)) == 2)
    assert "lamp/state" not in b.retained
    later = subscribed(mgr, url, rec, "lamp/#", 1, client_id="later")
    for _ in range(20):
        mgr.poll(5)
    assert rec.of(later, MqttEv.PUBLISH) == []


@pytest.mark.parametrize("version", VERSIONS)
def test_will_is_published_when_a_client_vanishes_not_after_disconnect(
    mgr: mgpy.Manager, broker: tuple[MqttBroker, str], version: int
) -> None:
    _b, url = broker
    rec = Recorder()
    watcher = subscribed(mgr, url, rec, "status/#", 1, client_id="w", version=version)
    will = Will("status/dev", b"gone", qos=1)
    polite = connected(mgr, url, rec, client_id="polite", will=will, version=version)
    mqtt_disconnect(polite)
    wait_for(mgr, lambda: polite.closed)
    raw = RawClient(mgr, int(url.rsplit(":", 1)[1]), version)
    raw.connect("rude", will=Will("status/rude", b"lost", qos=1))
    raw.drop()
    wait_for(mgr, lambda: rec.of(watcher, MqttEv.PUBLISH))
    assert [(p.topic, p.payload) for p in rec.of(watcher, MqttEv.PUBLISH)] == [
        ("status/rude", b"lost")
    ]


@pytest.mark.parametrize("version", VERSIONS)
def test_persistent_session_keeps_subscriptions_and_queues_qos1_while_offline(
    mgr: mgpy.Manager, broker: tuple[MqttBroker, str], version: int
) -> None:
    _b, url = broker
    rec = Recorder()
    sub = subscribed(mgr, url, rec, "cmd/#", 1, client_id="dev", clean_start=False, version=version)
    mqtt_disconnect(sub)
    wait_for(mgr, lambda: sub.closed)
    pub = connected(mgr, url, rec, client_id="app", version=version)
    mqtt_publish(pub, "cmd/lamp", b"off", qos=1)
    wait_for(mgr, lambda: rec.of(pub, MqttEv.PUBLISH_DONE))
    again = connect_mqtt(
        mgr,
        url,
        rec,
        client_id="dev",
        clean_start=False,
        version=version,
        session=mqtt_session(sub),
    )
    wait_for(mgr, lambda: rec.of(again, MqttEv.PUBLISH))
    assert rec.of(again, MqttEv.CONNACK)[0].session_present  # [MQTT-3.2.2-2]
    assert rec.payloads(again) == [b"off"]


@pytest.mark.parametrize(
    ("version", "code"), [(4, ReasonCode.BAD_USER_NAME_OR_PASSWORD), (5, ReasonCode.NOT_AUTHORIZED)]
)
def test_auth_hook_refuses_with_its_reason_code(
    mgr: mgpy.Manager, version: int, code: ReasonCode
) -> None:
    seen: list[tuple[str, str | None, bytes | None]] = []

    def auth(client_id: str, user: str | None, password: bytes | None) -> int:
        seen.append((client_id, user, password))
        return 0 if password == b"secret" else code

    lc = MqttBroker(mgr, auth=auth).listen("127.0.0.1:0")
    url = f"mqtt://127.0.0.1:{lc.local[1]}"
    rec = Recorder()
    ok = connected(mgr, url, rec, client_id="a", username="u", password="secret", version=version)
    bad = connect_mqtt(
        mgr, url, rec, client_id="b", username="u", password="wrong", version=version
    )
    wait_for(mgr, lambda: bad.closed)
    assert rec.of(bad, MqttEv.CONNACK)[0].reason_code == code
    assert "refused" in rec.of(bad, mgpy.Ev.ERROR)[0]
    assert seen == [("a", "u", b"secret"), ("b", "u", b"wrong")] and not ok.closed


def test_same_client_id_takes_the_session_over(
    mgr: mgpy.Manager, broker: tuple[MqttBroker, str]
) -> None:
    _b, url = broker
    rec = Recorder()
    first = connected(mgr, url, rec, client_id="twin", version=5)
    second = connected(mgr, url, rec, client_id="twin", version=5)
    wait_for(mgr, lambda: first.closed)
    assert (
        rec.of(first, MqttEv.DISCONNECT)[0].reason_code == ReasonCode.SESSION_TAKEN_OVER
    )  # [MQTT-3.1.4-3]
    assert not second.closed


def test_wildcards_and_dollar_topics(mgr: mgpy.Manager, broker: tuple[MqttBroker, str]) -> None:
    b, url = broker
    rec = Recorder()
    everything = subscribed(mgr, url, rec, "#", 0, client_id="all")
    plus = subscribed(mgr, url, rec, "+/b", 0, client_id="plus")
    for topic in ("$SYS/uptime", "a/b", "a/b/c"):
        b.publish(topic, topic)
    wait_for(mgr, lambda: len(rec.of(everything, MqttEv.PUBLISH)) == 2)
    assert rec.payloads(everything) == [b"a/b", b"a/b/c"]  # [MQTT-4.7.2-1]: no $ topics
    assert rec.payloads(plus) == [b"a/b"]


def test_application_publish_and_prefix_hook(
    mgr: mgpy.Manager, broker: tuple[MqttBroker, str]
) -> None:
    b, url = broker
    seen: list[tuple[str, bytes, str]] = []
    b.on_message("sensors/", lambda m, who: seen.append((m.topic, m.payload, who)))
    rec = Recorder()
    dev = connected(mgr, url, rec, client_id="kitchen")
    sub = subscribed(mgr, url, rec, "cmd/lamp", 1, client_id="lamp")
    mqtt_publish(dev, "sensors/kitchen/temp", b"21.5", qos=1)
    mqtt_publish(dev, "other/x", b"no")
    assert b.publish("cmd/lamp", b"on", qos=1) == 1
    wait_for(mgr, lambda: rec.of(sub, MqttEv.PUBLISH) and seen)
    assert seen == [("sensors/kitchen/temp", b"21.5", "kitchen")]
    assert rec.payloads(sub) == [b"on"]


def test_packet_larger_than_the_limit_is_refused_with_0x95(mgr: mgpy.Manager) -> None:
    lim = dataclasses.replace(mgr.limits, mqtt_max_packet_size=1024)
    lc = MqttBroker(mgr, limits=lim).listen("127.0.0.1:0")
    raw = RawClient(mgr, lc.local[1], 5)
    ack = raw.connect("big")
    assert ack.properties.maximum_packet_size == 1024  # announced in the CONNACK
    raw.send(Publish("t", b"x" * 2000))
    reply = raw.expect()
    assert isinstance(reply, Disconnect) and reply.reason_code == ReasonCode.PACKET_TOO_LARGE
    raw.wait_closed()


@pytest.mark.parametrize("policy", ["drop", "close"])
def test_slow_consumer_policy(mgr: mgpy.Manager, policy: str) -> None:
    lim = dataclasses.replace(mgr.limits, mqtt_send_queue=4096, mqtt_slow_policy=policy)
    b = MqttBroker(mgr, limits=lim)
    lc = b.listen("127.0.0.1:0")
    raw = RawClient(mgr, lc.local[1], 5)
    raw.connect("slow")
    raw.send(Subscribe(1, [Subscription("feed", 0)]))
    assert isinstance(raw.expect(), Suback)
    for _ in range(3000):  # 30 MB the client never reads: more than the socket buffers
        b.publish("feed", b"x" * 10_000)
    mgr.poll(10)
    link_conns = [c for c in mgr.connections if not c.is_listener]
    if policy == "drop":
        assert b.dropped > 0 and link_conns and not link_conns[0].is_closing
    else:
        assert not link_conns or link_conns[0].is_closing or link_conns[0].closed


def test_silent_client_is_closed_after_one_and_a_half_keepalives(
    mgr: mgpy.Manager, broker: tuple[MqttBroker, str]
) -> None:
    _b, url = broker
    raw = RawClient(mgr, int(url.rsplit(":", 1)[1]), 5)
    raw.connect("quiet", keepalive=1)
    reply = raw.expect(timeout=4.0)
    assert isinstance(reply, Disconnect) and reply.reason_code == ReasonCode.KEEP_ALIVE_TIMEOUT
    raw.wait_closed()


def test_connection_without_connect_is_closed(mgr: mgpy.Manager) -> None:
    lim = dataclasses.replace(mgr.limits, mqtt_connect_timeout=0.3)
    lc = MqttBroker(mgr, limits=lim).listen("127.0.0.1:0")
    raw = RawClient(mgr, lc.local[1])
    raw.wait_closed(timeout=3.0)


def test_client_pings_keep_the_connection_alive(
    mgr: mgpy.Manager, broker: tuple[MqttBroker, str]
) -> None:
    b, url = broker
    rec = Recorder()
    c = connected(mgr, url, rec, client_id="pinger", keepalive=1)
    deadline = mgr.monotonic + 2.5
    while mgr.monotonic < deadline:
        mgr.poll(20)
    assert not c.closed and b.clients == 1  # the broker would have closed it after 1.5 s


def test_client_gives_up_without_pingresp(mgr: mgpy.Manager) -> None:
    def mute_server(c: mgpy.Connection, ev: int, ev_data: Any) -> None:
        if ev == mgpy.Ev.RECV:
            if c.recv_mbuf.buf[:1] == b"\x10":  # CONNECT: accept, then never answer again
                c.send(Connack().encode(4))
            c.recv_mbuf.clear()

    lc = mgr.bind("127.0.0.1:0", mute_server)
    rec = Recorder()
    c = connect_mqtt(mgr, f"mqtt://127.0.0.1:{lc.local[1]}", rec, keepalive=1)
    wait_for(mgr, lambda: c.closed, timeout=5.0)
    assert rec.of(c, MqttEv.CONNACK) and "PINGRESP" in rec.of(c, mgpy.Ev.ERROR)[0]


def test_packets_made_before_the_connack_are_sent_after_it(
    mgr: mgpy.Manager, broker: tuple[MqttBroker, str]
) -> None:
    _b, url = broker
    rec = Recorder()
    c = connect_mqtt(mgr, url, rec, client_id="eager")
    mqtt_subscribe(c, "echo", 1)
    mqtt_publish(c, "echo", b"zero")
    mqtt_publish(c, "echo", b"one", qos=1)
    wait_for(mgr, lambda: len(rec.of(c, MqttEv.PUBLISH)) == 2)
    assert rec.payloads(c) == [b"zero", b"one"]


def test_bad_urls_and_arguments_raise_at_the_call(mgr: mgpy.Manager) -> None:
    with pytest.raises(mgpy.Error):
        connect_mqtt(mgr, "http://127.0.0.1:1883", Recorder())
    with pytest.raises(mgpy.LocalProtocolError):
        connect_mqtt(mgr, "mqtt://127.0.0.1", Recorder(), will=Will("bad/#"))
    with pytest.raises(mgpy.LocalProtocolError):
        connect_mqtt(mgr, "mqtt://127.0.0.1", Recorder(), version=3)


# -- MQTT over WebSocket ------------------------------------------------------------------


def test_mqtt_over_websocket_endpoint(mgr: mgpy.Manager, broker: tuple[MqttBroker, str]) -> None:
    b, url = broker
    http = mgr.bind("127.0.0.1:0", lambda c, ev, d: None)
    http.set_protocol_http_websocket()
    b.serve_websocket(http, "/mqtt")
    rec = Recorder()
    ws = connect_mqtt(
        mgr, f"ws://127.0.0.1:{http.local[1]}/mqtt", rec, client_id="browser", version=5
    )
    wait_for(mgr, lambda: rec.of(ws, MqttEv.CONNACK))
    mqtt_subscribe(ws, "sensors/#", 1)
    wait_for(mgr, lambda: rec.of(ws, MqttEv.SUBACK))
    tcp = connected(mgr, url, rec, client_id="device")
    mqtt_publish(tcp, "sensors/a", b"1", qos=1)
    wait_for(mgr, lambda: rec.of(ws, MqttEv.PUBLISH))
    assert rec.payloads(ws) == [b"1"] and ws.is_websocket
    refused: list[int] = []
    other = mgr.connect_ws(
        f"ws://127.0.0.1:{http.local[1]}/mqtt",
        lambda c, ev, d: refused.append(d.resp_code) if ev == mgpy.Ev.WS_HANDSHAKE_DONE else None,
        protocol="chat",
    )
    wait_for(mgr, lambda: other.closed)
    assert refused == [400]  # [MQTT-6.0.0-3]: no "mqtt" offered


# -- QoS 2 interrupted at each step, then resumed -----------------------------------------


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@pytest.mark.parametrize("cut", ["before PUBREC", "before PUBREL"])
def test_inbound_qos2_interrupted_and_resumed_delivers_once(
    mgr: mgpy.Manager, broker: tuple[MqttBroker, str], cut: str
) -> None:
    _b, url = broker
    rec = Recorder()
    sub = subscribed(mgr, url, rec, "q2", 2, client_id="sub")
    raw = RawClient(mgr, _port(url))
    raw.connect("pub", clean=False)
    raw.send(Publish("q2", b"once", qos=2, packet_id=7))
    if cut == "before PUBREL":
        assert raw.expect() == PubRec(7)
    raw.drop()
    again = RawClient(mgr, _port(url))
    assert again.connect("pub", clean=False).session_present
    if cut == "before PUBREC":  # [MQTT-4.3.3-10]: the resent PUBLISH is acknowledged again
        again.send(Publish("q2", b"once", qos=2, dup=True, packet_id=7))
        assert again.expect() == PubRec(7)
    again.send(PubRel(7))
    assert again.expect() == PubComp(7)
    wait_for(mgr, lambda: rec.of(sub, MqttEv.PUBLISH))
    for _ in range(20):
        mgr.poll(5)
    assert rec.payloads(sub) == [b"once"]


@pytest.mark.parametrize("cut", ["before PUBREC", "before PUBCOMP"])
def test_outbound_qos2_interrupted_and_resumed_delivers_once(
    mgr: mgpy.Manager, broker: tuple[MqttBroker, str], cut: str
) -> None:
    b, url = broker
    raw = RawClient(mgr, _port(url))
    raw.connect("dev", clean=False)
    raw.send(Subscribe(1, [Subscription("q2", 2)]))
    assert isinstance(raw.expect(), Suback)
    b.publish("q2", b"once", qos=2)
    first = raw.expect()
    assert isinstance(first, Publish) and first.qos == 2 and not first.dup
    if cut == "before PUBCOMP":
        raw.send(PubRec(first.packet_id))
        assert raw.expect() == PubRel(first.packet_id)
    raw.drop()
    again = RawClient(mgr, _port(url))
    assert again.connect("dev", clean=False).session_present
    resent = again.expect()
    if cut == "before PUBREC":  # [MQTT-4.4.0-1]: the PUBLISH again, DUP set
        assert isinstance(resent, Publish) and resent.dup and resent.packet_id == first.packet_id
        again.send(PubRec(first.packet_id))
        resent = again.expect()
    assert resent == PubRel(first.packet_id)  # [MQTT-4.3.3-6]: never the PUBLISH after PUBREL
    again.send(PubComp(first.packet_id))
    again.send(b"\xc0\x00")  # PINGREQ: nothing else is pending, the PINGRESP comes next
    assert isinstance(again.expect(), PingResp)


def test_client_keeps_offline_and_unacknowledged_qos1_for_the_resume(
    mgr: mgpy.Manager, broker: tuple[MqttBroker, str]
) -> None:
    _b, url = broker
    rec = Recorder()
    sub = subscribed(mgr, url, rec, "acks", 1, client_id="sub")
    c = connected(mgr, url, rec, client_id="flaky", clean_start=False)
    c.abort()
    wait_for(mgr, lambda: c.closed)
    s = mqtt_session(c)
    mqtt_publish(c, "acks", b"offline", qos=1)  # queued in the session while offline
    assert s.queued == 1
    c2 = connected(mgr, url, rec, client_id="flaky", clean_start=False, session=s)
    wait_for(mgr, lambda: rec.payloads(sub) == [b"offline"] and s.in_flight == 0)
    mqtt_publish(c2, "acks", b"in flight", qos=1)
    assert s.in_flight == 1
    c2.abort()  # before the PUBACK can arrive
    wait_for(mgr, lambda: c2.closed)
    assert s.in_flight == 1
    c3 = connect_mqtt(mgr, url, rec, client_id="flaky", clean_start=False, session=s)
    wait_for(mgr, lambda: s.in_flight == 0 and rec.of(c3, MqttEv.PUBLISH_DONE))
    wait_for(mgr, lambda: b"in flight" in rec.payloads(sub))  # at least once (QoS 1)


def test_session_lost_reports_the_discarded_messages(
    mgr: mgpy.Manager, broker: tuple[MqttBroker, str]
) -> None:
    _b, url = broker
    rec = Recorder()
    c = connect_mqtt(mgr, url, rec, client_id="new", clean_start=False)
    msg = mqtt_publish(c, "t", b"early", qos=1)  # held for a CONNACK that never comes
    c.abort()
    wait_for(mgr, lambda: c.closed)
    c2 = connected(mgr, url, rec, client_id="new", clean_start=False, session=mqtt_session(c))
    assert not rec.of(c2, MqttEv.CONNACK)[0].session_present
    assert rec.of(c2, MqttEv.SESSION_LOST) == [[msg]]  # [MQTT-3.2.2-5]


def test_puback_for_unknown_id_is_ignored(
    mgr: mgpy.Manager, broker: tuple[MqttBroker, str]
) -> None:
    _b, url = broker
    raw = RawClient(mgr, _port(url))
    raw.connect("x")
    raw.send(PubAck(99))
    raw.send(b"\xc0\x00")
    assert isinstance(raw.expect(), PingResp)


def test_manager_close_tells_v5_clients_the_server_is_shutting_down() -> None:
    server = mgpy.Manager()
    try:
        lc = MqttBroker(server).listen("127.0.0.1:0")
        with mgpy.Manager() as client_mgr:
            rec = Recorder()
            c = connect_mqtt(client_mgr, f"mqtt://127.0.0.1:{lc.local[1]}", rec, version=5)
            deadline = client_mgr.monotonic + 5
            while not rec.of(c, MqttEv.CONNACK) and client_mgr.monotonic < deadline:
                server.poll(5)
                client_mgr.poll(5)
            server.close()
            wait_for(client_mgr, lambda: c.closed)
            assert rec.of(c, MqttEv.DISCONNECT)[0].reason_code == ReasonCode.SERVER_SHUTTING_DOWN
    finally:
        server.close()

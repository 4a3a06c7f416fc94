"""mgpy's MQTT client against a real mosquitto 2.0 broker.

One mosquitto per module, on a free 127.0.0.1 port with a generated config (anonymous,
no persistence), stopped by its PID.  Both protocol levels: QoS 0/1/2 in both directions,
retained messages, a will published when the client vanishes, and a persistent session
resumed with a QoS 1 message queued by the broker while the client was away.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import mgpy
from mgpy.mqtt import (
    MqttEv,
    Will,
    connect_mqtt,
    mqtt_disconnect,
    mqtt_publish,
    mqtt_session,
    mqtt_subscribe,
    mqtt_unsubscribe,
)
from tests.net.test_mqtt_helpers import MOSQUITTO, Mosquitto, Recorder, wait_for


@pytest.fixture(autouse=True)
def _needs_mosquitto() -> None:
    if MOSQUITTO is None:
        pytest.fail("mosquitto is not installed: `make test` installs it (tools/sysdeps.sh)")


VERSIONS = [4, 5]


@pytest.fixture(scope="module")
def mosq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    m = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    yield m
    m.stop()


def connected(mgr: mgpy.Manager, url: str, rec: Recorder, **kw: object) -> mgpy.Connection:
    c = connect_mqtt(mgr, url, rec, **kw)  # type: ignore[arg-type]
    wait_for(mgr, lambda: rec.of(c, MqttEv.CONNACK) or c.closed)
    assert rec.of(c, MqttEv.CONNACK)[0].reason_code == 0, rec.of(c, mgpy.Ev.ERROR)
    return c


@pytest.mark.parametrize("version", VERSIONS)
def test_qos_0_1_2_through_mosquitto(mgr: mgpy.Manager, mosq: Mosquitto, version: int) -> None:
    rec = Recorder()
    sub = connected(mgr, mosq.url, rec, client_id=f"sub{version}", version=version)
    mqtt_subscribe(sub, f"it/{version}/#", 2)
    wait_for(mgr, lambda: rec.of(sub, MqttEv.SUBACK))
    assert rec.of(sub, MqttEv.SUBACK)[0].reason_codes == [2]
    pub = connected(mgr, mosq.url, rec, client_id=f"pub{version}", version=version)
    msgs = [mqtt_publish(pub, f"it/{version}/q{q}", f"m{q}", qos=q) for q in (0, 1, 2)]
    wait_for(mgr, lambda: len(rec.of(sub, MqttEv.PUBLISH)) == 3)
    wait_for(mgr, lambda: len(rec.of(pub, MqttEv.PUBLISH_DONE)) == 2)
    got = rec.of(sub, MqttEv.PUBLISH)
    assert [(p.topic, p.payload, p.qos) for p in got] == [
        (f"it/{version}/q{q}", f"m{q}".encode(), q) for q in (0, 1, 2)
    ]
    done = rec.of(pub, MqttEv.PUBLISH_DONE)
    assert [(d.message, d.qos, int(d.reason_code)) for d in done] == [
        (msgs[1], 1, 0),
        (msgs[2], 2, 0),
    ]
    mqtt_unsubscribe(sub, f"it/{version}/#")
    wait_for(mgr, lambda: rec.of(sub, MqttEv.UNSUBACK))
    mqtt_disconnect(sub)
    mqtt_disconnect(pub)
    wait_for(mgr, lambda: sub.closed and pub.closed)
    assert rec.of(None, mgpy.Ev.ERROR) == []


@pytest.mark.parametrize("version", VERSIONS)
def test_retained_message_from_mosquitto(mgr: mgpy.Manager, mosq: Mosquitto, version: int) -> None:
    rec = Recorder()
    pub = connected(mgr, mosq.url, rec, client_id=f"rp{version}", version=version)
    mqtt_publish(pub, f"ret/{version}", b"kept", qos=1, retain=True)
    wait_for(mgr, lambda: rec.of(pub, MqttEv.PUBLISH_DONE))
    late = connected(mgr, mosq.url, rec, client_id=f"rl{version}", version=version)
    mqtt_subscribe(late, f"ret/{version}", 1)
    wait_for(mgr, lambda: rec.of(late, MqttEv.PUBLISH))
    msg = rec.of(late, MqttEv.PUBLISH)[0]
    assert (msg.payload, msg.retain) == (b"kept", True)
    mqtt_publish(pub, f"ret/{version}", b"", qos=1, retain=True)  # clear it for later runs
    wait_for(mgr, lambda: len(rec.of(pub, MqttEv.PUBLISH_DONE)) == 2)


@pytest.mark.parametrize("version", VERSIONS)
def test_will_sent_by_mosquitto_when_the_client_vanishes(
    mgr: mgpy.Manager, mosq: Mosquitto, version: int
) -> None:
    rec = Recorder()
    watcher = connected(mgr, mosq.url, rec, client_id=f"ww{version}", version=version)
    mqtt_subscribe(watcher, f"will/{version}", 1)
    wait_for(mgr, lambda: rec.of(watcher, MqttEv.SUBACK))
    will = Will(f"will/{version}", b"device lost", qos=1)
    dev = connected(mgr, mosq.url, rec, client_id=f"wd{version}", version=version, will=will)
    dev.abort()  # no DISCONNECT: the network connection is simply gone
    wait_for(mgr, lambda: rec.of(watcher, MqttEv.PUBLISH))
    assert rec.payloads(watcher) == [b"device lost"]


@pytest.mark.parametrize("version", VERSIONS)
def test_session_resumed_with_a_message_queued_by_mosquitto(
    mgr: mgpy.Manager, mosq: Mosquitto, version: int
) -> None:
    rec = Recorder()
    cid = f"persist{version}"
    dev = connected(mgr, mosq.url, rec, client_id=cid, clean_start=False, version=version)
    mqtt_subscribe(dev, f"cmd/{version}", 1)
    wait_for(mgr, lambda: rec.of(dev, MqttEv.SUBACK))
    mqtt_disconnect(dev)
    wait_for(mgr, lambda: dev.closed)
    app = connected(mgr, mosq.url, rec, client_id=f"app{version}", version=version)
    mqtt_publish(app, f"cmd/{version}", b"while away", qos=1)
    wait_for(mgr, lambda: rec.of(app, MqttEv.PUBLISH_DONE))
    back = connect_mqtt(
        mgr, mosq.url, rec, client_id=cid, clean_start=False, version=version,
        session=mqtt_session(dev),
    )  # fmt: skip
    wait_for(mgr, lambda: rec.of(back, MqttEv.PUBLISH))
    assert rec.of(back, MqttEv.CONNACK)[0].session_present
    assert rec.payloads(back) == [b"while away"]
    clean = connected(mgr, mosq.url, rec, client_id=cid, version=version)  # end the session
    mqtt_disconnect(clean)


def test_mosquitto_refuses_a_second_connect_without_a_client_id_in_311(
    mgr: mgpy.Manager, mosq: Mosquitto, tmp_path: Path
) -> None:
    with pytest.raises(mgpy.LocalProtocolError):  # [MQTT-3.1.3-7]: caught before sending
        connect_mqtt(mgr, mosq.url, Recorder(), clean_start=False)

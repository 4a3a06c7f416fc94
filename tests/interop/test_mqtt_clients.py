"""Real MQTT clients against mgpy's broker: mosquitto_pub / mosquitto_sub, and paho-mqtt 2.x
(protocol 3.1.1 and 5, over TCP and over WebSocket at the broker's HTTP endpoint).

The broker runs in a Manager polled by a background thread (the clients are blocking
programs or paho's own network thread); every wait has a deadline.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as paho
import pytest

import mgpy
from mgpy.mqtt import MqttBroker
from tests.waiting import wait_until

IO_TIMEOUT = 10.0
PUB = shutil.which("mosquitto_pub")
SUB = shutil.which("mosquitto_sub")


class Served:
    """A broker (TCP + WebSocket endpoint) polled by a thread until stopped."""

    def __init__(self) -> None:
        self.mgr = mgpy.Manager()
        self.broker = MqttBroker(self.mgr)
        self.seen: list[tuple[str, bytes, str]] = []
        self.broker.on_message("", lambda m, who: self.seen.append((m.topic, m.payload, who)))
        self.port = self.broker.listen("127.0.0.1:0").local[1]
        http = self.mgr.bind("127.0.0.1:0", lambda c, ev, d: None)
        http.set_protocol_http_websocket()
        self.broker.serve_websocket(http, "/mqtt")
        self.ws_port = http.local[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            self.mgr.poll(10)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(IO_TIMEOUT)
        self.mgr.close()


@pytest.fixture
def served() -> Iterator[Served]:
    s = Served()
    yield s
    s.close()


def wait(cond: Any, timeout: float = IO_TIMEOUT) -> None:
    wait_until(cond, timeout, "condition met")


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
@pytest.mark.parametrize("qos", ["0", "1", "2"])
def test_mosquitto_sub_receives_what_mosquitto_pub_sends(
    served: Served, version: str, qos: str
) -> None:
    args = ["-h", "127.0.0.1", "-p", str(served.port), "-V", version, "-q", qos]
    sub = subprocess.Popen(
        [SUB, *args, "-t", "dev/+/temp", "-v", "-C", "2", "-W", "10"],  # type: ignore[list-item]
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait(lambda: served.broker.index and len(served.broker.index) == 1)
    for room, value in (("kitchen", "21.5"), ("hall", "19")):
        subprocess.run(
            [PUB, *args, "-t", f"dev/{room}/temp", "-m", value],  # type: ignore[list-item]
            check=True,
            timeout=IO_TIMEOUT,
        )
    out, err = sub.communicate(timeout=IO_TIMEOUT)
    assert sub.returncode == 0, err
    assert out.splitlines() == ["dev/kitchen/temp 21.5", "dev/hall/temp 19"]


def test_mosquitto_sub_gets_the_retained_message(served: Served) -> None:
    args = ["-h", "127.0.0.1", "-p", str(served.port)]
    subprocess.run(
        [PUB, *args, "-t", "lamp", "-m", "on", "-r", "-q", "1"],
        check=True,
        timeout=IO_TIMEOUT,  # type: ignore[list-item]
    )
    out = subprocess.run(
        [SUB, *args, "-t", "lamp", "-C", "1", "-W", "10", "-v"],  # type: ignore[list-item]
        check=True,
        capture_output=True,
        text=True,
        timeout=IO_TIMEOUT,
    ).stdout
    assert out.strip() == "lamp on"


def _paho(protocol: int, transport: str = "tcp", **kw: Any) -> Any:
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=protocol, transport=transport, **kw)
    return c


@pytest.mark.parametrize("transport", ["tcp", "websockets"])
@pytest.mark.parametrize("protocol", ["MQTTv311", "MQTTv5"])
def test_paho_publishes_and_subscribes(served: Served, protocol: str, transport: str) -> None:
    proto = getattr(paho, protocol)
    got: list[tuple[str, bytes, int, bool]] = []
    acked: list[int] = []
    c = _paho(proto, transport, client_id=f"paho-{protocol}-{transport}")
    if transport == "websockets":
        c.ws_set_options(path="/mqtt")
    c.on_message = lambda cl, ud, msg: got.append((msg.topic, msg.payload, msg.qos, msg.retain))
    c.on_subscribe = lambda cl, ud, mid, codes, props: acked.append(mid)
    port = served.ws_port if transport == "websockets" else served.port
    c.connect("127.0.0.1", port, keepalive=30)
    c.loop_start()
    try:
        wait(c.is_connected)
        c.publish("paho/retained", b"r", qos=1, retain=True).wait_for_publish(IO_TIMEOUT)
        c.subscribe("paho/#", qos=2)
        wait(lambda: acked and got)
        infos = [c.publish("paho/x", f"q{q}".encode(), qos=q) for q in (0, 1, 2)]
        for info in infos:
            info.wait_for_publish(IO_TIMEOUT)
        wait(lambda: len(got) == 4)
    finally:
        c.disconnect()
        c.loop_stop()
    assert got[0] == ("paho/retained", b"r", 1, True)
    assert sorted(got[1:]) == [("paho/x", f"q{q}".encode(), q, False) for q in (0, 1, 2)]
    assert [m[:2] for m in list(served.seen) if m[0] == "paho/x"] == [
        ("paho/x", f"q{q}".encode()) for q in (0, 1, 2)
    ]


@pytest.mark.parametrize("protocol", ["MQTTv311", "MQTTv5"])
def test_paho_will_is_delivered_to_another_paho(served: Served, protocol: str) -> None:
    proto = getattr(paho, protocol)
    got: list[bytes] = []
    watcher = _paho(proto, client_id="watcher")
    watcher.on_message = lambda cl, ud, msg: got.append(msg.payload)
    watcher.connect("127.0.0.1", served.port)
    watcher.loop_start()
    dying = _paho(proto, client_id="dying")
    dying.will_set("status/dying", b"bye", qos=1)
    dying.connect("127.0.0.1", served.port)
    try:
        wait(watcher.is_connected)
        watcher.subscribe("status/#", qos=1)
        wait(lambda: served.broker.index and len(served.broker.index) == 1)
        dying.loop(timeout=1.0)  # CONNECT / CONNACK
        wait(lambda: served.broker.clients == 2)
        dying.socket().close()  # vanish without DISCONNECT
        wait(lambda: got)
    finally:
        watcher.disconnect()
        watcher.loop_stop()
    assert got == [b"bye"]

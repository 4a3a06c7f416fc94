"""examples/mqtt_device.py and examples/mqtt_bridge.py, run as a user runs them.

mgpy's broker runs in this process on a thread that polls its Manager; the application
side (``publish``) reaches it through ``Manager.broadcast``, the thread-safe entry point.
The examples are subprocesses whose output lines are waited for with deadlines.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import websockets.sync.client as websockets_sync

import mgpy
from mgpy.mqtt import MqttBroker
from tests.examples._proc import example
from tests.waiting import wait_until

IO_TIMEOUT = 15.0


class Served:
    """An mgpy broker polled by a thread; every message it routes is recorded."""

    def __init__(self) -> None:
        self.mgr = mgpy.Manager()
        self.broker = MqttBroker(self.mgr)
        self.seen: list[tuple[str, bytes, bool]] = []
        self.broker.on_message("", lambda m, who: self.seen.append((m.topic, m.payload, m.retain)))
        self.url = f"mqtt://127.0.0.1:{self.broker.listen('127.0.0.1:0').local[1]}"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            self.mgr.poll(10)

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish from the application, on the loop thread."""
        done: list[int] = []

        def once(c: mgpy.Connection, ev: int, data: Any) -> None:
            if c.is_listener and c.proto_data is self.broker and not done:
                done.append(self.broker.publish(topic, payload, qos))

        self.mgr.broadcast(once)
        wait(lambda: done)

    def messages(self, topic: str) -> list[bytes]:
        return [p for t, p, _r in list(self.seen) if t == topic]

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


@pytest.mark.parametrize("name", ["mqtt_device.py", "mqtt_bridge.py"])
def test_help(name: str) -> None:
    p = example(name, "--help")
    assert p.wait() == 0 and "--mqtt-version" in p.stdout()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_device_publishes_telemetry_obeys_commands_and_says_goodbye(
    served: Served, sig: int
) -> None:
    dev = example("mqtt_device.py", "--broker", served.url, "--id", "d1", "--interval", "0.1")
    try:
        dev.wait_for(r"connected to .* as d1")
        wait(lambda: len(served.messages("devices/d1/telemetry")) >= 2)
        sample = json.loads(served.messages("devices/d1/telemetry")[0])
        assert set(sample) == {"temp", "uptime"}
        assert served.messages("devices/d1/status") == [b"online"]
        served.publish("devices/d1/cmd/ping", b"42")
        dev.wait_for(r"command ping=42")
        wait(lambda: served.messages("devices/d1/pong") == [b"42"])
        assert dev.stop(sig) == 0
    finally:
        dev.kill()
    assert served.messages("devices/d1/status")[-1] == b"offline"
    assert "stopped after" in dev.stdout() and dev.stderr() == ""


def test_device_reconnects_and_its_will_reports_a_lost_connection(served: Served) -> None:
    dev = example("mqtt_device.py", "--broker", served.url, "--id", "d2", "--retry", "0.2")
    try:
        dev.wait_for(r"connected to .* as d2")
        served.mgr.broadcast(_cut_clients)  # the network drops: no DISCONNECT on either side
        dev.wait_for(r"connection lost; retrying")
        wait(lambda: b"lost" in served.messages("devices/d2/status"))  # the will
        wait(lambda: dev.stdout().count("connected to") == 2)
        assert dev.stop() == 0
    finally:
        dev.kill()


def _cut_clients(c: mgpy.Connection, ev: int, data: Any) -> None:
    if not c.is_listener:
        c.abort()


def test_device_refuses_a_bad_broker_url() -> None:
    p = example("mqtt_device.py", "--broker", "http://127.0.0.1:1")
    assert p.wait() == 2 and "mqtt_device:" in p.stderr()


def test_bridge_pushes_mqtt_to_websocket_and_back(served: Served) -> None:
    br = example(
        "mqtt_bridge.py", "--remote", served.url, "--topic", "sensors/#", "--listen", "127.0.0.1:0"
    )
    try:
        url = br.wait_for(r"websocket on (ws://\S+)").group(1)
        br.wait_for(r"bridging")
        wait(lambda: len(served.broker.index) == 1)
        with websockets_sync.connect(url) as ws:
            served.publish("sensors/kitchen/temp", b"21.5")
            msg = json.loads(ws.recv(timeout=IO_TIMEOUT))
            assert msg == {
                "topic": "sensors/kitchen/temp",
                "payload": "21.5",
                "qos": 1,
                "retain": False,
            }
            served.publish("sensors/raw", b"\xff\x00")
            msg = json.loads(ws.recv(timeout=IO_TIMEOUT))
            assert msg["base64"] is True and msg["payload"] == "/wA="
            ws.send(json.dumps({"topic": "cmd/lamp", "payload": "on", "qos": 1}))
            wait(lambda: served.messages("cmd/lamp") == [b"on"])
            ws.send("not json")
            assert "error" in json.loads(ws.recv(timeout=IO_TIMEOUT))
        assert br.stop(signal.SIGINT) == 0
    finally:
        br.kill()

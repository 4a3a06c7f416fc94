"""A simulated MQTT device: publishes telemetry, obeys commands, says when it goes away.

It connects to a broker (mosquitto, mgpy's own, any MQTT 3.1.1/5 broker) and

- publishes ``devices/<id>/telemetry`` (JSON: a temperature that drifts, an uptime) every
  ``--interval`` seconds at QoS 1;
- subscribes to ``devices/<id>/cmd/#``: ``cmd/interval`` with a number changes the
  interval, ``cmd/ping`` is answered on ``devices/<id>/pong``; every command is printed;
- keeps ``devices/<id>/status`` retained: "online" once connected, "offline" when it stops
  cleanly, and -- as its will -- "lost" if the broker loses it without a goodbye;
- reconnects after a lost connection (every ``--retry`` seconds), resuming its persistent
  session so no QoS 1 message is lost;
- on Ctrl-C (SIGINT) or SIGTERM: "offline", DISCONNECT, exit 0.

Try it:  mosquitto -p 1883 &   (or: python -c "...MqttBroker(mgr).listen('127.0.0.1:1883')...")
         python examples/mqtt_device.py --broker mqtt://127.0.0.1:1883 --id dev1
         mosquitto_pub -t devices/dev1/cmd/interval -m 0.5
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
from typing import Any

import mgpy
from mgpy.mqtt import (
    MqttEv,
    Session,
    Will,
    connect_mqtt,
    mqtt_disconnect,
    mqtt_publish,
    mqtt_session,
    mqtt_subscribe,
)


class Device:
    """The device's state and its one handler."""

    def __init__(self, mgr: mgpy.Manager, args: argparse.Namespace) -> None:
        self.mgr = mgr
        self.args = args
        self.base = f"devices/{args.id}"
        self.interval = args.interval
        self.started = time.monotonic()
        self.conn: mgpy.Connection | None = None
        self.session: Session | None = None
        self.online = False
        self.sent = 0
        self.stopping = False

    def connect(self) -> None:
        will = Will(f"{self.base}/status", b"lost", qos=1, retain=True)
        self.conn = connect_mqtt(
            self.mgr,
            self.args.broker,
            self.handler,
            client_id=self.args.id,
            clean_start=self.session is None,
            session=self.session,
            will=will,
            version=self.args.mqtt_version,
        )
        self.session = mqtt_session(self.conn)

    def handler(self, c: mgpy.Connection, ev: int, ev_data: Any) -> None:
        if ev == MqttEv.CONNACK and ev_data.reason_code == 0:
            self.online = True
            print(f"connected to {self.args.broker} as {self.args.id}", flush=True)
            mqtt_subscribe(c, f"{self.base}/cmd/#", qos=1)
            mqtt_publish(c, f"{self.base}/status", b"online", qos=1, retain=True)
        elif ev == MqttEv.PUBLISH:
            self.command(c, ev_data.topic.rpartition("/")[2], ev_data.payload)
        elif ev == mgpy.Ev.ERROR:
            print(f"error: {ev_data}", flush=True)
        elif ev == mgpy.Ev.CLOSE and c is self.conn:
            self.online = False
            if not self.stopping:
                print(f"connection lost; retrying in {self.args.retry:g}s", flush=True)
                self.mgr.call_later(self.args.retry, self.connect)

    def command(self, c: mgpy.Connection, name: str, payload: bytes) -> None:
        text = payload.decode("utf-8", "replace")
        print(f"command {name}={text}", flush=True)
        if name == "interval":
            try:
                value = float(text)
            except ValueError:
                return
            if math.isfinite(value) and value > 0:
                self.interval = value
        elif name == "ping":
            mqtt_publish(c, f"{self.base}/pong", payload, qos=1)

    def tick(self) -> None:
        """Publish one telemetry message (QoS 1: queued in the session while offline)."""
        if self.conn is not None and self.online:
            up = time.monotonic() - self.started
            data = {"temp": round(21 + 2 * math.sin(up / 30), 2), "uptime": round(up, 1)}
            mqtt_publish(self.conn, f"{self.base}/telemetry", json.dumps(data), qos=1)
            self.sent += 1
        if not self.stopping:
            self.mgr.call_later(self.interval, self.tick)

    def goodbye(self) -> None:
        """Say "offline", disconnect, and give the broker a moment to read it."""
        self.stopping = True
        c = self.conn
        if c is None or not self.online:
            return
        mqtt_publish(c, f"{self.base}/status", b"offline", qos=0, retain=True)
        mqtt_disconnect(c)
        deadline = time.monotonic() + 2.0
        while not c.closed and time.monotonic() < deadline:
            self.mgr.poll(20)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="A simulated MQTT device (telemetry + commands).")
    ap.add_argument(
        "--broker", default="mqtt://127.0.0.1:1883", help="broker URL (mqtt://, mqtts://, ws://)"
    )
    ap.add_argument("--id", default="dev1", help="client id and topic name (default dev1)")
    ap.add_argument("--interval", type=float, default=5.0, help="seconds between telemetry (5)")
    ap.add_argument("--retry", type=float, default=2.0, help="seconds before reconnecting (2)")
    ap.add_argument(
        "--mqtt-version", type=int, choices=(4, 5), default=4, help="4 = 3.1.1, 5 = 5.0"
    )
    args = ap.parse_args(argv)
    if not (math.isfinite(args.interval) and args.interval > 0):
        ap.error("--interval must be a positive number")
    stop: list[int] = []
    with mgpy.Manager() as mgr:

        def on_signal(*_: object) -> None:
            stop.append(1)
            mgr.wakeup()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        dev = Device(mgr, args)
        try:
            dev.connect()
        except mgpy.Error as e:
            print(f"mqtt_device: {e}", file=sys.stderr)
            return 2
        mgr.call_later(args.interval, dev.tick)
        while not stop:
            mgr.poll(1000)
        dev.goodbye()
        print(f"stopped after {dev.sent} telemetry messages", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

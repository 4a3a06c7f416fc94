"""Bridge a remote MQTT broker's topics to browsers over WebSocket, in one loop.

The bridge subscribes to ``--topic`` (default ``#``) on the remote broker and serves a
local HTTP listener: every MQTT message is pushed to each client of the WebSocket at
``/ws`` as a JSON text message ``{"topic": ..., "payload": ..., "qos": ..., "retain": ...}``
(the payload decoded as UTF-8, or base64 with ``"base64": true``).  A browser may publish
too: a text message ``{"topic": "...", "payload": "...", "qos": 0|1}`` is published to the
remote broker.  ``GET /`` answers with a one-line status.  When the remote broker is lost
the bridge reconnects every ``--retry`` seconds (the WebSocket clients stay connected).
Ctrl-C (SIGINT) or SIGTERM: DISCONNECT from the broker, close the WebSockets (1001), exit 0.

Try it:  python examples/mqtt_bridge.py --remote mqtt://test.example:1883 --topic 'sensors/#'
         then connect a WebSocket to ws://127.0.0.1:8080/ws
"""

from __future__ import annotations

import argparse
import base64
import json
import signal
import sys
from typing import Any

import mgpy
from mgpy.mqtt import (
    MqttEv,
    QueueFull,
    connect_mqtt,
    mqtt_disconnect,
    mqtt_publish,
    mqtt_subscribe,
)


class Bridge:
    """The remote MQTT connection and the local WebSocket clients."""

    def __init__(self, mgr: mgpy.Manager, args: argparse.Namespace) -> None:
        self.mgr = mgr
        self.args = args
        self.remote: mgpy.Connection | None = None
        self.online = False
        self.stopping = False
        self.forwarded = 0

    # -- the MQTT side ------------------------------------------------------------
    def connect(self) -> None:
        self.remote = connect_mqtt(
            self.mgr,
            self.args.remote,
            self.on_mqtt,
            client_id=self.args.client_id,
            version=self.args.mqtt_version,
        )

    def on_mqtt(self, c: mgpy.Connection, ev: int, ev_data: Any) -> None:
        if ev == MqttEv.CONNACK and ev_data.reason_code == 0:
            self.online = True
            mqtt_subscribe(c, self.args.topic, qos=1)
            print(f"bridging {self.args.remote} {self.args.topic!r}", flush=True)
        elif ev == MqttEv.PUBLISH:
            self.push(ev_data.topic, ev_data.payload, ev_data.qos, ev_data.retain)
        elif ev == mgpy.Ev.ERROR:
            print(f"remote error: {ev_data}", flush=True)
        elif ev == mgpy.Ev.CLOSE and c is self.remote:
            self.online = False
            if not self.stopping:
                print(f"remote lost; retrying in {self.args.retry:g}s", flush=True)
                self.mgr.call_later(self.args.retry, self.connect)

    def push(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        msg: dict[str, Any] = {"topic": topic, "qos": qos, "retain": retain}
        try:
            msg["payload"] = payload.decode("utf-8")
        except UnicodeDecodeError:
            msg["payload"] = base64.b64encode(payload).decode()
            msg["base64"] = True
        text = json.dumps(msg)
        for c in self.mgr.connections:
            if c.is_websocket and not c.is_closing:
                c.send_websocket_frame(mgpy.WS_OP_TEXT, text)
        self.forwarded += 1

    # -- the WebSocket side ---------------------------------------------------------
    def on_http(self, c: mgpy.Connection, ev: int, ev_data: Any) -> None:
        if ev == mgpy.Ev.HTTP_REQUEST:
            state = "online" if self.online else "offline"
            mgpy.http_reply(c, 200, f"mqtt bridge: remote {state}, {self.forwarded} forwarded\n")
        elif ev == mgpy.Ev.WS_FRAME and ev_data.opcode == mgpy.WS_OP_TEXT:
            self.publish_from_browser(c, ev_data.text)

    def publish_from_browser(self, c: mgpy.Connection, text: str) -> None:
        try:
            msg = json.loads(text)
            topic, payload, qos = (
                str(msg["topic"]),
                str(msg.get("payload", "")),
                int(msg.get("qos", 0)),
            )
        except (ValueError, KeyError, TypeError):
            c.send_websocket_frame(mgpy.WS_OP_TEXT, '{"error": "expected {topic, payload, qos}"}')
            return
        if self.remote is None or not self.online or qos not in (0, 1):
            c.send_websocket_frame(mgpy.WS_OP_TEXT, '{"error": "remote offline or bad qos"}')
            return
        try:
            mqtt_publish(self.remote, topic, payload, qos=qos)
        except (mgpy.LocalProtocolError, QueueFull) as e:
            c.send_websocket_frame(mgpy.WS_OP_TEXT, json.dumps({"error": str(e)}))

    def goodbye(self) -> None:
        self.stopping = True
        c = self.remote
        if c is not None and self.online:
            mqtt_disconnect(c)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Bridge MQTT topics to a local WebSocket.")
    ap.add_argument("--remote", default="mqtt://127.0.0.1:1883", help="remote broker URL")
    ap.add_argument("--topic", default="#", help="topic filter to bridge (default #)")
    ap.add_argument("--listen", default="127.0.0.1:8080", help="local HTTP/WebSocket address")
    ap.add_argument("--client-id", default="mgpy-bridge", help="client id at the remote broker")
    ap.add_argument("--retry", type=float, default=2.0, help="seconds before reconnecting (2)")
    ap.add_argument(
        "--mqtt-version", type=int, choices=(4, 5), default=4, help="4 = 3.1.1, 5 = 5.0"
    )
    args = ap.parse_args(argv)
    stop: list[int] = []
    with mgpy.Manager() as mgr:

        def on_signal(*_: object) -> None:
            stop.append(1)
            mgr.wakeup()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        bridge = Bridge(mgr, args)
        try:
            lc = mgr.bind(args.listen, bridge.on_http)
            bridge.connect()
        except mgpy.Error as e:
            print(f"mqtt_bridge: {e}", file=sys.stderr)
            return 2
        lc.set_protocol_http_websocket()
        print(f"websocket on ws://{lc.local[0]}:{lc.local[1]}/ws", flush=True)
        while not stop:
            mgr.poll(1000)
        bridge.goodbye()
        for _ in range(10):  # let the DISCONNECT go out
            mgr.poll(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())

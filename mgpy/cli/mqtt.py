"""``mgpy --mqtt ADDR``: an MQTT broker beside the web server, bridged to the dashboard.

The broker (``mgpy.mqtt.MqttBroker``) listens on ``ADDR`` and also serves MQTT over
WebSocket at ``/mqtt`` of the HTTP listener (subprotocol "mqtt", for browsers).  Every
message published under ``--mqtt-prefix`` (default ``sensors/``) is pushed to the
dashboard's /ws/push clients as ``{"type": "mqtt", "topic": ..., "value": <number or
null>, "payload": <text>, "time": ...}``: a device that publishes ``sensors/kitchen/temp``
gets a line on the dashboard's device chart.  With ``--auth-file`` the broker asks for a
username and password too, checked against the same htdigest file (realm
``--auth-realm``): HA1 = MD5(user:realm:password).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from ..http.auth import load_htdigest
from ..mqtt import MqttBroker, ReasonCode
from ..proto.digest import check_password
from ..proto.mqtt import Publish

__all__ = ["DASHBOARD_MAX_PAYLOAD", "start_broker"]

#: payload bytes of an MQTT message shown on the dashboard (longer ones are cut)
DASHBOARD_MAX_PAYLOAD = 256


def _htdigest_auth(path: str, realm: str) -> Callable[[str, str | None, bytes | None], Any]:
    """An MQTT auth hook checking username/password against an htdigest file."""

    def auth(client_id: str, username: str | None, password: bytes | None) -> Any:
        if username is None or password is None:
            return ReasonCode.NOT_AUTHORIZED
        try:
            text = password.decode("utf-8")  # htdigest hashes the password's UTF-8 bytes
        except UnicodeDecodeError:
            return ReasonCode.BAD_USER_NAME_OR_PASSWORD
        if check_password(load_htdigest(path), username, realm, text):
            return True
        return ReasonCode.BAD_USER_NAME_OR_PASSWORD

    return auth


def dashboard_line(msg: Publish) -> str:
    """The /ws/push message for an MQTT publish (docs/push_protocol.md, type "mqtt")."""
    text = bytes(msg.payload[:DASHBOARD_MAX_PAYLOAD]).decode("utf-8", "replace")
    try:
        value: float | None = float(text.strip())
        if value != value or value in (float("inf"), float("-inf")):
            value = None
    except ValueError:
        value = None
    return json.dumps(
        {"type": "mqtt", "topic": msg.topic, "value": value, "payload": text, "time": time.time()},
        separators=(",", ":"),
    )


def start_broker(
    srv: Any, http_listener: Any, addr: str, prefix: str, auth_file: str | None, realm: str
) -> MqttBroker:
    """Start the broker on ``addr`` and at /mqtt, and bridge ``prefix`` to the dashboard."""
    auth = _htdigest_auth(auth_file, realm) if auth_file else None
    broker = MqttBroker(srv.mgr, auth=auth)
    broker.listen(addr)
    broker.serve_websocket(http_listener, "/mqtt")
    broker.on_message(prefix, lambda msg, client_id: srv.push.local("mqtt", dashboard_line(msg)))
    return broker

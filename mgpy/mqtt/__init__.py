"""MQTT 3.1.1 / 5.0 for mgpy: the client, the broker, and MQTT over WebSocket.

Built on ``mgpy.proto.mqtt`` (the sans-IO codec, topics, retained store and sessions)
and on the public protocol interface of ``mgpy.core`` (docs/protocols.md), like HTTP and
WebSocket.  Events are ``MqttEv`` (130-139).
"""

from __future__ import annotations

from ..proto.mqtt import (
    MQTT_V5,
    MQTT_V311,
    Properties,
    PublishDone,
    PublishTemplate,
    QueueFull,
    ReasonCode,
    Session,
    Subscription,
    Will,
)
from .broker import AuthHook, MessageHook, MqttBroker, mqtt_broker
from .client import (
    connect_mqtt,
    mqtt_disconnect,
    mqtt_ping,
    mqtt_publish,
    mqtt_session,
    mqtt_subscribe,
    mqtt_unsubscribe,
)
from .events import MqttEv

__all__ = [
    "MQTT_V5",
    "MQTT_V311",
    "AuthHook",
    "MessageHook",
    "MqttBroker",
    "MqttEv",
    "Properties",
    "PublishDone",
    "PublishTemplate",
    "QueueFull",
    "ReasonCode",
    "Session",
    "Subscription",
    "Will",
    "connect_mqtt",
    "mqtt_broker",
    "mqtt_disconnect",
    "mqtt_ping",
    "mqtt_publish",
    "mqtt_session",
    "mqtt_subscribe",
    "mqtt_unsubscribe",
]

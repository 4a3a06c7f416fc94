"""MQTT event numbers (the block 130-139) and what each event carries.

mgpy's ``Ev`` keeps mongoose 6's numbers for the core, HTTP and WebSocket events; MQTT
takes the next free block, 130-139, so a handler compares ``ev == MqttEv.PUBLISH`` the
same way it compares ``ev == Ev.WS_FRAME``.  Each payload is the decoded packet itself
(``mgpy.proto.mqtt``), never a copy: a ``Publish`` has ``topic``, ``payload``, ``qos``,
``retain``, ``dup``, ``packet_id`` and ``properties``.
"""

from __future__ import annotations

import enum

__all__ = ["MqttEv"]


class MqttEv(enum.IntEnum):
    """MQTT events delivered to ``handler(c, ev, ev_data)``."""

    #: client: the server's CONNACK (``Connack``: ``reason_code``, ``session_present``,
    #: ``properties``); a refusal (reason >= 0x80) is followed by ERROR and CLOSE
    CONNACK = 130
    #: a PUBLISH received (``Publish``); QoS 1/2 are acknowledged by mgpy, each message
    #: is delivered once (a QoS 2 duplicate is not delivered again).  On a broker
    #: connection: a message this client published (already routed)
    PUBLISH = 131
    #: client: ``Suback`` (``packet_id``, one ``reason_codes`` entry per filter: the
    #: granted QoS or a failure >= 0x80)
    SUBACK = 132
    #: client: ``Unsuback`` (``packet_id``, ``reason_codes`` in 5.0)
    UNSUBACK = 133
    #: one of our QoS 1/2 publishes completed (``PublishDone``: ``message`` is the object
    #: ``mqtt_publish`` returned, ``reason_code`` < 0x80 = accepted)
    PUBLISH_DONE = 134
    #: the peer's DISCONNECT (``Disconnect``: ``reason_code``, ``properties``); CLOSE follows
    DISCONNECT = 135
    #: client: the server had no session to resume (CONNACK Session Present 0 after a
    #: ``clean_start=False`` connect): ``list[PublishTemplate]`` of our QoS 1/2 messages
    #: discarded with the session [MQTT-3.2.2-5], so the application may publish them again
    SESSION_LOST = 136
    #: broker: a client's CONNECT was accepted (``Connect``; the CONNACK is on its way)
    CLIENT_CONNECT = 137
    #: broker: a client subscribed (``Subscribe``, after the SUBACK was queued)
    SUBSCRIBE = 138
    #: broker: a client unsubscribed (``Unsubscribe``)
    UNSUBSCRIBE = 139

"""Micro-benchmarks of the sans-IO MQTT core (mgpy/proto/mqtt*.py).

Run: ``.venv/bin/python bench/micro_mqtt.py [--quick]``.  Prints microseconds per
operation (best of 5 timeit repeats) and, last, the CPU-only broker fan-out rate: one
64-byte PUBLISH decoded, matched against the subscription index and encoded for 100
subscribers, in messages delivered per second (no sockets: the ceiling the socket
layer can reach).  Budgets from issue 17: the broker must deliver >= 2x amqtt and within
3x of mosquitto on one core; mosquitto delivers on the order of 10^6 small messages/s
per core, so the core's share per delivered message must stay well under 1 us.
"""

from __future__ import annotations

import sys
import timeit
from collections.abc import Callable

from mgpy.proto.mqtt import (
    MQTT_V5,
    MQTT_V311,
    Connack,
    Connect,
    MqttReader,
    PubAck,
    Publish,
    PublishTemplate,
    Session,
    SubOptions,
    SubscriptionIndex,
)

PAYLOAD = bytes(range(64))
TOPIC = "sensors/kitchen/temp"
SUBSCRIBERS = 100


def _best(fn: Callable[[], object], number: int) -> float:
    """Best-of-5 microseconds per call."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def _server_reader(version: int) -> MqttReader:
    r = MqttReader(side="server")
    r.next_event(Connect("bench", version=version).encode())
    return r


def _client_reader(version: int) -> MqttReader:
    r = MqttReader(version, side="client")
    r.next_event(Connack().encode(version))
    return r


def _index(filters: int) -> SubscriptionIndex[int]:
    """100 subscribers on the benchmark topic's filter, plus ``filters`` unrelated ones."""
    idx: SubscriptionIndex[int] = SubscriptionIndex()
    for i in range(SUBSCRIBERS):
        idx.subscribe("sensors/+/temp", i, SubOptions(1))
    for i in range(filters):
        idx.subscribe(f"devices/{i}/+/state", 10_000 + i, SubOptions(0))
        idx.subscribe(f"site/{i % 50}/#", 20_000 + i, SubOptions(0))
    return idx


def _codec_rows(version: int, k: int) -> list[tuple[str, float]]:
    """Decode and encode a 64-byte PUBLISH at QoS 0 and 1."""
    v = "3.1.1" if version == MQTT_V311 else "5.0"
    r = _server_reader(version)
    q0 = bytearray(Publish(TOPIC, PAYLOAD).encode(version))
    q1 = bytearray(Publish(TOPIC, PAYLOAD, 1, packet_id=7).encode(version))
    pub0 = Publish(TOPIC, PAYLOAD)
    pub1 = Publish(TOPIC, PAYLOAD, 1, packet_id=7)
    return [
        (f"decode PUBLISH QoS 0, 64 B ({v})", _best(lambda: r.next_event(q0), 200_000 // k)),
        (f"decode PUBLISH QoS 1, 64 B ({v})", _best(lambda: r.next_event(q1), 200_000 // k)),
        (f"Publish.encode QoS 0 ({v})", _best(lambda: pub0.encode(version), 100_000 // k)),
        (f"Publish.encode QoS 1 ({v})", _best(lambda: pub1.encode(version), 100_000 // k)),
    ]


def run(quick: bool) -> list[tuple[str, float]]:
    """Time every case."""
    k = 10 if quick else 1
    out: list[tuple[str, float]] = []
    for version in (MQTT_V311, MQTT_V5):
        out += _codec_rows(version, k)
    t = PublishTemplate(TOPIC, PAYLOAD)
    t.encode(MQTT_V5, 1, 1)
    out.append(
        ("PublishTemplate.encode QoS 0 (cached)", _best(lambda: t.encode(MQTT_V5), 500_000 // k))
    )
    out.append(
        (
            "PublishTemplate.encode QoS 1 (cached)",
            _best(lambda: t.encode(MQTT_V5, 1, 9), 500_000 // k),
        )
    )
    out.append(
        (
            "PublishTemplate() + first encode",
            _best(lambda: PublishTemplate(TOPIC, PAYLOAD).encode(MQTT_V5), 100_000 // k),
        )
    )
    small = _index(0)
    big = _index(1000)
    out.append(("match, 100 subscribers, cached", _best(lambda: small.match(TOPIC), 500_000 // k)))

    topics = [f"devices/{i}/x/state" for i in range(5000)]
    it = iter(range(10**9))

    def distinct() -> object:
        return big.match(topics[next(it) % 5000])

    out.append(("match, 2000 filters, 5000 topics (cache misses)", _best(distinct, 50_000 // k)))

    s = Session("server", max_inflight=0)
    s.connection_made()
    ack_reader = _server_reader(MQTT_V5)

    def qos1_cycle() -> object:
        data = s.publish(t, 1)
        pid = (data[-len(PAYLOAD) - 3] << 8) | data[-len(PAYLOAD) - 2]
        return s.receive(PubAck(pid))

    out.append(("Session QoS 1 publish + PUBACK", _best(qos1_cycle, 100_000 // k)))
    ack = bytearray(PubAck(5).encode(MQTT_V5))
    out.append(("decode PUBACK", _best(lambda: ack_reader.next_event(ack), 200_000 // k)))

    # -- fan-out: one message in, SUBSCRIBERS out, CPU only --------------------------------
    sessions = []
    for _ in range(SUBSCRIBERS):
        ss = Session("server", max_inflight=0)
        ss.connection_made()
        sessions.append(ss)
    r5 = _server_reader(MQTT_V5)
    wire = bytearray(Publish(TOPIC, PAYLOAD).encode(MQTT_V5))
    wire1 = bytearray(Publish(TOPIC, PAYLOAD, 1, packet_id=3).encode(MQTT_V5))
    sinks: list[bytes] = []

    def fanout_qos0() -> None:
        pkt, _ = r5.next_event(wire)
        msg = PublishTemplate(pkt.topic, pkt.payload, pkt.properties)  # type: ignore[union-attr]
        for _sub in small.match(pkt.topic):  # type: ignore[union-attr]
            sinks.append(msg.encode(MQTT_V5))
        sinks.clear()

    pid_at = 2 + 2 + len(TOPIC)  # type byte, 1-byte length, topic: then the packet id
    sent: list[tuple[Session, bytes]] = []

    def fanout_qos1() -> None:
        pkt, _ = r5.next_event(wire1)
        msg = PublishTemplate(pkt.topic, pkt.payload, pkt.properties)  # type: ignore[union-attr]
        for sub, opts in small.match(pkt.topic).items():  # type: ignore[union-attr]
            ss = sessions[sub]
            sent.append((ss, ss.publish(msg, opts.qos)))
        for ss, data in sent:  # the subscribers' PUBACKs
            ss.receive(PubAck((data[pid_at] << 8) | data[pid_at + 1]))
        sent.clear()

    n = 2_000 // k
    out.append((f"fan-out QoS 0 to {SUBSCRIBERS}: per message in", _best(fanout_qos0, n)))
    out.append((f"fan-out QoS 1 to {SUBSCRIBERS} (+ their PUBACKs)", _best(fanout_qos1, n // 4)))
    return out


def main() -> None:
    quick = "--quick" in sys.argv
    rows = run(quick)
    print(f"{'us per op':52}{'us':>10}")
    for label, us in rows:
        print(f"{label:52}{us:10.2f}")
    for label, us in rows:
        if label.startswith("fan-out"):
            rate = SUBSCRIBERS / us * 1e6
            print(f"{label.split(':')[0]:52}{rate:10,.0f} deliveries/s (CPU only)")


if __name__ == "__main__":
    main()

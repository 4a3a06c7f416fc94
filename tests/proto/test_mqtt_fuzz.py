"""Fuzzing the MQTT reader: any input decodes or raises MqttError (the documented error,
with a reason code), nothing else; fed whole and byte by byte it gives the same result;
whatever decodes re-encodes to packets that decode the same."""

from __future__ import annotations

import random

import pytest

from mgpy.proto.mqtt import (
    MQTT_V5,
    MQTT_V311,
    Auth,
    Connack,
    Connect,
    Disconnect,
    MqttError,
    MqttReader,
    Packet,
    PingReq,
    PingResp,
    Properties,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    ReasonCode,
    Suback,
    Subscribe,
    Subscription,
    Unsuback,
    Unsubscribe,
    Will,
)
from tests.proto.test_mqtt_helpers import CONNACK_BYTES, CONNECT_BYTES, drive, receive

SEED = 1883
TOPICS = ["a", "a/b", "s/+/t", "x/#", "#", "$SYS/x", "$share/g/a", "\u00e9/\U0001f600", "/"]


def rnd_props(rnd: random.Random, v: int, reason: bool = True, **kw: object) -> Properties:
    if v != MQTT_V5 or rnd.random() < 0.5:
        return Properties()
    base: dict[str, object] = {"user_properties": (("k", "v"),) * rnd.randrange(3)}
    if reason and rnd.random() < 0.5:
        base["reason_string"] = "r"
    base.update(kw)
    return Properties(**base)  # type: ignore[arg-type]


def rnd_packet(rnd: random.Random, v: int, side: str) -> Packet:
    """A valid packet the peer of ``side`` may send on an open connection."""
    pid = rnd.randrange(1, 65536)
    name = rnd.choice([t for t in TOPICS if "+" not in t and "#" not in t])
    if side == "server":
        kinds = ["pub", "ack", "sub", "unsub", "ping", "disc"]
    else:
        kinds = ["pub", "ack", "suback", "unsuback", "pingresp"] + (["disc"] if v == 5 else [])
    if v == MQTT_V5:
        kinds.append("auth")
    kind = rnd.choice(kinds)
    if kind == "pub":
        qos = rnd.randrange(3)
        msg = {"message_expiry_interval": rnd.randrange(100)} if rnd.random() < 0.3 else {}
        return Publish(
            name,
            rnd.randbytes(rnd.choice([0, 1, 10, 200])),
            qos,
            rnd.random() < 0.5,
            qos > 0 and rnd.random() < 0.5,
            pid if qos else 0,
            rnd_props(rnd, v, False, **msg),
        )
    if kind == "ack":
        cls = rnd.choice([PubAck, PubRec, PubRel, PubComp])
        code = rnd.choice(sorted({0, 0x92} if cls in (PubRel, PubComp) else {0, 0x10, 0x80}))
        return cls(pid, ReasonCode(code) if v == 5 else 0, rnd_props(rnd, v))
    if kind == "sub":
        subs = [
            Subscription(
                rnd.choice(TOPICS),
                rnd.randrange(3),
                retain_handling=rnd.randrange(3) if v == 5 else 0,
            )
            for _ in range(rnd.randrange(1, 4))
        ]
        return Subscribe(pid, subs, rnd_props(rnd, v, False))
    if kind == "unsub":
        return Unsubscribe(pid, rnd.sample(TOPICS, rnd.randrange(1, 4)), rnd_props(rnd, v, False))
    if kind == "suback":
        return Suback(pid, [rnd.choice([0, 1, 2, 0x80]) for _ in range(rnd.randrange(1, 4))])
    if kind == "unsuback":
        return Unsuback(pid, [0, 0x11] if v == 5 else [])
    if kind == "ping":
        return PingReq()
    if kind == "pingresp":
        return PingResp()
    if kind == "disc":
        return Disconnect(
            ReasonCode(rnd.choice([0, 0x04 if side == "server" else 0x8B])) if v == 5 else 0
        )
    return Auth(ReasonCode.RE_AUTHENTICATE, Properties(authentication_method="m"))


def mutate(rnd: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rnd.randrange(1, 4)):
        if not out:
            break
        what = rnd.random()
        i = rnd.randrange(len(out))
        if what < 0.5:
            out[i] = rnd.randrange(256)
        elif what < 0.7:
            out[i] ^= 1 << rnd.randrange(8)
        elif what < 0.85:
            del out[i : i + rnd.randrange(1, 4)]
        else:
            out[i:i] = rnd.randbytes(rnd.randrange(1, 4))
    return bytes(out)


def check(data: bytes, side: str, v: int) -> None:
    """Decodes or raises MqttError; same whole and byte by byte; round-trips.

    No trailing byte: mutated data may end inside a packet, which that byte would extend.
    """
    r = receive(data, side, v, trailing=False)  # asserts whole == byte by byte
    for pkt in r.packets:
        enc = pkt.encode(v) if not isinstance(pkt, Connect) else pkt.encode()
        again = receive(enc, side, v)
        assert again.error is None and again.packets == [pkt]


@pytest.mark.parametrize("version", [MQTT_V311, MQTT_V5])
@pytest.mark.parametrize("side", ["server", "client"])
def test_valid_packets_round_trip(version: int, side: str) -> None:
    rnd = random.Random(SEED + version)
    for _ in range(300):
        pkts = [rnd_packet(rnd, version, side) for _ in range(rnd.randrange(1, 4))]
        wire = b"".join(p.encode(version) for p in pkts)
        r = receive(wire, side, version)
        assert r.error is None, (r.error, pkts)
        assert r.packets == pkts


@pytest.mark.parametrize("version", [MQTT_V311, MQTT_V5])
@pytest.mark.parametrize("side", ["server", "client"])
def test_mutated_packets_decode_or_raise_the_documented_error(version: int, side: str) -> None:
    rnd = random.Random(SEED * version + len(side))
    for _ in range(1500):
        pkts = [rnd_packet(rnd, version, side) for _ in range(rnd.randrange(1, 3))]
        data = mutate(rnd, b"".join(p.encode(version) for p in pkts))
        check(data, side, version)


def test_mutated_connects_decode_or_raise_the_documented_error() -> None:
    rnd = random.Random(SEED)
    for _ in range(1500):
        v = rnd.choice([MQTT_V311, MQTT_V5])
        will = (
            Will("w/t", rnd.randbytes(5), rnd.randrange(3), rnd.random() < 0.5)
            if rnd.random() < 0.5
            else None
        )
        c = Connect(
            rnd.choice(["", "id", "\u00e9"]),
            True,
            rnd.randrange(65536),
            rnd.choice([None, "u"]),
            rnd.choice([None, b"p"]) if v == 5 else None,
            will,
            rnd_props(rnd, v, False, session_expiry_interval=5),
            v,
        )
        data = mutate(rnd, c.encode())
        r = receive(data, "server", opened=False, trailing=False)
        for pkt in r.packets[:1]:
            assert isinstance(pkt, Connect)


def test_random_bytes_decode_or_raise_the_documented_error() -> None:
    rnd = random.Random(SEED + 1)
    for _ in range(2000):
        v = rnd.choice([MQTT_V311, MQTT_V5])
        side = rnd.choice(["server", "client"])
        data = rnd.randbytes(rnd.randrange(1, 40))
        reader = MqttReader(v if side == "client" else None, side=side)  # type: ignore[arg-type]
        opening = CONNECT_BYTES[v] if side == "server" else CONNACK_BYTES[v]
        res = drive(reader, [opening + data])
        assert res.error is None or isinstance(res.error, MqttError)
        assert res.error is None or res.error.reason_code >= ReasonCode.UNSPECIFIED_ERROR


def test_connack_fuzz_on_a_fresh_client() -> None:
    rnd = random.Random(SEED + 2)
    for _ in range(500):
        v = rnd.choice([MQTT_V311, MQTT_V5])
        data = mutate(rnd, Connack(rnd.random() < 0.5).encode(v))
        receive(data, "client", v, opened=False, trailing=False)

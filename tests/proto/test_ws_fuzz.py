"""Fuzzing the frame parser: any input parses or raises RemoteProtocolError, nothing else."""

from __future__ import annotations

import random

import pytest

from mgpy.errors import RemoteProtocolError
from mgpy.proto.ws import CLOSED, WsProtocol
from tests.proto.ws_helpers import cframe, drive, fixed_rng, sframe

SEED = 6455


def random_frame(rnd: random.Random, side: str, b0: int) -> bytes:
    """One frame with opcode-appropriate payload, usually masked the right way."""
    size = rnd.choice([0, 1, 2, 5, 30, 125, 126, 200, 70000 if rnd.random() < 0.02 else 300])
    op = b0 & 0x0F
    if op >= 8:
        size = min(size, 125) if rnd.random() < 0.95 else size
    if op == 0x8 and size >= 2:
        code = rnd.choice([1000, 1001, 1005, 1012, 3000, rnd.randrange(65536)])
        payload = code.to_bytes(2, "big") + rnd.choice([b"", b"bye", b"\xff"])
    elif op in (0x0, 0x1):
        payload = rnd.choice(["ok", "\u00e9\u20ac\U0001f600", "x" * size]).encode()
        payload = payload[: rnd.randrange(len(payload) + 1)] if rnd.random() < 0.3 else payload
    else:
        payload = rnd.randbytes(size)
    masked = (side == "server") != (rnd.random() < 0.02)
    return cframe(b0, payload, mask=rnd.randbytes(4)) if masked else sframe(b0, payload)


def random_message(rnd: random.Random, side: str) -> bytes:
    """A whole message (possibly fragmented, with pings inside), or a stray frame."""
    kind = rnd.random()
    if kind < 0.1:
        return random_frame(rnd, side, rnd.choice([0x88, 0x00, 0x80, rnd.randrange(256)]))
    if kind < 0.3:
        return random_frame(rnd, side, rnd.choice([0x89, 0x8A]))
    op = rnd.choice([0x1, 0x2])
    if kind < 0.7:
        return random_frame(rnd, side, 0x80 | op)
    frames = [random_frame(rnd, side, op)]
    for _ in range(rnd.randrange(0, 3)):
        if rnd.random() < 0.3:
            frames.append(random_frame(rnd, side, 0x89))
        frames.append(random_frame(rnd, side, 0x00))
    frames.append(random_frame(rnd, side, 0x80))
    return b"".join(frames)


def mutate(rnd: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rnd.randrange(0, 4)):
        what = rnd.random()
        if not out:
            break
        i = rnd.randrange(len(out))
        if what < 0.5:
            out[i] ^= 1 << rnd.randrange(8)
        elif what < 0.7:
            del out[i : i + rnd.randrange(1, 8)]
        elif what < 0.9:
            out[i:i] = rnd.randbytes(rnd.randrange(1, 8))
        else:
            out[i] = rnd.randrange(256)
    return bytes(out)


@pytest.mark.parametrize("side", ["server", "client"])
def test_fuzzed_frames_parse_or_raise_remote_protocol_error(side: str) -> None:
    rnd = random.Random(f"{SEED}-{side}")
    outcomes = {"ok": 0, "error": 0, "events": 0, 1002: 0, 1007: 0, 1009: 0}
    for case in range(2500):
        data = b"".join(random_message(rnd, side) for _ in range(rnd.randrange(1, 5)))
        if rnd.random() < 0.5:
            data = mutate(rnd, data)
        defrag = rnd.random() < 0.8
        max_message = rnd.choice([1 << 20, 100])
        p = WsProtocol(side, max_message=max_message, defrag=defrag, rng=fixed_rng)  # type: ignore[arg-type]
        try:
            events, exc = drive(p, [data])
        except Exception as unexpected:  # anything but ProtocolError is a bug
            raise AssertionError(f"case {case}: {data.hex()} raised {unexpected!r}") from None
        if exc is None:
            outcomes["ok"] += 1
        else:
            outcomes["error"] += 1
            assert isinstance(exc, RemoteProtocolError), (case, exc)
            outcomes[exc.ws_code] += 1
            assert p.state == CLOSED
        outcomes["events"] += len(events)
        for flags, payload in events:
            assert isinstance(payload, bytes)
            if flags & 0x0F == 0x1 and defrag:
                payload.decode("utf-8")
        if len(data) < 2000 and case % 5 == 0:
            q = WsProtocol(side, max_message=max_message, defrag=defrag, rng=fixed_rng)  # type: ignore[arg-type]
            events2, exc2 = drive(q, [data[i : i + 1] for i in range(len(data))])
            assert events2 == events
            assert (type(exc2), getattr(exc2, "ws_code", None)) == (
                type(exc),
                getattr(exc, "ws_code", None),
            )
    # the fuzzer reaches deep: many clean parses, events, and every kind of failure
    assert outcomes["ok"] > 300 and outcomes["error"] > 300 and outcomes["events"] > 2000
    assert min(outcomes[1002], outcomes[1007], outcomes[1009]) > 20

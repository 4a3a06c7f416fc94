"""Fuzzing the RESP reader: valid replies round-trip, mutated ones parse or raise
RemoteProtocolError (LimitExceeded included), nothing else."""

from __future__ import annotations

import math
import random

import pytest

from mgpy.errors import RemoteProtocolError
from mgpy.proto.resp import (
    NEED_DATA,
    RespError,
    RespLimits,
    RespReader,
)
from mgpy.proto.resp_hiredis import HIREDIS_AVAILABLE, HiredisReader

SEED = 6379


def gen(rnd: random.Random, depth: int = 0) -> tuple[bytes, object]:
    """A random RESP3 reply (no push, attribute or streamed type) and the value it reads as."""
    kind = rnd.randrange(12 if depth < 4 else 8)
    if kind == 0:
        s = rnd.choice([b"OK", b"", b"QUEUED", bytes(rnd.randrange(32, 127) for _ in range(9))])
        return b"+" + s + b"\r\n", s
    if kind == 1:
        n = rnd.choice([0, 1, -1, 2**63 - 1, -(2**63), rnd.randrange(-(10**12), 10**12)])
        return b":%d\r\n" % n, n
    if kind == 2:
        b = rnd.randbytes(rnd.choice([0, 1, 5, 100, 70000 if rnd.random() < 0.02 else 20]))
        return b"$%d\r\n%s\r\n" % (len(b), b), b
    if kind == 3:
        msg = rnd.choice(["ERR unknown command", "WRONGTYPE x", "NOSCRIPT"])
        return b"-" + msg.encode() + b"\r\n", RespError(msg)
    if kind == 4:
        return rnd.choice([(b"_\r\n", None), (b"$-1\r\n", None), (b"*-1\r\n", None)])
    if kind == 5:
        return rnd.choice([(b"#t\r\n", True), (b"#f\r\n", False)])
    if kind == 6:
        f = rnd.choice([0.5, -1.25, 1e300, math.inf, -math.inf, float(rnd.randrange(1000))])
        return b"," + repr(f).encode() + b"\r\n", f
    if kind == 7:
        t = rnd.randbytes(rnd.randrange(10))
        return b"=%d\r\ntxt:%s\r\n" % (len(t) + 4, t), t
    if kind in (8, 9):
        items = [gen(rnd, depth + 1) for _ in range(rnd.randrange(5))]
        head = b"*" if kind == 8 else b"~"
        return head + b"%d\r\n" % len(items) + b"".join(w for w, _ in items), [v for _, v in items]
    pairs = {}
    wire = []
    for _ in range(rnd.randrange(4)):
        k = rnd.randbytes(rnd.randrange(1, 6))
        if k in pairs:
            continue
        vw, v = gen(rnd, depth + 1)
        pairs[k] = v
        wire.append(b"$%d\r\n%s\r\n" % (len(k), k) + vw)
    return b"%%%d\r\n" % len(pairs) + b"".join(wire), pairs


def mutate(rnd: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rnd.randrange(1, 4)):
        if not out:
            break
        i = rnd.randrange(len(out))
        what = rnd.random()
        if what < 0.4:
            out[i] ^= 1 << rnd.randrange(8)
        elif what < 0.6:
            del out[i : i + rnd.randrange(1, 6)]
        elif what < 0.8:
            out[i:i] = rnd.choice([b"\r\n", b"*", b"$", b"-1", b"?", b".", b";", b">", b"|"])
        else:
            out[i] = rnd.randrange(256)
    return bytes(out)


def feed_in_pieces(
    rnd: random.Random, reader: RespReader | HiredisReader, data: bytes
) -> list[object]:
    out = []
    i = 0
    while i < len(data):
        step = rnd.choice([1, 2, 7, 64, 4096, len(data)])
        reader.feed(data[i : i + step])
        i += step
        while (ev := reader.next_event()) is not NEED_DATA:
            out.append(ev)
    return out


FACTORIES = [RespReader, HiredisReader] if HIREDIS_AVAILABLE else [RespReader]


@pytest.mark.parametrize("factory", FACTORIES, ids=lambda f: f.__name__)
def test_random_valid_replies_round_trip(factory: type) -> None:
    rnd = random.Random(f"{SEED}-valid-{factory.__name__}")
    for _ in range(400):
        replies = [gen(rnd) for _ in range(rnd.randrange(1, 6))]
        wire = b"".join(w for w, _ in replies)
        got = feed_in_pieces(rnd, factory(), wire)
        assert repr(got) == repr([v for _, v in replies])  # repr: nan never equals itself


@pytest.mark.parametrize("factory", FACTORIES, ids=lambda f: f.__name__)
def test_mutated_replies_parse_or_raise_remote_protocol_error(factory: type) -> None:
    rnd = random.Random(f"{SEED}-mutated-{factory.__name__}")
    limits = RespLimits(max_bulk=100_000, max_elements=1000, max_depth=8, max_line=1000)
    outcomes = {"ok": 0, "error": 0}
    for _ in range(3000):
        wire = mutate(rnd, b"".join(gen(rnd)[0] for _ in range(rnd.randrange(1, 4))))
        reader = factory(limits)
        try:
            feed_in_pieces(rnd, reader, wire)
        except RemoteProtocolError:
            outcomes["error"] += 1
            with pytest.raises(RemoteProtocolError):
                reader.next_event()
        else:
            outcomes["ok"] += 1
    assert outcomes["ok"] > 100 and outcomes["error"] > 100, outcomes


def test_pure_reader_gives_the_same_events_whatever_the_chunking() -> None:
    rnd = random.Random(f"{SEED}-chunks")
    for _ in range(300):
        wire = mutate(rnd, b"".join(gen(rnd)[0] for _ in range(3)))
        results = []
        for _ in range(3):
            reader = RespReader(RespLimits(max_elements=1000, max_depth=8, max_line=1000))
            try:
                results.append(repr(feed_in_pieces(rnd, reader, wire)))
            except RemoteProtocolError as exc:
                results.append(type(exc).__name__)
        assert results[0] == results[1] == results[2], wire

"""Fuzzing HttpReader: random bytes and mutated valid messages either parse or
raise RemoteProtocolError, nothing else, and splitting the input never changes
the outcome."""

from __future__ import annotations

import random

from mgpy.errors import RemoteProtocolError
from mgpy.limits import Limits

from .test_http1_reader import drive, snapshot

REQUESTS = [
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
    b"GET /a/b?c=d HTTP/1.1\r\nHost: h\r\nUser-Agent: x\r\nAccept: */*\r\n"
    b"Connection: keep-alive\r\n\r\n",
    b"POST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3;x=1\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"\r\nOPTIONS * HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n",
    b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
    b"GET http://h:1/p?q HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
]
RESPONSES = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nuntil close",
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n"
    b"Upgrade: websocket\r\n\r\n\x81\x00",
    b'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\n\r\n',
]
ALPHABET = b'\r\n\r\n  \t::;=,"\\/?#%0123456789abcdefABCDEFGHTPx-\x00\x7f\xff\x80'
SMALL = Limits(max_request_line=80, max_header_line=60, max_headers_size=200, max_header_count=6)


def mutate(rng: random.Random, data: bytes) -> bytes:
    """Apply 1-4 random edits: flip, insert, delete, duplicate or cut."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        i = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[min(i, len(buf) - 1)] = rng.choice(ALPHABET)
        elif op == 1:
            buf[i:i] = bytes([rng.choice(ALPHABET)])
        elif op == 2 and buf:
            del buf[i : i + rng.randint(1, 3)]
        elif op == 3:
            j = rng.randrange(len(buf) + 1)
            buf[i:i] = buf[min(i, j) : max(i, j)][:40]
        elif op == 4:
            buf[i:i] = rng.choice([b"\r\n", b"\n", b"\r", b" ", b"0\r\n\r\n", b"\r\n\r\n"])
        else:
            del buf[i:]
    return bytes(buf)


def outcome(side: str, pieces: list[bytes], limits: Limits) -> object:
    """The events, or the exception class name; anything but RemoteProtocolError propagates."""
    methods = ["GET", "HEAD", "GET", "CONNECT"] if side == "client" else []
    try:
        events, rest = drive(side, pieces, methods, limits)
    except RemoteProtocolError:
        return "RemoteProtocolError"
    return snapshot(events), bytes(rest)


def split(rng: random.Random, data: bytes) -> list[bytes]:
    if rng.random() < 0.1:
        return [data[i : i + 1] for i in range(len(data))]
    cuts = sorted(rng.randrange(len(data) + 1) for _ in range(rng.randint(1, 6)))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def check(rng: random.Random, side: str, data: bytes) -> None:
    limits = SMALL if rng.random() < 0.3 else Limits()
    whole = outcome(side, [data], limits)
    assert outcome(side, split(rng, data), limits) == whole, data


def test_mutated_requests_parse_or_raise_remote_protocol_error() -> None:
    rng = random.Random(1234)
    for _ in range(2500):
        data = b"".join(rng.sample(REQUESTS, rng.randint(1, 3)))
        check(rng, "server", mutate(rng, data))


def test_mutated_responses_parse_or_raise_remote_protocol_error() -> None:
    rng = random.Random(5678)
    for _ in range(1500):
        data = b"".join(rng.sample(RESPONSES, rng.randint(1, 2)))
        check(rng, "client", mutate(rng, data))


def test_random_bytes_parse_or_raise_remote_protocol_error() -> None:
    rng = random.Random(9)
    prefixes = [b"", b"GET / HTTP/1.1\r\n", b"HTTP/1.1 200 OK\r\n"]
    for _ in range(1500):
        alphabet = ALPHABET if rng.random() < 0.7 else bytes(range(256))
        data = rng.choice(prefixes) + bytes(
            rng.choice(alphabet) for _ in range(rng.randint(0, 120))
        )
        check(rng, rng.choice(["server", "client"]), data)


def test_valid_corpus_parses() -> None:
    for data in REQUESTS:
        assert outcome("server", [data], Limits()) != "RemoteProtocolError", data
    for data in RESPONSES:
        assert outcome("client", [data], Limits()) != "RemoteProtocolError", data

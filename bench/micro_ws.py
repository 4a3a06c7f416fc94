"""Micro-benchmarks of the sans-IO WebSocket core (mgpy/proto/ws.py), both mask paths.

Run: ``.venv/bin/python bench/micro_ws.py [--quick]``.  Prints microseconds per
operation (best of 5 timeit repeats) for the C ``apply_mask`` (when built) and
the pure-Python fallback.  Budgets from the design: a 32-byte echo round trip
is ~6 us in total, so ``next_event`` + ``send`` should stay near 1.5 us; a
64 KiB message is ~25 us in total, so unmasking must take a few us.  The
"deflate" rows use permessage-deflate with the default DeflateOptions as
negotiated with Chromium's offer (no context takeover, 4 KiB windows).
"""

from __future__ import annotations

import sys
import timeit
from collections.abc import Callable

import mgpy.proto.ws as ws
from mgpy.events import WS_OP_BINARY, WS_OP_TEXT, WsMessage
from mgpy.proto.deflate import DeflateOptions, negotiate

MASK = b"\x12\x34\x56\x78"


_NEGOTIATED = negotiate(["permessage-deflate; client_max_window_bits"], DeflateOptions())
assert _NEGOTIATED is not None
DEFLATE = _NEGOTIATED[0]
#: a dashboard push: compressible JSON
JSON = b'{"t": 1712345678.1, "cpu": [12.5, 33.1], "rss": 25600000, "conns": 10234}, ' * 20


def _client_frame(op: int, payload: bytes, deflate: bool = False) -> bytes:
    """A masked client frame with a fixed key (what a browser would send)."""
    p = ws.WsProtocol(
        "client", max_message=1 << 24, rng=lambda n: MASK, deflate=DEFLATE if deflate else None
    )
    return p.send(op, payload)


def _best(fn: Callable[[], object], number: int) -> float:
    """Best-of-5 microseconds per call."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def run(quick: bool) -> list[tuple[str, float]]:
    """Time every case with the currently selected ``ws.apply_mask``."""
    k = 10 if quick else 1
    small = bytearray(_client_frame(WS_OP_TEXT, b"x" * 32))
    big_payload = bytes(range(256)) * 256
    big = bytearray(_client_frame(WS_OP_BINARY, big_payload))
    q = len(big) // 4
    pieces = [bytes(big[i * q : (i + 1) * q if i < 3 else len(big)]) for i in range(4)]
    server = ws.WsProtocol("server", max_message=1 << 24)
    out32 = b"y" * 32

    def parse_small() -> object:
        return server.next_event(small)

    def parse_big() -> object:
        return server.next_event(big)

    def parse_big_pieces() -> object:
        buf = bytearray()
        ev: object = ws.NEED_DATA
        for piece in pieces:
            buf += piece
            ev, n = server.next_event(buf)
            del buf[:n]
        assert isinstance(ev, WsMessage) and len(ev.data) == 65536
        return ev

    def echo_small() -> bytes:
        ev, _ = server.next_event(small)
        assert isinstance(ev, WsMessage)
        return server.send(WS_OP_TEXT, ev.data)

    client = ws.WsProtocol("client", rng=lambda n: MASK)
    zserver = ws.WsProtocol("server", max_message=1 << 24, deflate=DEFLATE)
    json512, json1k = JSON[:512], JSON[:1024]
    zsmall = bytearray(_client_frame(WS_OP_TEXT, json512, deflate=True))
    assert zsmall[0] == 0xC1

    def zparse_512() -> object:
        return zserver.next_event(zsmall)

    def zecho_512() -> bytes:
        ev, _ = zserver.next_event(zsmall)
        assert isinstance(ev, WsMessage)
        return zserver.send(WS_OP_TEXT, ev.data)

    results = [
        ("apply_mask 32 B", _best(lambda: ws.apply_mask(b"x" * 32, MASK), 200_000 // k)),
        ("apply_mask 64 KiB", _best(lambda: ws.apply_mask(big_payload, MASK), 2_000 // k)),
        ("next_event 32 B masked text", _best(parse_small, 200_000 // k)),
        ("next_event 64 KiB masked binary (one buffer)", _best(parse_big, 2_000 // k)),
        ("next_event 64 KiB masked binary (4 pieces)", _best(parse_big_pieces, 2_000 // k)),
        ("send 32 B server text", _best(lambda: server.send(WS_OP_TEXT, out32), 500_000 // k)),
        (
            "send 64 KiB server binary",
            _best(lambda: server.send(WS_OP_BINARY, big_payload), 5_000 // k),
        ),
        (
            "send 32 B client text (masked)",
            _best(lambda: client.send(WS_OP_TEXT, out32), 200_000 // k),
        ),
        ("echo 32 B: next_event + send", _best(echo_small, 200_000 // k)),
        (
            "deflate: send 32 B text (under threshold)",
            _best(lambda: zserver.send(WS_OP_TEXT, out32), 500_000 // k),
        ),
        (
            "deflate: send 1 KiB JSON text",
            _best(lambda: zserver.send(WS_OP_TEXT, json1k), 20_000 // k),
        ),
        (
            "deflate: broadcast_frame 1 KiB JSON",
            _best(lambda: ws.broadcast_frame(WS_OP_TEXT, json1k, DEFLATE), 20_000 // k),
        ),
        ("deflate: next_event 512 B JSON masked", _best(zparse_512, 50_000 // k)),
        ("deflate: echo 512 B JSON: next_event + send", _best(zecho_512, 20_000 // k)),
    ]
    return results


def main() -> None:
    """Print the table for the C path (if built) and the pure-Python path."""
    quick = "--quick" in sys.argv
    paths: list[tuple[str, Callable[[ws.Buffer, ws.Buffer], bytes]]] = []
    if ws.apply_mask is not ws.apply_mask_py:
        paths.append(("C _speedups", ws.apply_mask))
    else:
        print("mgpy._speedups is not built: pure Python only")
    paths.append(("pure Python", ws.apply_mask_py))
    saved = ws.apply_mask
    tables = []
    try:
        for name, fn in paths:
            ws.apply_mask = fn
            tables.append((name, run(quick)))
    finally:
        ws.apply_mask = saved
    names = [row[0] for row in tables[0][1]]
    print(f"{'us per op':48}" + "".join(f"{name:>14}" for name, _ in tables))
    for i, label in enumerate(names):
        print(f"{label:48}" + "".join(f"{t[1][i][1]:14.2f}" for t in tables))


if __name__ == "__main__":
    main()

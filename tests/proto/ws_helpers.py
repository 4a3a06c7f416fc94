"""Shared helpers for the WebSocket core tests: a reference frame encoder and drivers.

``receive(side, data)`` feeds the same bytes three ways — whole, one byte at a
time, and whole followed by the start of another (ping) frame — exactly as the
I/O glue does (append to a bytearray, delete ``consumed`` from the front), and
asserts that all three give the same events, error, queued output and state.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib
from collections.abc import Iterable

from mgpy.errors import ProtocolError
from mgpy.proto.ws import NEED_DATA, WsProtocol

MASK = b"\x37\xfa\x21\x3d"


def fixed_rng(n: int) -> bytes:
    """A predictable 'random' source so client output can be compared byte for byte."""
    return (MASK * (n // 4 + 1))[:n]


def ref_mask(data: bytes, mask: bytes, offset: int = 0) -> bytes:
    """The obvious per-byte XOR, as a reference (one big-int XOR for large inputs)."""
    if len(data) > 4096:
        key = ((mask[offset % 4 :] + mask[: offset % 4]) * (len(data) // 4 + 1))[: len(data)]
        return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(len(data), "big")
    return bytes(b ^ mask[(i + offset) % 4] for i, b in enumerate(data))


def frame(
    b0: int,
    payload: bytes = b"",
    *,
    masked: bool = True,
    mask: bytes = MASK,
    length: int | None = None,
    form: int | None = None,
) -> bytes:
    """Encode one frame independently of mgpy.

    ``form`` forces the length encoding (7, 16 or 64 bits); ``length`` overrides
    the declared length (for malformed or partial frames).
    """
    n = len(payload) if length is None else length
    if form is None:
        form = 7 if n < 126 else 16 if n < 0x10000 else 64
    mbit = 0x80 if masked else 0
    if form == 7:
        head = bytes((b0, mbit | n))
    elif form == 16:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if masked:
        return head + mask + ref_mask(payload, mask)
    return head + payload


def cframe(b0: int, payload: bytes = b"", **kw: object) -> bytes:
    """A frame as a client sends it (masked): what a server receives."""
    return frame(b0, payload, masked=True, **kw)  # type: ignore[arg-type]


def sframe(b0: int, payload: bytes = b"", **kw: object) -> bytes:
    """A frame as a server sends it (unmasked): what a client receives."""
    return frame(b0, payload, masked=False, **kw)  # type: ignore[arg-type]


def incoming(side: str, b0: int, payload: bytes = b"", **kw: object) -> bytes:
    """A well-formed frame as the peer of ``side`` would send it."""
    return cframe(b0, payload, **kw) if side == "server" else sframe(b0, payload, **kw)


def drive(
    p: WsProtocol, chunks: Iterable[bytes]
) -> tuple[list[tuple[int, bytes]], Exception | None]:
    """Feed chunks like the glue does; return (events as (flags, data), error or None)."""
    buf = bytearray()
    events: list[tuple[int, bytes]] = []
    for chunk in chunks:
        buf += chunk
        while True:
            try:
                ev, n = p.next_event(buf)
            except ProtocolError as exc:
                return events, exc
            assert 0 <= n <= len(buf)
            del buf[:n]  # must work: the core keeps no buffer export alive
            if ev is NEED_DATA:
                break
            events.append((ev.flags, ev.data))  # type: ignore[attr-defined]
    return events, None


@dataclasses.dataclass
class Result:
    """What a user of the core would observe after feeding some bytes."""

    events: list[tuple[int, bytes]]
    error: Exception | None
    out: bytes
    state: int
    close_code: int | None
    close_reason: str

    @property
    def error_key(self) -> tuple[type, int] | None:
        if self.error is None:
            return None
        return type(self.error), self.error.ws_code  # type: ignore[attr-defined]

    def key(self) -> tuple[object, ...]:
        return (
            self.events,
            self.error_key,
            self.out,
            self.state,
            self.close_code,
            self.close_reason,
        )


def receive(side: str, data: bytes, *, trailing: bool = True, **kw: object) -> Result:
    """Feed ``data`` whole, byte by byte, and (if ``trailing``) with trailing bytes; compare."""
    tail = incoming(side, 0x89, b"later")[:3]  # the start of a ping that never completes
    modes: list[list[bytes]] = [[data], [data[i : i + 1] for i in range(len(data))]]
    if trailing:
        modes.append([data + tail])
    results = []
    for chunks in modes:
        p = WsProtocol(side, rng=fixed_rng, **kw)  # type: ignore[arg-type]
        events, exc = drive(p, chunks)
        results.append(Result(events, exc, p.data_to_send(), p.state, p.close_code, p.close_reason))
    first = results[0]
    for other in results[1:]:
        assert other.key() == first.key()
    return first


def deflated(data: bytes, bits: int = 15, level: int = 6) -> bytes:
    """Raw DEFLATE of a whole message as RFC 7692 7.2.1 sends it (sync flush, tail removed)."""
    c = zlib.compressobj(level, zlib.DEFLATED, -max(bits, 9))
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def inflated(payload: bytes, bits: int = 15) -> bytes:
    """The reference decoder of RFC 7692 7.2.2 (append the tail, inflate)."""
    return zlib.decompressobj(-bits).decompress(payload + b"\x00\x00\xff\xff")

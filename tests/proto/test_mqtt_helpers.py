"""Shared helpers for the MQTT core tests (and checks of the helpers themselves).

``receive(data, ...)`` feeds the same bytes to a fresh ``MqttReader`` three ways —
whole, one byte at a time, and whole followed by the first byte of another packet —
exactly as the I/O glue does (append to a bytearray, delete ``consumed`` from the
front), and asserts that all three give the same packets and the same error.
``ref_*`` build packets by hand from the specification's tables, independently of
the encoder under test.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterable

import pytest

from mgpy.proto.mqtt import NEED_DATA, Connack, Connect, MqttError, MqttReader, Packet

#: what a server-side test puts first (the reader needs a CONNECT to open)
CONNECT_BYTES = {4: Connect("t", version=4).encode(), 5: Connect("t", version=5).encode()}
#: what a client-side test puts first
CONNACK_BYTES = {4: Connack().encode(4), 5: Connack().encode(5)}
#: the first byte of a packet that never completes (PINGREQ to a server, PINGRESP to a client)
TAIL = {"server": b"\xc0", "client": b"\xd0"}


def ref_varint(n: int) -> bytes:
    """Variable Byte Integer, the spec's 1.5.5 algorithm."""
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            b |= 128
        out.append(b)
        if not n:
            return bytes(out)


def ref_str(s: str | bytes) -> bytes:
    raw = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(raw)) + raw


def ref_packet(b0: int, body: bytes) -> bytes:
    return bytes((b0,)) + ref_varint(len(body)) + body


def ref_connect(
    level: int = 5, flags: int = 0x02, tail: bytes = b"", client_id: bytes = b"c"
) -> bytes:
    """A CONNECT built by hand; ``tail`` follows the client id (will, user name...)."""
    props = b"\x00" if level == 5 else b""
    return ref_packet(
        0x10,
        ref_str("MQTT") + bytes((level, flags)) + b"\x00\x3c" + props + ref_str(client_id) + tail,
    )


@dataclasses.dataclass
class Result:
    packets: list[Packet]
    error: MqttError | None

    @property
    def error_key(self) -> tuple[type, int] | None:
        if self.error is None:
            return None
        return type(self.error), self.error.reason_code

    @property
    def code(self) -> int | None:
        return None if self.error is None else int(self.error.reason_code)


def drive(reader: MqttReader, chunks: Iterable[bytes]) -> Result:
    """Feed chunks like the glue does; return the packets and the error (or None)."""
    buf = bytearray()
    packets: list[Packet] = []
    for chunk in chunks:
        buf += chunk
        while True:
            try:
                pkt, n = reader.next_event(buf)
            except MqttError as exc:
                return Result(packets, exc)
            assert 0 <= n <= len(buf)
            if pkt is NEED_DATA:
                assert n == 0
                break
            del buf[:n]
            packets.append(pkt)  # type: ignore[arg-type]
    return Result(packets, None)


def receive(
    data: bytes,
    side: str = "server",
    version: int | None = None,
    *,
    opened: bool = True,
    trailing: bool = True,
    **kw: object,
) -> Result:
    """Feed ``data`` whole, byte by byte and with a trailing byte; compare; return one.

    ``opened``: put the CONNECT (server) or CONNACK (client) of ``version`` first and
    leave it out of the result.  ``accept=`` is the server reader's ``version``.
    """
    v = version or 5
    prefix = b""
    if opened:
        prefix = CONNECT_BYTES[v] if side == "server" else CONNACK_BYTES[v]
    data = prefix + data
    modes = [[data], [data[i : i + 1] for i in range(len(data))]]
    if trailing:
        modes.append([data + TAIL[side]])
    accept = kw.pop("accept", None)
    results = []
    for chunks in modes:
        if side == "server":
            reader = MqttReader(accept, side="server", **kw)  # type: ignore[arg-type]
        else:
            reader = MqttReader(v, side="client", **kw)  # type: ignore[arg-type]
        results.append(drive(reader, chunks))
    first = results[0]
    for other in results[1:]:
        assert other.packets == first.packets
        assert other.error_key == first.error_key
    if opened:
        assert first.packets, "the opening packet was refused"
        first.packets = first.packets[1:]
    return first


def one(data: bytes, side: str = "server", version: int = 5, **kw: object) -> Packet:
    """The single packet ``data`` decodes to (after the opening packet)."""
    r = receive(data, side, version, **kw)
    assert r.error is None, r.error
    assert len(r.packets) == 1
    return r.packets[0]


def refused(data: bytes, side: str = "server", version: int = 5, **kw: object) -> int:
    """The reason code ``data`` is refused with (after the opening packet)."""
    r = receive(data, side, version, **kw)
    assert r.error is not None, f"accepted: {r.packets}"
    return r.code  # type: ignore[return-value]


# -- the helpers themselves --------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "wire"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16_383, b"\xff\x7f"),
        (16_384, b"\x80\x80\x01"),
        (2_097_151, b"\xff\xff\x7f"),
        (2_097_152, b"\x80\x80\x80\x01"),
        (268_435_455, b"\xff\xff\xff\x7f"),
    ],
)
def test_reference_varint_matches_the_spec_table(n: int, wire: bytes) -> None:
    """MQTT 5.0 table 1-1: the size boundaries of Variable Byte Integers."""
    assert ref_varint(n) == wire


def test_receive_feeds_three_ways_and_drops_the_opening_packet() -> None:
    r = receive(b"\xc0\x00")
    assert r.error is None
    assert [type(p).__name__ for p in r.packets] == ["PingReq"]

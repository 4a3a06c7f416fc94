"""RFC 6455 framing: lengths, masking direction, reserved bits/opcodes, fragmentation, limits.

Every received-bytes case goes through ``receive()``, which feeds the bytes
whole, one byte at a time and with trailing data, and checks all three agree.
"""

from __future__ import annotations

import random

import pytest

from mgpy.errors import LimitExceeded, RemoteProtocolError
from mgpy.events import WsMessage
from mgpy.proto.ws import CLOSED, NEED_DATA, OPEN, WsProtocol
from tests.proto.ws_helpers import MASK, cframe, drive, fixed_rng, receive, sframe

SIDES = ["server", "client"]


def peer_frame(side: str, b0: int, payload: bytes = b"", **kw: object) -> bytes:
    return cframe(b0, payload, **kw) if side == "server" else sframe(b0, payload, **kw)


class TestLengths:
    @pytest.mark.parametrize("side", SIDES)
    @pytest.mark.parametrize("n", [0, 1, 32, 125, 126, 127, 65535, 65536, 70000])
    def test_receives_each_length_encoding(self, side: str, n: int) -> None:
        payload = bytes(random.Random(n).randrange(256) for _ in range(n))
        r = receive(side, peer_frame(side, 0x82, payload))
        assert r.error is None
        assert r.events == [(0x82, payload)]
        assert r.out == b"" and r.state == OPEN

    @pytest.mark.parametrize("side", SIDES)
    def test_receives_several_frames_in_one_buffer(self, side: str) -> None:
        data = b"".join(peer_frame(side, 0x81, b"msg%d" % i) for i in range(5))
        r = receive(side, data)
        assert r.events == [(0x81, b"msg%d" % i) for i in range(5)]

    @pytest.mark.parametrize("side", SIDES)
    @pytest.mark.parametrize("n,form", [(0, 16), (125, 16), (0, 64), (125, 64), (65535, 64)])
    def test_receives_non_minimal_length(self, side: str, n: int, form: int) -> None:
        """RFC 6455 5.2: the minimal number of bytes MUST be used for the length."""
        r = receive(side, peer_frame(side, 0x82, b"a" * n, form=form))
        assert r.events == []
        assert r.error_key == (RemoteProtocolError, 1002)

    @pytest.mark.parametrize("side", SIDES)
    def test_receives_64bit_length_with_high_bit(self, side: str) -> None:
        """RFC 6455 5.2: the most significant bit of the 64-bit length MUST be 0."""
        data = peer_frame(side, 0x82, length=1 << 63, form=64)
        r = receive(side, data, trailing=False, max_message=1 << 62)
        assert r.error_key == (RemoteProtocolError, 1002)

    def test_server_receives_incomplete_header_without_consuming(self) -> None:
        p = WsProtocol("server")
        data = cframe(0x82, b"x" * 300)
        for cut in range(0, 8):  # 2 + 2 (16-bit length) + 4 (mask)
            assert p.next_event(data[:cut]) == (NEED_DATA, 0)

    def test_server_swallows_a_partial_payload_and_keeps_the_mask_offset(self) -> None:
        payload = bytes(range(256)) * 4
        data = cframe(0x82, payload)
        p = WsProtocol("server")
        ev, n = p.next_event(data[:11])  # 8-byte header + 3 payload bytes
        assert ev is NEED_DATA and n == 11
        ev, n = p.next_event(data[11:500])
        assert ev is NEED_DATA and n == 489
        ev, n = p.next_event(data[500:] + b"\x89")
        assert n == len(data) - 500
        assert isinstance(ev, WsMessage)
        assert ev.flags == 0x82 and ev.data == payload


class TestMaskingDirection:
    def test_server_receives_unmasked_frame(self) -> None:
        """RFC 6455 5.1: the server MUST close on an unmasked client frame."""
        r = receive("server", sframe(0x81, b"hi"))
        assert r.error_key == (RemoteProtocolError, 1002)
        assert r.out == b"\x88\x02\x03\xea"  # close 1002, unmasked
        assert r.state == CLOSED

    def test_client_receives_masked_frame(self) -> None:
        """RFC 6455 5.1: the client MUST close on a masked server frame."""
        r = receive("client", cframe(0x81, b"hi"))
        assert r.error_key == (RemoteProtocolError, 1002)
        assert r.out == b"\x88\x82" + MASK + bytes(
            a ^ b for a, b in zip(b"\x03\xea", MASK[:2], strict=True)
        )


class TestReservedBitsAndOpcodes:
    @pytest.mark.parametrize("side", SIDES)
    @pytest.mark.parametrize("rsv", [0x40, 0x20, 0x10, 0x70])
    def test_receives_rsv_bits(self, side: str, rsv: int) -> None:
        """RFC 6455 5.2: RSV1-3 MUST be 0 when no extension was negotiated."""
        r = receive(side, peer_frame(side, 0x81 | rsv, b"hi"))
        assert r.events == [] and r.error_key == (RemoteProtocolError, 1002)

    @pytest.mark.parametrize("side", SIDES)
    @pytest.mark.parametrize("op", [3, 4, 5, 6, 7, 11, 12, 13, 14, 15])
    def test_receives_reserved_opcode(self, side: str, op: int) -> None:
        """RFC 6455 5.2: reserved opcodes -> fail the connection."""
        r = receive(side, peer_frame(side, 0x81, b"ok") + peer_frame(side, 0x80 | op, b"x"))
        assert r.events == [(0x81, b"ok")]
        assert r.error_key == (RemoteProtocolError, 1002)


class TestFragmentation:
    @pytest.mark.parametrize("side", SIDES)
    def test_receives_fragmented_text(self, side: str) -> None:
        data = (
            peer_frame(side, 0x01, b"Hel")
            + peer_frame(side, 0x00, b"lo, ")
            + peer_frame(side, 0x80, b"world")
        )
        r = receive(side, data)
        assert r.events == [(0x81, b"Hello, world")]

    @pytest.mark.parametrize("side", SIDES)
    def test_receives_fragmented_binary_with_empty_fragments(self, side: str) -> None:
        data = (
            peer_frame(side, 0x02, b"")
            + peer_frame(side, 0x00, b"\x00\x01")
            + peer_frame(side, 0x00, b"")
            + peer_frame(side, 0x80, b"")
        )
        assert receive(side, data).events == [(0x82, b"\x00\x01")]

    def test_server_receives_large_fragments(self) -> None:
        parts = [bytes([i]) * 70000 for i in range(3)]
        data = cframe(0x02, parts[0]) + cframe(0x00, parts[1]) + cframe(0x80, parts[2])
        r = receive("server", data)
        assert r.events == [(0x82, b"".join(parts))]

    @pytest.mark.parametrize("side", SIDES)
    def test_receives_ping_between_fragments(self, side: str) -> None:
        """RFC 6455 5.4: control frames MAY be injected in the middle of a message."""
        data = (
            peer_frame(side, 0x01, b"frag1 ")
            + peer_frame(side, 0x89, b"are you there")
            + peer_frame(side, 0x8A, b"pong")
            + peer_frame(side, 0x80, b"frag2")
        )
        r = receive(side, data)
        assert r.events == [(0x89, b"are you there"), (0x8A, b"pong"), (0x81, b"frag1 frag2")]
        assert r.out.startswith(b"\x8a")

    @pytest.mark.parametrize("side", SIDES)
    def test_receives_continuation_without_a_message(self, side: str) -> None:
        """RFC 6455 5.4: a continuation frame must continue something."""
        r = receive(side, peer_frame(side, 0x80, b"orphan"))
        assert r.events == [] and r.error_key == (RemoteProtocolError, 1002)

    @pytest.mark.parametrize("side", SIDES)
    @pytest.mark.parametrize("b0", [0x81, 0x01, 0x82, 0x02])
    def test_receives_new_message_while_one_is_in_progress(self, side: str, b0: int) -> None:
        """RFC 6455 5.4: fragments of different messages MUST NOT interleave."""
        r = receive(side, peer_frame(side, 0x01, b"start") + peer_frame(side, b0, b"other"))
        assert r.events == [] and r.error_key == (RemoteProtocolError, 1002)

    @pytest.mark.parametrize("side", SIDES)
    def test_receives_fragments_without_defrag(self, side: str) -> None:
        data = (
            peer_frame(side, 0x01, b"a")
            + peer_frame(side, 0x89, b"p")
            + peer_frame(side, 0x00, b"b")
            + peer_frame(side, 0x80, b"c")
            + peer_frame(side, 0x82, b"d")
        )
        r = receive(side, data, defrag=False)
        assert r.events == [(0x01, b"a"), (0x89, b"p"), (0x00, b"b"), (0x80, b"c"), (0x82, b"d")]

    def test_server_receives_continuation_after_message_ended_without_defrag(self) -> None:
        data = cframe(0x01, b"a") + cframe(0x80, b"b") + cframe(0x80, b"c")
        r = receive("server", data, defrag=False)
        assert r.events == [(0x01, b"a"), (0x80, b"b")]
        assert r.error_key == (RemoteProtocolError, 1002)

    def test_server_defrag_can_be_switched_off_between_messages(self) -> None:
        p = WsProtocol("server")
        events, _ = drive(p, [cframe(0x01, b"a") + cframe(0x80, b"b")])
        assert events == [(0x81, b"ab")]
        p.defrag = False
        events, _ = drive(p, [cframe(0x01, b"a") + cframe(0x80, b"b")])
        assert events == [(0x01, b"a"), (0x80, b"b")]

    def test_server_defrag_change_inside_a_message_applies_to_the_next_one(self) -> None:
        p = WsProtocol("server")
        events, _ = drive(p, [cframe(0x01, b"a")])
        p.defrag = False
        events, exc = drive(p, [cframe(0x80, b"b") + cframe(0x01, b"c") + cframe(0x80, b"d")])
        assert exc is None
        assert events == [(0x81, b"ab"), (0x01, b"c"), (0x80, b"d")]


class TestLimits:
    @pytest.mark.parametrize("side", SIDES)
    def test_receives_message_of_exactly_max_message(self, side: str) -> None:
        r = receive(side, peer_frame(side, 0x82, b"x" * 1000), max_message=1000)
        assert r.events == [(0x82, b"x" * 1000)]

    @pytest.mark.parametrize("side", SIDES)
    @pytest.mark.parametrize("n", [11, 126, 70000])
    def test_receives_frame_over_max_message(self, side: str, n: int) -> None:
        r = receive(side, peer_frame(side, 0x82, b"x" * n), max_message=10)
        assert r.events == [] and r.error_key == (LimitExceeded, 1009)
        assert r.out[:1] == b"\x88"

    def test_server_refuses_oversize_frame_from_its_header_alone(self) -> None:
        """The declared length is checked before any payload is buffered."""
        p = WsProtocol("server", max_message=1 << 20)
        header = cframe(0x82, length=16 << 20)  # 16 MiB declared, no payload sent
        with pytest.raises(LimitExceeded) as exc:
            p.next_event(header)
        assert exc.value.ws_code == 1009 and exc.value.status == 413
        assert p.data_to_send() == b"\x88\x02\x03\xf1"

    @pytest.mark.parametrize("side", SIDES)
    def test_receives_fragmented_message_whose_total_is_over_max_message(self, side: str) -> None:
        data = peer_frame(side, 0x02, b"x" * 6) + peer_frame(side, 0x80, b"y" * 5)
        r = receive(side, data, max_message=10)
        assert r.events == [] and r.error_key == (LimitExceeded, 1009)

    def test_server_without_defrag_limits_each_frame_not_the_message(self) -> None:
        data = cframe(0x02, b"x" * 6) + cframe(0x80, b"y" * 6)
        r = receive("server", data, max_message=10, defrag=False)
        assert r.events == [(0x02, b"x" * 6), (0x80, b"y" * 6)]

    def test_server_control_frames_do_not_count_toward_the_message(self) -> None:
        data = cframe(0x02, b"x" * 6) + cframe(0x89, b"p" * 100) + cframe(0x80, b"y" * 4)
        r = receive("server", data, max_message=10)
        assert r.events == [(0x89, b"p" * 100), (0x82, b"x" * 6 + b"y" * 4)]

    def test_server_max_message_is_settable(self) -> None:
        p = WsProtocol("server")
        p.max_message = 4
        with pytest.raises(LimitExceeded):
            p.next_event(cframe(0x82, b"12345"))

    def test_server_receives_16mib_message_with_a_1mib_receive_buffer(self) -> None:
        """Partial payloads are consumed as they arrive: the caller's buffer stays small."""
        payload = random.Random(3).randbytes(16 << 20)
        data = cframe(0x02, payload[: 10 << 20]) + cframe(0x80, payload[10 << 20 :])
        p = WsProtocol("server", max_message=16 << 20)
        buf = bytearray()
        cap = 1 << 20
        events: list[WsMessage] = []
        peak = 0
        for i in range(0, len(data), 256 * 1024):
            buf += data[i : i + 256 * 1024]
            peak = max(peak, len(buf))
            assert len(buf) <= cap
            while True:
                ev, n = p.next_event(buf)
                del buf[:n]
                if not isinstance(ev, WsMessage):
                    break
                events.append(ev)
        assert peak <= 256 * 1024 + 14
        assert len(events) == 1 and events[0].data == payload and events[0].flags == 0x82


class TestStateAfterErrors:
    def test_server_after_an_error_raises_again_and_queues_one_close(self) -> None:
        p = WsProtocol("server")
        with pytest.raises(RemoteProtocolError):
            p.next_event(cframe(0xC1, b"x"))  # RSV1
        assert p.data_to_send() == b"\x88\x02\x03\xea"
        assert p.state == CLOSED
        with pytest.raises(RemoteProtocolError) as exc:
            p.next_event(cframe(0x81, b"fine"))
        assert exc.value.ws_code == 1002
        assert p.data_to_send() == b""

    def test_server_hot_path_is_off_after_an_error(self) -> None:
        p = WsProtocol("server")
        with pytest.raises(RemoteProtocolError):
            p.next_event(cframe(0x81, b"\xff"))
        with pytest.raises(RemoteProtocolError):
            p.next_event(cframe(0x81, b"ok"))

    def test_client_error_close_frame_is_masked_with_rng(self) -> None:
        p = WsProtocol("client", rng=fixed_rng)
        with pytest.raises(RemoteProtocolError):
            p.next_event(sframe(0x83, b""))
        out = p.data_to_send()
        assert out[:2] == b"\x88\x82" and out[2:6] == MASK

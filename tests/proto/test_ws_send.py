"""Encoding frames: send() for both sides, fragments, control frame rules, masking keys."""

from __future__ import annotations

import pytest

from mgpy.errors import LocalProtocolError
from mgpy.events import (
    WS_DONT_FIN,
    WS_OP_BINARY,
    WS_OP_CONTINUE,
    WS_OP_PING,
    WS_OP_PONG,
    WS_OP_TEXT,
)
from mgpy.proto.ws import OPEN, WsProtocol
from tests.proto.ws_helpers import MASK, cframe, drive, fixed_rng, sframe

LENGTHS = [0, 1, 125, 126, 65535, 65536, 70000]


class TestServerSends:
    @pytest.mark.parametrize("n", LENGTHS)
    def test_server_sends_binary_with_minimal_length(self, n: int) -> None:
        """RFC 6455 5.2: minimal length encoding, no mask from the server."""
        payload = bytes(range(256)) * (n // 256) + bytes(range(n % 256))
        out = WsProtocol("server").send(WS_OP_BINARY, payload)
        assert type(out) is bytes
        assert out == sframe(0x82, payload)

    def test_server_sends_str_as_utf8_text(self) -> None:
        assert WsProtocol("server").send(WS_OP_TEXT, "h\u00e9") == b"\x81\x03h\xc3\xa9"

    def test_server_sends_a_fragmented_message(self) -> None:
        p = WsProtocol("server")
        out = [
            p.send(WS_OP_TEXT | WS_DONT_FIN, "one "),
            p.send(WS_OP_PING, b"between"),
            p.send(WS_OP_CONTINUE | WS_DONT_FIN, b"two "),
            p.send(WS_OP_CONTINUE, b"three"),
        ]
        assert out == [
            sframe(0x01, b"one "),
            sframe(0x89, b"between"),
            sframe(0x00, b"two "),
            sframe(0x80, b"three"),
        ]
        assert p.send(WS_OP_TEXT, "next") == sframe(0x81, b"next")

    def test_server_sends_continuation_without_a_message(self) -> None:
        with pytest.raises(LocalProtocolError):
            WsProtocol("server").send(WS_OP_CONTINUE, b"x")

    @pytest.mark.parametrize("op", [WS_OP_TEXT, WS_OP_BINARY, WS_OP_TEXT | WS_DONT_FIN])
    def test_server_sends_new_message_during_a_fragmented_one(self, op: int) -> None:
        p = WsProtocol("server")
        p.send(WS_OP_BINARY | WS_DONT_FIN, b"a")
        with pytest.raises(LocalProtocolError):
            p.send(op, b"b")

    @pytest.mark.parametrize("op", [WS_OP_PING, WS_OP_PONG])
    def test_server_sends_control_frame_over_125_bytes(self, op: int) -> None:
        """RFC 6455 5.5: control frame payloads are at most 125 bytes."""
        p = WsProtocol("server")
        assert p.send(op, b"x" * 125)[:2] == bytes((0x80 | op, 125))
        with pytest.raises(LocalProtocolError):
            p.send(op, b"x" * 126)

    @pytest.mark.parametrize("op", [WS_OP_PING, WS_OP_PONG])
    def test_server_sends_fragmented_control_frame(self, op: int) -> None:
        with pytest.raises(LocalProtocolError):
            WsProtocol("server").send(op | WS_DONT_FIN, b"")

    @pytest.mark.parametrize("op", [3, 7, 0xB, 0xF, 0x200, -1])
    def test_server_sends_invalid_opcode(self, op: int) -> None:
        with pytest.raises(LocalProtocolError):
            WsProtocol("server").send(op, b"")

    def test_server_sends_after_receiving_close(self) -> None:
        p = WsProtocol("server")
        drive(p, [cframe(0x88, b"")])
        with pytest.raises(LocalProtocolError):
            p.send(WS_OP_TEXT, "too late")


class TestClientSends:
    @pytest.mark.parametrize("n", LENGTHS)
    def test_client_sends_masked_binary(self, n: int) -> None:
        """RFC 6455 5.3: every client frame is masked with the rng's key."""
        payload = bytes(range(256)) * (n // 256) + bytes(range(n % 256))
        out = WsProtocol("client", rng=fixed_rng).send(WS_OP_BINARY, payload)
        assert out == cframe(0x82, payload, mask=MASK)

    def test_client_sends_with_a_fresh_key_per_frame(self) -> None:
        calls: list[int] = []

        def rng(n: int) -> bytes:
            calls.append(n)
            return bytes([len(calls)] * n)

        p = WsProtocol("client", rng=rng)
        a = p.send(WS_OP_TEXT, "a")
        b = p.send(WS_OP_TEXT, "a")
        assert calls == [4, 4]
        assert a[2:6] == b"\x01" * 4 and b[2:6] == b"\x02" * 4

    def test_client_sends_with_default_random_keys(self) -> None:
        p = WsProtocol("client")
        keys = {p.send(WS_OP_BINARY, b"")[2:6] for _ in range(20)}
        assert len(keys) > 15  # secrets.token_bytes, not a constant

    def test_client_frames_round_trip_through_a_server(self) -> None:
        client = WsProtocol("client")
        server = WsProtocol("server")
        data = (
            client.send(WS_OP_TEXT | WS_DONT_FIN, "h\u00e9")
            + client.send(WS_OP_PING, b"p")
            + client.send(WS_OP_CONTINUE, "llo")
            + client.send(WS_OP_BINARY, b"\x00" * 70000)
        )
        events, exc = drive(server, [data])
        assert exc is None
        assert events == [(0x89, b"p"), (0x81, "h\u00e9llo".encode()), (0x82, b"\x00" * 70000)]
        assert server.state == OPEN


def test_frame_length_matches_the_bytes_send_produces() -> None:
    from mgpy.proto.ws import WsProtocol, frame_length

    for side in ("server", "client"):
        ws = WsProtocol(side)  # type: ignore[arg-type]
        for n in (0, 1, 125, 126, 65535, 65536, 70000):
            assert len(ws.send(2, b"x" * n)) == frame_length(n, side == "client")

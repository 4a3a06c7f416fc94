"""RFC 6455 5.5 control frames and 5.5.1/7 the closing handshake."""

from __future__ import annotations

import pytest

from mgpy.errors import LocalProtocolError, RemoteProtocolError
from mgpy.events import WS_OP_CLOSE, WS_OP_PING, WS_OP_TEXT, WsMessage
from mgpy.proto.ws import CLOSED, CLOSING, NEED_DATA, OPEN, WsProtocol
from tests.proto.ws_helpers import cframe, drive, fixed_rng, frame, receive, sframe

SIDES = ["server", "client"]
VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]
INVALID_CODES = [
    0,
    999,
    1004,
    1005,
    1006,
    1012,
    1013,
    1014,
    1015,
    1016,
    1100,
    2000,
    2999,
    5000,
    65535,
]


def peer_frame(side: str, b0: int, payload: bytes = b"", **kw: object) -> bytes:
    return cframe(b0, payload, **kw) if side == "server" else sframe(b0, payload, **kw)


def our_frame(side: str, b0: int, payload: bytes = b"") -> bytes:
    """What ``side`` itself sends (the client masks with fixed_rng's key)."""
    return sframe(b0, payload) if side == "server" else cframe(b0, payload, mask=fixed_rng(4))


class TestPingPong:
    @pytest.mark.parametrize("side", SIDES)
    @pytest.mark.parametrize("payload", [b"", b"hello", b"\xff" * 125])
    def test_receives_ping_and_queues_a_pong(self, side: str, payload: bytes) -> None:
        """RFC 6455 5.5.2: a Pong with the same Application data answers a Ping."""
        r = receive(side, peer_frame(side, 0x89, payload))
        assert r.events == [(0x89, payload)]
        assert r.out == our_frame(side, 0x8A, payload)
        assert r.state == OPEN

    @pytest.mark.parametrize("side", SIDES)
    def test_receives_pong_and_queues_nothing(self, side: str) -> None:
        r = receive(side, peer_frame(side, 0x8A, b"late pong"))
        assert r.events == [(0x8A, b"late pong")] and r.out == b""

    @pytest.mark.parametrize("side", SIDES)
    def test_receives_two_pings_and_queues_two_pongs_in_order(self, side: str) -> None:
        r = receive(side, peer_frame(side, 0x89, b"1") + peer_frame(side, 0x89, b"2"))
        assert r.out == our_frame(side, 0x8A, b"1") + our_frame(side, 0x8A, b"2")

    @pytest.mark.parametrize("side", SIDES)
    @pytest.mark.parametrize("b0", [0x89, 0x8A, 0x88])
    def test_receives_control_frame_over_125_bytes(self, side: str, b0: int) -> None:
        """RFC 6455 5.5: control frames carry at most 125 bytes."""
        r = receive(side, peer_frame(side, b0, b"\x03\xe8" + b"x" * 124))
        assert r.events == [] and r.error_key == (RemoteProtocolError, 1002)

    @pytest.mark.parametrize("side", SIDES)
    @pytest.mark.parametrize("b0", [0x09, 0x0A, 0x08])
    def test_receives_fragmented_control_frame(self, side: str, b0: int) -> None:
        """RFC 6455 5.5: control frames MUST NOT be fragmented."""
        r = receive(side, peer_frame(side, b0, b""))
        assert r.events == [] and r.error_key == (RemoteProtocolError, 1002)

    def test_server_receives_ping_after_sending_close_and_does_not_answer(self) -> None:
        p = WsProtocol("server")
        p.close()
        events, exc = drive(p, [cframe(0x89, b"x")])
        assert exc is None and events == [(0x89, b"x")]
        assert p.data_to_send() == b""


class TestReceiveClose:
    @pytest.mark.parametrize("side", SIDES)
    def test_receives_close_with_code_and_reason(self, side: str) -> None:
        payload = b"\x03\xe9going away \xe2\x9c\x93"
        r = receive(side, peer_frame(side, 0x88, payload))
        assert r.events == [(0x88, payload)]
        assert r.close_code == 1001 and r.close_reason == "going away \u2713"
        # RFC 6455 5.5.1: answer with a Close echoing the status code.
        assert r.out == our_frame(side, 0x88, b"\x03\xe9")
        assert r.state == CLOSED

    @pytest.mark.parametrize("side", SIDES)
    def test_receives_empty_close(self, side: str) -> None:
        r = receive(side, peer_frame(side, 0x88, b""))
        assert r.events == [(0x88, b"")]
        assert r.close_code == 1005 and r.close_reason == ""  # RFC 6455 7.1.5
        assert r.out == our_frame(side, 0x88, b"")
        assert r.state == CLOSED

    @pytest.mark.parametrize("side", SIDES)
    def test_receives_close_with_1_byte_payload(self, side: str) -> None:
        r = receive(side, peer_frame(side, 0x88, b"\x03"))
        assert r.events == [] and r.error_key == (RemoteProtocolError, 1002)
        assert r.out == our_frame(side, 0x88, b"\x03\xea")

    @pytest.mark.parametrize("code", VALID_CODES)
    def test_server_receives_close_with_valid_code(self, code: int) -> None:
        r = receive("server", cframe(0x88, code.to_bytes(2, "big")))
        assert r.error is None and r.close_code == code
        assert r.out == sframe(0x88, code.to_bytes(2, "big"))

    @pytest.mark.parametrize("code", INVALID_CODES)
    def test_server_receives_close_with_invalid_code(self, code: int) -> None:
        """RFC 6455 7.4: reserved/unassigned codes -> protocol error (Autobahn 7.9.x)."""
        r = receive("server", cframe(0x88, code.to_bytes(2, "big")))
        assert r.events == [] and r.error_key == (RemoteProtocolError, 1002)
        assert r.out == sframe(0x88, b"\x03\xea")

    @pytest.mark.parametrize("side", SIDES)
    def test_receives_close_with_invalid_utf8_reason(self, side: str) -> None:
        r = receive(side, peer_frame(side, 0x88, b"\x03\xe8bad \xce\xba\xed\xa0\x80"))
        assert r.events == [] and r.error_key == (RemoteProtocolError, 1007)
        assert r.out == our_frame(side, 0x88, b"\x03\xef")

    @pytest.mark.parametrize("side", SIDES)
    def test_receives_frames_after_close_and_ignores_them(self, side: str) -> None:
        data = peer_frame(side, 0x88, b"\x03\xe8") + peer_frame(side, 0x81, b"ignored")
        data += b"\xff garbage"
        r = receive(side, data)
        assert r.events == [(0x88, b"\x03\xe8")] and r.error is None
        p = WsProtocol(side)  # type: ignore[arg-type]
        drive(p, [peer_frame(side, 0x88, b"")])
        assert p.next_event(b"\x81\x00 more") == (NEED_DATA, 7)

    @pytest.mark.parametrize("side", SIDES)
    def test_receives_close_while_a_message_is_in_progress(self, side: str) -> None:
        r = receive(side, peer_frame(side, 0x01, b"half") + peer_frame(side, 0x88, b"\x03\xe8"))
        assert r.events == [(0x88, b"\x03\xe8")] and r.state == CLOSED

    def test_server_receives_close_after_sending_close(self) -> None:
        p = WsProtocol("server")
        assert p.close(1000, "bye") == sframe(0x88, b"\x03\xe8bye")
        assert p.state == CLOSING
        events, exc = drive(p, [cframe(0x81, b"still delivered"), cframe(0x88, b"\x03\xe8")])
        assert exc is None
        assert events == [(0x81, b"still delivered"), (0x88, b"\x03\xe8")]
        assert p.state == CLOSED and p.close_code == 1000
        assert p.data_to_send() == b""  # no second close frame

    def test_client_receives_close_after_sending_close(self) -> None:
        p = WsProtocol("client", rng=fixed_rng)
        assert p.close(4001) == cframe(0x88, b"\x0f\xa1", mask=fixed_rng(4))
        events, _ = drive(p, [sframe(0x88, b"\x0f\xa1")])
        assert events == [(0x88, b"\x0f\xa1")] and p.state == CLOSED
        assert p.data_to_send() == b""


class TestSendClose:
    @pytest.mark.parametrize("code", VALID_CODES)
    def test_server_sends_close_with_valid_code(self, code: int) -> None:
        p = WsProtocol("server")
        assert p.close(code) == sframe(0x88, code.to_bytes(2, "big"))

    @pytest.mark.parametrize("code", INVALID_CODES)
    def test_server_sends_close_with_invalid_code(self, code: int) -> None:
        p = WsProtocol("server")
        with pytest.raises(LocalProtocolError):
            p.close(code)
        assert p.state == OPEN

    def test_server_sends_close_with_123_byte_reason(self) -> None:
        p = WsProtocol("server")
        out = p.close(1000, "\u00e9" * 61 + "x")  # 123 bytes of UTF-8
        assert len(out) == 2 + 125

    def test_server_sends_close_with_124_byte_reason(self) -> None:
        with pytest.raises(LocalProtocolError):
            WsProtocol("server").close(1000, "r" * 124)

    def test_server_sends_close_twice(self) -> None:
        p = WsProtocol("server")
        assert p.close() != b""
        assert p.close() == b""
        assert p.state == CLOSING

    def test_server_sends_close_after_receiving_close(self) -> None:
        p = WsProtocol("server")
        drive(p, [cframe(0x88, b"\x03\xe8")])
        assert p.close() == b""  # the echo is already queued
        assert p.data_to_send() == sframe(0x88, b"\x03\xe8")

    @pytest.mark.parametrize("op", [WS_OP_TEXT, WS_OP_PING])
    def test_server_sends_after_close(self, op: int) -> None:
        """RFC 6455 5.5.1: nothing may be sent after the Close frame."""
        p = WsProtocol("server")
        p.close()
        with pytest.raises(LocalProtocolError):
            p.send(op, b"late")

    def test_server_sends_close_through_send(self) -> None:
        p = WsProtocol("server")
        assert p.send(WS_OP_CLOSE, b"\x03\xe8ok") == sframe(0x88, b"\x03\xe8ok")
        assert p.state == CLOSING
        assert p.send(WS_OP_CLOSE, b"") == b""

    def test_server_sends_empty_close_through_send(self) -> None:
        p = WsProtocol("server")
        assert p.send(WS_OP_CLOSE, b"") == b"\x88\x00"

    @pytest.mark.parametrize(
        "payload", [b"\x03", b"\x03\xed", b"\x03\xe8\xff", b"\x03\xe8" + b"x" * 124]
    )
    def test_server_sends_bad_close_payload_through_send(self, payload: bytes) -> None:
        with pytest.raises(LocalProtocolError):
            WsProtocol("server").send(WS_OP_CLOSE, payload)

    def test_events_are_wsmessages_with_opcode_and_fin(self) -> None:
        p = WsProtocol("server")
        ev, _ = p.next_event(cframe(0x88, b"\x03\xe8"))
        assert isinstance(ev, WsMessage) and ev.opcode == WS_OP_CLOSE and ev.fin


def test_client_close_uses_a_fresh_mask_each_frame() -> None:
    keys = iter([b"\x01\x02\x03\x04", b"\x05\x06\x07\x08"])
    p = WsProtocol("client", rng=lambda n: next(keys))
    a = p.send(WS_OP_PING, b"")
    b = p.close()
    assert a[2:6] == b"\x01\x02\x03\x04" and b[2:6] == b"\x05\x06\x07\x08"
    assert b == frame(0x88, b"\x03\xe8", mask=b"\x05\x06\x07\x08")

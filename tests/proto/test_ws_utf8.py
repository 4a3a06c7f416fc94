"""RFC 6455 8.1: text messages must be valid UTF-8, checked incrementally and failing fast."""

from __future__ import annotations

import pytest

from mgpy.errors import RemoteProtocolError
from mgpy.proto.ws import WsProtocol
from tests.proto.ws_helpers import cframe, drive, receive, sframe

SIDES = ["server", "client"]

VALID = [
    "",
    "plain ascii",
    "\u03ba\u1f79\u03c3\u03bc\u03b5",  # κόσμε (Autobahn 6.2)
    "\u00e9\u0800\uffff\U00010000\U0010ffff",  # every sequence length and the edges
    "\U0001f600" * 40,
]
INVALID = [
    b"\xff",
    b"\xfe",
    b"\x80",  # lone continuation byte
    b"\xc0\x80",  # overlong NUL
    b"\xe0\x80\xaf",  # overlong '/'
    b"\xed\xa0\x80",  # UTF-16 surrogate
    b"\xf4\x90\x80\x80",  # above U+10FFFF
    b"\xf8\x88\x80\x80\x80",  # 5-byte form
    b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",  # Autobahn 6.3.1
]


def peer_frame(side: str, b0: int, payload: bytes = b"", **kw: object) -> bytes:
    return cframe(b0, payload, **kw) if side == "server" else sframe(b0, payload, **kw)


class TestUtf8:
    @pytest.mark.parametrize("side", SIDES)
    @pytest.mark.parametrize("text", VALID)
    def test_receives_valid_utf8_text(self, side: str, text: str) -> None:
        raw = text.encode()
        r = receive(side, peer_frame(side, 0x81, raw))
        assert r.events == [(0x81, raw)]

    @pytest.mark.parametrize("side", SIDES)
    @pytest.mark.parametrize("raw", INVALID)
    def test_receives_invalid_utf8_text(self, side: str, raw: bytes) -> None:
        r = receive(side, peer_frame(side, 0x81, b"ok " + raw))
        assert r.events == [] and r.error_key == (RemoteProtocolError, 1007)
        assert r.out[:2] in (b"\x88\x02", b"\x88\x82")

    @pytest.mark.parametrize("side", SIDES)
    def test_receives_invalid_utf8_in_binary_without_complaint(self, side: str) -> None:
        r = receive(side, peer_frame(side, 0x82, b"\xff\xfe\xed\xa0\x80"))
        assert r.events == [(0x82, b"\xff\xfe\xed\xa0\x80")]

    @pytest.mark.parametrize("defrag", [True, False])
    def test_server_receives_valid_text_split_at_every_byte(self, defrag: bool) -> None:
        raw = VALID[3].encode()
        for cut in range(len(raw) + 1):
            data = cframe(0x01, raw[:cut]) + cframe(0x80, raw[cut:])
            r = receive("server", data, defrag=defrag)
            assert r.error is None, cut
            assert b"".join(d for _, d in r.events) == raw

    @pytest.mark.parametrize("defrag", [True, False])
    def test_server_receives_invalid_first_fragment_and_fails_before_the_end(
        self, defrag: bool
    ) -> None:
        """Fail fast: the first fragment already holds an invalid sequence (Autobahn 6.4.1)."""
        data = cframe(0x01, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80")
        r = receive("server", data, defrag=defrag)
        assert r.events == [] and r.error_key == (RemoteProtocolError, 1007)

    def test_server_receives_surrogate_prefix_at_the_end_of_a_fragment(self) -> None:
        """ED A0 can only begin a surrogate: fail without waiting for the next fragment."""
        r = receive("server", cframe(0x01, b"abc\xed\xa0"))
        assert r.error_key == (RemoteProtocolError, 1007)

    def test_server_receives_valid_prefix_at_the_end_of_a_fragment(self) -> None:
        r = receive("server", cframe(0x01, b"abc\xed\x9f"))  # U+D7FF is fine so far
        assert r.error is None and r.events == []

    def test_server_receives_invalid_utf8_early_in_a_frame_still_arriving(self) -> None:
        """Fail fast inside one frame (Autobahn 6.4.3): only part of the payload arrived."""
        payload = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80" + b"e" * 200
        data = cframe(0x81, payload)[:30]
        r = receive("server", data, trailing=False)
        assert r.error_key == (RemoteProtocolError, 1007)

    @pytest.mark.parametrize("defrag", [True, False])
    def test_server_receives_message_ending_inside_a_sequence(self, defrag: bool) -> None:
        data = cframe(0x01, b"abc\xe2\x82") + cframe(0x80, b"")
        r = receive("server", data, defrag=defrag)
        assert r.error_key == (RemoteProtocolError, 1007)

    def test_server_receives_single_frame_ending_inside_a_sequence(self) -> None:
        r = receive("server", cframe(0x81, b"abc\xe2\x82"))
        assert r.error_key == (RemoteProtocolError, 1007)

    def test_server_receives_large_text_in_pieces(self) -> None:
        raw = ("\u00e9\u0800\U0001f600 " * 20000).encode()
        data = cframe(0x81, raw)
        p = WsProtocol("server")
        chunks = [data[i : i + 1001] for i in range(0, len(data), 1001)]  # splits sequences
        events, exc = drive(p, chunks)
        assert exc is None and events == [(0x81, raw)]

    def test_server_utf8_state_resets_between_messages(self) -> None:
        data = cframe(0x01, b"\xe2\x82") + cframe(0x80, b"\xac") + cframe(0x81, b"\xac")
        r = receive("server", data)
        assert r.events == [(0x81, "\u20ac".encode())]
        assert r.error_key == (RemoteProtocolError, 1007)

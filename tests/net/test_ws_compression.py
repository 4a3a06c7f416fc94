"""permessage-deflate (RFC 7692) over real sockets, one class per topic of the RFC.

Server side: a raw, non-blocking socket (``RawWs``) plays the client, so every
extension header and every frame bit the server writes is checked; what it
sends is compressed and what it receives is inflated here with the standard
``zlib``, independently of mgpy.  Client side: ``connect_ws`` against a raw
listener (``RawServer``) that answers the upgrade with a chosen
Sec-WebSocket-Extensions value and writes canned frames.

Bytes are fed whole and one byte per read: ``put(..., "bytes")`` writes a single
byte, then polls until the receiving side got exactly that byte (a RECV event),
so every partial-frame and partial-header state of the receiver is visited.
"""

from __future__ import annotations

import json
import os
import random
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import mgpy
from mgpy import DeflateOptions, Ev, F, Limits
from tests.conftest import run_until
from tests.net.test_ws_client import Client, accept_of
from tests.net.test_ws_server import RawWs, WsRecorder, upgrade_request
from tests.proto.ws_helpers import frame

TAIL = b"\x00\x00\xff\xff"
EXT = "permessage-deflate"
#: what the default options answer to a bare offer (RFC 7692 7.1.1.1, 7.1.1.2, 7.1.2.1
#: let the server add these unasked)
DEFAULT_ANSWER = f"{EXT}; server_no_context_takeover; client_no_context_takeover; " + (
    "server_max_window_bits=12"
)
#: compressible JSON, the dashboard's kind of message (~1.3 KiB, shrinks ~5x)
JSON = json.dumps(
    [{"id": i, "sensor": "temperature", "value": 20 + i / 8, "ok": True} for i in range(20)]
).encode()
MODES = ("whole", "bytes")
#: the options a listener and connect_ws use unless told otherwise
DEFAULTS = DeflateOptions()


# -- zlib on the test's side -----------------------------------------------------------


def deflate(data: bytes, bits: int = 15, comp: Any = None) -> bytes:
    """RFC 7692 7.2.1: DEFLATE, sync flush, 00 00 ff ff removed (``comp``: keep context)."""
    c = comp if comp is not None else zlib.compressobj(6, zlib.DEFLATED, -max(bits, 9))
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


def deflate_pieces(pieces: list[bytes], bits: int = 15) -> list[bytes]:
    """One compressed message split per piece (each flushed, the tail only off the last)."""
    c = zlib.compressobj(6, zlib.DEFLATED, -bits)
    out = [c.compress(p) + c.flush(zlib.Z_SYNC_FLUSH) for p in pieces]
    out[-1] = out[-1][:-4]
    return out


def inflate(payload: bytes, bits: int = 15, d: Any = None) -> bytes:
    """RFC 7692 7.2.2: append 00 00 ff ff and inflate (``d``: a decompressor kept across)."""
    d = d if d is not None else zlib.decompressobj(-bits)
    return bytes(d.decompress(payload + TAIL))


def zip_bomb(megabytes: int) -> bytes:
    """A raw DEFLATE stream (no final block) of about 1 KiB per MiB of zeros it inflates to."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(bytes(1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)  # no back-reference across
    return block * megabytes


# -- the server under test and its raw client -------------------------------------------


def ext_header(offer: str | list[str] | None) -> str:
    if offer is None:
        return ""
    values = [offer] if isinstance(offer, str) else offer
    return "".join(f"Sec-WebSocket-Extensions: {v}\r\n" for v in values)


def server(
    mgr: mgpy.Manager,
    compression: DeflateOptions | None = DEFAULTS,
    limits: Limits | None = None,
    rec: WsRecorder | None = None,
) -> tuple[WsRecorder, int]:
    """An echo server whose listener negotiates with ``compression``."""
    rec = rec if rec is not None else WsRecorder()
    lc = mgr.bind("127.0.0.1:0", rec, limits=limits, compression=compression)
    lc.set_protocol_http_websocket()
    return rec, lc.local[1]


def connect(
    mgr: mgpy.Manager, port: int, offer: str | list[str] | None = EXT, path: str = "/ws"
) -> RawWs:
    cli = RawWs(mgr, port)
    assert cli.handshake(upgrade_request(path=path, extra=ext_header(offer))) == 101
    return cli


def recv_total(rec: WsRecorder) -> int:
    return sum(n for n in rec.data("RECV"))


def put(cli: RawWs, rec: WsRecorder, data: bytes, mode: str) -> None:
    """Write ``data`` whole, or one byte per server read (each byte seen before the next)."""
    if mode == "whole":
        cli.send(data)
        return
    for i in range(len(data)):
        before = recv_total(rec)
        cli.send(data[i : i + 1])
        cli.until(lambda before=before: recv_total(rec) > before or rec.data("CLOSE"))
        if rec.data("CLOSE"):
            return


def recv_message(cli: RawWs) -> tuple[int, bytes]:
    """The next server frame: (first byte, payload)."""
    return cli.recv_frame()


def assert_closes_with(cli: RawWs, code: int) -> None:
    assert cli.recv_close()[0] == code
    cli.wait_eof()


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# =====================================================================================
class TestServerNegotiation:
    """RFC 7692 5, 7.1: the server's answer to every kind of offer, over a socket."""

    @pytest.mark.parametrize(
        ("offer", "answer"),
        [
            (EXT, DEFAULT_ANSWER),
            # Chromium's and Firefox's offer: the client lets us limit its window
            (f"{EXT}; client_max_window_bits", DEFAULT_ANSWER + "; client_max_window_bits=12"),
            (f"{EXT}; client_max_window_bits=10", DEFAULT_ANSWER + "; client_max_window_bits=10"),
            (f"{EXT}; client_max_window_bits=15", DEFAULT_ANSWER + "; client_max_window_bits=12"),
            (f"{EXT}; server_max_window_bits=9", DEFAULT_ANSWER.replace("=12", "=9")),
            (f"{EXT}; server_max_window_bits=8", DEFAULT_ANSWER.replace("=12", "=8")),
            (f"{EXT}; server_max_window_bits=15", DEFAULT_ANSWER),
            (f"{EXT}; server_no_context_takeover", DEFAULT_ANSWER),
            (f"{EXT}; client_no_context_takeover", DEFAULT_ANSWER),
            (f'{EXT}; client_max_window_bits="10"', DEFAULT_ANSWER + "; client_max_window_bits=10"),
            # websockets' and aiohttp's offers
            (
                f"{EXT}; server_no_context_takeover; client_max_window_bits=11",
                DEFAULT_ANSWER + "; client_max_window_bits=11",
            ),
            (
                f"{EXT}; client_max_window_bits=15; server_max_window_bits=10",
                DEFAULT_ANSWER.replace("=12", "=10") + "; client_max_window_bits=12",
            ),
            # several offers: the first acceptable one wins (RFC 7692 5)
            (f"x-webkit-deflate-frame, {EXT}", DEFAULT_ANSWER),
            (
                f"{EXT}; server_max_window_bits=16, {EXT}; client_max_window_bits=9",
                DEFAULT_ANSWER + "; client_max_window_bits=9",
            ),
            (f"{EXT}; mystery, {EXT}", DEFAULT_ANSWER),
            (
                ["foo; bar=1", f"{EXT}; client_max_window_bits=13"],
                DEFAULT_ANSWER + "; client_max_window_bits=12",
            ),
            (
                f"  {EXT} ;  client_max_window_bits = 11 ,",
                DEFAULT_ANSWER + "; client_max_window_bits=11",
            ),
        ],
    )
    def test_server_accepts_offer(self, mgr: mgpy.Manager, offer: Any, answer: str) -> None:
        rec, port = server(mgr)
        cli = connect(mgr, port, offer)
        assert cli.headers["sec-websocket-extensions"] == answer
        run_until(mgr, lambda: rec.conns)
        agreed = mgpy.ws_compression(rec.conns[0])
        assert agreed is not None
        # what the server announced is what it applies
        params = dict(([*p.split("="), ""])[:2] for p in (s.strip() for s in answer.split(";")[1:]))
        assert agreed.server_no_context_takeover == ("server_no_context_takeover" in params)
        assert agreed.server_max_window_bits == int(params.get("server_max_window_bits", 15))
        assert agreed.client_max_window_bits == int(params.get("client_max_window_bits", 15))
        # and the connection works compressed both ways with those windows
        cbits = agreed.client_max_window_bits
        cli.send_frame(0xC1, deflate(JSON, cbits))
        b0, payload = recv_message(cli)
        assert b0 == 0xC1
        assert inflate(payload, agreed.server_max_window_bits) == JSON
        cli.close()

    @pytest.mark.parametrize(
        "offer",
        [
            f"{EXT}; server_max_window_bits=16",
            f"{EXT}; server_max_window_bits=7",
            f"{EXT}; server_max_window_bits=08",  # RFC 7692 7.1.2: no leading zeroes
            f"{EXT}; server_max_window_bits",  # a value is required
            f"{EXT}; client_max_window_bits=1 0",
            f'{EXT}; client_max_window_bits="1 0"',
            f"{EXT}; server_no_context_takeover; server_no_context_takeover",  # duplicated
            f"{EXT}; client_max_window_bits=10; client_max_window_bits=11",
            f"{EXT}; client_max_window_bits; client_max_window_bits",
            f"{EXT}; server_no_context_takeover=1",  # takes no value
            f"{EXT}; client_no_context_takeover=true",
            f"{EXT}; unknown_parameter",
            f"{EXT};; server_no_context_takeover",
            f"{EXT}; server_max_window_bits=10=10",
            f'{EXT}; server_max_window_bits="10',
            "permessage-deflate-x",
            "x-webkit-deflate-frame",
        ],
    )
    def test_server_declines_bad_offer_and_still_upgrades(
        self, mgr: mgpy.Manager, offer: str, mode: str
    ) -> None:
        rec, port = server(mgr)
        cli = RawWs(mgr, port)
        put(cli, rec, upgrade_request(extra=ext_header(offer)), mode)
        assert cli.handshake(b"") == 101
        assert "sec-websocket-extensions" not in cli.headers
        run_until(mgr, lambda: rec.conns)
        assert mgpy.ws_compression(rec.conns[0]) is None
        # uncompressed echo works; RSV1 is now a protocol error (RFC 6455 5.2)
        cli.send_frame(0x81, JSON)
        assert recv_message(cli) == (0x81, JSON)
        cli.send_frame(0xC1, deflate(JSON))
        assert_closes_with(cli, 1002)

    def test_no_offer_no_extension(self, mgr: mgpy.Manager) -> None:
        rec, port = server(mgr)
        cli = connect(mgr, port, None)
        assert "sec-websocket-extensions" not in cli.headers
        run_until(mgr, lambda: rec.conns)
        assert mgpy.ws_compression(rec.conns[0]) is None

    @pytest.mark.parametrize(
        ("opts", "offer", "answer"),
        [
            # a server that keeps context and has no window limit answers a bare offer bare
            (DeflateOptions(False, False, None, None), EXT, EXT),
            # ... echoes what the client asks for (RFC 7692 7.1.1.1 MUST)
            (
                DeflateOptions(False, False, None, None),
                f"{EXT}; server_no_context_takeover; server_max_window_bits=10",
                f"{EXT}; server_no_context_takeover; server_max_window_bits=10",
            ),
            # ... and answers client_max_window_bits only with a value it was offered
            (
                DeflateOptions(False, False, None, None),
                f"{EXT}; client_max_window_bits=11",
                f"{EXT}; client_max_window_bits=11",
            ),
            (DeflateOptions(False, False, None, None), f"{EXT}; client_max_window_bits", EXT),
            (
                DeflateOptions(False, True, 9, 9),
                f"{EXT}; client_max_window_bits",
                f"{EXT}; client_no_context_takeover; server_max_window_bits=9; "
                "client_max_window_bits=9",
            ),
        ],
    )
    def test_server_options_shape_the_answer(
        self, mgr: mgpy.Manager, opts: DeflateOptions, offer: str, answer: str
    ) -> None:
        _rec, port = server(mgr, opts)
        cli = connect(mgr, port, offer)
        assert cli.headers["sec-websocket-extensions"] == answer
        cli.send_frame(0xC2, deflate(JSON, 9))
        b0, payload = recv_message(cli)
        assert b0 == 0xC2 and inflate(payload) == JSON

    def test_bind_compression_none_declines_every_offer(self, mgr: mgpy.Manager) -> None:
        rec, port = server(mgr, None)
        cli = connect(mgr, port, f"{EXT}; client_max_window_bits")
        assert "sec-websocket-extensions" not in cli.headers
        run_until(mgr, lambda: rec.conns)
        assert mgpy.ws_compression(rec.conns[0]) is None
        cli.send_frame(0x81, JSON)
        assert recv_message(cli) == (0x81, JSON)  # sent as is, not compressed
        cli.send_frame(0xC1, deflate(JSON))
        assert_closes_with(cli, 1002)

    def test_ws_accept_decides_per_connection(self, mgr: mgpy.Manager) -> None:
        rec = WsRecorder()

        def on_request(c: mgpy.Connection, hm: mgpy.HttpMessage) -> None:
            c.user_data = hm.uri
            if hm.uri == "/plain":
                mgpy.ws_accept(c, compression=None)
            elif hm.uri == "/wide":
                mgpy.ws_accept(c, compression=DeflateOptions(server_max_window_bits=15))

        rec.on_request = on_request
        rec, port = server(mgr, rec=rec)
        plain = connect(mgr, port, EXT, path="/plain")
        wide = connect(mgr, port, EXT, path="/wide")
        default = connect(mgr, port, EXT, path="/other")
        assert "sec-websocket-extensions" not in plain.headers
        assert wide.headers["sec-websocket-extensions"] == DEFAULT_ANSWER.replace("=12", "=15")
        assert default.headers["sec-websocket-extensions"] == DEFAULT_ANSWER
        run_until(mgr, lambda: len(rec.conns) == 3)
        by_path = {c.user_data: c for c in rec.conns}
        assert mgpy.ws_compression(by_path["/plain"]) is None
        assert mgpy.ws_compression(by_path["/wide"]).server_max_window_bits == 15  # type: ignore[union-attr]
        plain.send_frame(0x81, JSON)
        assert recv_message(plain) == (0x81, JSON)
        for cli in (wide, default):
            cli.send_frame(0xC1, deflate(JSON))
            b0, payload = recv_message(cli)
            assert b0 == 0xC1 and inflate(payload) == JSON

    def test_ws_accept_with_compression_on_a_listener_that_has_none(
        self, mgr: mgpy.Manager
    ) -> None:
        rec = WsRecorder()
        rec.on_request = lambda c, hm: mgpy.ws_accept(c, compression=DeflateOptions())
        rec, port = server(mgr, None, rec=rec)
        cli = connect(mgr, port, EXT)
        assert cli.headers["sec-websocket-extensions"] == DEFAULT_ANSWER

    def test_ws_compression_is_known_at_handshake_done(self, mgr: mgpy.Manager) -> None:
        seen: list[Any] = []
        rec = WsRecorder()
        rec.on_done = lambda c, hm: seen.append(mgpy.ws_compression(c))
        rec, port = server(mgr, rec=rec)
        connect(mgr, port, f"{EXT}; client_max_window_bits")
        run_until(mgr, lambda: seen)
        assert seen[0] is not None and seen[0].client_max_window_bits == 12

    def test_ws_compression_of_a_plain_http_connection_is_none(self, mgr: mgpy.Manager) -> None:
        conns: list[mgpy.Connection] = []
        lc = mgr.bind("127.0.0.1:0", lambda c, ev, d: conns.append(c) if ev == Ev.ACCEPT else 0)
        lc.set_protocol_http_websocket()
        cli = RawWs(mgr, lc.local[1])
        run_until(mgr, lambda: conns)
        assert mgpy.ws_compression(conns[0]) is None
        cli.close()

    def test_bad_compression_argument_is_refused(self, mgr: mgpy.Manager) -> None:
        with pytest.raises(TypeError):
            mgr.bind("127.0.0.1:0", lambda c, ev, d: None, compression=True)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            DeflateOptions(server_max_window_bits=16)


# =====================================================================================
class TestServerFrames:
    """RFC 7692 6: RSV1 on the first frame only; whole and fragmented messages in and out."""

    def test_compressed_text_and_binary_echo_compressed(self, mgr: mgpy.Manager, mode: str) -> None:
        rec, port = server(mgr)
        cli = connect(mgr, port)
        data = frame(0xC1, deflate(JSON)) + frame(0xC2, deflate(JSON * 3))
        put(cli, rec, data, mode)
        for b0, msg in ((0xC1, JSON), (0xC2, JSON * 3)):
            got_b0, payload = recv_message(cli)
            assert got_b0 == b0 and len(payload) < len(msg) // 3
            assert inflate(payload, 12) == msg
        assert [m.data for m in rec.data("WS_FRAME")] == [JSON, JSON * 3]
        # the extension is invisible to the application: RSV1 is not in the flags
        assert [m.flags for m in rec.data("WS_FRAME")] == [0x81, 0x82]

    def test_uncompressed_messages_stay_allowed(self, mgr: mgpy.Manager, mode: str) -> None:
        rec, port = server(mgr)
        cli = connect(mgr, port)
        put(cli, rec, frame(0x81, b"plain") + frame(0xC1, deflate(b"zipped")), mode)
        run_until(mgr, lambda: len(rec.data("WS_FRAME")) == 2)
        assert [m.data for m in rec.data("WS_FRAME")] == [b"plain", b"zipped"]

    def test_fragmented_compressed_message_in(self, mgr: mgpy.Manager, mode: str) -> None:
        rec, port = server(mgr)
        cli = connect(mgr, port)
        pieces = [JSON[:100], JSON[100:700], b"", JSON[700:]]
        z = deflate_pieces(pieces)
        # RFC 7692 6.1: RSV1 on the first frame, never on a continuation; a ping between
        data = (
            frame(0x41, z[0])
            + frame(0x00, z[1])
            + frame(0x89, b"still there?")
            + frame(0x00, z[2])
            + frame(0x80, z[3])
        )
        put(cli, rec, data, mode)
        assert recv_message(cli) == (0x8A, b"still there?")
        b0, payload = recv_message(cli)
        assert b0 == 0xC1 and inflate(payload, 12) == JSON
        assert [m.data for m in rec.data("WS_FRAME")] == [JSON]

    def test_compressed_payload_split_anywhere_between_fragments(self, mgr: mgpy.Manager) -> None:
        """Fragment boundaries need not match flush points: the stream is cut every 7 bytes."""
        _rec, port = server(mgr)
        cli = connect(mgr, port)
        z = deflate(JSON)
        cuts = [z[i : i + 7] for i in range(0, len(z), 7)]
        data = frame(0x41, cuts[0]) + b"".join(frame(0x00, p) for p in cuts[1:-1])
        cli.send(data + frame(0x80, cuts[-1]))
        b0, payload = recv_message(cli)
        assert b0 == 0xC1 and inflate(payload, 12) == JSON

    @pytest.mark.parametrize("form", [16, 64])
    def test_compressed_frame_with_a_non_minimal_length_fails_1002(
        self, mgr: mgpy.Manager, form: int
    ) -> None:
        """RFC 6455 5.2 holds for compressed frames too (a 100-byte payload in 16/64 bits)."""
        _rec, port = server(mgr)
        cli = connect(mgr, port)
        z = deflate(os.urandom(40) * 3)
        assert len(z) < 126
        cli.send(frame(0xC2, z, form=form))
        assert_closes_with(cli, 1002)

    def test_compressed_frames_with_every_length_form(self, mgr: mgpy.Manager) -> None:
        _rec, port = server(mgr, limits=Limits(ws_max_message=4 << 20))
        cli = connect(mgr, port)
        rnd = random.Random(5)
        for size in (10, 200, 3000, 70_000):  # 7-, 16-, 16- and 64-bit compressed lengths
            msg = bytes(rnd.choice(b"abcdefgh") for _ in range(size))
            cli.send_frame(0xC2, deflate(msg))
            b0, p = recv_message(cli)
            assert (inflate(p, 12) if b0 & 0x40 else p) == msg

    def test_rsv1_on_a_continuation_fails_1002(self, mgr: mgpy.Manager, mode: str) -> None:
        rec, port = server(mgr)
        cli = connect(mgr, port)
        z = deflate_pieces([b"a" * 200, b"b" * 200])
        put(cli, rec, frame(0x41, z[0]) + frame(0xC0, z[1]), mode)
        assert_closes_with(cli, 1002)

    def test_no_defrag_delivers_inflated_fragments(self, mgr: mgpy.Manager, mode: str) -> None:
        rec = WsRecorder(echo=False)

        def on_done(c: mgpy.Connection, hm: Any) -> None:
            c.flags |= F.WEBSOCKET_NO_DEFRAG

        rec.on_done = on_done
        rec, port = server(mgr, rec=rec)
        cli = connect(mgr, port)
        pieces = ["grüße, ".encode() * 20, "€ and more ".encode() * 30, b"end" * 50]
        z = deflate_pieces(pieces)
        data = frame(0x41, z[0]) + frame(0x00, z[1]) + frame(0x80, z[2])
        put(cli, rec, data, mode)
        run_until(mgr, lambda: rec.data("WS_FRAME") and rec.data("WS_FRAME")[-1].fin)
        frags = rec.data("WS_FRAME")
        # each fragment arrives inflated, in order, with its own opcode and FIN bit
        assert b"".join(m.data for m in frags) == b"".join(pieces)
        assert frags[0].opcode == mgpy.WS_OP_TEXT and not frags[0].fin
        assert all(m.opcode == mgpy.WS_OP_CONTINUE for m in frags[1:])
        assert [m.fin for m in frags] == [False] * (len(frags) - 1) + [True]
        assert not any(m.flags & 0x40 for m in frags)  # RSV1 is never shown
        if mode == "whole":
            assert [m.data for m in frags] == pieces  # each flushed piece, whole

    def test_server_sends_fragmented_compressed_message(self, mgr: mgpy.Manager) -> None:
        parts = [b"part one " * 30, b"part two " * 30, b"", b"the end " * 30]

        def on_done(c: mgpy.Connection, hm: Any) -> None:
            c.send_websocket_frame(mgpy.WS_OP_TEXT | mgpy.WS_DONT_FIN, parts[0])
            c.send_websocket_frame(mgpy.WS_OP_PING, b"between")
            c.send_websocket_frame(mgpy.WS_OP_CONTINUE | mgpy.WS_DONT_FIN, parts[1])
            c.send_websocket_frame(mgpy.WS_OP_CONTINUE | mgpy.WS_DONT_FIN, parts[2])
            c.send_websocket_frame(mgpy.WS_OP_CONTINUE, parts[3])
            c.send_websocket_frame(mgpy.WS_OP_TEXT, JSON)  # a whole one after it

        rec = WsRecorder()
        rec.on_done = on_done
        rec, port = server(mgr, rec=rec)
        cli = connect(mgr, port)
        d = zlib.decompressobj(-12)
        b0, p = recv_message(cli)
        assert b0 == 0x41  # RSV1 + text, not FIN
        assert d.decompress(p) == parts[0]  # each fragment inflates on arrival (sync flush)
        assert recv_message(cli) == (0x89, b"between")  # control frames: never compressed
        got = [b0]
        for want in parts[1:]:
            b0, p = recv_message(cli)
            got.append(b0)
            tail = TAIL if b0 & 0x80 else b""
            assert d.decompress(p + tail) == want
        assert got == [0x41, 0x00, 0x00, 0x80]  # RSV1 on the first frame only
        b0, p = recv_message(cli)
        assert b0 == 0xC1 and inflate(p, 12) == JSON

    def test_dont_fin_sending_keeps_working_without_compression(self, mgr: mgpy.Manager) -> None:
        def on_done(c: mgpy.Connection, hm: Any) -> None:
            c.send_websocket_frame(mgpy.WS_OP_BINARY | mgpy.WS_DONT_FIN, b"ab" * 100)
            c.send_websocket_frame(mgpy.WS_OP_CONTINUE, b"cd" * 100)

        rec = WsRecorder()
        rec.on_done = on_done
        rec, port = server(mgr, None, rec=rec)
        cli = connect(mgr, port)
        assert recv_message(cli) == (0x02, b"ab" * 100)
        assert recv_message(cli) == (0x80, b"cd" * 100)

    def test_receiving_while_sending_a_fragmented_message(self, mgr: mgpy.Manager) -> None:
        """Receiving and sending keep separate zlib states."""
        rec = WsRecorder(echo=False)
        rec.on_done = lambda c, hm: c.send_websocket_frame(
            mgpy.WS_OP_TEXT | mgpy.WS_DONT_FIN, b"x" * 300
        )
        rec, port = server(mgr, rec=rec)
        cli = connect(mgr, port)
        b0, first = recv_message(cli)
        assert b0 == 0x41
        cli.send_frame(0xC1, deflate(JSON))
        run_until(mgr, lambda: rec.data("WS_FRAME"))
        assert rec.data("WS_FRAME")[0].data == JSON
        rec.conns[0].send_websocket_frame(mgpy.WS_OP_CONTINUE, b"y" * 300)
        b0, last = recv_message(cli)
        assert b0 == 0x80
        assert inflate(first + last, 12) == b"x" * 300 + b"y" * 300


# =====================================================================================
class TestContextTakeover:
    """RFC 7692 7.1.1: with and without context takeover, across messages."""

    def test_default_server_compresses_each_message_alone(self, mgr: mgpy.Manager) -> None:
        _rec, port = server(mgr)
        cli = connect(mgr, port)
        payloads = []
        for _ in range(3):
            cli.send_frame(0xC1, deflate(JSON))
            b0, p = recv_message(cli)
            assert b0 == 0xC1
            payloads.append(p)
        assert payloads[0] == payloads[1] == payloads[2]  # no history: identical bytes
        assert all(inflate(p, 12) == JSON for p in payloads)  # each with a fresh inflater

    def test_server_context_takeover_when_allowed(self, mgr: mgpy.Manager) -> None:
        _rec, port = server(mgr, DeflateOptions(server_no_context_takeover=False))
        cli = connect(mgr, port)
        assert "server_no_context_takeover" not in cli.headers["sec-websocket-extensions"]
        d = zlib.decompressobj(-12)  # one inflater for the whole connection
        sizes = []
        for _ in range(3):
            cli.send_frame(0xC1, deflate(JSON))
            b0, p = recv_message(cli)
            assert b0 == 0xC1 and inflate(p, d=d) == JSON
            sizes.append(len(p))
        # later messages refer back to the first: far smaller
        assert sizes[1] < sizes[0] // 4 and sizes[2] < sizes[0] // 4
        # ... and cannot be inflated on their own
        cli.send_frame(0xC1, deflate(JSON))
        b0, p = recv_message(cli)
        with pytest.raises(zlib.error):
            inflate(p, 12)

    def test_client_asks_for_server_no_context_takeover(self, mgr: mgpy.Manager) -> None:
        _rec, port = server(mgr, DeflateOptions(server_no_context_takeover=False))
        cli = connect(mgr, port, f"{EXT}; server_no_context_takeover")
        assert "server_no_context_takeover" in cli.headers["sec-websocket-extensions"]
        for _ in range(2):
            cli.send_frame(0xC1, deflate(JSON))
            _b0, p = recv_message(cli)
            assert inflate(p, 12) == JSON  # a fresh inflater each time

    @pytest.mark.parametrize("mode", MODES)
    def test_client_context_takeover_when_allowed(self, mgr: mgpy.Manager, mode: str) -> None:
        rec, port = server(mgr, DeflateOptions(client_no_context_takeover=False))
        cli = connect(mgr, port)
        assert "client_no_context_takeover" not in cli.headers["sec-websocket-extensions"]
        comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        msgs = [JSON, JSON, JSON[::-1], JSON]
        zs = [deflate(m, comp=comp) for m in msgs]
        assert len(zs[1]) < len(zs[0]) // 4  # refers back to message one
        put(cli, rec, b"".join(frame(0xC1, z) for z in zs), mode)
        run_until(mgr, lambda: len(rec.data("WS_FRAME")) == 4)
        assert [m.data for m in rec.data("WS_FRAME")] == msgs

    def test_client_context_takeover_with_uncompressed_message_between(
        self, mgr: mgpy.Manager
    ) -> None:
        """An uncompressed message is not part of the window (RFC 7692 7.2.3.3 ... 6.1)."""
        rec, port = server(mgr, DeflateOptions(client_no_context_takeover=False))
        cli = connect(mgr, port)
        comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        cli.send(frame(0xC1, deflate(JSON, comp=comp)) + frame(0x81, b"plain between"))
        cli.send(frame(0xC1, deflate(JSON, comp=comp)))
        run_until(mgr, lambda: len(rec.data("WS_FRAME")) == 3)
        assert [m.data for m in rec.data("WS_FRAME")] == [JSON, b"plain between", JSON]

    def test_without_client_takeover_a_backreference_fails(self, mgr: mgpy.Manager) -> None:
        """The default drops the inflater after each message: history is gone (1007)."""
        _rec, port = server(mgr)
        cli = connect(mgr, port)
        comp = zlib.compressobj(6, zlib.DEFLATED, -12)
        cli.send_frame(0xC1, deflate(JSON, comp=comp))
        b0, _ = recv_message(cli)
        assert b0 == 0xC1
        cli.send_frame(0xC1, deflate(JSON, comp=comp))  # refers to the previous message
        assert_closes_with(cli, 1007)

    def test_final_block_ends_history(self, mgr: mgpy.Manager) -> None:
        """RFC 7692 7.2.3.4: a message may end with BFINAL; the next starts afresh."""
        rec, port = server(mgr, DeflateOptions(client_no_context_takeover=False))
        cli = connect(mgr, port)
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        final = c.compress(JSON) + c.flush(zlib.Z_FINISH)
        cli.send(frame(0xC1, final) + frame(0xC1, deflate(b"next " * 40)))
        run_until(mgr, lambda: len(rec.data("WS_FRAME")) == 2)
        assert [m.data for m in rec.data("WS_FRAME")] == [JSON, b"next " * 40]


# =====================================================================================
#: text with matches at every distance up to 32 KiB: compressed with a window wider
#: than agreed, it cannot be inflated with the agreed one
def _far_text() -> bytes:
    rnd = random.Random(7)
    words = [
        bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(6, 12)))
        for _ in range(3000)
    ]
    return b" ".join(rnd.choice(words) for _ in range(9000))[: 60 * 1024]


FAR = _far_text()


class TestWindowBits:
    """RFC 7692 7.1.2: both windows, 8..15, honoured on the wire."""

    @pytest.mark.parametrize("bits", range(8, 16))
    def test_server_window(self, mgr: mgpy.Manager, bits: int) -> None:
        _rec, port = server(mgr, DeflateOptions(server_max_window_bits=None))
        cli = connect(mgr, port, f"{EXT}; server_max_window_bits={bits}")
        assert f"server_max_window_bits={bits}" in cli.headers["sec-websocket-extensions"]
        cli.send_frame(0xC2, deflate(FAR))
        b0, p = recv_message(cli)
        assert b0 == 0xC2
        # an inflater with exactly the agreed window: a farther match would fail here
        assert inflate(p, bits) == FAR
        if bits < 15:
            wide = zlib.compressobj(6, zlib.DEFLATED, -15)
            far = wide.compress(FAR) + wide.flush(zlib.Z_SYNC_FLUSH)
            with pytest.raises(zlib.error):  # (the check above can fail)
                zlib.decompressobj(-bits).decompress(far)

    @pytest.mark.parametrize("bits", range(8, 16))
    def test_client_window(self, mgr: mgpy.Manager, bits: int) -> None:
        rec, port = server(mgr, DeflateOptions(client_max_window_bits=None))
        cli = connect(mgr, port, f"{EXT}; client_max_window_bits={bits}")
        assert f"client_max_window_bits={bits}" in cli.headers["sec-websocket-extensions"]
        run_until(mgr, lambda: rec.conns)
        assert mgpy.ws_compression(rec.conns[0]).client_max_window_bits == bits  # type: ignore[union-attr]
        cli.send_frame(0xC2, deflate(FAR, bits))
        b0, p = recv_message(cli)
        assert b0 == 0xC2 and inflate(p, 12) == FAR

    def test_client_window_limited_by_the_server(self, mgr: mgpy.Manager) -> None:
        _rec, port = server(mgr, DeflateOptions(client_max_window_bits=9))
        cli = connect(mgr, port, f"{EXT}; client_max_window_bits")
        assert cli.headers["sec-websocket-extensions"].endswith("client_max_window_bits=9")
        cli.send_frame(0xC2, deflate(FAR, 9))
        assert recv_message(cli)[0] == 0xC2


# =====================================================================================
class TestThreshold:
    """DeflateOptions.threshold: short messages go out as they are, RSV1 clear."""

    @pytest.mark.parametrize(("size", "compressed"), [(99, False), (100, True), (4000, True)])
    def test_threshold(self, mgr: mgpy.Manager, size: int, compressed: bool) -> None:
        _rec, port = server(mgr, DeflateOptions(threshold=100))
        cli = connect(mgr, port)
        msg = (b"abc" * 2000)[:size]
        cli.send_frame(0x82, msg)
        b0, p = recv_message(cli)
        if compressed:
            assert b0 == 0xC2 and inflate(p, 12) == msg
        else:
            assert (b0, p) == (0x82, msg)

    def test_default_threshold_is_128(self, mgr: mgpy.Manager) -> None:
        _rec, port = server(mgr)
        cli = connect(mgr, port)
        for size, rsv1 in ((127, 0), (128, 0x40)):
            cli.send_frame(0x81, b"a" * size)
            b0, _ = recv_message(cli)
            assert b0 == 0x81 | rsv1

    def test_incompressible_message_goes_out_uncompressed(self, mgr: mgpy.Manager) -> None:
        _rec, port = server(mgr)
        cli = connect(mgr, port)
        noise = os.urandom(2000)
        cli.send_frame(0xC2, deflate(noise))
        assert recv_message(cli) == (0x82, noise)

    def test_threshold_zero_compresses_even_empty_messages(self, mgr: mgpy.Manager) -> None:
        _rec, port = server(mgr, DeflateOptions(threshold=0))
        cli = connect(mgr, port)
        cli.send_frame(0xC1, deflate(b""))
        b0, p = recv_message(cli)
        assert inflate(p) == b"" if b0 == 0xC1 else p == b""


# =====================================================================================
class TestControlFrames:
    """RFC 7692 6.1: control frames are never compressed, and RSV1 on one fails."""

    def test_ping_pong_close_go_out_plain(self, mgr: mgpy.Manager) -> None:
        rec, port = server(mgr)
        cli = connect(mgr, port)
        run_until(mgr, lambda: rec.conns)
        c = rec.conns[0]
        c.send_websocket_frame(mgpy.WS_OP_PING, b"p" * 125)
        assert recv_message(cli) == (0x89, b"p" * 125)
        cli.send_frame(0x89, b"q" * 125)
        assert recv_message(cli) == (0x8A, b"q" * 125)  # the automatic pong
        mgpy.ws_close(c, 1000, "r" * 100)
        assert recv_message(cli) == (0x88, struct.pack("!H", 1000) + b"r" * 100)

    @pytest.mark.parametrize("b0", [0xC9, 0xCA, 0xC8, 0xC0])
    def test_rsv1_on_control_or_lone_continuation_fails_1002(
        self, mgr: mgpy.Manager, b0: int
    ) -> None:
        _rec, port = server(mgr)
        cli = connect(mgr, port)
        cli.send_frame(b0, deflate(b"x"))
        assert_closes_with(cli, 1002)

    @pytest.mark.parametrize("b0", [0xA1, 0x91, 0xE1])
    def test_rsv2_rsv3_still_fail(self, mgr: mgpy.Manager, b0: int) -> None:
        _rec, port = server(mgr)
        cli = connect(mgr, port)
        cli.send_frame(b0, deflate(b"x"))
        assert_closes_with(cli, 1002)


# =====================================================================================
class TestUtf8AfterInflate:
    """RFC 6455 8.1 on the inflated text, incrementally (1007)."""

    def test_invalid_utf8_in_inflated_text_fails_1007(self, mgr: mgpy.Manager, mode: str) -> None:
        rec, port = server(mgr)
        cli = connect(mgr, port)
        put(cli, rec, frame(0xC1, deflate(b"valid so far " * 20 + b"\xc3\x28")), mode)
        assert_closes_with(cli, 1007)
        assert not rec.data("WS_FRAME")

    def test_multibyte_split_across_compressed_fragments(
        self, mgr: mgpy.Manager, mode: str
    ) -> None:
        rec, port = server(mgr)
        cli = connect(mgr, port)
        text = "€uro ".encode() * 50
        pieces = [text[:1], text[1:2], text[2:]]  # € split in three
        z = deflate_pieces(pieces)
        put(cli, rec, frame(0x41, z[0]) + frame(0x00, z[1]) + frame(0x80, z[2]), mode)
        b0, p = recv_message(cli)
        assert b0 == 0xC1 and inflate(p, 12) == text

    def test_invalid_utf8_fails_before_the_message_ends(self, mgr: mgpy.Manager) -> None:
        _rec, port = server(mgr)
        cli = connect(mgr, port)
        z = deflate_pieces([b"ok " * 50 + b"\xff", b"never sent"])
        cli.send_frame(0x41, z[0])  # the first fragment alone is enough to fail
        assert_closes_with(cli, 1007)

    def test_truncated_sequence_at_the_end_fails(self, mgr: mgpy.Manager) -> None:
        _rec, port = server(mgr)
        cli = connect(mgr, port)
        z = deflate_pieces([b"ok " * 50, b"\xe2\x82"])
        cli.send(frame(0x41, z[0]) + frame(0x80, z[1]))
        assert_closes_with(cli, 1007)

    def test_binary_is_not_checked(self, mgr: mgpy.Manager) -> None:
        _rec, port = server(mgr)
        cli = connect(mgr, port)
        data = b"\xff\xfe" * 200
        cli.send_frame(0xC2, deflate(data))
        _b0, p = recv_message(cli)
        assert inflate(p, 12) == data

    @pytest.mark.parametrize("junk", [b"\xff\xff\xff\xff", b"\x07" + bytes(20)])
    def test_data_that_is_not_deflate_fails_1007(
        self, mgr: mgpy.Manager, junk: bytes, mode: str
    ) -> None:
        rec, port = server(mgr)
        cli = connect(mgr, port)
        put(cli, rec, frame(0xC2, junk), mode)
        assert_closes_with(cli, 1007)


# =====================================================================================
class TestInflateLimit:
    """Limits.ws_max_message bounds the inflated size, enforced while inflating (1009)."""

    LIMIT = 64 * 1024

    @pytest.mark.parametrize("mode", MODES)
    def test_exactly_the_limit_passes_one_more_byte_fails(
        self, mgr: mgpy.Manager, mode: str
    ) -> None:
        rec, port = server(mgr, limits=Limits(ws_max_message=self.LIMIT))
        cli = connect(mgr, port)
        put(cli, rec, frame(0xC2, deflate(bytes(self.LIMIT))), mode)
        b0, p = recv_message(cli)
        assert b0 == 0xC2 and inflate(p) == bytes(self.LIMIT)
        z = deflate(bytes(self.LIMIT + 1))
        assert len(z) < 200  # a tiny frame
        put(cli, rec, frame(0xC2, z), mode)
        assert_closes_with(cli, 1009)
        assert len(rec.data("WS_FRAME")) == 1

    def test_limit_spans_fragments(self, mgr: mgpy.Manager) -> None:
        _rec, port = server(mgr, limits=Limits(ws_max_message=self.LIMIT))
        cli = connect(mgr, port)
        half = bytes(self.LIMIT // 2)
        z = deflate_pieces([half, half, b"!"])
        cli.send(frame(0x42, z[0]) + frame(0x00, z[1]) + frame(0x80, z[2]))
        assert_closes_with(cli, 1009)

    def test_limit_applies_per_fragment_without_defrag(self, mgr: mgpy.Manager) -> None:
        rec = WsRecorder(echo=False)
        rec.on_done = lambda c, hm: setattr(c, "flags", c.flags | F.WEBSOCKET_NO_DEFRAG)
        rec, port = server(mgr, limits=Limits(ws_max_message=self.LIMIT), rec=rec)
        cli = connect(mgr, port)
        half = bytes(self.LIMIT // 2)
        z = deflate_pieces([half, half, half])
        cli.send(frame(0x42, z[0]) + frame(0x00, z[1]) + frame(0x80, z[2]))
        run_until(mgr, lambda: len(rec.data("WS_FRAME")) == 3)
        assert sum(len(m.data) for m in rec.data("WS_FRAME")) == 3 * len(half)

    def test_bomb_gets_1009_and_the_server_goes_on(self, mgr: mgpy.Manager) -> None:
        rec, port = server(mgr)  # ws_max_message: 1 MiB
        bomb = zip_bomb(64)  # 64 KiB on the wire, 64 MiB inflated
        cli = connect(mgr, port)
        cli.send_frame(0xC2, bomb)
        assert_closes_with(cli, 1009)
        assert "1009" in rec.data("ERROR")[0]
        other = connect(mgr, port)
        other.send_frame(0xC1, deflate(JSON))
        assert recv_message(other)[0] == 0xC1

    def test_padded_frame_over_the_wire_cap_fails_at_its_header(self, mgr: mgpy.Manager) -> None:
        """A compressed frame longer than any message within the limit could need (1009)."""
        _rec, port = server(mgr, limits=Limits(ws_max_message=1024))
        cli = connect(mgr, port)
        # the header alone says 60 000 bytes: refused before a byte of payload is read
        cli.send(frame(0xC2, b"", length=60000))  # 4-byte header + mask, no payload
        assert_closes_with(cli, 1009)


# =====================================================================================
class RawServer:
    """A plain listener that answers an upgrade with ``ext`` and then writes what it is told."""

    def __init__(self, mgr: mgpy.Manager, ext: str | None) -> None:
        self.mgr = mgr
        self.ext = ext
        self.request = b""
        self.received = bytearray()
        self.conn: mgpy.Connection | None = None
        lc = mgr.bind("127.0.0.1:0", self.handler, compression=None)
        self.url = f"ws://127.0.0.1:{lc.local[1]}/ws"

    def handler(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev != Ev.RECV:
            return
        buf = bytes(c.recv_mbuf)
        c.recv_mbuf.clear()
        if self.conn is not None:
            self.received += buf
            return
        self.request += buf
        if b"\r\n\r\n" not in self.request:
            return
        head, _, rest = self.request.partition(b"\r\n\r\n")
        self.request = head
        self.received += rest
        key = next(
            ln.split(":", 1)[1].strip()
            for ln in head.decode().split("\r\n")
            if ln.lower().startswith("sec-websocket-key:")
        )
        ext = f"Sec-WebSocket-Extensions: {self.ext}\r\n" if self.ext is not None else ""
        c.send(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept_of(key)}\r\n{ext}\r\n"
            ).encode()
        )
        self.conn = c

    def offer(self) -> str:
        for ln in self.request.decode().split("\r\n"):
            if ln.lower().startswith("sec-websocket-extensions:"):
                return ln.split(":", 1)[1].strip()
        return ""

    def frames(self) -> list[tuple[int, bytes]]:
        """Client frames received so far: (first byte, unmasked payload)."""
        out = []
        b = bytes(self.received)
        while len(b) >= 2:
            ln = b[1] & 0x7F
            pos = 2
            if ln == 126:
                ln, pos = struct.unpack("!H", b[2:4])[0], 4
            elif ln == 127:
                ln, pos = struct.unpack("!Q", b[2:10])[0], 10
            assert b[1] & 0x80, "RFC 6455 5.1: a client MUST mask its frames"
            mask, pos = b[pos : pos + 4], pos + 4
            if len(b) < pos + ln:
                break
            out.append((b[0], bytes(x ^ mask[i % 4] for i, x in enumerate(b[pos : pos + ln]))))
            b = b[pos + ln :]
        return out

    def write(self, data: bytes, mode: str, cli: Client) -> None:
        """Send frames to the client whole, or one byte per client read."""
        assert self.conn is not None
        if mode == "whole":
            self.conn.send(data)
            return
        for i in range(len(data)):
            n = len(cli.data("RECV"))
            self.conn.send(data[i : i + 1])
            run_until(self.mgr, lambda n=n: len(cli.data("RECV")) > n or cli.data("CLOSE"))
            if cli.data("CLOSE"):
                return  # more bytes would only meet a reset


def client_pair(
    mgr: mgpy.Manager, ext: str | None, compression: DeflateOptions | None = DEFAULTS
) -> tuple[RawServer, Client, mgpy.Connection]:
    srv = RawServer(mgr, ext)
    cli = Client()
    c = mgr.connect_ws(srv.url, cli, compression=compression)
    run_until(mgr, lambda: cli.data("WS_HANDSHAKE_DONE") or cli.data("CLOSE"))
    return srv, cli, c


CLIENT_OFFER = (
    f"{EXT}; server_no_context_takeover; client_no_context_takeover; "
    "server_max_window_bits=12; client_max_window_bits=12, "
    f"{EXT}; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=12"
)


class TestClientNegotiation:
    """RFC 7692 5.1, 7.1: what connect_ws offers, accepts, and fails the connection for."""

    def test_default_offer(self, mgr: mgpy.Manager) -> None:
        srv, _cli, c = client_pair(mgr, None)
        assert srv.offer() == CLIENT_OFFER
        assert mgpy.ws_compression(c) is None  # the server accepted nothing: uncompressed

    def test_offer_follows_the_options(self, mgr: mgpy.Manager) -> None:
        opts = DeflateOptions(False, False, None, None)
        srv, _cli, _c = client_pair(mgr, None, opts)
        assert srv.offer() == f"{EXT}; client_max_window_bits"

    def test_compression_none_offers_nothing(self, mgr: mgpy.Manager) -> None:
        srv, cli, _c = client_pair(mgr, f"{EXT}", None)
        assert "sec-websocket-extensions" not in srv.request.decode().lower()
        # a server answering an extension we did not offer fails the connection
        assert not cli.data("WS_HANDSHAKE_DONE") and cli.data("CLOSE")

    @pytest.mark.parametrize(
        ("answer", "snct", "cnct", "sbits", "cbits"),
        [
            (f"{EXT}; server_no_context_takeover; server_max_window_bits=12", True, True, 12, 12),
            (f"{EXT}; server_no_context_takeover", True, True, 15, 12),
            (
                f"{EXT}; server_no_context_takeover; client_no_context_takeover; "
                "server_max_window_bits=9; client_max_window_bits=10",
                True,
                True,
                9,
                10,
            ),
            (f'{EXT}; server_no_context_takeover; client_max_window_bits="8"', True, True, 15, 8),
            # RFC 7692 7.1.2.2: the server may ignore our 12 and answer more (Autobahn 13.4:
            # 15); we keep the window we promised
            (f"{EXT}; server_no_context_takeover; client_max_window_bits=15", True, True, 15, 12),
        ],
    )
    def test_client_accepts(
        self, mgr: mgpy.Manager, answer: str, snct: bool, cnct: bool, sbits: int, cbits: int
    ) -> None:
        srv, cli, c = client_pair(mgr, answer)
        assert cli.data("WS_HANDSHAKE_DONE")[0].resp_code == 101
        p = mgpy.ws_compression(c)
        assert p is not None
        assert (p.server_no_context_takeover, p.client_no_context_takeover) == (snct, cnct)
        assert (p.server_max_window_bits, p.client_max_window_bits) == (sbits, cbits)
        # the client compresses with the window it was given, masked, RSV1 on
        c.send_websocket_frame(mgpy.WS_OP_TEXT, FAR[:20000])
        run_until(mgr, lambda: srv.frames())
        b0, payload = srv.frames()[0]
        assert b0 == 0xC1 and inflate(payload, cbits) == FAR[:20000]

    @pytest.mark.parametrize(
        "answer",
        [
            "x-webkit-deflate-frame",  # not offered
            f"{EXT}; server_no_context_takeover, {EXT}; server_no_context_takeover",  # two
            f"{EXT}; server_no_context_takeover, x-other",
            f"{EXT}; server_no_context_takeover; mystery",  # unknown parameter
            f"{EXT}; server_no_context_takeover; server_no_context_takeover",  # repeated
            f"{EXT}; server_no_context_takeover; server_max_window_bits=16",  # bad value
            f"{EXT}; server_no_context_takeover; server_max_window_bits=08",
            f"{EXT}; server_no_context_takeover; server_max_window_bits",
            f"{EXT}; server_no_context_takeover; client_max_window_bits",  # no value in a reply
            f"{EXT}; server_no_context_takeover=yes",
            f"{EXT}",  # dropped the server_no_context_takeover we asked for (7.1.1.1)
            f"{EXT}; server_no_context_takeover; =",  # malformed
            f"{EXT}; server_no_context_takeover;",
        ],
    )
    def test_client_fails_the_connection(self, mgr: mgpy.Manager, answer: str) -> None:
        _srv, cli, c = client_pair(mgr, answer)
        run_until(mgr, lambda: cli.data("CLOSE"))
        assert not cli.data("WS_HANDSHAKE_DONE")
        assert "handshake failed" in cli.data("ERROR")[0]
        assert not c.flags & F.IS_WEBSOCKET

    def test_client_without_server_no_context_takeover_accepts_server_context(
        self, mgr: mgpy.Manager
    ) -> None:
        opts = DeflateOptions(server_no_context_takeover=False)
        srv, cli, c = client_pair(mgr, f"{EXT}", opts)
        p = mgpy.ws_compression(c)
        assert p is not None and not p.server_no_context_takeover
        comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        srv.write(
            b"".join(frame(0xC1, deflate(JSON, comp=comp), masked=False) for _ in range(3)),
            "whole",
            cli,
        )
        run_until(mgr, lambda: len(cli.messages()) == 3)
        assert cli.messages() == [(1, JSON)] * 3


class TestClientFrames:
    """connect_ws receiving and sending compressed messages, whole and byte by byte."""

    ANSWER = f"{EXT}; server_no_context_takeover; client_no_context_takeover"

    def test_client_inflates_whole_and_fragmented(self, mgr: mgpy.Manager, mode: str) -> None:
        srv, cli, _c = client_pair(mgr, self.ANSWER)
        z = deflate_pieces([JSON[:500], JSON[500:]])
        data = (
            frame(0xC1, deflate(JSON), masked=False)
            + frame(0x41, z[0], masked=False)
            + frame(0x89, b"hi", masked=False)
            + frame(0x80, z[1], masked=False)
            + frame(0x82, b"plain", masked=False)
        )
        srv.write(data, mode, cli)
        run_until(mgr, lambda: len(cli.messages()) == 3)
        assert cli.messages() == [(1, JSON), (1, JSON), (2, b"plain")]
        run_until(mgr, lambda: srv.frames())
        assert srv.frames()[0] == (0x8A, b"hi")  # the pong, plain

    def test_client_sends_compressed_and_fragmented(self, mgr: mgpy.Manager) -> None:
        srv, _cli, c = client_pair(mgr, self.ANSWER)
        c.send_websocket_frame(mgpy.WS_OP_TEXT, JSON)
        c.send_websocket_frame(mgpy.WS_OP_BINARY, b"short")  # under the threshold
        c.send_websocket_frame(mgpy.WS_OP_TEXT | mgpy.WS_DONT_FIN, b"one " * 50)
        c.send_websocket_frame(mgpy.WS_OP_CONTINUE, b"two " * 50)
        c.send_websocket_frame(mgpy.WS_OP_PING, b"p" * 100)
        run_until(mgr, lambda: len(srv.frames()) == 5)
        f = srv.frames()
        assert f[0][0] == 0xC1 and inflate(f[0][1], 12) == JSON
        assert f[1] == (0x82, b"short")
        assert f[2][0] == 0x41 and f[3][0] == 0x80
        assert inflate(f[2][1] + f[3][1], 12) == b"one " * 50 + b"two " * 50
        assert f[4] == (0x89, b"p" * 100)

    def test_client_limit_and_bad_data(self, mgr: mgpy.Manager) -> None:
        srv = RawServer(mgr, self.ANSWER)
        cli = Client()
        mgr.connect_ws(srv.url, cli, limits=Limits(ws_max_message=4096))
        run_until(mgr, lambda: cli.data("WS_HANDSHAKE_DONE"))
        srv.write(frame(0xC2, deflate(bytes(4097)), masked=False), "whole", cli)
        run_until(mgr, lambda: srv.frames())
        b0, payload = srv.frames()[0]
        assert b0 == 0x88 and struct.unpack("!H", payload[:2])[0] == 1009

    def test_client_invalid_utf8_after_inflate(self, mgr: mgpy.Manager, mode: str) -> None:
        srv, cli, _c = client_pair(mgr, self.ANSWER)
        srv.write(frame(0xC1, deflate(b"abc" * 50 + b"\xed\xa0\x80"), masked=False), mode, cli)
        run_until(mgr, lambda: srv.frames())
        b0, payload = srv.frames()[0]
        assert b0 == 0x88 and struct.unpack("!H", payload[:2])[0] == 1007
        assert not cli.messages()


# =====================================================================================
class TestMgpyBothEnds:
    """connect_ws against mgpy's server: the defaults agree and carry every message."""

    @pytest.mark.parametrize(
        ("server_opts", "client_opts"),
        [
            (DeflateOptions(), DeflateOptions()),
            (DeflateOptions(False, False, None, None), DeflateOptions(False, False, None, None)),
            (DeflateOptions(False, False, 9, 9), DeflateOptions(False, False, 10, 11)),
            (DeflateOptions(), DeflateOptions(False, False, None, None)),
            (None, DeflateOptions()),
            (DeflateOptions(), None),
        ],
    )
    def test_round_trip(
        self,
        mgr: mgpy.Manager,
        server_opts: DeflateOptions | None,
        client_opts: DeflateOptions | None,
    ) -> None:
        rec, port = server(mgr, server_opts)
        msgs: list[tuple[int, bytes | str]] = [
            (mgpy.WS_OP_TEXT, JSON.decode()),
            (mgpy.WS_OP_BINARY, FAR),
            (mgpy.WS_OP_TEXT, "short"),
            (mgpy.WS_OP_BINARY, os.urandom(3000)),
            (mgpy.WS_OP_TEXT, JSON.decode()),
        ]
        cli = Client(msgs)
        c = mgr.connect_ws(f"ws://127.0.0.1:{port}/ws", cli, compression=client_opts)
        run_until(mgr, lambda: len(cli.messages()) == len(msgs), timeout=10)
        want = [(op, d.encode() if isinstance(d, str) else d) for op, d in msgs]
        assert cli.messages() == want
        both = server_opts is not None and client_opts is not None
        assert (mgpy.ws_compression(c) is not None) == both
        assert (mgpy.ws_compression(rec.conns[0]) is not None) == both
        if both:
            assert mgpy.ws_compression(c) == mgpy.ws_compression(rec.conns[0])


# =====================================================================================
class TestCli:
    """``python -m mgpy``: compression on by default, ``--no-ws-compression`` turns it off."""

    @pytest.fixture
    def cli(self, tmp_path: Any) -> Iterator[Callable[..., tuple[Any, int]]]:
        from mgpy.__main__ import Server, build_parser

        servers: list[Any] = []

        def start(*extra: str) -> tuple[Any, int]:
            args = build_parser().parse_args(
                [
                    "--root",
                    str(tmp_path),
                    "--listen",
                    "127.0.0.1:0",
                    "--log-level",
                    "error",
                    *list(extra),
                ]
            )
            srv = Server(args)
            srv.start()
            servers.append(srv)
            assert srv.listener is not None
            return srv, srv.listener.local[1]

        yield start
        for srv in servers:
            srv.mgr.close()

    def test_cli_echo_is_compressed_by_default(self, cli: Any) -> None:
        srv, port = cli()
        ws = RawWs(srv.mgr, port)
        ws.handshake(upgrade_request(extra=ext_header(f"{EXT}; client_max_window_bits")))
        assert ws.headers["sec-websocket-extensions"].startswith(DEFAULT_ANSWER)
        ws.send_frame(0xC1, deflate(JSON))
        b0, p = ws.recv_frame()
        assert b0 == 0xC1 and inflate(p, 12) == JSON

    def test_no_ws_compression(self, cli: Any) -> None:
        srv, port = cli("--no-ws-compression")
        ws = RawWs(srv.mgr, port)
        ws.handshake(upgrade_request(extra=ext_header(EXT)))
        assert "sec-websocket-extensions" not in ws.headers
        ws.send_frame(0x81, JSON)
        assert ws.recv_frame() == (0x81, JSON)

    def test_ws_max_fragments(self, cli: Any) -> None:
        srv, port = cli("--ws-max-fragments", "3")
        ws = RawWs(srv.mgr, port)
        ws.handshake(upgrade_request(extra=ext_header(EXT)))
        z = deflate_pieces([b"a" * 200, b"b" * 200, b"c" * 200])
        ws.send(frame(0x41, z[0]) + frame(0x00, z[1]) + frame(0x80, z[2]))
        b0, p = ws.recv_frame()
        assert b0 == 0xC1 and inflate(p, 12) == b"a" * 200 + b"b" * 200 + b"c" * 200
        ws.send(frame(0x41, z[0]) + frame(0x00, z[1]) + frame(0x00, z[2]) + frame(0x80, b""))
        assert_closes_with(ws, 1009)

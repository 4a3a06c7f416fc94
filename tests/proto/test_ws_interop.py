"""Interoperability with the websockets library's sans-IO protocol (a real peer, no sockets)."""

from __future__ import annotations

import random

import pytest
from websockets.exceptions import NegotiationError
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    enable_client_permessage_deflate,
    enable_server_permessage_deflate,
)
from websockets.frames import Frame, Opcode
from websockets.headers import build_extension, parse_extension
from websockets.protocol import Protocol, Side, State

from mgpy.events import WS_DONT_FIN, WS_OP_BINARY, WS_OP_CONTINUE, WS_OP_PING, WS_OP_TEXT
from mgpy.proto import deflate
from mgpy.proto.ws import CLOSED, CLOSING, WsProtocol, broadcast_frame
from tests.proto.ws_helpers import drive

SIZES = [0, 1, 32, 125, 126, 65535, 65536, 300_000]


def their_frames(peer: Protocol, data: bytes) -> list[Frame]:
    peer.receive_data(data)
    return [ev for ev in peer.events_received() if isinstance(ev, Frame)]


def their_bytes(peer: Protocol) -> bytes:
    return b"".join(peer.data_to_send())


@pytest.mark.parametrize("ours,theirs", [("client", Side.SERVER), ("server", Side.CLIENT)])
class TestWithWebsockets:
    def test_we_send_messages_of_every_size(self, ours: str, theirs: Side) -> None:
        me = WsProtocol(ours, max_message=1 << 20)  # type: ignore[arg-type]
        peer = Protocol(theirs, state=State.OPEN, max_size=None)
        rnd = random.Random(1)
        for n in SIZES:
            payload = rnd.randbytes(n)
            (frame,) = their_frames(peer, me.send(WS_OP_BINARY, payload))
            assert frame.opcode is Opcode.BINARY and frame.fin and frame.data == payload
        (frame,) = their_frames(peer, me.send(WS_OP_TEXT, "\u00e9t\u00e9"))
        assert frame.opcode is Opcode.TEXT and frame.data == "\u00e9t\u00e9".encode()

    def test_we_receive_messages_of_every_size(self, ours: str, theirs: Side) -> None:
        me = WsProtocol(ours, max_message=1 << 20)  # type: ignore[arg-type]
        peer = Protocol(theirs, state=State.OPEN, max_size=None)
        rnd = random.Random(2)
        for n in SIZES:
            payload = rnd.randbytes(n)
            peer.send_binary(payload)
            events, exc = drive(me, [their_bytes(peer)])
            assert exc is None and events == [(0x82, payload)]

    def test_fragments_and_pings_both_ways(self, ours: str, theirs: Side) -> None:
        me = WsProtocol(ours)  # type: ignore[arg-type]
        peer = Protocol(theirs, state=State.OPEN)
        peer.send_text(b"frag ", fin=False)
        peer.send_ping(b"ping!")
        peer.send_continuation("\u20ac".encode()[:2], fin=False)
        peer.send_continuation("\u20ac".encode()[2:], fin=True)
        events, exc = drive(me, [their_bytes(peer)])
        assert exc is None
        assert events == [(0x89, b"ping!"), (0x81, "frag \u20ac".encode())]
        # our automatic pong reaches them
        (pong,) = their_frames(peer, me.data_to_send())
        assert pong.opcode is Opcode.PONG and pong.data == b"ping!"
        out = (
            me.send(WS_OP_BINARY | WS_DONT_FIN, b"a")
            + me.send(WS_OP_PING, b"p")
            + me.send(WS_OP_CONTINUE, b"b")
        )
        frames = their_frames(peer, out)
        assert [(f.opcode, f.fin, f.data) for f in frames] == [
            (Opcode.BINARY, False, b"a"),
            (Opcode.PING, True, b"p"),
            (Opcode.CONT, True, b"b"),
        ]

    def test_they_close_and_we_echo(self, ours: str, theirs: Side) -> None:
        me = WsProtocol(ours)  # type: ignore[arg-type]
        peer = Protocol(theirs, state=State.OPEN)
        peer.send_close(1001, "bye")
        events, _ = drive(me, [their_bytes(peer)])
        assert events[0][0] == 0x88 and me.close_code == 1001 and me.close_reason == "bye"
        assert me.state == CLOSED
        their_frames(peer, me.data_to_send())
        # websockets reaches CLOSED only at TCP EOF; the echoed close frame is what counts
        assert peer.close_rcvd is not None and peer.close_rcvd.code == 1001
        assert peer.close_rcvd_then_sent is False and peer.parser_exc is None

    def test_we_close_and_they_echo(self, ours: str, theirs: Side) -> None:
        me = WsProtocol(ours)  # type: ignore[arg-type]
        peer = Protocol(theirs, state=State.OPEN)
        their_frames(peer, me.close(4000, "done"))
        assert me.state == CLOSING
        drive(me, [their_bytes(peer)])
        assert me.state == CLOSED and me.close_code == 4000 and me.close_reason == "done"

    def test_they_fail_on_our_invalid_frames_never(self, ours: str, theirs: Side) -> None:
        """A long mixed session: websockets never reports a protocol error for our output."""
        me = WsProtocol(ours, max_message=1 << 20)  # type: ignore[arg-type]
        peer = Protocol(theirs, state=State.OPEN, max_size=None)
        rnd = random.Random(3)
        out = bytearray()
        for _ in range(300):
            op = rnd.choice([WS_OP_TEXT, WS_OP_BINARY, WS_OP_PING])
            if op == WS_OP_TEXT:
                out += me.send(op, "x\u00e9" * rnd.randrange(100))
            else:
                out += me.send(op, rnd.randbytes(rnd.randrange(126)))
        their_frames(peer, bytes(out))
        assert peer.parser_exc is None and peer.state is State.OPEN


JSON = b'{"cpu": 12.5, "rss": 25600000, "conns": 10234, "name": "dashboard"}' * 10


def _their_server_accepts(offer_value: str) -> tuple[str, PerMessageDeflate]:
    """websockets' server factory (its defaults) answers our offer; return (header, ext)."""
    factory = enable_server_permessage_deflate(None)[0]
    for name, params in parse_extension(offer_value):
        if name != factory.name:
            continue
        try:
            response, ext = factory.process_request_params(params, [])
        except NegotiationError:
            continue  # declined: the next offer (RFC 7692 7.1.3)
        assert isinstance(ext, PerMessageDeflate)
        return build_extension([(factory.name, response)]), ext
    raise AssertionError("websockets declined every offer")


class TestPermessageDeflateWithWebsockets:
    """RFC 7692 against websockets' negotiation and codec (its compression defaults)."""

    def test_our_client_with_their_server(self) -> None:
        header, ext = _their_server_accepts(deflate.offer(deflate.DeflateOptions()))
        params = deflate.accept([header], deflate.DeflateOptions())
        assert params is not None and params.server_no_context_takeover
        me = WsProtocol("client", deflate=params)
        peer = Protocol(Side.SERVER, state=State.OPEN, max_size=None)
        peer.extensions = [ext]  # what its handshake would have set
        for msg in (JSON, b"", "\u00e9t\u00e9 ".encode() * 50, JSON[::-1]):
            frames = their_frames(peer, me.send(WS_OP_TEXT, msg))
            assert [(f.opcode, f.data) for f in frames] == [(Opcode.TEXT, msg)]
            peer.send_text(msg)
            events, exc = drive(me, [their_bytes(peer)])
            assert exc is None and events == [(0x81, msg)]
        frames = their_frames(
            peer, me.send(WS_OP_BINARY | WS_DONT_FIN, JSON) + me.send(WS_OP_CONTINUE, JSON)
        )
        assert b"".join(f.data for f in frames) == JSON * 2

    def test_their_client_with_our_server(self) -> None:
        factory = enable_client_permessage_deflate(None)[0]
        offer_value = build_extension([(factory.name, factory.get_request_params())])
        got = deflate.negotiate([offer_value], deflate.DeflateOptions())
        assert got is not None
        params, response = got
        ((_, their_params),) = parse_extension(response)
        ext = factory.process_response_params(their_params, [])
        me = WsProtocol("server", deflate=params)
        peer = Protocol(Side.CLIENT, state=State.OPEN, max_size=None)
        peer.extensions = [ext]
        for msg in (JSON, JSON, b"x" * 10, random.Random(5).randbytes(3000)):
            peer.send_binary(msg)
            events, exc = drive(me, [their_bytes(peer)])
            assert exc is None and events == [(0x82, msg)]
            frames = their_frames(peer, me.send(WS_OP_BINARY, msg))
            assert [(f.opcode, f.data) for f in frames] == [(Opcode.BINARY, msg)]
        frames = their_frames(peer, broadcast_frame(WS_OP_TEXT, JSON, params))
        assert [f.data for f in frames] == [JSON]
        peer.send_text(b"a" * 100, fin=False)
        peer.send_continuation(b"b" * 100, fin=True)
        events, exc = drive(me, [their_bytes(peer)])
        assert exc is None and events == [(0x81, b"a" * 100 + b"b" * 100)]

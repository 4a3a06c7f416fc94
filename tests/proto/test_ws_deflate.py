"""permessage-deflate on frames (RFC 7692 6, 7.2): WsProtocol(deflate=params).

Received bytes go through ``receive()`` (whole, one byte at a time, with trailing
data: all three must agree).  Compressed frames are built with zlib directly
(``deflated``), independently of mgpy's codec.
"""

from __future__ import annotations

import itertools
import random
import tracemalloc
import zlib

import pytest

from mgpy.errors import LimitExceeded, LocalProtocolError, RemoteProtocolError
from mgpy.events import WS_DONT_FIN
from mgpy.proto.deflate import DeflateOptions, DeflateParams, negotiate
from mgpy.proto.deflate_codec import Compressors, PerMessageDeflate, wire_cap
from mgpy.proto.ws import CLOSED, OPEN, WsProtocol, broadcast_frame
from tests.proto.ws_helpers import (
    deflated,
    drive,
    fixed_rng,
    incoming,
    inflated,
    receive,
    sframe,
)

SIDES = ["server", "client"]
MiB = 1 << 20
HELLO = b"\xf2\x48\xcd\xc9\xc9\x07\x00"  # RFC 7692 7.2.3.1
JSON = b'{"cpu": 12.5, "rss": 25600000, "conns": 10234, "name": "dashboard"}' * 8


def P(
    snct: bool = True,
    cnct: bool = True,
    smwb: int = 15,
    cmwb: int = 15,
    threshold: int = 0,
    level: int = 6,
    mem_level: int = 8,
) -> DeflateParams:
    """Agreed parameters (threshold 0 unless a test is about it)."""
    return DeflateParams(snct, cnct, smwb, cmwb, level, mem_level, threshold)


NO_TAKEOVER = P()
TAKEOVER = P(snct=False, cnct=False)
DEFAULT = negotiate(["permessage-deflate; client_max_window_bits"], DeflateOptions())[0]  # type: ignore[index]


def pair(params: DeflateParams) -> tuple[WsProtocol, WsProtocol]:
    """A server and a client that agreed on ``params``."""
    server = WsProtocol("server", max_message=16 * MiB, deflate=params)
    client = WsProtocol("client", max_message=16 * MiB, deflate=params, rng=fixed_rng)
    return server, client


def server_payload(frame: bytes) -> bytes:
    """The payload of one unmasked frame (RFC 6455 5.2 length forms)."""
    n = frame[1] & 0x7F
    return frame[2 if n < 126 else 4 if n == 126 else 10 :]


def deliver(p: WsProtocol, data: bytes) -> list[tuple[int, bytes]]:
    events, exc = drive(p, [data])
    assert exc is None, exc
    return events


class TestRfc7692Examples:
    """RFC 7692 7.2.3: the worked examples (as server frames, and masked for a server)."""

    @pytest.mark.parametrize("side", SIDES)
    def test_receives_hello(self, side: str) -> None:
        r = receive(side, incoming(side, 0xC1, HELLO), deflate=NO_TAKEOVER)
        assert r.error is None
        assert r.events == [(0x81, b"Hello")]

    def test_client_receives_hello_in_two_fragments(self) -> None:
        """7.2.3.1: 0x41 0x03 0xf2 0x48 0xcd / 0x80 0x04 0xc9 0xc9 0x07 0x00."""
        data = bytes.fromhex("4103f248cd") + bytes.fromhex("8004c9c90700")
        assert receive("client", data, deflate=NO_TAKEOVER).events == [(0x81, b"Hello")]

    def test_server_receives_hello_in_two_masked_fragments(self) -> None:
        data = incoming("server", 0x41, HELLO[:3]) + incoming("server", 0x80, HELLO[3:])
        assert receive("server", data, deflate=NO_TAKEOVER).events == [(0x81, b"Hello")]

    def test_client_receives_two_messages_sharing_the_window(self) -> None:
        """7.2.3.2: the second "Hello" is a back-reference into the first."""
        data = sframe(0xC1, HELLO) + sframe(0xC1, bytes.fromhex("f200110000"))
        r = receive("client", data, deflate=TAKEOVER)
        assert r.events == [(0x81, b"Hello"), (0x81, b"Hello")]

    def test_client_without_server_context_takeover_has_no_window_to_refer_to(self) -> None:
        """7.1.1.1: under server_no_context_takeover each message starts empty."""
        data = sframe(0xC1, HELLO) + sframe(0xC1, bytes.fromhex("f200110000"))
        r = receive("client", data, deflate=NO_TAKEOVER)
        assert r.events == [(0x81, b"Hello")]
        assert r.error_key == (RemoteProtocolError, 1007)

    def test_client_receives_a_stored_block(self) -> None:
        """7.2.3.3: DEFLATE block with no compression."""
        data = sframe(0xC1, bytes.fromhex("000500faff") + b"Hello" + b"\x00")
        assert receive("client", data, deflate=NO_TAKEOVER).events == [(0x81, b"Hello")]

    def test_client_receives_a_final_block_and_then_more_messages(self) -> None:
        """7.2.3.4: BFINAL set; the next message starts from an empty window."""
        data = sframe(0xC1, bytes.fromhex("f348cdc9c90700" + "00")) + sframe(0xC1, HELLO)
        r = receive("client", data, deflate=TAKEOVER)
        assert r.events == [(0x81, b"Hello"), (0x81, b"Hello")]

    def test_client_receives_two_deflate_blocks_in_one_message(self) -> None:
        """7.2.3.5."""
        payload = bytes.fromhex("f24805000000ffffcac9c90700")
        assert receive("client", sframe(0xC1, payload), deflate=NO_TAKEOVER).events == [
            (0x81, b"Hello")
        ]

    def test_server_sends_hello_and_then_a_back_reference(self) -> None:
        """Our compressor gives the RFC's bytes, with context takeover."""
        server = WsProtocol("server", deflate=TAKEOVER)
        assert server.send(1, "Hello") == b"\xc1\x07" + HELLO
        assert server.send(1, "Hello") == b"\xc1\x05" + bytes.fromhex("f200110000")

    def test_server_sends_hello_uncompressed_when_compression_does_not_pay(self) -> None:
        """7 compressed bytes for 5: without context takeover nothing is lost by not."""
        assert WsProtocol("server", deflate=NO_TAKEOVER).send(1, "Hello") == b"\x81\x05Hello"


class TestRsv1:
    """RFC 7692 6 / 6.1: RSV1 is the "Per-Message Compressed" bit of a message's first frame."""

    @pytest.mark.parametrize("side", SIDES)
    def test_receives_rsv1_on_a_continuation(self, side: str) -> None:
        data = incoming(side, 0x42, deflated(b"ab")[:1]) + incoming(side, 0xC0, b"\x00")
        r = receive(side, data, deflate=NO_TAKEOVER)
        assert r.events == [] and r.error_key == (RemoteProtocolError, 1002)

    @pytest.mark.parametrize("side", SIDES)
    @pytest.mark.parametrize("b0", [0xC9, 0xCA, 0xC8])
    def test_receives_rsv1_on_a_control_frame(self, side: str, b0: int) -> None:
        r = receive(side, incoming(side, b0, b"\x03\xe8"), deflate=NO_TAKEOVER)
        assert r.events == [] and r.error_key == (RemoteProtocolError, 1002)

    @pytest.mark.parametrize("side", SIDES)
    @pytest.mark.parametrize("rsv", [0x20, 0x10, 0x60, 0x50])
    def test_receives_rsv2_or_rsv3_with_compression_negotiated(self, side: str, rsv: int) -> None:
        r = receive(side, incoming(side, 0x81 | rsv, b"x"), deflate=NO_TAKEOVER)
        assert r.error_key == (RemoteProtocolError, 1002)

    @pytest.mark.parametrize("side", SIDES)
    def test_receives_a_compressed_frame_without_the_extension(self, side: str) -> None:
        """RFC 6455 5.2: no extension negotiated, so RSV1 fails the connection."""
        r = receive(side, incoming(side, 0xC1, deflated(b"hi")))
        assert r.events == [] and r.error_key == (RemoteProtocolError, 1002)

    @pytest.mark.parametrize("side", SIDES)
    def test_receives_uncompressed_messages_with_compression_negotiated(self, side: str) -> None:
        data = (
            incoming(side, 0x81, b"plain")
            + incoming(side, 0x02, b"a")
            + incoming(side, 0x80, b"b")
            + incoming(side, 0xC2, deflated(b"zipped"))
        )
        r = receive(side, data, deflate=NO_TAKEOVER)
        assert r.events == [(0x81, b"plain"), (0x82, b"ab"), (0x82, b"zipped")]

    def test_control_frames_are_never_compressed(self) -> None:
        server, client = pair(TAKEOVER)
        assert server.send(0x9, b"ping")[0] == 0x89
        assert client.send(0xA, b"pong")[0] == 0x8A
        assert server.close(1000, "bye")[0] == 0x88
        events = deliver(client, sframe(0x89, b"hi"))
        assert events == [(0x89, b"hi")]
        assert client.data_to_send()[0] == 0x8A  # the automatic pong


def split(payload: bytes, cuts: list[int]) -> list[bytes]:
    edges = [0, *cuts, len(payload)]
    return [payload[a:b] for a, b in itertools.pairwise(edges)]


def fragments(side: str, pieces: list[bytes], op: int = 0x1, compressed: bool = True) -> bytes:
    """One message in ``pieces``, RSV1 on the first frame only (RFC 7692 6.1)."""
    first = op | (0x40 if compressed else 0)
    out = []
    for i, piece in enumerate(pieces):
        b0 = (first if i == 0 else 0x0) | (0x80 if i == len(pieces) - 1 else 0)
        out.append(incoming(side, b0, piece))
    return b"".join(out)


class TestFragmentedCompressedMessages:
    @pytest.mark.parametrize("side", SIDES)
    @pytest.mark.parametrize("cuts", [[1], [3, 3], [0, 5, 9], [2, 4, 6, 8]])
    def test_receives_a_compressed_message_in_fragments(self, side: str, cuts: list[int]) -> None:
        payload = deflated(b"Hello, compressed world")
        r = receive(side, fragments(side, split(payload, cuts)), deflate=NO_TAKEOVER)
        assert r.error is None
        assert r.events == [(0x81, b"Hello, compressed world")]

    @pytest.mark.parametrize("side", SIDES)
    def test_receives_pings_between_compressed_fragments(self, side: str) -> None:
        a, b = split(deflated(JSON), [20])
        data = incoming(side, 0x42, a) + incoming(side, 0x89, b"?") + incoming(side, 0x80, b)
        r = receive(side, data, deflate=NO_TAKEOVER)
        assert r.events == [(0x89, b"?"), (0x82, JSON)]
        assert r.out[0] == 0x8A  # answered, and not compressed

    @pytest.mark.parametrize("side", SIDES)
    def test_receives_a_compressed_message_ending_with_an_empty_fragment(self, side: str) -> None:
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        first = c.compress(b"streamed") + c.flush(zlib.Z_SYNC_FLUSH)  # tail kept mid-message
        r = receive(side, fragments(side, [first, b""]), deflate=NO_TAKEOVER)
        assert r.events == [(0x81, b"streamed")]

    @pytest.mark.parametrize("side", SIDES)
    def test_without_defrag_each_fragment_is_delivered_inflated(self, side: str) -> None:
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        parts = [b"first part ", b"second part ", b"last"]
        wire = [c.compress(x) + c.flush(zlib.Z_SYNC_FLUSH) for x in parts]
        wire[-1] = wire[-1][:-4]
        r = receive(side, fragments(side, wire), deflate=NO_TAKEOVER, defrag=False)
        assert r.events == [(0x01, parts[0]), (0x00, parts[1]), (0x80, parts[2])]

    @pytest.mark.parametrize("params", [NO_TAKEOVER, TAKEOVER, DEFAULT], ids=str)
    def test_server_sends_fragments_with_rsv1_on_the_first_only(
        self, params: DeflateParams
    ) -> None:
        server, client = pair(params)
        for _ in range(2):  # twice: the second message may use the first's window
            frames = [
                server.send(0x1 | WS_DONT_FIN, JSON[:100]),
                server.send(0x9, b"mid"),  # a control frame between fragments
                server.send(0x0 | WS_DONT_FIN, JSON[100:300]),
                server.send(0x0, JSON[300:]),
            ]
            assert [f[0] for f in frames] == [0x41, 0x89, 0x00, 0x80]
            assert deliver(client, b"".join(frames)) == [(0x89, b"mid"), (0x81, JSON)]

    def test_client_sends_fragments_the_server_reassembles(self) -> None:
        server, client = pair(DEFAULT)
        frames = [client.send(0x2 | WS_DONT_FIN, b"x" * 500), client.send(0x0, b"y" * 500)]
        assert frames[0][0] == 0x42 and frames[1][0] == 0x80
        assert deliver(server, b"".join(frames)) == [(0x82, b"x" * 500 + b"y" * 500)]

    def test_an_empty_last_fragment_is_sent_and_received(self) -> None:
        server, client = pair(TAKEOVER)
        data = server.send(0x2 | WS_DONT_FIN, JSON) + server.send(0x0, b"")
        assert deliver(client, data) == [(0x82, JSON)]
        assert deliver(client, server.send(0x2, JSON)) == [(0x82, JSON)]  # window still in step


class TestUtf8OnInflatedText:
    """RFC 6455 8.1 on the inflated data, incrementally (RFC 7692 leaves it to RFC 6455)."""

    @pytest.mark.parametrize("side", SIDES)
    def test_receives_compressed_text_with_invalid_utf8(self, side: str) -> None:
        r = receive(side, incoming(side, 0xC1, deflated(b"ok \xff no")), deflate=NO_TAKEOVER)
        assert r.events == [] and r.error_key == (RemoteProtocolError, 1007)

    @pytest.mark.parametrize("side", SIDES)
    def test_receives_a_character_split_across_fragments(self, side: str) -> None:
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        text = "\u20ac uro".encode()
        wire = [c.compress(text[:2]) + c.flush(zlib.Z_SYNC_FLUSH), c.compress(text[2:])]
        wire[1] += c.flush(zlib.Z_SYNC_FLUSH)[:-4]
        r = receive(side, fragments(side, wire), deflate=NO_TAKEOVER)
        assert r.events == [(0x81, text)]

    def test_server_fails_on_the_first_fragment_that_inflates_to_invalid_utf8(self) -> None:
        """Fail fast: the rest of the message is never waited for."""
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        first = c.compress(b"bad \xc0\xaf") + c.flush(zlib.Z_SYNC_FLUSH)
        events, exc = drive(
            WsProtocol("server", deflate=NO_TAKEOVER), [incoming("server", 0x41, first)]
        )
        assert events == []
        assert isinstance(exc, RemoteProtocolError) and exc.ws_code == 1007

    @pytest.mark.parametrize("side", SIDES)
    def test_receives_compressed_text_ending_in_a_truncated_character(self, side: str) -> None:
        r = receive(
            side, incoming(side, 0xC1, deflated("\u20ac".encode()[:2])), deflate=NO_TAKEOVER
        )
        assert r.error_key == (RemoteProtocolError, 1007)

    @pytest.mark.parametrize("side", SIDES)
    @pytest.mark.parametrize("garbage", [b"\xff\xff\xff", b"\x07\x00", bytes(range(200))])
    def test_receives_data_that_is_not_deflate(self, side: str, garbage: bytes) -> None:
        r = receive(side, incoming(side, 0xC2, garbage), deflate=NO_TAKEOVER)
        assert r.events == [] and r.error_key == (RemoteProtocolError, 1007)


def zip_bomb(mib: int) -> bytes:
    """A payload inflating to ``mib`` MiB of zeros, ~1 KiB per MiB: DEFLATE's ~1:1032."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    zeros = bytes(MiB)
    first = c.compress(zeros) + c.flush(zlib.Z_SYNC_FLUSH)
    repeat = c.compress(zeros) + c.flush(zlib.Z_SYNC_FLUSH)  # the same bytes every time
    return (first + repeat * (mib - 1))[:-4]


class TestDecompressedSizeLimit:
    """``max_message`` (Limits.ws_max_message) bounds the inflated size, while inflating."""

    @pytest.mark.parametrize("side", SIDES)
    def test_receives_a_message_inflating_to_exactly_max_message(self, side: str) -> None:
        r = receive(
            side, incoming(side, 0xC2, deflated(b"a" * 1000)), max_message=1000, deflate=NO_TAKEOVER
        )
        assert r.events == [(0x82, b"a" * 1000)]

    @pytest.mark.parametrize("side", SIDES)
    def test_receives_a_message_inflating_to_one_byte_more(self, side: str) -> None:
        r = receive(
            side, incoming(side, 0xC2, deflated(b"a" * 1001)), max_message=1000, deflate=NO_TAKEOVER
        )
        assert r.events == [] and r.error_key == (LimitExceeded, 1009)

    @pytest.mark.parametrize("side", SIDES)
    def test_receives_fragments_inflating_past_max_message(self, side: str) -> None:
        pieces = split(deflated(b"b" * 3000), [3, 6])
        r = receive(side, fragments(side, pieces, op=2), max_message=2999, deflate=NO_TAKEOVER)
        assert r.events == [] and r.error_key == (LimitExceeded, 1009)

    def test_server_without_defrag_limits_each_inflated_fragment(self) -> None:
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        wire = [c.compress(b"x" * 800) + c.flush(zlib.Z_SYNC_FLUSH) for _ in range(3)]
        wire[-1] = wire[-1][:-4]
        r = receive(
            "server",
            fragments("server", wire, op=2),
            max_message=800,
            defrag=False,
            deflate=NO_TAKEOVER,
        )
        assert r.error is None and len(r.events) == 3

    def test_server_refuses_a_compressed_frame_too_long_for_max_message_from_its_header(
        self,
    ) -> None:
        p = WsProtocol("server", max_message=1000, deflate=NO_TAKEOVER)
        header = incoming("server", 0xC2, bytes(wire_cap(1000) + 1))[:8]
        with pytest.raises(LimitExceeded):
            p.next_event(header)

    @pytest.mark.parametrize("side", SIDES)
    @pytest.mark.parametrize("chunk", [None, 65536])
    def test_a_1_gib_zip_bomb_stops_at_max_message_with_flat_memory(
        self, side: str, chunk: int | None
    ) -> None:
        """~1 MiB on the wire that inflates to 1 GiB: refused after at most max_message."""
        data = incoming(side, 0xC2, zip_bomb(1024))
        assert len(data) < 1.1 * MiB
        p = WsProtocol(side, max_message=MiB, deflate=NO_TAKEOVER, rng=fixed_rng)  # type: ignore[arg-type]
        step = chunk or len(data)
        tracemalloc.start()
        try:
            events, exc = drive(p, (data[i : i + step] for i in range(0, len(data), step)))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert events == []
        assert isinstance(exc, LimitExceeded) and exc.ws_code == 1009
        assert p.state == CLOSED and p.data_to_send()[:2] in (b"\x88\x02", b"\x88\x82")
        # the received bytes, their unmasked copy, and max_message of output (zlib's
        # output blocks plus their join); inflating the whole bomb would be 1 GiB
        assert peak < 6 * MiB, peak

    @pytest.mark.parametrize("bomb_mib", [64, 1024])
    def test_the_codec_produces_at_most_the_budget_whatever_the_bomb(self, bomb_mib: int) -> None:
        payload = zip_bomb(bomb_mib)
        codec = PerMessageDeflate(NO_TAKEOVER, "server")
        tracemalloc.start()
        try:
            with pytest.raises(LimitExceeded):
                codec.decompress(payload, MiB)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        # max_length = budget + 1 of output (zlib's blocks and their join) and zlib's copy
        # of the input it did not reach (unconsumed_tail, at most wire_cap): not the bomb
        assert peak < 2 * MiB + wire_cap(MiB), peak


class TestContextTakeover:
    """RFC 7692 7.1.1: context takeover on and off, across messages, both directions."""

    def test_with_client_takeover_the_second_message_is_smaller_and_decodes(self) -> None:
        server, client = pair(TAKEOVER)
        first, second = client.send(1, JSON), client.send(1, JSON)
        assert len(second) < len(first) // 3
        assert deliver(server, first + second) == [(0x81, JSON), (0x81, JSON)]

    def test_without_client_takeover_every_message_stands_alone(self) -> None:
        server, client = pair(NO_TAKEOVER)
        frames = [client.send(1, JSON) for _ in range(3)]
        assert len({len(f) for f in frames}) == 1
        assert deliver(server, b"".join(reversed(frames))) == [(0x81, JSON)] * 3

    def test_with_server_takeover_the_client_follows_the_window(self) -> None:
        server, client = pair(TAKEOVER)
        msgs = [JSON, JSON[::-1], JSON, b"", JSON[5:]]
        data = b"".join(server.send(2, m) for m in msgs)
        assert deliver(client, data) == [(0x82, m) for m in msgs]

    def test_without_server_takeover_identical_messages_give_identical_frames(self) -> None:
        server, client = pair(NO_TAKEOVER)
        a, b = server.send(1, JSON), server.send(1, JSON)
        assert a == b and a[0] == 0xC1
        assert deliver(client, a + b) == [(0x81, JSON)] * 2

    def test_a_peer_that_takes_over_context_it_agreed_not_to_fails_with_1007(self) -> None:
        server_taking_over = WsProtocol("server", deflate=TAKEOVER)
        frames = server_taking_over.send(1, JSON) + server_taking_over.send(1, JSON)
        events, exc = drive(WsProtocol("client", deflate=NO_TAKEOVER), [frames])
        assert events == [(0x81, JSON)]
        assert isinstance(exc, RemoteProtocolError) and exc.ws_code == 1007


def far_repeats(rnd: random.Random, window: int) -> bytes:
    """Data whose repeats sit just inside and just beyond a ``window``-byte window."""
    block = rnd.randbytes(window // 2)
    return block + rnd.randbytes(window // 2 - 16) + block + rnd.randbytes(window) + block


class TestWindowBits:
    """RFC 7692 7.1.2: each side compresses within the window it agreed on, 8 to 15."""

    @pytest.mark.parametrize("bits", range(8, 16))
    def test_client_compresses_within_client_max_window_bits(self, bits: int) -> None:
        params = P(snct=False, cnct=False, cmwb=bits)
        server, client = pair(params)
        rnd = random.Random(bits)
        msgs = [far_repeats(rnd, 1 << bits) for _ in range(3)]
        data = b"".join(client.send(2, m) for m in msgs)
        assert deliver(server, data) == [(0x82, m) for m in msgs]

    @pytest.mark.parametrize("bits", range(8, 16))
    def test_server_compresses_within_server_max_window_bits(self, bits: int) -> None:
        params = P(snct=False, cnct=False, smwb=bits)
        server, client = pair(params)
        rnd = random.Random(100 + bits)
        msgs = [far_repeats(rnd, 1 << bits) for _ in range(3)]
        frames = [server.send(2, m) for m in msgs]
        assert deliver(client, b"".join(frames)) == [(0x82, m) for m in msgs]
        # and a plain zlib inflater with exactly that window agrees
        d = zlib.decompressobj(-bits)
        for f, m in zip(frames, msgs, strict=True):
            assert f[0] == 0xC2
            assert d.decompress(server_payload(f) + b"\x00\x00\xff\xff") == m

    def test_8_bit_window_is_compressed_with_zlibs_9_and_inflates_with_8(self) -> None:
        """zlib refuses raw DEFLATE at 8 bits; its 9-bit window never reaches back 256."""
        rnd = random.Random(8)
        sender = WsProtocol("server", deflate=P(snct=False, smwb=8))
        receiver = zlib.decompressobj(-8)
        for _ in range(20):
            msg = far_repeats(rnd, 256) * 3
            frame = sender.send(2, msg)
            assert frame[0] == 0xC2
            assert receiver.decompress(server_payload(frame) + b"\x00\x00\xff\xff") == msg

    def test_a_peer_past_its_window_fails_with_1007(self) -> None:
        rnd = random.Random(9)
        block = rnd.randbytes(2000)
        wide = WsProtocol("client", deflate=P(snct=False, cnct=False, cmwb=15), rng=fixed_rng)
        frames = wide.send(2, block) + wide.send(2, block)  # refers 2000 bytes back
        events, exc = drive(
            WsProtocol("server", deflate=P(snct=False, cnct=False, cmwb=9)), [frames]
        )
        assert events == [(0x82, block)]
        assert isinstance(exc, RemoteProtocolError) and exc.ws_code == 1007


class TestThreshold:
    def test_messages_below_the_threshold_go_out_uncompressed(self) -> None:
        server = WsProtocol("server", deflate=P(threshold=len(JSON) + 1))
        assert server.send(1, JSON) == b"\x81\x7e" + len(JSON).to_bytes(2, "big") + JSON

    def test_messages_at_the_threshold_are_compressed(self) -> None:
        server, client = pair(P(threshold=len(JSON)))
        frame = server.send(1, JSON)
        assert frame[0] == 0xC1 and len(frame) < len(JSON) // 2
        assert deliver(client, frame) == [(0x81, JSON)]

    def test_the_default_threshold_sends_a_32_byte_push_as_is(self) -> None:
        assert DEFAULT.threshold == 128
        assert WsProtocol("server", deflate=DEFAULT).send(1, JSON[:32])[0] == 0x81

    def test_incompressible_data_goes_out_uncompressed_without_takeover(self) -> None:
        noise = random.Random(1).randbytes(4000)
        assert WsProtocol("server", deflate=NO_TAKEOVER).send(2, noise)[0] == 0x82

    def test_incompressible_data_is_compressed_under_takeover(self) -> None:
        """The compressor's window has seen it, so the peer's must see it too."""
        noise = random.Random(1).randbytes(4000)
        server, client = pair(TAKEOVER)
        frames = server.send(2, noise) + server.send(2, noise)
        assert frames[0] == 0xC2
        assert deliver(client, frames) == [(0x82, noise)] * 2

    def test_fragmented_messages_are_compressed_whatever_their_size(self) -> None:
        server = WsProtocol("server", deflate=DEFAULT)
        assert server.send(1 | WS_DONT_FIN, b"a")[0] == 0x41


class TestIdleMemory:
    """Issue 14: an idle compressed connection holds no zlib state (target <= 4 KiB)."""

    N = 200

    def retained_per_connection(self, params: DeflateParams) -> float:
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            conns = []
            for _ in range(self.N):
                p = WsProtocol("server", deflate=params)
                p.send(1, JSON)  # one push out ...
                drive(p, [incoming("server", 0xC1, deflated(JSON, bits=12))])  # ... one in
                conns.append(p)
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        return (after - before) / self.N

    def test_an_idle_connection_after_a_message_each_way_holds_under_1_kib(self) -> None:
        assert self.retained_per_connection(DEFAULT) < 1024

    def test_context_takeover_would_keep_tens_of_kib(self) -> None:
        """The measure above is meaningful: kept zlib objects show."""
        assert self.retained_per_connection(P(snct=False, cnct=False, smwb=12, cmwb=12)) > 8192


class TestBroadcastFrame:
    """Issue 14 item 4: one frame for every connection with the same parameters."""

    @pytest.mark.parametrize("size", [0, 5, 32, 127, 128, 129, 1000, 70000])
    @pytest.mark.parametrize("params", [None, DEFAULT, NO_TAKEOVER], ids=str)
    def test_broadcast_frame_is_what_send_gives(
        self, size: int, params: DeflateParams | None
    ) -> None:
        data = (JSON * (size // len(JSON) + 1))[:size]
        for op in (1, 2):
            server = WsProtocol("server", deflate=params)
            assert server.can_share_frames
            assert broadcast_frame(op, data, params) == server.send(op, data)

    def test_connections_with_equal_params_decode_the_same_frame(self) -> None:
        options = DeflateOptions()
        frame = broadcast_frame(1, JSON.decode(), DEFAULT)
        for offered in (
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; client_max_window_bits=12",
        ):
            got = negotiate([offered], options)
            assert got is not None and got[0] == DEFAULT
            client = WsProtocol("client", deflate=got[0], rng=fixed_rng)
            assert deliver(client, frame) == [(0x81, JSON)]

    def test_params_with_server_takeover_cannot_share(self) -> None:
        with pytest.raises(ValueError):
            broadcast_frame(1, JSON, TAKEOVER)
        assert not WsProtocol("server", deflate=TAKEOVER).can_share_frames

    @pytest.mark.parametrize("op", [0x0, 0x8, 0x9, 0x3])
    def test_only_text_and_binary_messages_are_broadcast(self, op: int) -> None:
        with pytest.raises(LocalProtocolError):
            broadcast_frame(op, b"x")

    def test_can_share_frames_is_false_when_send_would_differ(self) -> None:
        assert not WsProtocol("client").can_share_frames  # masked
        mid = WsProtocol("server", deflate=DEFAULT)
        mid.send(1 | WS_DONT_FIN, b"a")
        assert not mid.can_share_frames  # inside a fragmented message
        closed = WsProtocol("server")
        closed.close()
        assert not closed.can_share_frames and closed.state != OPEN


def test_fuzzed_compressed_streams_parse_or_raise_remote_protocol_error() -> None:
    """Mutated compressed traffic: events or RemoteProtocolError (1002/1007/1009), nothing else."""
    rnd = random.Random(7692)
    for _ in range(400):
        params = rnd.choice([NO_TAKEOVER, TAKEOVER, DEFAULT])
        sender = WsProtocol("client", deflate=params, rng=fixed_rng)
        msgs = [
            rnd.choice([JSON, b"", rnd.randbytes(50), "\u20ac".encode() * 40]) for _ in range(3)
        ]
        wire = bytearray()
        for m in msgs:
            if rnd.random() < 0.3:
                wire += sender.send(1 | WS_DONT_FIN, m[:10]) + sender.send(0, m[10:])
            else:
                wire += sender.send(rnd.choice([1, 2]), m)
        for _ in range(rnd.randrange(1, 4)):
            i = rnd.randrange(len(wire))
            wire[i] = rnd.randrange(256)
        wire = wire[: rnd.randrange(len(wire) + 1)]
        p = WsProtocol(
            "server", max_message=rnd.choice([100, MiB]), deflate=params, defrag=rnd.random() < 0.8
        )
        step = rnd.choice([1, 7, len(wire) or 1])
        _, exc = drive(p, [bytes(wire[i : i + step]) for i in range(0, len(wire), step)])
        assert exc is None or (
            isinstance(exc, RemoteProtocolError) and exc.ws_code in (1002, 1007, 1009)
        )


def test_inflated_reference_agrees_with_deflated() -> None:
    assert inflated(deflated(JSON, bits=9), bits=9) == JSON


class TestCompressorsPool:
    """One compressor per setting serves every message: the bytes are a fresh compressor's."""

    SETTINGS = [(6, zlib.DEFLATED, -12, 5), (1, zlib.DEFLATED, -9, 1), (9, zlib.DEFLATED, -15, 9)]

    @staticmethod
    def fresh(args: tuple[int, int, int, int], data: bytes) -> bytes:
        c = zlib.compressobj(*args)
        return c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)

    def test_every_message_is_compressed_as_by_a_fresh_compressor(self) -> None:
        rng = random.Random(7)
        words = [b'{"temp": ', b"21.5", b"}, ", b"sensor", b"kitchen", b"\n"]
        pool = Compressors()
        for _ in range(400):
            args = rng.choice(self.SETTINGS)
            n = rng.choice([0, 1, 100, 600, 5000, 70000])
            if rng.random() < 0.3:
                data = rng.randbytes(n)
            else:
                data = b"".join(rng.choice(words) for _ in range(n // 5 + 1))[:n]
            got = pool.alone(args, data)
            assert got == self.fresh(args, data)
            assert got.endswith(b"\x00\x00\xff\xff")
            # and a fresh decompressor (no context kept) reads it back
            assert zlib.decompressobj(args[2]).decompress(got) == data
        assert len(pool) == len(self.SETTINGS)  # one compressor per setting, not per message

    def test_a_connection_without_context_uses_the_pool(self) -> None:
        pool = Compressors()
        params = negotiate(["permessage-deflate"], DeflateOptions())
        assert params is not None
        sender = PerMessageDeflate(params[0], "server", pool)
        msg = b'{"temp": 21.5, "sensor": "kitchen"}' * 10
        a = sender.compress(msg)
        b = sender.compress(msg)
        assert a is not None and a == b  # no context: the same message, the same bytes
        assert len(pool) == 1 and not sender.holds_state

    def test_a_failed_message_does_not_poison_the_pool(self) -> None:
        pool = Compressors()
        args = self.SETTINGS[0]
        with pytest.raises(TypeError):
            pool.alone(args, "not bytes")  # type: ignore[arg-type]
        assert len(pool) in (0, 1)
        assert pool.alone(args, b"hello " * 50) == self.fresh(args, b"hello " * 50)

"""ws_broadcast over real sockets: each distinct frame built once, every client served right.

A mix of raw-socket clients (``RawWs``) sits on one listener: compressed with the
default parameters, uncompressed, compressed with other parameters, and one whose
server keeps context (``ws_accept(c, compression=...)``).  The frame builder is
spied on to count how many frames a broadcast builds; each client checks what it
got with its own ``zlib`` inflater.  Slow consumers are real: a client with a
small receive buffer that stops reading.
"""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Callable
from typing import Any

import pytest

import mgpy
import mgpy.ws.compression as wsc
from mgpy import DeflateOptions, Limits
from tests.conftest import run_until
from tests.net.test_ws_compression import EXT, JSON, connect, inflate, server
from tests.net.test_ws_server import RawWs, WsRecorder, upgrade_request


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, Any]]:
    """Every call of the broadcast frame builder: (opcode, compression parameters)."""
    calls: list[tuple[int, Any]] = []
    real: Callable[..., bytes] = wsc.broadcast_frame

    def spy(op: int, data: bytes, deflate: Any = None, compressors: Any = None) -> bytes:
        calls.append((op, deflate))
        return real(op, data, deflate, compressors)

    monkeypatch.setattr(wsc, "broadcast_frame", spy)
    return calls


class Mix:
    """One listener, clients of every kind; ``/ctx`` is accepted with server context takeover."""

    def __init__(self, mgr: mgpy.Manager, limits: Limits | None = None) -> None:
        self.mgr = mgr
        rec = WsRecorder(echo=False)
        rec.on_request = self.on_request
        self.rec, self.port = server(mgr, limits=limits, rec=rec)
        self.compressed = [connect(mgr, self.port, EXT) for _ in range(3)]
        self.plain = [connect(mgr, self.port, None) for _ in range(2)]
        self.narrow = [connect(mgr, self.port, f"{EXT}; client_max_window_bits=10")]
        self.ctx = connect(mgr, self.port, EXT, path="/ctx")
        self.all = [*self.compressed, *self.plain, *self.narrow, self.ctx]
        run_until(mgr, lambda: len(self.rec.conns) == len(self.all))

    @staticmethod
    def on_request(c: mgpy.Connection, hm: mgpy.HttpMessage) -> None:
        if hm.uri == "/ctx":
            mgpy.ws_accept(c, compression=DeflateOptions(server_no_context_takeover=False))

    @property
    def conns(self) -> list[mgpy.Connection]:
        return self.rec.conns


def test_each_distinct_frame_is_built_once(mgr: mgpy.Manager, built: list[Any]) -> None:
    mix = Mix(mgr)
    n = mgpy.ws_broadcast(mix.conns, mgpy.WS_OP_TEXT, JSON.decode())
    assert n == len(mix.all)
    # three parameter sets can share a frame: default, none, narrow client window; the
    # context-takeover connection compresses with its own compressor, outside the builder
    keys = [k for _, k in built]
    assert len(built) == 3 and len(set(keys)) == 3 and None in keys
    frames = [cli.recv_frame() for cli in mix.all]
    # the same bytes to every connection with the same parameters
    assert frames[0] == frames[1] == frames[2]
    for b0, payload in frames[:3] + frames[5:]:
        assert b0 == 0xC1 and inflate(payload, 12) == JSON
    assert frames[3] == frames[4] == (0x81, JSON)
    assert mgr.counters["ws.broadcast_wire"] == sum(len(p) + 4 for _, p in frames)


def test_context_takeover_client_gets_its_own_stream(mgr: mgpy.Manager, built: list[Any]) -> None:
    mix = Mix(mgr)
    d = zlib.decompressobj(-12)  # the /ctx client's inflater lives as long as its connection
    sizes = []
    for i in range(3):
        msg = b"%d " % i + JSON
        mgpy.ws_broadcast(mix.conns, mgpy.WS_OP_BINARY, msg)
        for cli in mix.all[:-1]:
            b0, p = cli.recv_frame()
            assert (inflate(p, 12) if b0 & 0x40 else p) == msg
        b0, p = mix.ctx.recv_frame()
        assert b0 == 0xC2 and d.decompress(p + b"\x00\x00\xff\xff") == msg
        sizes.append(len(p))
    assert sizes[1] < sizes[0] // 3 and sizes[2] < sizes[0] // 3  # it refers back
    assert len(built) == 9  # three per broadcast, never one per connection


def test_broadcast_skips_what_is_not_an_open_websocket(mgr: mgpy.Manager) -> None:
    mix = Mix(mgr)
    http = RawWs(mgr, mix.port)
    http.send(b"GET /page HTTP/1.1\r\nHost: x\r\n\r\n")
    run_until(mgr, lambda: len(mix.rec.data("HTTP_REQUEST")) == 1)
    closing = mix.conns[0]
    mgpy.ws_close(closing, 1000)
    others = [c for c in mgr.connections if c not in mix.conns]
    n = mgpy.ws_broadcast(others + mix.conns, mgpy.WS_OP_TEXT, "hello " * 30)
    assert n == len(mix.all) - 1  # not the listener, the HTTP connection, the closing one
    assert mix.all[0].recv_frame()[0] == 0x88  # our close, and nothing after it
    mix.all[0].send_frame(0x88, struct.pack("!H", 1000))
    mix.all[0].wait_eof()
    assert mix.all[0].parse_frame() is None


def test_broadcast_refuses_control_opcodes(mgr: mgpy.Manager) -> None:
    mix = Mix(mgr)
    for op in (mgpy.WS_OP_PING, mgpy.WS_OP_CLOSE, mgpy.WS_OP_CONTINUE, mgpy.WS_OP_TEXT | 0x80):
        with pytest.raises(mgpy.LocalProtocolError):
            mgpy.ws_broadcast(mix.conns, op, b"x")


def test_broadcast_to_a_connection_sending_fragments_waits_for_no_one(
    mgr: mgpy.Manager, built: list[Any]
) -> None:
    """A connection inside a fragmented message gets its own frame; RFC 6455 5.4 still holds."""
    mix = Mix(mgr)
    busy = mix.conns[0]
    busy.send_websocket_frame(mgpy.WS_OP_TEXT | mgpy.WS_DONT_FIN, b"first half " * 20)
    with pytest.raises(mgpy.LocalProtocolError):  # no message may interleave
        mgpy.ws_broadcast([busy], mgpy.WS_OP_TEXT, "x" * 200)
    busy.send_websocket_frame(mgpy.WS_OP_CONTINUE, b"second half " * 20)
    assert mgpy.ws_broadcast([busy], mgpy.WS_OP_TEXT, "x" * 200) == 1
    cli = mix.all[0]
    first, last, after = cli.recv_frame(), cli.recv_frame(), cli.recv_frame()
    assert (first[0], last[0], after[0]) == (0x41, 0x80, 0xC1)
    assert inflate(first[1] + last[1], 12) == b"first half " * 20 + b"second half " * 20
    assert inflate(after[1], 12) == b"x" * 200


# -- slow consumers -----------------------------------------------------------------------

#: a 64 KiB message that compresses about 2:1, numbered in its first four bytes
_ALPHABET = b"0123456789abcdef"


def numbered(i: int, rnd: random.Random) -> bytes:
    return struct.pack("!I", i) + bytes(rnd.choice(_ALPHABET) for _ in range(64 * 1024 - 4))


def read_all(cli: RawWs, until: Callable[[list[tuple[int, bytes]]], bool]) -> list[Any]:
    cli.reading = True
    frames: list[tuple[int, bytes]] = []

    def more() -> bool:
        while (f := cli.parse_frame()) is not None:
            frames.append((f[0], f[1]))
        return until(frames)

    cli.until(more, timeout=30)
    return frames


def messages(frames: list[tuple[int, bytes]]) -> list[bytes]:
    return [inflate(p, 12) if b0 & 0x40 else p for b0, p in frames if b0 & 0x0F == 2]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("policy", ["drop", "close"])
def test_slow_consumer_policy_applies_to_broadcast(mgr: mgpy.Manager, policy: str) -> None:
    lim = Limits(ws_send_queue=256 * 1024, ws_slow_policy=policy, ws_close_timeout=5)
    rec, port = server(mgr, limits=lim, rec=WsRecorder(echo=False))
    slow = RawWs(mgr, port, rcvbuf=4096)
    assert slow.handshake(upgrade_request(extra=f"Sec-WebSocket-Extensions: {EXT}\r\n")) == 101
    slow.reading = False
    fast = [connect(mgr, port, EXT), connect(mgr, port, None)]
    run_until(mgr, lambda: len(rec.conns) == 3)
    slow_c = rec.conns[0]
    rnd = random.Random(1)
    sent: list[bytes] = []
    got: list[list[bytes]] = [[], []]
    peak = 0

    def stop() -> bool:
        if policy == "drop":
            return mgpy.ws_dropped(slow_c) >= 5
        return slow_c.error_reason is not None  # the 1008 close frame is queued

    while not stop():
        assert len(sent) < 1000, "the slow consumer's queue never filled"
        msg = numbered(len(sent), rnd)
        n = mgpy.ws_broadcast(rec.conns, mgpy.WS_OP_BINARY, msg)
        assert n >= 2
        sent.append(msg)
        peak = max(peak, len(slow_c.send_mbuf))
        mgr.poll(0)
        for cli, out in zip(fast, got, strict=True):
            cli.pump()
            while (f := cli.parse_frame()) is not None:
                out.extend(messages([(f[0], f[1])]))
    assert peak <= lim.ws_send_queue
    for cli, out in zip(fast, got, strict=True):  # the fast clients got every message, in order
        more = read_all(cli, lambda fs, out=out: len(out) + len(messages(fs)) == len(sent))
        assert out + messages(more) == sent
    if policy == "drop":
        assert not slow_c.is_closing
        mgpy.ws_broadcast(rec.conns, mgpy.WS_OP_TEXT, "the end")
        frames = read_all(slow, lambda fs: bool(fs) and fs[-1] == (0x81, b"the end"))
        msgs = messages(frames)
        # whole messages only, in order, the dropped ones missing
        assert len(msgs) == len(sent) - mgpy.ws_dropped(slow_c)
        assert all(m == sent[struct.unpack("!I", m[:4])[0]] for m in msgs)
        seq = [struct.unpack("!I", m[:4])[0] for m in msgs]
        assert seq == sorted(seq)
    else:
        frames = read_all(slow, lambda fs: bool(fs) and fs[-1][0] == 0x88)
        assert struct.unpack("!H", frames[-1][1][:2])[0] == 1008
        assert messages(frames) == sent[: len(messages(frames))]  # a prefix, intact
        slow.send_frame(0x88, struct.pack("!H", 1008))
        slow.wait_eof()
        assert "slow consumer" in rec.data("ERROR")[0]
        assert mgpy.ws_broadcast(rec.conns, mgpy.WS_OP_TEXT, "after") == 2


@pytest.mark.timeout(60)
def test_broadcast_count_leaves_out_a_dropped_context_takeover_client(mgr: mgpy.Manager) -> None:
    """A connection with its own compressor is subject to the same policy, and counted right."""
    lim = Limits(ws_send_queue=256 * 1024, ws_slow_policy="drop")
    rec = WsRecorder(echo=False)
    rec.on_request = Mix.on_request
    rec, port = server(mgr, limits=lim, rec=rec)
    slow = RawWs(mgr, port, rcvbuf=4096)
    offer = f"Sec-WebSocket-Extensions: {EXT}\r\n"
    assert slow.handshake(upgrade_request(path="/ctx", extra=offer)) == 101
    slow.reading = False
    fast = connect(mgr, port, EXT)
    run_until(mgr, lambda: len(rec.conns) == 2)
    slow_c = rec.conns[0]
    assert not mgpy.ws_compression(slow_c).server_no_context_takeover  # type: ignore[union-attr]
    rnd = random.Random(2)
    counts = []
    while mgpy.ws_dropped(slow_c) < 3:
        assert len(counts) < 1000, "the slow consumer's queue never filled"
        dropped = mgpy.ws_dropped(slow_c)
        n = mgpy.ws_broadcast(rec.conns, mgpy.WS_OP_BINARY, numbered(len(counts), rnd))
        counts.append((n, mgpy.ws_dropped(slow_c) > dropped))
        mgr.poll(0)
        fast.pump()
        while fast.parse_frame() is not None:
            pass
    assert all(n == (1 if was_dropped else 2) for n, was_dropped in counts)
    assert not slow_c.is_closing


def test_connections_with_equal_parameters_share_one_object(mgr: mgpy.Manager) -> None:
    """What lets a broadcast group 10 000 connections by identity, not by comparison."""
    mix = Mix(mgr)
    agreed = [mgpy.ws_compression(c) for c in mix.conns]
    assert agreed[0] is agreed[1] is agreed[2]  # the three default offers
    assert agreed[5] is not agreed[0] and agreed[5] != agreed[0]  # a narrower client window
    assert agreed[3] is None and agreed[4] is None

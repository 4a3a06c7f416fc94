"""Pushing to WebSocket clients: broadcast, iterating connections, slow consumers, WRITABLE.

Slow consumers are real: a raw socket with a small receive buffer that
completes the handshake and then stops reading, so the kernel buffers fill
and the server's send queue grows until ``Limits.ws_send_queue`` applies.
"""

from __future__ import annotations

import struct
import threading
from typing import Any

import pytest

import mgpy
from mgpy import Ev, F, Limits
from tests.conftest import run_until
from tests.net.test_ws_client import Client
from tests.net.test_ws_server import RawWs, WsRecorder, ws_server

CHUNK = 64 * 1024


def slow_client(mgr: mgpy.Manager, port: int) -> RawWs:
    cli = RawWs(mgr, port, rcvbuf=4096)
    assert cli.handshake() == 101
    cli.reading = False  # from now on the client reads nothing
    return cli


def push_until(mgr: mgpy.Manager, c: mgpy.Connection, stop: Any, limit: int = 4000) -> int:
    """Send one numbered 64 KiB message per poll round until ``stop()``; return how many."""
    n = 0
    while not stop():
        assert n < limit, "the send queue never filled"
        c.send_websocket_frame(mgpy.WS_OP_BINARY, struct.pack("!I", n) + bytes(CHUNK - 4))
        n += 1
        mgr.poll(0)
    return n


def read_messages(cli: RawWs, mgr: mgpy.Manager, until: Any) -> list[tuple[int, bytes]]:
    """Read server frames until ``until(frames)`` holds."""
    cli.reading = True
    frames: list[tuple[int, bytes]] = []

    def more() -> bool:
        while True:
            f = cli.parse_frame()
            if f is None:
                break
            frames.append((f[0], f[1]))
        return bool(until(frames))

    cli.until(more, timeout=20)
    return frames


class TestBroadcast:
    def test_broadcast_from_another_thread_reaches_every_websocket(self, mgr: mgpy.Manager) -> None:
        srv, port = ws_server(mgr)
        clients = [Client() for _ in range(4)]
        for cli in clients:
            mgr.connect_ws(f"ws://127.0.0.1:{port}/ws", cli)
        plain = RawWs(mgr, port)  # an HTTP keep-alive connection: not a WebSocket
        plain.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        plain.until(lambda: b"plain http" in plain.inbuf)
        run_until(mgr, lambda: len(srv.conns) == 4)

        def push(c: mgpy.Connection, ev: Any, text: Any) -> None:
            # the server side of every WebSocket (accepted ones: they have a listener)
            if c.is_websocket and c.listener is not None:
                c.send_websocket_frame(mgpy.WS_OP_TEXT, text)

        t = threading.Thread(target=mgr.broadcast, args=(push, "news"))
        t.start()
        t.join()
        run_until(mgr, lambda: all(cli.messages() for cli in clients))
        assert all(cli.messages() == [(1, b"news")] for cli in clients)
        plain.pump()
        assert b"\x81" not in plain.inbuf[plain.inbuf.find(b"plain http") :]
        plain.close()

    def test_broadcasts_from_threads_arrive_in_each_threads_order(self, mgr: mgpy.Manager) -> None:
        srv, port = ws_server(mgr)
        cli = Client()
        mgr.connect_ws(f"ws://127.0.0.1:{port}/ws", cli)
        run_until(mgr, lambda: srv.conns)

        def push(c: mgpy.Connection, ev: Any, text: Any) -> None:
            if c.is_websocket and c.listener is not None:
                c.send_websocket_frame(mgpy.WS_OP_TEXT, text)

        def worker(k: int) -> None:
            for i in range(50):
                mgr.broadcast(push, f"{k}:{i}")

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        run_until(mgr, lambda: len(cli.messages()) == 200)
        for t in threads:
            t.join()
        got = [m.decode() for _, m in cli.messages()]
        for k in range(4):
            assert [int(s.split(":")[1]) for s in got if s.startswith(f"{k}:")] == list(range(50))

    def test_iterating_connections_pushes_to_websockets_only(self, mgr: mgpy.Manager) -> None:
        srv, port = ws_server(mgr)
        clients = [Client() for _ in range(3)]
        for cli in clients:
            mgr.connect_ws(f"ws://127.0.0.1:{port}/ws", cli)
        run_until(mgr, lambda: len(srv.conns) == 3)
        for c in mgr.connections:
            if c.flags & F.IS_WEBSOCKET and c.listener is not None:
                c.send_websocket_frame(mgpy.WS_OP_BINARY, b"\x01\x02")
        run_until(mgr, lambda: all(cli.messages() for cli in clients))
        assert [cli.messages() for cli in clients] == [[(2, b"\x01\x02")]] * 3


class TestSlowConsumer:
    def test_close_policy_sends_1008_and_drops_the_peer(
        self, mgr: mgpy.Manager, caplog: pytest.LogCaptureFixture
    ) -> None:
        lim = Limits(ws_send_queue=256 * 1024, ws_close_timeout=0.3)
        srv, port = ws_server(mgr, lim)
        cli = slow_client(mgr, port)
        run_until(mgr, lambda: srv.conns)
        c = srv.conns[0]
        peak = 0

        def stop() -> bool:
            nonlocal peak
            peak = max(peak, c.send_mbuf.len)
            return "slow consumer" in caplog.text  # logged at once; ERROR comes at close

        push_until(mgr, c, stop)
        assert not c.closed
        # bounded: the queue never held more than the cap plus the close frame
        assert peak <= lim.ws_send_queue + 64
        run_until(mgr, lambda: c.closed)  # the peer never answers: ws_close_timeout ends it
        assert srv.names()[-2:] == ["ERROR", "CLOSE"]
        assert "slow consumer" in srv.data("ERROR")[0]
        cli.close()

    def test_close_policy_peer_that_reads_again_gets_the_1008_close(
        self, mgr: mgpy.Manager, caplog: pytest.LogCaptureFixture
    ) -> None:
        lim = Limits(ws_send_queue=256 * 1024, ws_close_timeout=10)
        srv, port = ws_server(mgr, lim)
        cli = slow_client(mgr, port)
        run_until(mgr, lambda: srv.conns)
        c = srv.conns[0]
        sent = push_until(mgr, c, lambda: "slow consumer" in caplog.text)
        frames = read_messages(cli, mgr, lambda fs: fs and fs[-1][0] == 0x88)
        data = [f for f in frames if f[0] == 0x82]
        # every message queued before the cap was hit arrives whole and in order, then 1008
        assert [struct.unpack("!I", p[:4])[0] for _, p in data] == list(range(sent - 1))
        assert all(len(p) == CHUNK for _, p in data)
        assert struct.unpack("!H", frames[-1][1][:2])[0] == 1008
        cli.send_frame(0x88, struct.pack("!H", 1008))
        cli.wait_eof()

    def test_drop_policy_drops_messages_and_keeps_the_connection(self, mgr: mgpy.Manager) -> None:
        lim = Limits(ws_send_queue=256 * 1024, ws_slow_policy="drop")
        srv, port = ws_server(mgr, lim)
        cli = slow_client(mgr, port)
        run_until(mgr, lambda: srv.conns)
        c = srv.conns[0]
        peak = 0

        def stop() -> bool:
            nonlocal peak
            peak = max(peak, c.send_mbuf.len)
            return mgpy.ws_dropped(c) >= 20

        sent = push_until(mgr, c, stop)
        assert peak <= lim.ws_send_queue
        assert not c.closed and not srv.data("ERROR")
        c.send_websocket_frame(mgpy.WS_OP_TEXT, "the end")
        frames = read_messages(cli, mgr, lambda fs: fs and fs[-1] == (0x81, b"the end"))
        seq = [struct.unpack("!I", p[:4])[0] for b0, p in frames if b0 == 0x82]
        assert all(len(p) == CHUNK for b0, p in frames if b0 == 0x82)  # whole messages only
        assert seq == sorted(seq) and len(seq) == sent - mgpy.ws_dropped(c)
        assert seq[0] == 0 and seq[-1] < sent
        # still a working WebSocket
        cli.send_frame(0x81, b"ping?")
        assert cli.recv_frame() == (0x81, b"ping?")
        cli.close()

    def test_drop_policy_does_not_drop_fragments(
        self, mgr: mgpy.Manager, caplog: pytest.LogCaptureFixture
    ) -> None:
        lim = Limits(ws_send_queue=256 * 1024, ws_slow_policy="drop", ws_close_timeout=0.2)
        srv, port = ws_server(mgr, lim)
        cli = slow_client(mgr, port)
        run_until(mgr, lambda: srv.conns)
        c = srv.conns[0]
        c.send_websocket_frame(mgpy.WS_OP_BINARY | mgpy.WS_DONT_FIN, b"start")
        n = 0
        while "slow consumer" not in caplog.text:
            assert n < 4000
            c.send_websocket_frame(mgpy.WS_OP_CONTINUE | mgpy.WS_DONT_FIN, bytes(CHUNK))
            n += 1
            mgr.poll(0)
        assert mgpy.ws_dropped(c) == 0
        run_until(mgr, lambda: c.closed)
        assert "slow consumer" in srv.data("ERROR")[0]
        cli.close()

    def test_a_message_larger_than_the_cap_goes_out_when_the_queue_is_empty(
        self, mgr: mgpy.Manager
    ) -> None:
        lim = Limits(ws_send_queue=64 * 1024, ws_max_message=1 << 20)
        srv, port = ws_server(mgr, lim)
        cli = RawWs(mgr, port)
        assert cli.handshake() == 101
        cli.send_frame(0x82, bytes(200 * 1024))  # echoed: 200 KiB into an empty queue
        assert cli.recv_frame() == (0x82, bytes(200 * 1024))
        assert not srv.data("ERROR")
        cli.close()


class Producer:
    """What the paced producer has done so far."""

    def __init__(self) -> None:
        self.next = 0
        self.peak = 0
        self.writable: list[int] = []


class TestWritable:
    def test_producer_paced_by_writable_sends_everything(self, mgr: mgpy.Manager) -> None:
        lim = Limits(send_high_water=128 * 1024, send_low_water=32 * 1024, ws_send_queue=512 * 1024)
        total = 200  # 200 x 64 KiB = 12.5 MiB, far more than the queue may hold
        prod = Producer()

        def produce(c: mgpy.Connection) -> None:
            while prod.next < total and c.send_mbuf.len < lim.send_high_water:
                i = prod.next
                c.send_websocket_frame(mgpy.WS_OP_BINARY, struct.pack("!I", i) + bytes(CHUNK - 4))
                prod.next = i + 1
                prod.peak = max(prod.peak, c.send_mbuf.len)

        def h(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            if ev == Ev.WS_HANDSHAKE_DONE:
                produce(c)
            elif ev == Ev.WRITABLE:
                prod.writable.append(ev_data)
                produce(c)

        lc = mgr.bind("127.0.0.1:0", h, limits=lim)
        lc.set_protocol_http_websocket()
        cli = slow_client(mgr, lc.local[1])
        # nothing is read: once the kernel buffers are full the producer stalls at high water
        last = -1
        while prod.next != last:
            last = prod.next
            for _ in range(10):
                mgr.poll(5)
        assert last < total
        assert prod.peak >= lim.send_high_water
        frames = read_messages(cli, mgr, lambda fs: len(fs) == total)
        assert [struct.unpack("!I", p[:4])[0] for _, p in frames] == list(range(total))
        assert prod.writable and all(n <= lim.send_low_water for n in prod.writable)
        assert prod.peak < lim.send_high_water + CHUNK + 16
        cli.close()

    def test_writable_fires_for_websocket_recorder_too(self, mgr: mgpy.Manager) -> None:
        # WRITABLE reaches the endpoint handler of the connection like any other event
        rec = WsRecorder(echo=False)
        lim = Limits(send_high_water=16 * 1024, send_low_water=1024)
        rec.on_done = lambda c, hm: c.send_websocket_frame(mgpy.WS_OP_BINARY, bytes(1 << 20))
        lc = mgr.bind("127.0.0.1:0", lambda c, ev, d: None, limits=lim)
        mgpy.register_http_endpoint(lc, "/ws", rec)
        cli = RawWs(mgr, lc.local[1])
        assert cli.handshake() == 101
        assert cli.recv_frame(timeout=10) == (0x82, bytes(1 << 20))
        run_until(mgr, lambda: rec.data("WRITABLE"))
        assert rec.data("WRITABLE")[0] <= 1024
        cli.close()

"""Robustness of the WebSocket layer over real sockets: handlers that close, raise or
misuse the API in every WebSocket event, on both sides; close races; floods.

Invariants checked everywhere: CLOSE is the last event of a connection and comes
once; nothing follows our close frame on the wire; a peer that pings or is pushed
to without reading cannot grow the send queue past ``Limits.ws_send_queue``.
"""

from __future__ import annotations

import gc
import logging
import random
import socket
import struct
import time
import weakref
from typing import Any

import pytest

import mgpy
from mgpy import WS_DONT_FIN, Ev, F, Limits
from tests.conftest import run_until
from tests.net.test_robust_manager import Seq
from tests.net.test_ws_server import RawWs, WsRecorder
from tests.proto.ws_helpers import frame

Conn = mgpy.Connection


def _open(mgr: mgpy.Manager, handler: Any, rcvbuf: int = 0) -> tuple[RawWs, Conn]:
    lc = mgr.bind("127.0.0.1:0", handler)
    lc.set_protocol_http_websocket()
    w = RawWs(mgr, lc.local[1], rcvbuf=rcvbuf)
    assert w.handshake() == 101
    conns: list[Conn] = []
    run_until(mgr, lambda: conns or conns.extend(c for c in mgr.connections if c.is_websocket))
    return w, conns[0]


class TestHandlerActions:
    """Each action in each WebSocket event, server side and client side (mgpy to mgpy)."""

    EVENTS = ["WS_HANDSHAKE_DONE", "WS_FRAME", "WS_CONTROL_FRAME", "TIMER"]
    ACTIONS = [
        "close_immediately",
        "raise",
        "manager_close",
        "ws_close_twice",
        "send_after_ws_close",
        "fragment_then_close",
    ]

    @pytest.mark.parametrize("side", ["server", "client"])
    @pytest.mark.parametrize("event", EVENTS)
    @pytest.mark.parametrize("action", ACTIONS)
    def test_close_stays_last(self, side: str, event: str, action: str) -> None:
        m = mgpy.Manager()
        done = [False]

        def act(c: Conn, ev: Any) -> None:
            if Ev(ev).name != event or done[0]:
                return
            done[0] = True
            if action == "close_immediately":
                c.flags |= F.CLOSE_IMMEDIATELY
            elif action == "raise":
                raise RuntimeError("handler bug")
            elif action == "manager_close":
                m.close()
            elif action == "ws_close_twice":
                c.ws_close(1000, "bye")
                c.ws_close(1001, "again")
            elif action == "send_after_ws_close":
                c.ws_close(1000)
                c.send_websocket_frame(mgpy.WS_OP_TEXT, "late")
                c.send_websocket_frame(mgpy.WS_OP_PING, "late")
            else:
                c.send_websocket_frame(mgpy.WS_OP_TEXT | WS_DONT_FIN, "a")
                c.ws_close(1000)
                c.send_websocket_frame(mgpy.WS_OP_CONTINUE, "b")

        def both(c: Conn, ev: Any, ev_data: Any) -> None:
            if ev == Ev.WS_HANDSHAKE_DONE:
                c.set_timer(time.time() + 0.01)
                c.send_websocket_frame(mgpy.WS_OP_TEXT, "hi")  # frames right behind the 101
                c.send_websocket_frame(mgpy.WS_OP_TEXT, "there")
                c.send_websocket_frame(mgpy.WS_OP_PING, "p")

        def srv(c: Conn, ev: Any, ev_data: Any) -> None:
            if c.flags & F.LISTENING:
                return
            both(c, ev, ev_data)
            if side == "server":
                act(c, ev)

        def cli(c: Conn, ev: Any, ev_data: Any) -> None:
            both(c, ev, ev_data)
            if side == "client":
                act(c, ev)

        srec, crec = Seq(srv), Seq(cli)
        lc = m.bind("127.0.0.1:0", srec)
        lc.set_protocol_http_websocket()
        m.connect_ws(f"ws://127.0.0.1:{lc.local[1]}/", crec)

        def finished() -> bool:
            conns = [c for c in [*srec.seq, *crec.seq] if not c.flags & F.LISTENING]
            return m._closed or (done[0] and len(conns) == 2 and all(c.closed for c in conns))

        try:
            run_until(m, finished)
        finally:
            m.close()
        for rec in (srec, crec):
            assert rec.after_close == []
            for c, s in rec.seq.items():
                if not c.flags & F.LISTENING:
                    assert s[-1] == "CLOSE" and s.count("CLOSE") == 1, s
        [cseq] = crec.seq.values()
        assert cseq[0] == "CONNECT" and cseq.count("CONNECT") == 1

    @pytest.mark.parametrize("action", ["manager_close", "close_immediately"])
    def test_no_frame_is_delivered_after_the_handler_closed(self, action: str) -> None:
        m = mgpy.Manager()
        rec = Seq()
        closer: list[Conn] = []

        def srv(c: Conn, ev: Any, ev_data: Any) -> None:
            rec(c, ev, ev_data)
            if ev == Ev.WS_FRAME and not closer:
                closer.append(c)
                if action == "manager_close":
                    m.close()
                else:
                    c.flags |= F.CLOSE_IMMEDIATELY

        lc = m.bind("127.0.0.1:0", srv)
        lc.set_protocol_http_websocket()
        w = RawWs(m, lc.local[1])
        assert w.handshake() == 101
        # three frames in one segment: one read, one ws_recv loop
        w.send(frame(0x81, b"1") + frame(0x89, b"p") + frame(0x81, b"2") + frame(0x81, b"3"))
        run_until(m, lambda: m._closed or (closer and closer[0].closed))
        m.close()
        w.close()
        [s] = [s for c, s in rec.seq.items() if c is closer[0]]
        assert s.count("WS_FRAME") == 1 and "WS_CONTROL_FRAME" not in s
        assert s[-1] == "CLOSE" and rec.after_close == []


class TestWire:
    def test_nothing_follows_our_close_frame(self, mgr: mgpy.Manager) -> None:
        def srv(c: Conn, ev: Any, ev_data: Any) -> None:
            if ev == Ev.WS_FRAME:
                c.send_websocket_frame(mgpy.WS_OP_TEXT | WS_DONT_FIN, "frag")
                c.ws_close(1000, "bye")
                c.ws_close(1001, "twice")  # ignored: one close frame only
                c.send_websocket_frame(mgpy.WS_OP_CONTINUE, "rest")  # dropped
                c.send_websocket_frame(mgpy.WS_OP_TEXT, "late")  # dropped
                c.send_websocket_frame(mgpy.WS_OP_PING, "late")  # dropped

        w, c = _open(mgr, srv)
        w.send_frame(0x81, b"go")
        assert w.recv_frame() == (0x01, b"frag")  # a fragment; a close may interleave
        assert w.recv_close() == (1000, b"bye")
        w.send_frame(0x88, struct.pack("!H", 1000))
        w.wait_eof()
        assert w.parse_frame() is None  # no byte after the close frame
        run_until(mgr, lambda: c.closed)
        w.close()

    def test_fragments_interleaved_with_pings_at_scale(self, mgr: mgpy.Manager) -> None:
        msgs: list[bytes] = []

        def srv(c: Conn, ev: Any, ev_data: Any) -> None:
            if ev == Ev.WS_FRAME:
                msgs.append(ev_data.data)

        w, _ = _open(mgr, srv)
        rnd = random.Random(6455)
        expect: list[bytes] = []
        pings: list[bytes] = []
        blob = bytearray()
        for i in range(2000):
            parts = [rnd.randbytes(rnd.randint(0, 300)) for _ in range(rnd.randint(1, 6))]
            expect.append(b"".join(parts))
            for j, p in enumerate(parts):
                blob += frame((0x2 if j == 0 else 0) | (0x80 if j == len(parts) - 1 else 0), p)
                if rnd.random() < 0.5:
                    pings.append(b"%d.%d" % (i, j))
                    blob += frame(0x89, pings[-1])
        w.send(bytes(blob))
        pongs: list[bytes] = []

        def all_pongs() -> bool:
            while (f := w.parse_frame()) is not None:
                assert f[0] == 0x8A
                pongs.append(f[1])
            return len(pongs) == len(pings)

        w.until(lambda: len(msgs) == 2000 and all_pongs(), timeout=20)
        assert msgs == expect
        assert pongs == pings  # every ping answered, in order
        w.close()


class TestPeersThatDoNotRead:
    def test_ping_flood_without_reading_cannot_grow_the_queue(self) -> None:
        lim = Limits(ws_send_queue=256 * 1024)
        with mgpy.Manager(limits=lim) as m:
            w, c = _open(m, WsRecorder(echo=False), rcvbuf=4096)
            w.reading = False
            pings = frame(0x89, b"p" * 125) * 1000
            peak = 0
            t0 = time.monotonic()
            while time.monotonic() - t0 < 1.0:  # ~4 MiB of pings
                w.out += pings
                w.pump()
                m.poll(1)
                peak = max(peak, c.send_mbuf.len)
            assert 0 < peak <= lim.ws_send_queue  # was unbounded (up to max_send_buffer)
            assert not c.closed
            w.reading = True  # reading again: pongs flow again
            w.inbuf.clear()
            w.until(lambda: c.send_mbuf.len == 0)
            w.inbuf.clear()
            w.send_frame(0x89, b"again")
            w.until(lambda: b"again" in w.inbuf)
            w.close()

    def test_peer_that_never_reads_is_dropped_in_bounded_time(self) -> None:
        lim = Limits(ws_ping_interval=0.2, ws_pong_timeout=0.2, ws_close_timeout=0.3)
        errors: list[str] = []

        def srv(c: Conn, ev: Any, ev_data: Any) -> None:
            if ev == Ev.ERROR:
                errors.append(ev_data)
            elif ev == Ev.POLL and c.is_websocket and not c.closed:
                c.send_websocket_frame(mgpy.WS_OP_BINARY, b"z" * 16384)  # a busy producer

        with mgpy.Manager(limits=lim) as m:
            w, c = _open(m, srv, rcvbuf=4096)
            w.reading = False
            t0 = time.monotonic()
            run_until(m, lambda: c.closed, timeout=5)
            assert time.monotonic() - t0 < 3
            assert errors and ("keepalive" in errors[0] or "slow consumer" in errors[0])
            w.close()


class TestClosedSlowConsumers:
    """A slow consumer closed with 1008 frees its queue, its timers and itself at once."""

    @pytest.mark.parametrize("ping_interval", [0.0, 20.0])
    def test_1008_close_frees_the_queue_and_the_connection_at_once(
        self, ping_interval: float, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # a captured log record of the 1008 warning would hold the connection (its args)
        monkeypatch.setattr(logging.getLogger("mgpy"), "disabled", True)
        lim = Limits(ws_send_queue=256 * 1024, ws_close_timeout=0.2, ws_ping_interval=ping_interval)
        closes: list[int] = []
        gc.disable()  # the connection must go by reference counting, not a later GC pass
        try:
            with mgpy.Manager(limits=lim) as m:
                w, c = _open(m, lambda c, ev, d: None, rcvbuf=4096)
                w.reading = False
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
                queue = 0
                while not c.is_closing:
                    mgpy.send_websocket_frame(c, mgpy.WS_OP_BINARY, b"q" * 32768)
                    queue = max(queue, len(c.send_mbuf))
                    m.poll(1)
                assert queue > 200 * 1024  # the queue was full when 1008 was decided
                assert c.error_reason is not None and "slow consumer" in c.error_reason
                ref = weakref.ref(c)
                del c
                run_until(m, lambda: ref() is None or ref().closed, timeout=5)  # type: ignore[union-attr]
                closes.append(1)
                # freed at CLOSE, queue and all: no timer handle, cycle or list keeps it
                assert ref() is None
                w.close()
        finally:
            gc.enable()
        assert closes == [1]

    def test_a_protocol_deadline_that_fired_does_not_keep_its_connection(
        self, mgr: mgpy.Manager
    ) -> None:
        class State:
            def __init__(self, c: Conn) -> None:
                self.h = c.call_later(0.0, self.fired, c)
                self.fired_once = False

            def fired(self, c: Conn) -> None:
                self.fired_once = True

        conns: list[Conn] = []

        def srv(c: Conn, ev: Any, ev_data: Any) -> None:
            if ev == Ev.ACCEPT:
                c.proto_data = State(c)  # c -> state -> handle -> (c,): a cycle
                c.call_later(3600, lambda: None)  # and a second handle
                conns.append(c)

        lc = mgr.bind("127.0.0.1:0", srv)
        gc.disable()
        try:
            with socket.create_connection(lc.local):
                run_until(mgr, lambda: conns and conns[0].proto_data.fired_once)
            run_until(mgr, lambda: conns[0].closed)
            ref = weakref.ref(conns.pop())
            assert ref() is None
        finally:
            gc.enable()

    def test_one_shot_handles_of_a_long_connection_do_not_pile_up(self, mgr: mgpy.Manager) -> None:
        conns: list[Conn] = []
        fired = [0]

        def one() -> None:
            fired[0] += 1

        lc = mgr.bind("127.0.0.1:0", lambda c, ev, d: conns.append(c) if ev == Ev.ACCEPT else 0)
        with socket.create_connection(lc.local):
            run_until(mgr, lambda: conns)
            c = conns[0]
            c.call_later(3600, lambda: None)
            for _ in range(20):
                for _ in range(100):
                    c.call_later(0, one)
                mgr.poll(0)
            run_until(mgr, lambda: fired[0] == 2000)
            hs = c._handles
            assert not isinstance(hs, list) or len(hs) <= 8  # not 2000 spent handles

"""The public protocol interface of the core (docs/protocols.md), over real sockets.

call_later ordering, cancel and reschedule; handles die with their connection and keep
nothing alive; shutdown_write on TCP and TLS (the peer reads every byte, then EOF, and
can still talk back); error() gives ERROR then CLOSE; Manager.close() says 1001 to wss
peers too; deadlines that are not finite numbers are refused at the call.
"""

from __future__ import annotations

import gc
import math
import socket
import ssl
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

import mgpy
from mgpy import Ev
from tests.conftest import run_until
from tests.net.certs import Certs, make_certs


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(Path(tmp_path_factory.mktemp("pki")))


def _nop(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
    pass


class _Arg:
    """An argument whose lifetime the tests watch with a weak reference."""


class TestCallLater:
    def test_calls_run_in_deadline_order_and_equal_delays_in_call_order(
        self, mgr: mgpy.Manager
    ) -> None:
        order: list[str] = []
        mgr.call_later(0.06, order.append, "c")
        mgr.call_later(0.02, order.append, "a1")
        mgr.call_later(0.04, order.append, "b")
        mgr.call_later(0.02, order.append, "a2")
        run_until(mgr, lambda: len(order) == 4)
        assert order == ["a1", "a2", "b", "c"]

    def test_a_cancelled_call_never_runs(self, mgr: mgpy.Manager) -> None:
        ran: list[str] = []
        h = mgr.call_later(0.01, ran.append, "cancelled")
        mgr.call_later(0.05, ran.append, "kept")
        h.cancel()
        assert not h.active
        run_until(mgr, lambda: ran)
        assert ran == ["kept"]

    def test_reschedule_moves_a_call_later_and_earlier(self, mgr: mgpy.Manager) -> None:
        fired: dict[str, float] = {}
        t0 = time.monotonic()
        late = mgr.call_later(0.01, lambda: fired.setdefault("late", time.monotonic() - t0))
        early = mgr.call_later(5.0, lambda: fired.setdefault("early", time.monotonic() - t0))
        late.reschedule(0.15)
        early.reschedule(0.02)
        run_until(mgr, lambda: len(fired) == 2)
        assert fired["early"] < fired["late"]
        assert fired["late"] >= 0.15

    def test_a_fired_handle_can_be_rearmed(self, mgr: mgpy.Manager) -> None:
        n: list[int] = []
        h = mgr.call_later(0.01, n.append, 1)
        run_until(mgr, lambda: n)
        assert not h.active
        h.reschedule(0.01)
        run_until(mgr, lambda: len(n) == 2)

    def test_connection_handles_are_cancelled_when_it_closes(self, mgr: mgpy.Manager) -> None:
        ran: list[str] = []
        closed: list[int] = []
        lc = mgr.bind("127.0.0.1:0", _nop)

        def h(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            if ev == Ev.CONNECT and ev_data == 0:
                c.call_later(0.05, ran.append, "after close")
                c.close()
            elif ev == Ev.CLOSE:
                closed.append(1)

        mgr.connect(f"tcp://127.0.0.1:{lc.local[1]}", h)
        run_until(mgr, lambda: closed)
        mgr.call_later(0.15, ran.append, "sentinel")
        run_until(mgr, lambda: ran)
        assert ran == ["sentinel"]

    def test_a_closed_connections_handles_keep_nothing_alive(self, mgr: mgpy.Manager) -> None:
        refs: list[weakref.ref[_Arg]] = []
        closed: list[int] = []
        lc = mgr.bind("127.0.0.1:0", _nop)

        def h(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            if ev == Ev.CONNECT and ev_data == 0:
                arg = _Arg()
                refs.append(weakref.ref(arg))
                c.call_later(3600, lambda a: None, arg)  # an hour: still in the heap
                c.close()
            elif ev == Ev.CLOSE:
                closed.append(1)

        c = mgr.connect(f"tcp://127.0.0.1:{lc.local[1]}", h)
        run_until(mgr, lambda: closed)
        conn_ref = weakref.ref(c)
        del c
        gc.collect()
        assert refs and refs[0]() is None  # the argument was released at close
        assert conn_ref() is None  # and so was the connection, buffers and all

    def test_an_exception_in_a_connection_call_closes_only_that_connection(
        self, mgr: mgpy.Manager
    ) -> None:
        events: list[tuple[str, Any]] = []
        lc = mgr.bind("127.0.0.1:0", _nop)

        def boom() -> None:
            raise RuntimeError("protocol bug")

        def h(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            if ev == Ev.CONNECT and ev_data == 0:
                c.call_later(0.01, boom)
            elif ev in (Ev.ERROR, Ev.CLOSE):
                events.append((Ev(ev).name, ev_data))

        mgr.connect(f"tcp://127.0.0.1:{lc.local[1]}", h)
        run_until(mgr, lambda: ("CLOSE", None) in events)
        assert events[0][0] == "ERROR"
        assert not lc.closed

    @pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0, "1", True, None])
    def test_deadlines_that_are_not_finite_numbers_are_refused(
        self, mgr: mgpy.Manager, bad: Any
    ) -> None:
        lc = mgr.bind("127.0.0.1:0", _nop)
        with pytest.raises((ValueError, TypeError)):
            mgr.call_later(bad, print)
        with pytest.raises((ValueError, TypeError)):
            lc.call_later(bad, print)
        with pytest.raises((ValueError, TypeError)):
            lc.set_timer(bad)
        h = mgr.call_later(1.0, print)
        with pytest.raises((ValueError, TypeError)):
            h.reschedule(bad)

    def test_a_nan_attempt_leaves_every_timer_working(self, mgr: mgpy.Manager) -> None:
        lc = mgr.bind("127.0.0.1:0", _nop)
        with pytest.raises(ValueError):
            lc.set_timer(math.nan)
        ran: list[int] = []
        mgr.call_later(0.01, ran.append, 1)
        run_until(mgr, lambda: ran, timeout=2)


def _pump_server(
    mgr: mgpy.Manager, payload: bytes, got: list[bytes], tls: mgpy.TlsOpts | None = None
) -> mgpy.Connection:
    """A server that queues ``payload`` and half-closes; it records what it then reads."""

    def h(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.ACCEPT:
            c.send(payload)
            c.shutdown_write()
        elif ev == Ev.RECV:
            got.append(bytes(c.recv_mbuf))
            c.recv_mbuf.clear()

    return mgr.bind("127.0.0.1:0", h, tls=tls)


def _read_to_eof(sock: socket.socket) -> bytes:
    out = bytearray()
    while True:
        data = sock.recv(65536)
        if not data:
            return bytes(out)
        out += data


class TestShutdownWrite:
    PAYLOAD = bytes(range(256)) * 4096  # 1 MiB: more than one write

    def test_tcp_peer_reads_everything_then_eof_and_can_still_send(self, mgr: mgpy.Manager) -> None:
        got: list[bytes] = []
        lc = _pump_server(mgr, self.PAYLOAD, got)
        result: dict[str, bytes] = {}

        def client() -> None:
            with socket.create_connection(("127.0.0.1", lc.local[1]), timeout=10) as s:
                result["data"] = _read_to_eof(s)
                s.sendall(b"still here")

        t = threading.Thread(target=client)
        t.start()
        run_until(mgr, lambda: b"".join(got) == b"still here", timeout=10)
        t.join(10)
        assert result["data"] == self.PAYLOAD

    def test_tls_peer_gets_close_notify_after_all_data(
        self, mgr: mgpy.Manager, certs: Certs
    ) -> None:
        got: list[bytes] = []
        tls = mgpy.TlsOpts(cert=certs.server_cert, key=certs.server_key)
        lc = _pump_server(mgr, self.PAYLOAD, got, tls)
        result: dict[str, Any] = {}

        def client() -> None:
            ctx = ssl.create_default_context(cafile=certs.ca)
            with socket.create_connection(("127.0.0.1", lc.local[1]), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                    result["data"] = _read_to_eof(s)  # b"" only on a clean close_notify
                    s.sendall(b"still here")

        t = threading.Thread(target=client)
        t.start()
        run_until(mgr, lambda: b"".join(got) == b"still here", timeout=10)
        t.join(10)
        assert result["data"] == self.PAYLOAD

    def test_sends_after_shutdown_are_refused(self, mgr: mgpy.Manager) -> None:
        sent: list[int] = []
        lc = mgr.bind("127.0.0.1:0", _nop)

        def h(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            if ev == Ev.CONNECT and ev_data == 0:
                c.send(b"last")
                c.shutdown_write()
                sent.append(c.send(b"too late"))

        mgr.connect(f"tcp://127.0.0.1:{lc.local[1]}", h)
        run_until(mgr, lambda: sent)
        assert sent == [0]


class TestError:
    def test_error_delivers_error_then_close_and_drops_queued_data(self, mgr: mgpy.Manager) -> None:
        seen: list[tuple[str, Any]] = []
        received: list[bytes] = []

        def server(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            if ev == Ev.RECV:
                received.append(bytes(c.recv_mbuf))
                c.recv_mbuf.clear()

        lc = mgr.bind("127.0.0.1:0", server)

        def h(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            if ev == Ev.CONNECT and ev_data == 0:
                c.send(b"never written")
                c.error("bad thing")
                c.error("second reason is ignored")
            elif ev in (Ev.ERROR, Ev.CLOSE):
                seen.append((Ev(ev).name, ev_data))

        mgr.connect(f"tcp://127.0.0.1:{lc.local[1]}", h)
        run_until(mgr, lambda: len(seen) == 2)
        assert seen == [("ERROR", "bad thing"), ("CLOSE", None)]
        deadline = time.monotonic() + 0.2
        while time.monotonic() < deadline:
            mgr.poll(10)
        assert received == []


class TestManagerCloseGoodbye:
    def test_wss_peers_hear_going_away(self, certs: Certs) -> None:
        m = mgpy.Manager()
        up: list[int] = []

        def h(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            if ev == Ev.WS_HANDSHAKE_DONE:
                up.append(1)

        tls = mgpy.TlsOpts(cert=certs.server_cert, key=certs.server_key)
        lc = m.bind("127.0.0.1:0", h, tls=tls)
        lc.set_protocol_http_websocket()
        codes: list[int | None] = []
        ctx = ssl.create_default_context(cafile=certs.ca)

        def client() -> None:
            url = f"wss://localhost:{lc.local[1]}/"
            with connect(url, ssl=ctx, open_timeout=5) as ws:
                try:
                    ws.recv(timeout=10)
                except ConnectionClosed as e:
                    codes.append(e.rcvd.code if e.rcvd else None)

        t = threading.Thread(target=client)
        t.start()
        try:
            run_until(m, lambda: up)
        finally:
            m.close()
        t.join(10)
        assert codes == [1001]

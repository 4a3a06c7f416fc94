"""Manager and Connection over real sockets on 127.0.0.1: event sequences and guarantees."""

from __future__ import annotations

import logging
import resource
import socket
import threading
import time
from collections import Counter
from typing import Any

import pytest

import mgpy
from mgpy import Ev, F, Limits
from tests.conftest import run_until


def _echo(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
    if ev == Ev.RECV:
        c.send(bytes(c.recv_mbuf))
        c.recv_mbuf.clear()


class Recorder:
    """A handler that records every non-POLL event as (name, data)."""

    def __init__(self, inner: Any = None) -> None:
        self.events: list[tuple[str, Any]] = []
        self.inner = inner

    def __call__(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev != Ev.POLL:
            self.events.append((Ev(ev).name, ev_data))
        if self.inner is not None:
            self.inner(c, ev, ev_data)

    def names(self) -> list[str]:
        return [n for n, _ in self.events]

    def count(self) -> Counter[str]:
        return Counter(self.names())


class TestEchoSequences:
    def test_two_peer_echo_counts_events_on_each_side(self, mgr: mgpy.Manager) -> None:
        srv = Recorder(_echo)
        lc = mgr.bind("127.0.0.1:0", srv)
        port = lc.local[1]
        got = bytearray()

        def cli_inner(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            if ev == Ev.CONNECT and ev_data == 0:
                c.send(b"ping")
            elif ev == Ev.RECV:
                got.extend(c.recv_mbuf.view())
                c.recv_mbuf.clear()
                c.flags |= F.SEND_AND_CLOSE

        cli = Recorder(cli_inner)
        mgr.connect(f"tcp://127.0.0.1:{port}", cli)
        run_until(mgr, lambda: "CLOSE" in srv.names() and "CLOSE" in cli.names())
        assert bytes(got) == b"ping"
        s, k = srv.count(), cli.count()
        assert (s["ACCEPT"], s["RECV"], s["SEND"], s["CLOSE"]) == (1, 1, 1, 1)
        assert (k["CONNECT"], k["SEND"], k["RECV"], k["CLOSE"]) == (1, 1, 1, 1)
        assert cli.events[0] == ("CONNECT", 0)
        assert srv.names()[0] == "ACCEPT" and srv.names()[-1] == "CLOSE"
        assert cli.names()[-1] == "CLOSE"
        assert ("SEND", 4) in cli.events and ("RECV", 4) in srv.events

    def test_recv_limit_of_one_gives_one_byte_recvs(self) -> None:
        seen: list[bytes] = []

        def srv(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            if ev == Ev.RECV:
                assert ev_data == 1 and c.recv_mbuf.len == 1
                seen.append(bytes(c.recv_mbuf))
                c.recv_mbuf.clear()

        with mgpy.Manager(limits=Limits(max_recv_buffer=1)) as m:
            lc = m.bind("127.0.0.1:0", srv)
            with socket.create_connection(lc.local) as s:
                s.sendall(b"abcd")
                run_until(m, lambda: len(seen) == 4)
        assert seen == [b"a", b"b", b"c", b"d"]

    def test_user_data_handler_and_protocol_are_inherited(self, mgr: mgpy.Manager) -> None:
        seen: list[Any] = []
        proto_calls: list[int] = []

        def user(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            if ev == Ev.ACCEPT:
                seen.append((c.user_data, c.listener is lc, c.handler is user))

        def proto(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            proto_calls.append(ev)
            c.handler(c, ev, ev_data)

        lc = mgr.bind("127.0.0.1:0", user, user_data={"k": 1})
        lc.proto_handler = proto
        with socket.create_connection(lc.local):
            run_until(mgr, lambda: seen)
        assert seen == [({"k": 1}, True, True)]
        assert Ev.ACCEPT in proto_calls


class TestConnectFailures:
    def test_unresolvable_host_gives_connect_error_then_close(self, mgr: mgpy.Manager) -> None:
        rec = Recorder()
        name = "a" * 64 + ".invalid"  # a 64-character label fails before any DNS query
        mgr.connect(f"tcp://{name}:80", rec)
        run_until(mgr, lambda: "CLOSE" in rec.names())
        names = rec.names()
        assert names[0] == "CONNECT" and rec.events[0][1] != 0
        assert names[-1] == "CLOSE"
        assert names.count("CONNECT") == 1

    def test_refused_connection_gives_connect_error_then_close(self, mgr: mgpy.Manager) -> None:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there now
        rec = Recorder()
        mgr.connect(f"127.0.0.1:{port}", rec)
        run_until(mgr, lambda: "CLOSE" in rec.names())
        assert rec.events[0][0] == "CONNECT" and rec.events[0][1] != 0
        assert rec.names()[-1] == "CLOSE"

    def test_busy_port_raises_a_clear_error(self, mgr: mgpy.Manager) -> None:
        lc = mgr.bind("127.0.0.1:0", _echo)
        port = lc.local[1]
        with pytest.raises(mgpy.Error, match=f"127.0.0.1:{port}.*address already in use"):
            mgr.bind(f"127.0.0.1:{port}", _echo)

    def test_bad_addresses_raise_clear_errors(self, mgr: mgpy.Manager) -> None:
        with pytest.raises(mgpy.Error, match="port"):
            mgr.bind("127.0.0.1:99999", _echo)
        with pytest.raises(mgpy.Error, match="scheme"):
            mgr.bind("gopher://127.0.0.1:70", _echo)
        with pytest.raises(mgpy.Error, match="brackets"):
            mgr.connect("::1:80", _echo)


class TestTimers:
    def test_timer_fires_once_and_can_rearm(self, mgr: mgpy.Manager) -> None:
        fired: list[float] = []

        def h(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            if ev == Ev.TIMER:
                fired.append(ev_data)
                if len(fired) < 3:
                    assert c.set_timer(time.time() + 0.02) == 0  # no timer while firing

        lc = mgr.bind("127.0.0.1:0", h)
        when = time.time() + 0.02
        assert lc.set_timer(when) == 0
        run_until(mgr, lambda: len(fired) == 3)
        assert fired[0] == when
        end = time.monotonic() + 0.2
        while time.monotonic() < end:
            mgr.poll(10)
        assert len(fired) == 3

    def test_set_timer_returns_previous_and_zero_cancels(self, mgr: mgpy.Manager) -> None:
        fired: list[float] = []
        lc = mgr.bind("127.0.0.1:0", lambda c, ev, d: fired.append(d) if ev == Ev.TIMER else None)
        t1 = time.time() + 0.05
        lc.set_timer(t1)
        assert lc.set_timer(0) == t1
        end = time.monotonic() + 0.2
        while time.monotonic() < end:
            mgr.poll(10)
        assert fired == []


class TestBroadcastAndThreads:
    def test_broadcast_from_four_threads_reaches_every_connection(self, mgr: mgpy.Manager) -> None:
        lc = mgr.bind("127.0.0.1:0", _echo)
        clients = [socket.create_connection(lc.local) for _ in range(20)]
        run_until(mgr, lambda: len(mgr.connections) == 21)
        seen: Counter[tuple[int, int]] = Counter()

        def fn(c: mgpy.Connection, ev: Any, data: Any) -> None:
            assert ev == Ev.POLL
            seen[(id(c), data)] += 1

        def worker(k: int) -> None:
            for i in range(25):
                mgr.broadcast(fn, k * 100 + i)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        run_until(mgr, lambda: len(seen) == 21 * 100 and not any(t.is_alive() for t in threads))
        assert all(n == 1 for n in seen.values())
        for s in clients:
            s.close()

    def test_broadcast_wakes_a_blocking_poll(self, mgr: mgpy.Manager) -> None:
        mgr.bind("127.0.0.1:0", _echo)
        hits: list[int] = []
        threading.Timer(0.05, mgr.broadcast, args=(lambda c, ev, d: hits.append(d), 7)).start()
        t0 = time.monotonic()
        while not hits and time.monotonic() - t0 < 5:
            mgr.poll(5000)
        assert hits == [7]
        assert time.monotonic() - t0 < 2  # woke up long before the 5 s timeout


class TestFailuresStayLocal:
    def test_handler_exception_closes_only_its_connection(
        self, mgr: mgpy.Manager, caplog: pytest.LogCaptureFixture
    ) -> None:
        def srv(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            if ev == Ev.RECV:
                if bytes(c.recv_mbuf) == b"boom":
                    raise RuntimeError("handler bug")
                _echo(c, ev, ev_data)

        lc = mgr.bind("127.0.0.1:0", srv)
        good = socket.create_connection(lc.local)
        bad = socket.create_connection(lc.local)
        good.setblocking(False)
        bad.setblocking(False)
        with caplog.at_level(logging.ERROR, logger="mgpy"):
            bad.send(b"boom")

            def bad_closed() -> bool:
                try:
                    return bad.recv(10) == b""
                except BlockingIOError:
                    return False

            run_until(mgr, bad_closed)
        assert any("handler bug" in (r.exc_text or "") for r in caplog.records)
        good.send(b"still here")
        buf = bytearray()

        def echoed() -> bool:
            try:
                buf.extend(good.recv(100))
            except BlockingIOError:
                pass
            return bytes(buf) == b"still here"

        run_until(mgr, echoed)
        good.close()
        bad.close()

    def test_close_is_always_last(self, mgr: mgpy.Manager) -> None:
        rec = Recorder(_echo)
        lc = mgr.bind("127.0.0.1:0", rec)
        s = socket.create_connection(lc.local)
        s.sendall(b"x")
        run_until(mgr, lambda: "SEND" in rec.names())
        s.close()
        run_until(mgr, lambda: "CLOSE" in rec.names())
        for _ in range(5):
            mgr.poll(1)
        assert rec.names()[-1] == "CLOSE" and rec.names().count("CLOSE") == 1


class TestFlowControl:
    def test_nothing_queued_is_lost_to_a_slow_reader(self, mgr: mgpy.Manager) -> None:
        payload = bytes(range(256)) * 40000  # ~10 MB
        writable: list[int] = []

        backlog = threading.Event()  # the kernel refused part of the payload: it is queued

        def srv(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            if ev == Ev.ACCEPT:
                c.send(payload)
                c.flags |= F.SEND_AND_CLOSE
            elif ev == Ev.POLL and c.listener is not None and c.send_mbuf.len:
                backlog.set()
            elif ev == Ev.WRITABLE:
                writable.append(ev_data)

        lc = mgr.bind("127.0.0.1:0", srv)
        got = bytearray()
        done = threading.Event()

        def slow_reader() -> None:
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)  # before connect
                s.connect(lc.local)
                assert backlog.wait(30)  # read only once the server holds a backlog for us
                while True:
                    d = s.recv(16384)  # small reads: the queue drains a little at a time
                    if not d:
                        break
                    got.extend(d)
            done.set()

        t = threading.Thread(target=slow_reader)
        t.start()
        run_until(mgr, done.is_set, timeout=60)
        t.join()
        assert len(got) == len(payload) and bytes(got) == payload
        assert writable, "WRITABLE fires once the queue drains below low water"

    def test_full_recv_buffer_pauses_reading(self) -> None:
        sizes: list[int] = []

        def srv(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            if ev == Ev.RECV:
                sizes.append(c.recv_mbuf.len)  # never consumed: the buffer fills up

        with mgpy.Manager(limits=Limits(max_recv_buffer=1000)) as m:
            lc = m.bind("127.0.0.1:0", srv)
            s = socket.create_connection(lc.local)
            s.setblocking(False)
            sent = 0
            try:
                for _ in range(10000):
                    sent += s.send(b"x" * 4096)
                    m.poll(0)
            except BlockingIOError:
                pass  # the kernel buffers filled: the server stopped reading
            for _ in range(20):
                m.poll(1)
            assert max(sizes) == 1000
            assert sent > 100_000
            c = next(c for c in m.connections if c.listener is lc)
            assert c.recv_mbuf.len == 1000
            c.recv_mbuf.clear()  # consuming resumes reading
            run_until(m, lambda: len(sizes) > 1 and c.recv_mbuf.len == 1000 and sizes[-1] == 1000)
            s.close()

    def test_send_and_close_flushes_close_immediately_drops(self, mgr: mgpy.Manager) -> None:
        def srv(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            if ev == Ev.RECV:
                cmd = bytes(c.recv_mbuf)
                c.recv_mbuf.clear()
                c.send(b"reply")
                c.flags |= F.SEND_AND_CLOSE if cmd == b"graceful" else F.CLOSE_IMMEDIATELY

        lc = mgr.bind("127.0.0.1:0", srv)
        results = {}
        for cmd in (b"graceful", b"abort"):
            s = socket.create_connection(lc.local)
            s.sendall(cmd)
            s.setblocking(False)
            buf = bytearray()

            def eof(s: socket.socket = s, buf: bytearray = buf) -> bool:
                try:
                    d = s.recv(100)
                except BlockingIOError:
                    return False
                except ConnectionResetError:
                    return True
                buf.extend(d)
                return not d

            run_until(mgr, eof)
            results[cmd] = bytes(buf)
            s.close()
        assert results == {b"graceful": b"reply", b"abort": b""}

    def test_send_past_the_limit_closes_with_error(self) -> None:
        rec = Recorder()

        def srv(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            rec(c, ev, ev_data)
            if ev == Ev.ACCEPT:
                assert c.send(b"x" * 500) == 500
                assert c.send(b"y" * 600) == 0  # refused: over max_send_buffer

        with mgpy.Manager(limits=Limits(max_send_buffer=1000)) as m:
            lc = m.bind("127.0.0.1:0", srv)
            with socket.create_connection(lc.local):
                run_until(m, lambda: "CLOSE" in rec.names())
        errs = [d for n, d in rec.events if n == "ERROR"]
        assert errs and "max_send_buffer" in errs[0]
        names = rec.names()
        i = names.index("ERROR")
        assert names[i + 1] == "CLOSE" and "ERROR" not in names[i + 1 :]


class TestAddressFamilies:
    def test_tcp_over_ipv6(self, mgr: mgpy.Manager) -> None:
        lc = mgr.bind("[::1]:0", _echo)
        port = lc.local[1]
        got: list[bytes] = []

        def cli(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            if ev == Ev.CONNECT and ev_data == 0:
                c.send(b"v6")
            elif ev == Ev.RECV:
                got.append(bytes(c.recv_mbuf))
                c.recv_mbuf.clear()

        mgr.connect(f"tcp://[::1]:{port}", cli)
        run_until(mgr, lambda: got)
        assert got == [b"v6"]

    @pytest.mark.parametrize("host", ["127.0.0.1", "[::1]"])
    def test_udp_echo(self, mgr: mgpy.Manager, host: str) -> None:
        srv = Recorder(_echo)
        lc = mgr.bind(f"udp://{host}:0", srv)
        port = lc.local[1]
        got: list[bytes] = []

        def cli(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            if ev == Ev.CONNECT:
                assert ev_data == 0
                c.send(b"dgram-1")
                c.send(b"dgram-2")
            elif ev == Ev.RECV:
                got.append(bytes(c.recv_mbuf))
                c.recv_mbuf.clear()

        cc = mgr.connect(f"udp://{host}:{port}", cli)
        run_until(mgr, lambda: len(got) == 2)
        assert got == [b"dgram-1", b"dgram-2"]
        assert srv.names()[0] == "ACCEPT"  # one child connection per peer
        assert cc.flags & F.UDP

    def test_address_forms(self, mgr: mgpy.Manager) -> None:
        for spec in ("0", ":0", "127.0.0.1:0", "tcp://127.0.0.1:0", "http://127.0.0.1:0"):
            lc = mgr.bind(spec, _echo)
            assert lc.flags & F.LISTENING and lc.local[1] > 0
            lc.close()
        mgr.poll(0)


class TestManyConnections:
    def test_five_thousand_concurrent_connections(self, mgr: mgpy.Manager) -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = 10_500
        if soft < need:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= need, "raise ulimit -n"
        accepted = [0]

        def srv(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            if ev == Ev.ACCEPT:
                accepted[0] += 1
            _echo(c, ev, ev_data)

        lc = mgr.bind("127.0.0.1:0", srv, backlog=4096)
        n = 5000
        echoed = [0]
        connected = [0]

        def cli(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            if ev == Ev.CONNECT:
                assert ev_data == 0
                connected[0] += 1
                c.send(b"hi")
            elif ev == Ev.RECV:
                echoed[0] += 1
                c.recv_mbuf.clear()

        port = lc.local[1]
        for _ in range(n):
            mgr.connect(f"127.0.0.1:{port}", cli)
        run_until(mgr, lambda: echoed[0] == n, timeout=60)
        assert accepted[0] == n and connected[0] == n
        assert len(mgr.connections) == 2 * n + 1


class TestLifetime:
    def test_close_closes_everything_and_delivers_close(self) -> None:
        rec = Recorder(_echo)
        m = mgpy.Manager()
        lc = m.bind("127.0.0.1:0", rec)
        s = socket.create_connection(lc.local)
        run_until(m, lambda: "ACCEPT" in rec.names())
        m.close()
        assert rec.names().count("CLOSE") == 2  # accepted connection and listener
        s.settimeout(5)
        assert s.recv(10) == b""
        with pytest.raises(mgpy.Error, match="closed"):
            m.poll(0)
        s.close()

    def test_context_manager(self) -> None:
        with mgpy.Manager() as m:
            lc = m.bind("127.0.0.1:0", _echo)
            port = lc.local[1]
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0

    def test_connection_close_is_graceful(self, mgr: mgpy.Manager) -> None:
        def srv(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            if ev == Ev.ACCEPT:
                c.send(b"bye")
                c.close()

        lc = mgr.bind("127.0.0.1:0", srv)
        s = socket.create_connection(lc.local)
        s.setblocking(False)
        buf = bytearray()

        def eof() -> bool:
            try:
                d = s.recv(10)
            except BlockingIOError:
                return False
            buf.extend(d)
            return not d

        run_until(mgr, eof)
        assert bytes(buf) == b"bye"
        s.close()

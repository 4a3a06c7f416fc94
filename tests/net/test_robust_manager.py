"""Robustness of the event manager over real sockets: the promises under abuse.

CLOSE is the last event and comes once, whatever a handler does and in whichever
event; CONNECT always reaches outbound connections; descriptor exhaustion pauses
a listener instead of spinning; connection churn and re-armed timers keep memory
bounded; UDP children survive and stay bounded; poll() refuses re-entry.
"""

from __future__ import annotations

import errno
import gc
import json
import logging
import os
import resource
import socket
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
import weakref
from typing import Any

import pytest

import mgpy
from mgpy import Ev, F, Limits
from tests.conftest import run_until

Conn = mgpy.Connection


class Seq:
    """A handler recording each connection's events; flags any event after CLOSE."""

    def __init__(self, inner: Any = None) -> None:
        self.inner = inner
        self.seq: dict[Conn, list[str]] = {}
        self.after_close: list[str] = []

    def __call__(self, c: Conn, ev: Any, ev_data: Any) -> None:
        s = self.seq.setdefault(c, [])
        name = Ev(ev).name
        if s and s[-1] == "CLOSE":
            self.after_close.append(name)
        if ev != Ev.POLL:
            s.append(name)
        if self.inner is not None:
            self.inner(c, ev, ev_data)

    def accepted(self) -> list[Conn]:
        return [c for c, s in self.seq.items() if s and s[0] == "ACCEPT"]


def _eof(s: socket.socket) -> bool:
    try:
        return s.recv(65536) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_THREAD)
    return r.ru_utime + r.ru_stime


def _nfd() -> int:
    return len(os.listdir("/proc/self/fd"))


class TestCloseFromEveryEvent:
    """Whatever a handler does in any event, CLOSE comes exactly once and nothing follows."""

    @pytest.mark.parametrize("event", ["ACCEPT", "RECV", "SEND", "POLL", "TIMER", "WRITABLE"])
    @pytest.mark.parametrize("action", ["close_immediately", "close", "raise", "manager_close"])
    def test_close_is_last_and_once(self, event: str, action: str) -> None:
        lim = Limits(send_high_water=10, send_low_water=5)  # WRITABLE after the first write
        m = mgpy.Manager(limits=lim)
        done = [False]

        def inner(c: Conn, ev: Any, ev_data: Any) -> None:
            if c.flags & F.LISTENING:
                return
            if ev == Ev.ACCEPT:
                c.set_timer(time.time() + 0.01)
                c.send(b"hello" * 4)
            if Ev(ev).name != event or done[0]:
                return
            done[0] = True
            if action == "close_immediately":
                c.flags |= F.CLOSE_IMMEDIATELY
            elif action == "close":
                c.close()
            elif action == "raise":
                raise RuntimeError("handler bug")
            else:
                m.close()

        rec = Seq(inner)
        lc = m.bind("127.0.0.1:0", rec)
        s = socket.create_connection(lc.local)
        s.sendall(b"data")
        s.setblocking(False)
        try:
            run_until(m, lambda: m._closed or (done[0] and all(c.closed for c in rec.accepted())))
        finally:
            m.close()
            s.close()
        [c] = rec.accepted()
        assert rec.seq[c][-1] == "CLOSE" and rec.seq[c].count("CLOSE") == 1
        assert rec.after_close == []

    def test_send_handler_closing_the_manager_gets_no_writable_after_close(self) -> None:
        m = mgpy.Manager(limits=Limits(send_high_water=10, send_low_water=5))

        def inner(c: Conn, ev: Any, ev_data: Any) -> None:
            if ev == Ev.ACCEPT:
                c.send(b"x" * 100)  # above high water: WRITABLE is due after the write
            elif ev == Ev.SEND:
                m.close()

        rec = Seq(inner)
        lc = m.bind("127.0.0.1:0", rec)
        with socket.create_connection(lc.local):
            run_until(m, lambda: m._closed)
        [c] = rec.accepted()
        assert rec.seq[c][-2:] == ["SEND", "CLOSE"] and rec.after_close == []

    def test_error_and_close_handlers_that_raise_are_logged_and_contained(
        self, mgr: mgpy.Manager, caplog: pytest.LogCaptureFixture
    ) -> None:
        def inner(c: Conn, ev: Any, ev_data: Any) -> None:
            if ev == Ev.RECV:
                raise RuntimeError("in RECV")
            if ev in (Ev.ERROR, Ev.CLOSE) and not c.flags & F.LISTENING:
                c.send(b"too late")  # ignored: the connection is closing
                c.set_timer(time.time())  # never fires
                raise RuntimeError(f"in {Ev(ev).name}")

        rec = Seq(inner)
        lc = mgr.bind("127.0.0.1:0", rec)
        with caplog.at_level(logging.ERROR, logger="mgpy"):
            s = socket.create_connection(lc.local)
            s.sendall(b"boom")
            s.setblocking(False)
            run_until(mgr, lambda: _eof(s))
            for _ in range(5):
                mgr.poll(5)
        s.close()
        [c] = rec.accepted()
        assert rec.seq[c] == ["ACCEPT", "RECV", "ERROR", "CLOSE"] and rec.after_close == []
        text = " ".join(r.exc_text or "" for r in caplog.records)
        assert "in RECV" in text and "in ERROR" in text and "in CLOSE" in text
        assert not lc.closed  # the listener keeps serving

    def test_close_flagged_from_elsewhere_does_not_wait_for_the_next_select(
        self, mgr: mgpy.Manager
    ) -> None:
        acc: list[Conn] = []
        closed_at: dict[Conn, float] = {}
        flagged_at: list[float] = []

        def srv(c: Conn, ev: Any, ev_data: Any) -> None:
            if ev == Ev.ACCEPT:
                acc.append(c)
            elif ev == Ev.CLOSE:
                closed_at[c] = time.monotonic()
            elif ev == Ev.POLL and len(acc) == 2 and c is acc[1] and not flagged_at:
                acc[0].flags |= F.CLOSE_IMMEDIATELY  # already polled in this round
                flagged_at.append(time.monotonic())

        lc = mgr.bind("127.0.0.1:0", srv)
        s1, s2 = socket.create_connection(lc.local), socket.create_connection(lc.local)
        run_until(mgr, lambda: flagged_at)
        assert acc[0] in closed_at  # in the same round: was after the next select() sleep
        acc[1].flags |= F.SEND_AND_CLOSE  # between polls, from the application
        t0 = time.monotonic()
        mgr.poll(500)  # closes first, then sleeps (nothing else to do)
        assert acc[1] in closed_at and closed_at[acc[1]] - t0 < 0.25
        s1.close()
        s2.close()

    def test_closing_the_listener_in_accept_stops_accepting_at_once(
        self, mgr: mgpy.Manager
    ) -> None:
        def inner(c: Conn, ev: Any, ev_data: Any) -> None:
            if ev == Ev.ACCEPT:
                assert c.listener is not None
                c.listener.close()

        rec = Seq(inner)
        lc = mgr.bind("127.0.0.1:0", rec)
        clients = [socket.create_connection(lc.local) for _ in range(5)]  # all in the backlog
        run_until(mgr, lambda: lc.closed)
        assert len(rec.accepted()) == 1
        for s in clients:
            s.close()

    def test_poll_from_a_handler_raises_a_clear_error(
        self, mgr: mgpy.Manager, caplog: pytest.LogCaptureFixture
    ) -> None:
        def inner(c: Conn, ev: Any, ev_data: Any) -> None:
            if ev == Ev.RECV:
                mgr.poll(0)

        rec = Seq(inner)
        lc = mgr.bind("127.0.0.1:0", rec)
        with caplog.at_level(logging.ERROR, logger="mgpy"):
            s = socket.create_connection(lc.local)
            s.sendall(b"x")
            s.setblocking(False)
            run_until(mgr, lambda: _eof(s))
        s.close()
        assert any("re-entered" in (r.exc_text or "") for r in caplog.records)
        mgr.poll(0)  # the outer loop is intact

    @pytest.mark.parametrize("kind", ["tcp", "udp"])
    def test_broadcast_sending_to_every_connection_spares_the_listener(
        self, mgr: mgpy.Manager, kind: str
    ) -> None:
        rec = Seq()
        lc = mgr.bind(f"{kind}://127.0.0.1:0", rec)
        if kind == "tcp":
            s = socket.create_connection(lc.local)
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.sendto(b"hi", lc.local)
        run_until(mgr, lambda: rec.accepted())
        s.setblocking(False)
        got = bytearray()

        def arrived() -> bool:
            try:
                got.extend(s.recv(100))
            except BlockingIOError:
                pass
            return got == b"news"

        mgr.broadcast(lambda c, ev, d: c.send(d), b"news")  # the naive chat broadcast
        run_until(mgr, arrived)
        for _ in range(5):
            mgr.poll(1)
        assert not lc.closed and rec.seq[lc] == []  # no ERROR, no CLOSE for the listener
        s.close()

    def test_a_broadcast_that_broadcasts_again_cannot_hold_poll(self, mgr: mgpy.Manager) -> None:
        lc = mgr.bind("127.0.0.1:0", lambda c, ev, d: None)
        hits: list[int] = []

        def fn(c: Conn, ev: Any, n: int) -> None:
            hits.append(n)
            if n < 1000:
                mgr.broadcast(fn, n + 1)  # from the loop thread, for every connection

        assert lc in mgr.connections
        mgr.broadcast(fn, 0)
        mgr.poll(0)
        assert hits == [0]  # the re-posted one waits for the next round
        mgr.poll(0)
        assert hits == [0, 1]


class TestConnectAlwaysFires:
    def test_connection_closed_before_it_connects_gets_connect_then_close(
        self, mgr: mgpy.Manager
    ) -> None:
        lc = mgr.bind("127.0.0.1:0", lambda c, ev, d: None)
        got: list[tuple[str, Any]] = []

        def cli(c: Conn, ev: Any, ev_data: Any) -> None:
            if ev != Ev.POLL:
                got.append((Ev(ev).name, ev_data))

        c = mgr.connect(f"tcp://127.0.0.1:{lc.local[1]}", cli)
        c.flags |= F.CLOSE_IMMEDIATELY
        run_until(mgr, lambda: c.closed)
        assert got == [("CONNECT", errno.ECANCELED), ("CLOSE", None)]

    def test_manager_close_gives_pending_connects_their_connect(self) -> None:
        got: list[str] = []

        def cli(c: Conn, ev: Any, ev_data: Any) -> None:
            if ev == Ev.CONNECT:
                assert ev_data == errno.ECANCELED
            if ev != Ev.POLL:
                got.append(Ev(ev).name)

        m = mgpy.Manager()
        m.connect("tcp://127.0.0.1:9", cli)  # numeric: connecting on the next round
        m.connect("tcp://name.invalid:80", cli)  # still resolving
        m.close()
        assert got == ["CONNECT", "CLOSE", "CONNECT", "CLOSE"]

    def test_close_handler_that_reconnects_during_shutdown_leaks_nothing(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        m = mgpy.Manager()
        port = m.bind("127.0.0.1:0", lambda c, ev, d: None).local[1]
        events: list[tuple[int, str]] = []
        made: list[Conn] = []

        def cli(c: Conn, ev: Any, ev_data: Any) -> None:
            if ev == Ev.POLL:
                return
            events.append((made.index(c), Ev(ev).name))
            if ev == Ev.CLOSE:  # the classic "reconnect on close"
                made.append(m.connect(f"tcp://127.0.0.1:{port}", cli))

        made.append(m.connect(f"tcp://127.0.0.1:{port}", cli))
        run_until(m, lambda: (0, "CONNECT") in events)
        fd0 = _nfd()
        with caplog.at_level(logging.ERROR, logger="mgpy"):
            m.close()
        assert m.connections == []
        # the first reconnect is cancelled (CONNECT then CLOSE); its own reconnect is refused
        assert (1, "CONNECT") in events and (1, "CLOSE") in events and len(made) == 2
        assert any("manager is closed" in (r.exc_text or "") for r in caplog.records)
        assert _nfd() < fd0

    def test_resolutions_of_closed_connections_are_skipped(
        self, mgr: mgpy.Manager, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        real = socket.getaddrinfo
        gate = threading.Event()
        calls: list[str] = []

        def fake(host: Any, *a: Any, **k: Any) -> Any:
            if host == "slow.test":
                calls.append(host)
                gate.wait(10)
                raise socket.gaierror(socket.EAI_NONAME, "not known")
            if host == "fast.test":
                return real("127.0.0.1", *a, **k)
            return real(host, *a, **k)

        monkeypatch.setattr(socket, "getaddrinfo", fake)
        got: list[Any] = []

        def cli(c: Conn, ev: Any, ev_data: Any) -> None:
            if ev == Ev.CONNECT:
                got.append(ev_data)

        conns = [mgr.connect("tcp://slow.test:80", cli) for _ in range(40)]
        run_until(mgr, lambda: len(calls) == 4)  # the resolver's workers are all stuck
        for c in conns:
            c.flags |= F.CLOSE_IMMEDIATELY
        run_until(mgr, lambda: all(c.closed for c in conns))
        assert got == [errno.ECANCELED] * 40
        gate.set()
        probe = mgr.connect("tcp://fast.test:9", cli)  # queued behind the cancelled ones
        run_until(mgr, lambda: probe.closed)
        assert len(calls) == 4  # the 36 queued lookups of closed connections never ran


def test_connect_storm_to_refused_and_unresolvable_peers(mgr: mgpy.Manager) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there
    fd0 = _nfd()
    rec = Seq()
    for _ in range(700):
        mgr.connect(f"tcp://127.0.0.1:{port}", rec)
        mgr.connect(f"tcp://localhost:{port}", rec)  # through the resolver
        mgr.connect(f"tcp://{'a' * 64}.invalid:80", rec)  # a lookup that fails
    threads = [threading.active_count()]

    def all_closed() -> bool:
        threads.append(threading.active_count())
        return sum(s.count("CLOSE") for s in rec.seq.values()) == 2100

    run_until(mgr, all_closed, timeout=30)
    assert max(threads) <= threads[0] + 4  # the resolver's pool is bounded
    for seq in rec.seq.values():
        assert seq[0] == "CONNECT" and seq.count("CONNECT") == 1 and seq[-1] == "CLOSE"
    assert mgr.connections == [] and _nfd() <= fd0


class TestDescriptorExhaustion:
    """A listener out of descriptors rests and recovers; connects fail with CONNECT(EMFILE)."""

    CHILD = textwrap.dedent(
        """
        import json, logging, os, resource, sys, time
        import mgpy
        from mgpy import Ev, F

        warnings = []
        class H(logging.Handler):
            def emit(self, r): warnings.append(r.getMessage())
        log = logging.getLogger("mgpy"); log.addHandler(H()); log.propagate = False
        acc = []
        def srv(c, ev, d):
            if ev == Ev.ACCEPT: acc.append(c)
        m = mgpy.Manager()
        lc = m.bind("127.0.0.1:0", srv)
        print(lc.local[1], flush=True)
        sys.stdin.readline()  # the parent has queued its connections
        nfd = len(os.listdir("/proc/self/fd"))
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (nfd + 12, hard))
        def cpu():
            r = resource.getrusage(resource.RUSAGE_SELF); return r.ru_utime + r.ru_stime
        t0, c0, polls = time.monotonic(), cpu(), 0
        while time.monotonic() - t0 < 1.0:
            m.poll(100); polls += 1
        out = {"accepted": len(acc), "polls": polls, "cpu": cpu() - c0, "warnings": len(warnings)}
        for c in acc[:5]:
            c.flags |= F.CLOSE_IMMEDIATELY
        n0, end = len(acc), time.monotonic() + 3
        while len(acc) < n0 + 5 and time.monotonic() < end:
            m.poll(50)
        out["recovered"] = len(acc) - n0
        got = []
        def cli(c, ev, d):
            if ev == Ev.CONNECT: got.append(d)
        for _ in range(20):
            m.connect("tcp://127.0.0.1:%d" % lc.local[1], cli)
        end = time.monotonic() + 3
        while len(got) < 20 and time.monotonic() < end:
            m.poll(50)
        out["connect_status"] = sorted(set(got))
        out["connects"] = len(got)
        print(json.dumps(out), flush=True)
        """
    )

    def test_listener_pauses_without_spinning_and_recovers(self) -> None:
        p = subprocess.Popen(
            [sys.executable, "-c", self.CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert p.stdout is not None and p.stdin is not None
        try:
            port = int(p.stdout.readline())
            clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]
            p.stdin.write("go\n")
            p.stdin.flush()
            out = json.loads(p.stdout.readline())
        finally:
            p.kill()
            p.wait()
        for s in clients:
            s.close()
        assert 0 < out["accepted"] < 40  # it ran out of descriptors
        assert out["polls"] < 40 and out["cpu"] < 0.3  # rested: no busy loop (was ~30k polls/s)
        assert out["warnings"] <= 2  # once per episode, not once per retry
        assert out["recovered"] == 5  # freed descriptors are used for the waiting clients
        assert out["connects"] == 20 and out["connect_status"] == [errno.EMFILE]


class TestBoundedMemory:
    def test_connect_close_churn_frees_connections_and_descriptors(self, mgr: mgpy.Manager) -> None:
        def echo(c: Conn, ev: Any, ev_data: Any) -> None:
            if ev == Ev.RECV:
                c.send(bytes(c.recv_mbuf))
                c.recv_mbuf.clear()

        port = mgr.bind("127.0.0.1:0", echo).local[1]
        refs: list[weakref.ref[Conn]] = []
        closed = [0]

        def cli(c: Conn, ev: Any, ev_data: Any) -> None:
            if ev == Ev.CONNECT:
                c.send(b"x")
                c.set_timer(time.time() + 3600)  # a far timer: must not keep c alive
            elif ev == Ev.RECV:
                c.close()
            elif ev == Ev.CLOSE:
                closed[0] += 1

        fd0 = _nfd()
        n = 3000
        started = 0
        deadline = time.monotonic() + 30
        while closed[0] < n:
            while started < n and started - closed[0] < 50:
                refs.append(weakref.ref(mgr.connect(f"tcp://127.0.0.1:{port}", cli)))
                started += 1
            mgr.poll(10)
            assert time.monotonic() < deadline
        for _ in range(20):
            mgr.poll(1)
        gc.collect()
        alive = sum(1 for r in refs if r() is not None)
        assert alive < 600  # was all 3000: held by connect deadlines and timers
        assert _nfd() <= fd0
        assert len(mgr.connections) == 1

    def test_rearming_a_timer_keeps_memory_flat_and_fires_once(self, mgr: mgpy.Manager) -> None:
        fired: list[float] = []
        lc = mgr.bind("127.0.0.1:0", lambda c, ev, d: fired.append(d) if ev == Ev.TIMER else None)
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(50_000):  # e.g. an idle timeout pushed back on every RECV
                lc.set_timer(time.time() + 60)
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert grown < 512 * 1024  # was ~5 MB: one heap entry per call
        last = time.time() + 0.05
        lc.set_timer(last - 0.03)
        lc.set_timer(last)  # moved later: fires at the last deadline only
        run_until(mgr, lambda: fired)
        end = time.monotonic() + 0.1
        while time.monotonic() < end:
            mgr.poll(10)
        assert fired == [last]

    def test_timer_set_on_a_closed_connection_does_not_keep_it(self, mgr: mgpy.Manager) -> None:
        lc = mgr.bind("127.0.0.1:0", lambda c, ev, d: None)
        conns: list[Conn] = []

        def srv(c: Conn, ev: Any, ev_data: Any) -> None:
            if ev == Ev.ACCEPT:
                conns.append(c)
            elif ev == Ev.CLOSE:
                c.set_timer(time.time() + 3600)

        lc.handler = srv
        with socket.create_connection(lc.local):
            run_until(mgr, lambda: conns)
        run_until(mgr, lambda: conns[0].closed)
        ref = weakref.ref(conns.pop())
        gc.collect()
        assert ref() is None


class TestUdp:
    def test_child_serves_every_datagram_of_its_peer(self, mgr: mgpy.Manager) -> None:
        def echo(c: Conn, ev: Any, ev_data: Any) -> None:
            if ev == Ev.RECV:
                c.send(bytes(c.recv_mbuf))
                c.recv_mbuf.clear()

        rec = Seq(echo)
        lc = mgr.bind("udp://127.0.0.1:0", rec)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setblocking(False)
        got: list[bytes] = []

        def answered() -> bool:
            try:
                got.append(s.recv(100))
            except BlockingIOError:
                return False
            return True

        for d in (b"a", b"b", b"c"):
            s.sendto(d, lc.local)
            run_until(mgr, answered)
        s.close()
        assert got == [b"a", b"b", b"c"]
        [child] = [c for c in rec.seq if c is not lc]
        assert rec.seq[child] == ["ACCEPT"] + ["RECV", "SEND"] * 3  # no ERROR, no CLOSE
        assert not child.closed

    def test_send_from_the_send_handler_does_not_recurse(self, mgr: mgpy.Manager) -> None:
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sent = [0]
        rec = Seq()

        def cli(c: Conn, ev: Any, ev_data: Any) -> None:
            rec(c, ev, ev_data)
            if ev == Ev.CONNECT or (ev == Ev.SEND and sent[0] < 3000):
                sent[0] += 1
                c.send(b"d")  # the next datagram as the previous one leaves

        c = mgr.connect(f"udp://127.0.0.1:{peer.getsockname()[1]}", cli)
        run_until(mgr, lambda: sent[0] == 3000 and rec.seq[c].count("SEND") == 3000)
        peer.close()
        assert "ERROR" not in rec.seq[c] and not c.closed

    @pytest.mark.parametrize("max_recv", [1000, 1 << 20])
    def test_connected_udp_keeps_datagrams_whole(self, max_recv: int) -> None:
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        recvs: list[int] = []

        def cli(c: Conn, ev: Any, ev_data: Any) -> None:
            if ev == Ev.RECV:
                recvs.append(ev_data)  # never consumed: recv_mbuf fills up

        with mgpy.Manager(limits=Limits(max_recv_buffer=max_recv)) as m:
            c = m.connect(f"udp://127.0.0.1:{peer.getsockname()[1]}", cli)
            run_until(m, lambda: c.sock is not None)
            peer.sendto(b"", c.local)  # an empty datagram is not an end of stream
            for _ in range(3):
                peer.sendto(b"y" * 600, c.local)
            run_until(m, lambda: len(recvs) == (1 if max_recv == 1000 else 3))
            for _ in range(10):
                m.poll(5)
            if max_recv == 1000:  # the second and third 600 bytes do not fit: dropped whole
                assert recvs == [600] and c.recv_mbuf.len == 600
            else:
                assert recvs == [600] * 3 and c.recv_mbuf.len == 1800
            assert not c.closed
        peer.close()

    def test_children_are_bounded_least_recently_heard_evicted(self, mgr: mgpy.Manager) -> None:
        rec = Seq()
        lc = mgr.bind("udp://127.0.0.1:0", rec, limits=mgpy.Limits(max_udp_peers=8))
        socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(20)]
        for i, s in enumerate(socks):
            s.sendto(b"%d" % i, lc.local)
            run_until(mgr, lambda i=i: len(rec.accepted()) == i + 1)
            if i >= 1:
                socks[0].sendto(b"keep", lc.local)  # peer 0 stays the most recent
                run_until(mgr, lambda i=i: rec.seq[rec.accepted()[0]].count("RECV") == i + 1)
        live = [c for c in rec.accepted() if not c.closed]
        assert len(live) == 8
        assert rec.accepted()[0] in live  # recently heard from: kept
        closed = [c for c in rec.accepted() if c.closed]
        assert all(rec.seq[c][-1] == "CLOSE" for c in closed) and len(closed) == 12
        for s in socks:
            s.close()


class TestHalfClosedPeers:
    @pytest.mark.parametrize("when", ["at_once", "later"])
    def test_response_reaches_a_client_that_shut_its_sending_side(
        self, mgr: mgpy.Manager, when: str
    ) -> None:
        def srv(c: Conn, ev: Any, ev_data: Any) -> None:
            if ev == Ev.HTTP_REQUEST:
                if when == "at_once":
                    mgpy.http_reply(c, 200, b"x" * 200_000)
                else:
                    c.set_timer(time.time() + 0.05)  # answered from a timer
            elif ev == Ev.TIMER:
                mgpy.http_reply(c, 200, b"x" * 200_000)

        lc = mgr.bind("127.0.0.1:0", srv)
        lc.set_protocol_http_websocket()
        s = socket.create_connection(lc.local)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        s.shutdown(socket.SHUT_WR)
        s.setblocking(False)
        buf = bytearray()

        def eof() -> bool:
            try:
                d = s.recv(65536)
            except BlockingIOError:
                return False
            buf.extend(d)
            return not d

        run_until(mgr, eof)
        s.close()
        assert buf.startswith(b"HTTP/1.1 200 OK\r\n") and buf.endswith(b"x" * 200_000)


def test_idle_loop_sleeps_with_connections_timers_and_websockets(mgr: mgpy.Manager) -> None:
    """Open TCP, HTTP keep-alive and WebSocket connections plus a far timer: poll sleeps."""
    ready: list[str] = []

    def srv(c: Conn, ev: Any, ev_data: Any) -> None:
        if ev == Ev.HTTP_REQUEST:
            mgpy.http_reply(c, 200, "ok")

    def cli(c: Conn, ev: Any, ev_data: Any) -> None:
        if ev in (Ev.WS_HANDSHAKE_DONE, Ev.HTTP_REPLY) or (ev == Ev.CONNECT and ev_data == 0):
            ready.append(Ev(ev).name)

    lc = mgr.bind("127.0.0.1:0", srv)
    lc.set_protocol_http_websocket()
    lc.set_timer(time.time() + 60)
    port = lc.local[1]
    for _ in range(10):
        mgr.connect_ws(f"ws://127.0.0.1:{port}/", cli)
        mgr.connect(f"tcp://127.0.0.1:{port}", cli)
    keep = socket.create_connection(("127.0.0.1", port))
    keep.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # answered, then idle keep-alive
    run_until(mgr, lambda: ready.count("WS_HANDSHAKE_DONE") == 10 and ready.count("CONNECT") == 20)
    for _ in range(10):
        mgr.poll(1)
    c0, t0, polls, events = _cpu(), time.monotonic(), 0, 0
    while time.monotonic() - t0 < 0.5:
        events += mgr.poll(100)
        polls += 1
    assert events == 0 and polls <= 7
    assert _cpu() - c0 < 0.05
    keep.close()

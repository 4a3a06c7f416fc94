"""Limits.send_timeout drops peers that stop taking data; listeners survive handler errors."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import mgpy
from mgpy import Ev, F, Limits
from tests.conftest import run_until

PAYLOAD = b"z" * (32 << 20)  # more than five stalls can drain through the kernel buffers


def _serve_payload(events: list[tuple[str, Any]]) -> Any:
    def srv(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if c.flags & F.LISTENING:
            return
        if ev == Ev.ACCEPT:
            c.send(PAYLOAD)
            c.flags |= F.SEND_AND_CLOSE
        elif ev in (Ev.ERROR, Ev.CLOSE):
            events.append((Ev(ev).name, ev_data))

    return srv


def test_a_peer_that_never_reads_is_dropped_after_send_timeout() -> None:
    events: list[tuple[str, Any]] = []
    with mgpy.Manager(limits=Limits(send_timeout=0.5)) as m:
        lc = m.bind("127.0.0.1:0", _serve_payload(events))
        with socket.create_connection(lc.local):  # connects, never reads
            t0 = time.monotonic()
            run_until(m, lambda: any(n == "CLOSE" for n, _ in events), timeout=10)
            took = time.monotonic() - t0
    assert events[0][0] == "ERROR" and "send timed out" in events[0][1]
    assert 0.4 < took < 5


def test_a_slow_reader_that_keeps_reading_is_not_dropped() -> None:
    """Stalls shorter than send_timeout, adding up to three times it, are not a timeout."""
    timeout = 0.5
    events: list[tuple[str, Any]] = []
    got = bytearray()
    last_progress = [time.monotonic()]
    signalled = [0.0]
    progressed = threading.Event()  # the server wrote again
    read_now = threading.Event()  # the server has been stalled for 60 % of send_timeout
    inner = _serve_payload(events)

    def srv(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        inner(c, ev, ev_data)
        if ev == Ev.SEND:
            last_progress[0] = time.monotonic()
            progressed.set()
        elif ev == Ev.POLL and c.listener is not None and c.send_mbuf.len:
            stalled = time.monotonic() - last_progress[0] > 0.6 * timeout
            if stalled and last_progress[0] != signalled[0]:  # once per stall
                signalled[0] = last_progress[0]
                read_now.set()

    with mgpy.Manager(limits=Limits(send_timeout=timeout)) as m:
        lc = m.bind("127.0.0.1:0", srv)

        def reader() -> None:
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
                s.connect(lc.local)
                for _ in range(5):  # five stalls of 0.3 s: 1.5 s with no single 0.5 s gap
                    assert read_now.wait(10)
                    read_now.clear()
                    progressed.clear()
                    while not progressed.is_set():  # read until the server can write again
                        got.extend(s.recv(65536))
                while d := s.recv(65536):
                    got.extend(d)

        t = threading.Thread(target=reader)
        t.start()
        run_until(m, lambda: not t.is_alive(), timeout=30)
    assert len(got) == len(PAYLOAD)
    assert [n for n, _ in events] == ["CLOSE"]


def test_a_listener_survives_an_exception_in_its_handler() -> None:
    raised = []

    def srv(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if c.flags & F.LISTENING and ev == Ev.POLL and not raised:
            raised.append(1)
            raise RuntimeError("bug in a POLL handler")
        if ev == Ev.RECV:
            c.send(bytes(c.recv_mbuf))
            c.recv_mbuf.clear()

    with mgpy.Manager() as m:
        lc = m.bind("127.0.0.1:0", srv)
        run_until(m, lambda: raised)
        m.poll(0)
        assert not lc.closed
        with socket.create_connection(lc.local, timeout=5) as s:
            s.sendall(b"still serving")
            s.setblocking(False)
            buf = bytearray()

            def echoed() -> bool:
                try:
                    buf.extend(s.recv(100))
                except BlockingIOError:
                    pass
                return bytes(buf) == b"still serving"

            run_until(m, echoed)

"""Accepting under pressure, and listeners that nobody reads for.

Out of descriptors: accept() fails with EMFILE, and the listener closes the longest-idle
connections whose protocol marks them reclaimable (``c.proto_data.reclaimable(c)``, an
idle keep-alive connection) and accepts the waiting client at once, as nginx drains its
reusable connections; a connection in the middle of something is never taken.  Servers
run in a subprocess with RLIMIT_NOFILE lowered.

A listener without a protocol whose connection fills its receive buffer (nothing
consumes it, the client hangs) logs one warning per listener.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import mgpy
from mgpy import Ev, Limits
from tests.conftest import run_until
from tests.net.rss_helpers import CliServer

#: descriptors left free in the subprocess servers
FREE = 6


def _answer(s: socket.socket, request: bytes, expect: bytes) -> bool:
    """Send ``request`` on ``s``; True if ``expect`` comes back, False if the server closed."""
    try:
        s.sendall(request)
        got = b""
        while not got.endswith(expect):
            data = s.recv(65536)
            if not data:
                return False
            got += data
        return True
    except ConnectionError:
        return False


class TestReclaimOnEmfile:
    CHILD = textwrap.dedent(
        """
        import os, resource, sys
        import mgpy
        from mgpy import Ev

        class Lines:
            # a line protocol: idle (reclaimable) when no partial line is buffered
            def reclaimable(self, c):
                return not c.recv_mbuf.buf

        def lines(c, ev, d):
            if ev == Ev.ACCEPT:
                c.proto_data = Lines()
            elif ev == Ev.RECV:
                mb = c.recv_mbuf
                while (i := mb.find(b"\\n")) >= 0:
                    line = bytes(mb.buf[:i])
                    mb.remove(i + 1)
                    c.send(b"pong " + line + b"\\n")
            c.handler(c, ev, d)

        m = mgpy.Manager()
        lc = m.bind("127.0.0.1:0", lambda c, ev, d: None)
        lc.proto_handler = lines
        print(lc.local[1], flush=True)
        nfd = len(os.listdir("/proc/self/fd"))
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (nfd + int(sys.argv[1]), hard))
        while True:
            m.poll(100)
        """
    )

    def test_longest_idle_reclaimable_connections_make_room_at_once(self) -> None:
        p = subprocess.Popen(
            [sys.executable, "-c", self.CHILD, str(FREE)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert p.stdout is not None
        clients: list[socket.socket] = []
        try:
            port = int(p.stdout.readline())
            for i in range(2 * FREE):
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                clients.append(s)
                # every client is served at once, also past the descriptor limit (before,
                # the listener paused until an idle connection timed out on its own)
                assert _answer(s, b"hello %d\n" % i, b"pong hello %d\n" % i)
                if i == 0:
                    s.sendall(b"half a li")  # busy: mid-line, never reclaimable
            alive = [
                _answer(s, b"ne\n" if i == 0 else b"again\n", b"\n") for i, s in enumerate(clients)
            ]
        finally:
            p.kill()
            p.wait()
            for s in clients:
                s.close()
            p.stdout.close()
            assert p.stderr is not None
            err = p.stderr.read()
            p.stderr.close()
        assert alive[0]  # the busy one was spared
        reclaimed = alive.index(True, 1) - 1
        assert reclaimed >= FREE // 2  # the server did run out of descriptors ...
        assert alive[1 : 1 + reclaimed] == [False] * reclaimed  # ... took the oldest idle ...
        assert all(alive[1 + reclaimed :])  # ... and only them
        assert err.count("reclaimable connections") == 1  # one warning per listener

    def test_the_cli_reclaims_idle_keep_alive_connections(self, tmp_path: Path) -> None:
        (tmp_path / "index.html").write_bytes(b"<p>hi</p>")
        get = b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n"
        with CliServer(tmp_path, nofile=32) as srv:
            clients = []
            for _ in range(40):
                s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
                clients.append(s)
                assert _answer(s, get, b"<p>hi</p>")  # never left waiting in the backlog
            alive = [_answer(s, get, b"<p>hi</p>") for s in clients]
            for s in clients:
                s.close()
        reclaimed = alive.index(True)
        assert reclaimed >= 8 and not any(alive[:reclaimed]) and all(alive[reclaimed:])


class TestUnconsumedInput:
    LIM = Limits(max_recv_buffer=4096)

    def _fill(self, mgr: mgpy.Manager, lc: mgpy.Connection, conns: list[Any]) -> socket.socket:
        s = socket.create_connection(lc.local)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 8000 + b"\r\n\r\n")
        n = len(conns)
        run_until(mgr, lambda: len(conns) > n and len(conns[-1].recv_mbuf) >= 4096)
        for _ in range(3):
            mgr.poll(1)
        return s

    def test_one_warning_per_listener_without_a_protocol(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        conns: list[mgpy.Connection] = []

        def raw(c: mgpy.Connection, ev: Any, d: Any) -> None:
            if ev == Ev.ACCEPT:
                conns.append(c)

        with mgpy.Manager(limits=self.LIM) as mgr, caplog.at_level(logging.WARNING, "mgpy"):
            lc = mgr.bind("127.0.0.1:0", raw)
            socks = [self._fill(mgr, lc, conns) for _ in range(3)]
            warned = [r.getMessage() for r in caplog.records if "receive buffer" in r.message]
            assert len(warned) == 1  # once per listener, not per connection or per poll
            assert "set_protocol_http_websocket()" in warned[0]
            assert str(lc.local[1]) in warned[0]
            other = mgr.bind("127.0.0.1:0", raw)
            socks.append(self._fill(mgr, other, conns))
            assert sum("receive buffer" in r.message for r in caplog.records) == 2
            for s in socks:
                s.close()

    @pytest.mark.parametrize("kind", ["http", "consuming"])
    def test_no_warning_when_something_reads(
        self, kind: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        conns: list[mgpy.Connection] = []
        got = [0]  # bytes the consuming handler took

        def h(c: mgpy.Connection, ev: Any, d: Any) -> None:
            if ev == Ev.ACCEPT:
                conns.append(c)
            elif ev == Ev.RECV and kind == "consuming":
                got[0] += len(c.recv_mbuf)
                c.recv_mbuf.clear()

        with mgpy.Manager(limits=self.LIM) as mgr, caplog.at_level(logging.WARNING, "mgpy"):
            lc = mgr.bind("127.0.0.1:0", h)
            if kind == "http":
                lc.set_protocol_http_websocket()
            with socket.create_connection(lc.local) as s:
                if kind == "http":  # a bad request line: HTTP reads it, answers, drains
                    s.sendall(b"BAD\r\n\r\n" + b"x" * 100_000)
                    s.setblocking(False)
                    answer = bytearray()

                    def answered() -> bool:
                        try:
                            answer.extend(s.recv(65536))
                        except BlockingIOError:
                            pass
                        return b"\r\n\r\n" in answer

                    run_until(mgr, answered)
                    assert answer.startswith(b"HTTP/1.1 400")
                else:
                    s.sendall(b"x" * 100_000)
                    run_until(mgr, lambda: got[0] == 100_000)
        assert not [r for r in caplog.records if "receive buffer" in r.message]

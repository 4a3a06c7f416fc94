"""Robustness of TLS in the manager over real sockets: hostile or odd peers.

The client here is Python's ``ssl`` over memory BIOs, stepped from the test thread
between polls, so each record on the wire is ours to choose: garbage after the
handshake, data after close_notify, a half-close before an asynchronous answer,
a reader that stops while a close is pending; plus ``openssl s_client``
attempting a renegotiation, and mgpy clients closed mid-handshake.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import resource
import socket
import ssl
import subprocess
import threading
import time
from typing import Any

import pytest

import mgpy
from mgpy import Ev, F, Limits
from tests.conftest import run_until
from tests.net.certs import Certs, make_certs
from tests.net.socket_peer import SocketPeer
from tests.net.test_robust_manager import Seq

Conn = mgpy.Connection


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("pki"))


def _opts(certs: Certs) -> mgpy.TlsOpts:
    return mgpy.TlsOpts(cert=certs.server_cert, key=certs.server_key)


def _echo(c: Conn, ev: Any, ev_data: Any) -> None:
    if ev == Ev.RECV:
        c.send(bytes(c.recv_mbuf))
        c.recv_mbuf.clear()


class BioPeer(SocketPeer):
    """A TLS client over memory BIOs on a non-blocking socket, stepped between polls."""

    def __init__(self, mgr: mgpy.Manager, port: int, certs: Certs, rcvbuf: int = 0) -> None:
        super().__init__(mgr, port, rcvbuf)
        self.inb, self.outb = ssl.MemoryBIO(), ssl.MemoryBIO()
        ctx = ssl.create_default_context(cafile=certs.ca)
        self.obj = ctx.wrap_bio(self.inb, self.outb, server_hostname="localhost")
        self.got = bytearray()

    def on_data(self, data: bytes) -> None:
        self.inb.write(data)

    def on_eof(self) -> None:
        self.inb.write_eof()

    def pump(self) -> None:
        if self.outb.pending:
            self.sock.sendall(self.outb.read())
        self.read()
        while True:
            try:
                d = self.obj.read(65536)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError, ssl.SSLEOFError):
                break
            if not d:
                break
            self.got += d

    def handshake(self) -> None:
        def step() -> bool:
            try:
                self.obj.do_handshake()
            except ssl.SSLWantReadError:
                self.pump()
                return False
            self.pump()
            return True

        run_until(self.mgr, step)

    def write(self, data: bytes) -> None:
        self.obj.write(data)
        self.pump()

    def close_notify(self) -> None:
        try:
            self.obj.unwrap()
        except ssl.SSLWantReadError:
            pass
        self.pump()


class TestHostilePeers:
    @pytest.mark.parametrize("after", ["garbage_record", "close_notify_then_data", "bare_fin"])
    def test_server_closes_once_and_keeps_serving_others(
        self, mgr: mgpy.Manager, certs: Certs, after: str
    ) -> None:
        rec = Seq(_echo)
        lc = mgr.bind("127.0.0.1:0", rec, tls=_opts(certs))
        bad = BioPeer(mgr, lc.local[1], certs)
        bad.handshake()
        bad.write(b"abc")
        bad.until(lambda: bad.got == b"abc")
        if after == "garbage_record":  # an application-data record that fails to decrypt
            bad.sock.sendall(b"\x17\x03\x03\x00\x20" + os.urandom(32))
        elif after == "close_notify_then_data":
            bad.close_notify()
            bad.sock.sendall(b"\x17\x03\x03\x00\x20" + os.urandom(32))
        else:
            bad.sock.shutdown(socket.SHUT_WR)  # TCP FIN without close_notify
        [c] = rec.accepted()
        run_until(mgr, lambda: c.closed)
        s = rec.seq[c]
        assert s[-1] == "CLOSE" and s.count("CLOSE") == 1 and rec.after_close == []
        assert s.count("RECV") == 1  # nothing after close_notify reaches the handler
        assert ("ERROR" in s) == (after == "garbage_record")
        good = BioPeer(mgr, lc.local[1], certs)
        good.handshake()
        good.write(b"still")
        good.until(lambda: good.got == b"still")
        bad.sock.close()
        good.sock.close()

    def test_renegotiation_is_refused(self, mgr: mgpy.Manager, certs: Certs) -> None:
        rec = Seq(_echo)
        lc = mgr.bind("127.0.0.1:0", rec, tls=_opts(certs))
        p = subprocess.Popen(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{lc.local[1]}", "-tls1_2"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        out: list[bytes] = []
        assert p.stdin is not None and p.stdout is not None
        stdin, stdout = p.stdin, p.stdout

        def talk() -> None:
            def upto(marker: bytes) -> None:
                while True:
                    line = stdout.readline()
                    out.append(line)
                    if not line or marker in line:
                        return

            upto(b"Extended master secret")  # the handshake is done
            for cmd, marker in ((b"hello\n", b"hello"), (b"R\n", b"RENEGOTIATING")):
                stdin.write(cmd)
                stdin.flush()
                upto(marker)
            try:
                stdin.write(b"after\n")
                stdin.close()
            except OSError:
                pass
            out.append(stdout.read())

        t = threading.Thread(target=talk, daemon=True)
        t.start()
        try:
            run_until(mgr, lambda: not t.is_alive(), timeout=10)
        finally:
            p.kill()
            p.wait()
        [c] = rec.accepted()
        run_until(mgr, lambda: c.closed)
        assert b"RENEGOTIATING" in b"".join(out)
        assert rec.seq[c][:2] == ["ACCEPT", "RECV"]
        assert rec.seq[c].count("RECV") == 1  # nothing is accepted after the attempt
        assert rec.seq[c][-1] == "CLOSE"


def test_broadcast_skips_handshakes_not_yet_accepted(mgr: mgpy.Manager, certs: Certs) -> None:
    rec = Seq(_echo)
    lc = mgr.bind("127.0.0.1:0", rec, tls=_opts(certs))
    stalled = socket.create_connection(lc.local)  # TCP accepted, no ClientHello yet
    p = BioPeer(mgr, lc.local[1], certs)
    p.handshake()
    run_until(mgr, lambda: mgr.accepted == 2 and len(rec.accepted()) == 1)
    seen: list[Conn] = []
    mgr.broadcast(lambda c, ev, d: seen.append(c), None)
    run_until(mgr, lambda: seen)
    assert sorted(map(id, seen)) == sorted(map(id, [lc, *rec.accepted()]))  # no invisible one
    stalled.close()
    p.sock.close()


class TestCloseAndEof:
    def test_half_closed_client_gets_a_later_answer(self, mgr: mgpy.Manager, certs: Certs) -> None:
        def srv(c: Conn, ev: Any, ev_data: Any) -> None:
            if ev == Ev.HTTP_REQUEST:
                c.set_timer(time.time() + 0.05)
            elif ev == Ev.TIMER:
                mgpy.http_reply(c, 200, b"late answer")

        lc = mgr.bind("127.0.0.1:0", srv, tls=_opts(certs))
        lc.set_protocol_http_websocket()
        p = BioPeer(mgr, lc.local[1], certs)
        p.handshake()
        p.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        p.close_notify()  # done sending, still reading
        p.until(lambda: p.eof)
        assert p.got.startswith(b"HTTP/1.1 200 OK\r\n") and p.got.endswith(b"late answer")
        p.sock.close()

    def test_pending_close_to_a_stalled_reader_idles_then_delivers_all(
        self, mgr: mgpy.Manager, certs: Certs
    ) -> None:
        data = hashlib.sha256(b"tls").digest() * (8 * 1024 * 1024 // 32)

        def srv(c: Conn, ev: Any, ev_data: Any) -> None:
            if ev == Ev.ACCEPT:
                c.send(data)
                c.close()  # SEND_AND_CLOSE: everything first, then close_notify

        lc = mgr.bind("127.0.0.1:0", srv, tls=_opts(certs))
        p = BioPeer(mgr, lc.local[1], certs, rcvbuf=16384)
        p.handshake()
        p.until(lambda: len(p.got) > 100_000)
        p.reading = False  # stall mid-transfer
        for _ in range(10):
            mgr.poll(5)
        r0 = resource.getrusage(resource.RUSAGE_THREAD)
        t0, polls, events = time.monotonic(), 0, 0
        while time.monotonic() - t0 < 0.5:
            events += mgr.poll(100)
            polls += 1
        r1 = resource.getrusage(resource.RUSAGE_THREAD)
        assert events == 0 and polls <= 7  # parked on EVENT_WRITE, not spinning
        assert r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime < 0.05
        p.reading = True
        p.until(lambda: p.eof, timeout=20)
        assert bytes(p.got) == data  # no byte stuck in the SSL object or staging buffer
        p.sock.close()


class TestClientsClosedEarly:
    def test_client_closed_mid_handshake_gets_connect_then_close(
        self, mgr: mgpy.Manager, certs: Certs
    ) -> None:
        mute = socket.socket()
        mute.bind(("127.0.0.1", 0))
        mute.listen(1)  # accepts TCP, never answers the ClientHello
        got: list[tuple[str, Any]] = []

        def cli(c: Conn, ev: Any, ev_data: Any) -> None:
            if ev != Ev.POLL:
                got.append((Ev(ev).name, ev_data))

        c = mgr.connect(
            f"tcp://127.0.0.1:{mute.getsockname()[1]}", cli, tls=mgpy.TlsOpts(ca=certs.ca)
        )
        run_until(mgr, lambda: c.flags & F.SSL)  # TCP is up, the handshake has started
        c.flags |= F.CLOSE_IMMEDIATELY
        run_until(mgr, lambda: c.closed)
        assert got == [("CONNECT", errno.ECANCELED), ("CLOSE", None)]
        mute.close()

    def test_manager_close_during_handshakes(self, certs: Certs) -> None:
        lim = dataclasses.replace(Limits(), tls_handshake_timeout=5)
        m = mgpy.Manager(limits=lim)
        srv = Seq()
        lc = m.bind("127.0.0.1:0", srv, tls=_opts(certs))
        stalled = socket.create_connection(lc.local)  # a server-side handshake in progress
        cli = Seq()
        c = m.connect(f"tcp://localhost:{lc.local[1]}", cli, tls=mgpy.TlsOpts(ca=certs.ca))
        run_until(m, lambda: m.accepted == 2 and c.flags & F.SSL)
        m.close()
        s = cli.seq[c]  # CONNECT(0) if the handshake won the race, else CONNECT(ECANCELED)
        assert s[0] == "CONNECT" and s[-1] == "CLOSE" and len(s) == 2
        for sc, s in srv.seq.items():  # invisible until ACCEPT; then CLOSE is last
            assert not s or sc is lc or (s[0] == "ACCEPT" and s[-1] == "CLOSE")
        stalled.settimeout(2)
        assert stalled.recv(10) == b""
        stalled.close()

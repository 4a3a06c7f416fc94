"""TLS in the manager: mgpy server and client over real sockets, with a PKI made at test time.

Peers here are mgpy itself and Python's ``ssl`` module driven from the test
thread (non-blocking, stepped between polls) or from a helper thread; curl,
``websockets`` and ``http.server`` interop lives in ``test_tls_interop.py``.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import socket
import ssl
import threading
import time
from typing import Any

import pytest

import mgpy
from mgpy import Ev, F, Limits
from mgpy.core.tls import tls_info
from tests.conftest import run_until
from tests.net.certs import Certs, make_certs

Conn = mgpy.Connection


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A CA, server and client certificates made for this module."""
    return make_certs(tmp_path_factory.mktemp("pki"))


class Rec:
    """A handler recording non-POLL events as (name, data), with an optional inner handler."""

    def __init__(self, inner: Any = None) -> None:
        self.events: list[tuple[str, Any]] = []
        self.inner = inner

    def __call__(self, c: Conn, ev: Any, ev_data: Any) -> None:
        if ev != Ev.POLL:
            self.events.append((Ev(ev).name, ev_data))
        if self.inner is not None:
            self.inner(c, ev, ev_data)

    def names(self) -> list[str]:
        return [n for n, _ in self.events]

    def first(self, name: str) -> Any:
        return next(d for n, d in self.events if n == name)


def _hello(c: Conn, ev: Any, ev_data: Any) -> None:
    if ev == Ev.HTTP_REQUEST:
        mgpy.http_reply(c, 200, f"hello {ev_data.uri}", {"Content-Type": "text/plain"})


def _server_opts(certs: Certs, **kw: Any) -> mgpy.TlsOpts:
    return mgpy.TlsOpts(cert=certs.server_cert, key=certs.server_key, **kw)


def _https(mgr: mgpy.Manager, certs: Certs, handler: Any = _hello, **kw: Any) -> int:
    lc = mgr.bind("https://127.0.0.1:0", handler, tls=_server_opts(certs, **kw))
    lc.set_protocol_http_websocket()
    return int(lc.local[1])


def _client_ctx(certs: Certs) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=certs.ca)
    return ctx


def _in_thread(mgr: mgpy.Manager, fn: Any, timeout: float = 10.0) -> Any:
    """Run blocking ``fn()`` on a thread while this thread polls ``mgr``; return its result."""
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["r"] = fn()
        except BaseException as e:  # re-raised below
            box["e"] = e

    t = threading.Thread(target=work, daemon=True)
    t.start()
    run_until(mgr, lambda: not t.is_alive(), timeout)
    if "e" in box:
        raise box["e"]
    return box["r"]


def _recv_all(s: socket.socket | ssl.SSLSocket) -> bytes:
    out = bytearray()
    while True:
        try:
            d = s.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError):
            break
        if not d:
            break
        out += d
    return bytes(out)


class TestConfiguration:
    def test_https_address_without_tls_opts_is_a_clear_error(self, mgr: mgpy.Manager) -> None:
        with pytest.raises(
            mgpy.Error, match=r"cannot bind https://127.0.0.1:0: .*tls=mgpy.TlsOpts"
        ):
            mgr.bind("https://127.0.0.1:0", _hello)

    def test_missing_certificate_file_names_the_file(self, mgr: mgpy.Manager, certs: Certs) -> None:
        bad = str(certs.dir / "nope.pem")
        with pytest.raises(mgpy.Error, match=r"nope\.pem' does not exist"):
            mgr.bind("127.0.0.1:0", _hello, tls=mgpy.TlsOpts(cert=bad, key=certs.server_key))

    def test_key_not_matching_the_certificate_is_refused(
        self, mgr: mgpy.Manager, certs: Certs
    ) -> None:
        with pytest.raises(mgpy.Error, match="key values mismatch"):
            mgr.bind(
                "127.0.0.1:0", _hello, tls=mgpy.TlsOpts(cert=certs.server_cert, key=certs.other_key)
            )

    def test_failed_bind_releases_the_port(self, mgr: mgpy.Manager, certs: Certs) -> None:
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        with pytest.raises(mgpy.Error):
            mgr.bind(f"https://127.0.0.1:{port}", _hello)
        lc = mgr.bind(f"https://127.0.0.1:{port}", _hello, tls=_server_opts(certs))
        assert lc.local[1] == port
        assert lc.flags & F.SSL

    def test_client_certificate_demand_needs_a_ca(self, mgr: mgpy.Manager, certs: Certs) -> None:
        with pytest.raises(mgpy.Error, match="require_client_cert needs ca="):
            mgr.bind("127.0.0.1:0", _hello, tls=_server_opts(certs, require_client_cert=True))

    def test_bad_client_ca_file_raises_from_connect(self, mgr: mgpy.Manager, certs: Certs) -> None:
        with pytest.raises(mgpy.Error, match=r"CA file .* does not exist"):
            mgr.connect_http(
                "https://127.0.0.1:1/", _hello, tls=mgpy.TlsOpts(ca="/nonexistent/ca.pem")
            )
        assert mgr.connections == []

    def test_alpn_must_be_a_list(self) -> None:
        with pytest.raises(TypeError):
            mgpy.TlsOpts(alpn="http/1.1")


class TestMgpyToMgpy:
    def test_https_request_and_reply(self, mgr: mgpy.Manager, certs: Certs) -> None:
        infos: dict[str, Any] = {}

        def srv(c: Conn, ev: Any, ev_data: Any) -> None:
            if ev == Ev.HTTP_REQUEST:
                infos["srv"] = tls_info(c)
                infos["flags"] = c.flags
            _hello(c, ev, ev_data)

        srec = Rec(srv)
        port = _https(mgr, certs, srec)

        def cli(c: Conn, ev: Any, ev_data: Any) -> None:
            if ev == Ev.HTTP_REPLY:
                infos["cli"] = tls_info(c)
                c.close()

        crec = Rec(cli)
        mgr.connect_http(f"https://localhost:{port}/x", crec, tls=mgpy.TlsOpts(ca=certs.ca))
        run_until(mgr, lambda: "CLOSE" in crec.names() and "CLOSE" in srec.names())
        assert crec.names()[0] == "CONNECT" and crec.events[0][1] == 0
        reply = crec.first("HTTP_REPLY")
        assert (reply.resp_code, reply.body) == (200, b"hello /x")
        assert srec.names()[0] == "ACCEPT" and srec.names()[-1] == "CLOSE"
        assert "ERROR" not in srec.names() + crec.names()
        assert infos["flags"] & F.SSL and infos["flags"] & F.SSL_HANDSHAKE_DONE
        for side in ("srv", "cli"):
            assert infos[side].alpn == "http/1.1"
            assert infos[side].version in ("TLSv1.2", "TLSv1.3")
        assert infos["srv"].peer_cert is None
        assert ("commonName", "localhost") in infos["cli"].peer_cert["subject"][0]

    def test_wss_echo_between_mgpy_peers(self, mgr: mgpy.Manager, certs: Certs) -> None:
        def srv(c: Conn, ev: Any, ev_data: Any) -> None:
            if ev == Ev.WS_FRAME:
                c.send_websocket_frame(ev_data.opcode, ev_data.data)

        port = _https(mgr, certs, srv)
        got: list[bytes] = []
        big = bytes(range(256)) * 2048  # 512 KiB: many TLS records per message

        def cli(c: Conn, ev: Any, ev_data: Any) -> None:
            if ev == Ev.WS_HANDSHAKE_DONE:
                assert ev_data.resp_code == 101
                c.send_websocket_frame(mgpy.WS_OP_TEXT, "héllo")
                c.send_websocket_frame(mgpy.WS_OP_BINARY, big)
            elif ev == Ev.WS_FRAME:
                got.append(ev_data.data)
                if len(got) == 2:
                    c.ws_close(1000)

        crec = Rec(cli)
        mgr.connect_ws(f"wss://localhost:{port}/ws", crec, tls=mgpy.TlsOpts(ca=certs.ca))
        run_until(mgr, lambda: "CLOSE" in crec.names())
        assert got == ["héllo".encode(), big]

    def test_https_url_without_tls_opts_verifies_with_the_system_store(
        self, mgr: mgpy.Manager, certs: Certs
    ) -> None:
        port = _https(mgr, certs)
        crec = Rec()
        mgr.connect_http(f"https://localhost:{port}/", crec)
        run_until(mgr, lambda: "CLOSE" in crec.names())
        assert crec.events[0] == ("CONNECT", errno.EPROTO)
        assert "certificate verify failed" in crec.first("ERROR")


class TestVersions:
    def test_tls12_client_is_served(self, mgr: mgpy.Manager, certs: Certs) -> None:
        port = _https(mgr, certs)

        def one() -> tuple[str | None, bytes]:
            ctx = _client_ctx(certs)
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            raw = socket.create_connection(("127.0.0.1", port), timeout=5)
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"GET /12 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                return s.version(), _recv_all(s)

        version, resp = _in_thread(mgr, one)
        assert version == "TLSv1.2" and resp.endswith(b"hello /12")

    def test_ready_context_and_min_version(self, mgr: mgpy.Manager, certs: Certs) -> None:
        """A server given a TLS 1.2-only context; a client demanding TLS 1.3 refuses it."""
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        sctx.load_cert_chain(certs.server_cert, certs.server_key)
        sctx.maximum_version = ssl.TLSVersion.TLSv1_2
        lc = mgr.bind("127.0.0.1:0", _hello, tls=mgpy.TlsOpts(context=sctx))
        lc.set_protocol_http_websocket()
        url = f"https://localhost:{lc.local[1]}/"
        ok, refused = Rec(), Rec()
        mgr.connect_http(url, ok, tls=mgpy.TlsOpts(ca=certs.ca))
        mgr.connect_http(
            url, refused, tls=mgpy.TlsOpts(ca=certs.ca, min_version=ssl.TLSVersion.TLSv1_3)
        )
        run_until(mgr, lambda: "HTTP_REPLY" in ok.names() and "CLOSE" in refused.names())
        assert refused.events[0] == ("CONNECT", errno.EPROTO)
        assert "protocol version" in refused.first("ERROR")


class TestVerification:
    def _fail(self, mgr: mgpy.Manager, url: str, tls: mgpy.TlsOpts) -> Rec:
        crec = Rec()
        mgr.connect_http(url, crec, tls=tls)
        run_until(mgr, lambda: "CLOSE" in crec.names())
        assert crec.names() == ["CONNECT", "ERROR", "CLOSE"]
        assert crec.events[0][1] == errno.EPROTO
        return crec

    def test_wrong_host_name_fails_verification(self, mgr: mgpy.Manager, certs: Certs) -> None:
        srec = Rec(_hello)
        port = _https(mgr, certs, srec)
        crec = self._fail(
            mgr,
            f"https://127.0.0.1:{port}/",
            mgpy.TlsOpts(ca=certs.ca, server_name="wrong.example"),
        )
        why = crec.first("ERROR")
        assert "certificate verify failed" in why and "Hostname mismatch" in why
        assert "wrong.example" in why
        run_until(mgr, lambda: len(mgr.connections) == 1)  # only the listener is left
        assert srec.events == []  # the server's application never saw the connection

    def test_unknown_ca_fails_verification(self, mgr: mgpy.Manager, certs: Certs) -> None:
        port = _https(mgr, certs)
        crec = self._fail(mgr, f"https://localhost:{port}/", mgpy.TlsOpts(ca=certs.other_ca))
        assert "certificate verify failed: unable to get local issuer certificate" in crec.first(
            "ERROR"
        )

    def test_verify_false_is_the_explicit_opt_out(self, mgr: mgpy.Manager, certs: Certs) -> None:
        lc = mgr.bind(
            "127.0.0.1:0", _hello, tls=mgpy.TlsOpts(cert=certs.other_cert, key=certs.other_key)
        )
        lc.set_protocol_http_websocket()
        crec = Rec()
        mgr.connect_http(
            f"https://127.0.0.1:{lc.local[1]}/",
            crec,
            tls=mgpy.TlsOpts(verify=False, server_name="anything.example"),
        )
        run_until(mgr, lambda: "HTTP_REPLY" in crec.names())
        assert crec.events[0] == ("CONNECT", 0)
        assert crec.first("HTTP_REPLY").body == b"hello /"

    def test_ip_address_is_verified_against_the_ip_san(
        self, mgr: mgpy.Manager, certs: Certs
    ) -> None:
        port = _https(mgr, certs)
        crec = Rec()
        mgr.connect_http(f"https://127.0.0.1:{port}/", crec, tls=mgpy.TlsOpts(ca=certs.ca))
        run_until(mgr, lambda: "HTTP_REPLY" in crec.names())
        assert crec.events[0] == ("CONNECT", 0)


class TestClientCertificates:
    def test_required_and_presented(self, mgr: mgpy.Manager, certs: Certs) -> None:
        seen: list[Any] = []

        def srv(c: Conn, ev: Any, ev_data: Any) -> None:
            if ev == Ev.HTTP_REQUEST:
                info = tls_info(c)
                assert info is not None and info.peer_cert is not None
                seen.append(dict(x[0] for x in info.peer_cert["subject"])["commonName"])
            _hello(c, ev, ev_data)

        port = _https(mgr, certs, srv, ca=certs.ca, require_client_cert=True)
        crec = Rec()
        mgr.connect_http(
            f"https://localhost:{port}/",
            crec,
            tls=mgpy.TlsOpts(ca=certs.ca, cert=certs.client_cert, key=certs.client_key),
        )
        run_until(mgr, lambda: "HTTP_REPLY" in crec.names())
        assert seen == ["mgpy-test-client"]

    def test_required_and_missing_is_refused(self, mgr: mgpy.Manager, certs: Certs) -> None:
        srec = Rec(_hello)
        port = _https(mgr, certs, srec, ca=certs.ca, require_client_cert=True)
        crec = Rec()
        mgr.connect_http(f"https://localhost:{port}/", crec, tls=mgpy.TlsOpts(ca=certs.ca))
        run_until(mgr, lambda: "CLOSE" in crec.names())
        assert "HTTP_REPLY" not in crec.names()
        assert "certificate required" in crec.first("ERROR")  # TLS 1.3 alert after CONNECT(0)
        assert srec.events == []

    def test_certificate_from_an_unknown_ca_is_refused(
        self, mgr: mgpy.Manager, certs: Certs
    ) -> None:
        srec = Rec(_hello)
        port = _https(mgr, certs, srec, ca=certs.ca, require_client_cert=True)
        crec = Rec()
        mgr.connect_http(
            f"https://localhost:{port}/",
            crec,
            tls=mgpy.TlsOpts(ca=certs.ca, cert=certs.other_cert, key=certs.other_key),
        )
        run_until(mgr, lambda: "CLOSE" in crec.names())
        assert "HTTP_REPLY" not in crec.names()
        assert "unknown ca" in crec.first("ERROR")
        assert srec.events == []


class TestWrongProtocol:
    def test_plain_http_to_tls_port_gets_400_and_close(
        self, mgr: mgpy.Manager, certs: Certs
    ) -> None:
        srec = Rec(_hello)
        port = _https(mgr, certs, srec)

        def plain() -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                return _recv_all(s)

        t0 = time.monotonic()
        resp = _in_thread(mgr, plain)
        assert time.monotonic() - t0 < 2.0
        assert resp.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert b"plain HTTP request was sent to an HTTPS port" in resp
        assert srec.events == []

    def test_garbage_to_tls_port_is_closed_without_answer(
        self, mgr: mgpy.Manager, certs: Certs
    ) -> None:
        port = _https(mgr, certs)

        def garbage() -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"\x00\x01\x02\x03 not tls at all\r\n")
                return _recv_all(s)

        assert _in_thread(mgr, garbage) == b""

    def test_tls_hello_to_plain_port_gets_400_and_close(self, mgr: mgpy.Manager) -> None:
        lc = mgr.bind("127.0.0.1:0", _hello)
        lc.set_protocol_http_websocket()
        port = lc.local[1]
        ctx = ssl.create_default_context()
        inb, outb = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(inb, outb, server_hostname="localhost")
        with pytest.raises(ssl.SSLWantReadError):
            obj.do_handshake()
        hello = outb.read()

        def send_hello() -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(hello)
                return _recv_all(s)

        resp = _in_thread(mgr, send_hello)
        assert resp.startswith(b"HTTP/1.1 400 ")

    def test_mgpy_https_client_to_plain_port_fails_fast(self, mgr: mgpy.Manager) -> None:
        lc = mgr.bind("127.0.0.1:0", _hello)
        lc.set_protocol_http_websocket()
        crec = Rec()
        t0 = time.monotonic()
        mgr.connect_http(f"https://127.0.0.1:{lc.local[1]}/", crec, tls=mgpy.TlsOpts(verify=False))
        run_until(mgr, lambda: "CLOSE" in crec.names())
        assert time.monotonic() - t0 < 2.0
        assert crec.events[0][0] == "CONNECT" and crec.events[0][1] != 0
        assert "TLS handshake with 127.0.0.1 failed" in crec.first("ERROR")


class TestHandshakeDeadline:
    def test_silent_and_stalled_clients_are_dropped(self, certs: Certs) -> None:
        lim = dataclasses.replace(Limits(), tls_handshake_timeout=0.3)
        with mgpy.Manager(limits=lim) as mgr:
            srec = Rec(_hello)
            port = _https(mgr, certs, srec)
            silent = socket.create_connection(("127.0.0.1", port))
            stalled = socket.create_connection(("127.0.0.1", port))
            stalled.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello
            t0 = time.monotonic()
            run_until(mgr, lambda: mgr.accepted == 2)
            run_until(mgr, lambda: len(mgr.connections) == 1, timeout=3.0)
            assert 0.25 < time.monotonic() - t0 < 2.0
            for s in (silent, stalled):
                s.settimeout(2)
                assert _recv_all(s) == b""
                s.close()
            assert srec.events == []

    def test_client_handshake_deadline(self, certs: Certs) -> None:
        lim = dataclasses.replace(Limits(), tls_handshake_timeout=0.3)
        mute = socket.socket()
        mute.bind(("127.0.0.1", 0))
        mute.listen(1)  # accepts TCP, never speaks TLS
        with mgpy.Manager(limits=lim) as mgr:
            crec = Rec()
            mgr.connect_http(
                f"https://127.0.0.1:{mute.getsockname()[1]}/", crec, tls=mgpy.TlsOpts(ca=certs.ca)
            )
            run_until(mgr, lambda: "CLOSE" in crec.names(), timeout=3.0)
            assert crec.names() == ["CONNECT", "ERROR", "CLOSE"]
            assert crec.events[0][1] == errno.ETIMEDOUT
            assert "timed out" in crec.first("ERROR")
        mute.close()


class TestStreams:
    def test_raw_echo_with_tiny_buffers_loses_nothing(self, certs: Certs) -> None:
        """4 MiB through a TLS echo whose receive buffers hold 1000 bytes (records are 16 KiB)."""
        lim = dataclasses.replace(Limits(), max_recv_buffer=1000)
        data = hashlib.sha256(b"seed").digest() * (4 * 1024 * 1024 // 32)
        got = bytearray()

        def echo(c: Conn, ev: Any, ev_data: Any) -> None:
            if ev == Ev.RECV:
                c.send(bytes(c.recv_mbuf))
                c.recv_mbuf.clear()

        def cli(c: Conn, ev: Any, ev_data: Any) -> None:
            if ev == Ev.CONNECT and ev_data == 0:
                c.send(data)
            elif ev == Ev.RECV:
                got.extend(c.recv_mbuf.view())
                c.recv_mbuf.clear()
                if len(got) == len(data):
                    c.close()

        with mgpy.Manager(limits=lim) as mgr:
            lc = mgr.bind("127.0.0.1:0", echo, tls=_server_opts(certs, alpn=()))
            crec = Rec(cli)
            mgr.connect(
                f"tcp://localhost:{lc.local[1]}", crec, tls=mgpy.TlsOpts(ca=certs.ca, alpn=())
            )
            run_until(mgr, lambda: "CLOSE" in crec.names(), timeout=20)
        assert "ERROR" not in crec.names()
        assert max(n for name, n in crec.events if name == "RECV") <= 1000
        assert bytes(got) == data

    def test_slow_reader_gets_a_large_download_whole(self, mgr: mgpy.Manager, certs: Certs) -> None:
        body = hashlib.sha256(b"x").digest() * (6 * 1024 * 1024 // 32)

        backlog = threading.Event()  # the server holds plaintext the socket would not take

        def srv(c: Conn, ev: Any, ev_data: Any) -> None:
            if ev == Ev.HTTP_REQUEST:
                mgpy.http_reply(c, 200, body)
            elif ev == Ev.POLL and c.listener is not None and c.send_mbuf.len:
                backlog.set()

        port = _https(mgr, certs, srv)

        def slow() -> bytes:
            raw = socket.socket()
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
            raw.connect(("127.0.0.1", port))
            with _client_ctx(certs).wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                out = bytearray(s.recv(4096))
                assert backlog.wait(10)  # read the rest only once the server is backed up
                out += _recv_all(s)
            return bytes(out)

        resp = _in_thread(mgr, slow, timeout=30)
        head, _, got = resp.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert len(got) == len(body) and got == body

    def test_pipelined_requests_are_answered_in_order(
        self, mgr: mgpy.Manager, certs: Certs
    ) -> None:
        port = _https(mgr, certs)
        n = 100

        def pipeline() -> bytes:
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            with _client_ctx(certs).wrap_socket(raw, server_hostname="localhost") as s:
                reqs = b"".join(
                    b"GET /%d HTTP/1.1\r\nHost: localhost\r\n%s\r\n"
                    % (i, b"Connection: close\r\n" if i == n - 1 else b"")
                    for i in range(n)
                )
                s.sendall(reqs)
                return _recv_all(s)

        resp = _in_thread(mgr, pipeline)
        bodies = [part.split(b"\r\n\r\n", 1)[1] for part in resp.split(b"HTTP/1.1 200 ")[1:]]
        assert resp.count(b"HTTP/1.1 200 ") == n
        for i in range(n):
            assert f"hello /{i}".encode() in bodies[i]

    def test_close_notify_is_sent_on_graceful_close(self, mgr: mgpy.Manager, certs: Certs) -> None:
        port = _https(mgr, certs)

        def one() -> tuple[bytes, bool]:
            raw = socket.create_connection(("127.0.0.1", port), timeout=5)
            with _client_ctx(certs).wrap_socket(
                raw, server_hostname="localhost", suppress_ragged_eofs=False
            ) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                out = bytearray()
                while True:
                    d = s.recv(65536)  # ssl.SSLEOFError here would mean no close_notify
                    if not d:
                        return bytes(out), True
                    out += d

        resp, clean = _in_thread(mgr, one)
        assert resp.endswith(b"hello /") and clean


class TestNoBusyLoop:
    def test_backpressure_idles_then_delivers_everything(self, certs: Certs) -> None:
        """A reader that stops consuming parks both sides (no spinning); resuming loses nothing."""
        lim = dataclasses.replace(Limits(), max_recv_buffer=64 * 1024)
        data = hashlib.sha256(b"bp").digest() * (16 * 1024 * 1024 // 32)
        consume = [False]
        got = bytearray()

        def srv(c: Conn, ev: Any, ev_data: Any) -> None:
            if ev == Ev.ACCEPT:
                c.send(data)

        def cli(c: Conn, ev: Any, ev_data: Any) -> None:
            if ev in (Ev.RECV, Ev.POLL) and consume[0]:
                got.extend(c.recv_mbuf.view())
                c.recv_mbuf.clear()
                if len(got) == len(data):
                    c.close()

        with mgpy.Manager(limits=lim) as mgr:
            lc = mgr.bind("127.0.0.1:0", srv, tls=_server_opts(certs))
            crec = Rec(cli)
            cc = mgr.connect(f"tcp://localhost:{lc.local[1]}", crec, tls=mgpy.TlsOpts(ca=certs.ca))
            run_until(mgr, lambda: cc.recv_mbuf.len == lim.max_recv_buffer)
            for _ in range(5):
                mgr.poll(10)
            t0 = time.monotonic()
            ready = sum(mgr.poll(50) for _ in range(5))
            assert ready == 0 and time.monotonic() - t0 >= 0.2  # select() slept: nothing spins
            sc = next(c for c in mgr.connections if c.listener is lc)
            assert sc.send_mbuf.len > 0  # the server really is blocked by the reader
            consume[0] = True
            run_until(mgr, lambda: "CLOSE" in crec.names(), timeout=20)
        assert bytes(got) == data


class TestManyHandshakes:
    def test_200_slow_handshakes_do_not_stall_a_plain_client(self, certs: Certs) -> None:
        """100 clients dribble handshakes 8 bytes per round, 100 stall; plain HTTP still flows."""
        lim = dataclasses.replace(Limits(), tls_handshake_timeout=4.0)
        with mgpy.Manager(limits=lim) as mgr:
            accepted: list[Conn] = []

            def tls_srv(c: Conn, ev: Any, ev_data: Any) -> None:
                if ev == Ev.ACCEPT:
                    accepted.append(c)

            tls_port = _https(mgr, certs, tls_srv)
            plain = mgr.bind("127.0.0.1:0", _hello)
            plain.set_protocol_http_websocket()
            plain_port = plain.local[1]
            ctx = _client_ctx(certs)

            class Dribbler:
                def __init__(self) -> None:
                    self.sock = socket.create_connection(("127.0.0.1", tls_port))
                    self.sock.setblocking(False)
                    self.inb, self.outb = ssl.MemoryBIO(), ssl.MemoryBIO()
                    self.obj = ctx.wrap_bio(self.inb, self.outb, server_hostname="localhost")
                    self.pending = b""
                    self.finished = False  # our side of the handshake is complete

                @property
                def done(self) -> bool:
                    return self.finished and not self.pending

                def step(self) -> None:
                    if not self.finished:
                        try:
                            self.inb.write(self.sock.recv(65536))
                        except BlockingIOError:
                            pass
                        try:
                            self.obj.do_handshake()
                            self.finished = True
                        except ssl.SSLWantReadError:
                            pass
                        self.pending += self.outb.read()
                    if self.pending:
                        self.sock.send(self.pending[:8])
                        self.pending = self.pending[8:]

            dribblers = [Dribbler() for _ in range(100)]
            stallers = [socket.create_connection(("127.0.0.1", tls_port)) for _ in range(100)]
            for s in stallers[:50]:
                s.sendall(b"\x16\x03\x01")  # a record header, then nothing

            latencies: list[float] = []

            def plain_client() -> None:
                for i in range(20):
                    t0 = time.monotonic()
                    with socket.create_connection(("127.0.0.1", plain_port), timeout=5) as s:
                        s.sendall(b"GET /p%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % i)
                        assert _recv_all(s).endswith(b"hello /p%d" % i)
                    latencies.append(time.monotonic() - t0)

            t = threading.Thread(target=plain_client, daemon=True)
            t.start()
            deadline = time.monotonic() + 15
            while (
                t.is_alive() or not all(d.done for d in dribblers)
            ) and time.monotonic() < deadline:
                mgr.poll(5)
                for d in dribblers:
                    d.step()
            t.join(1)
            assert len(latencies) == 20 and max(latencies) < 1.0
            assert all(d.done for d in dribblers)
            run_until(mgr, lambda: len(accepted) == 100)
            # the stallers are dropped at the handshake deadline; the finished ones stay
            run_until(mgr, lambda: len(mgr.connections) == 2 + 100, timeout=8)
            for s in stallers:
                s.settimeout(2)
                assert _recv_all(s) == b""
                s.close()
            for d in dribblers:
                d.sock.close()

"""TLS interop with real peers: curl, the ``websockets`` library, ``http.server`` + ssl, the CLI."""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets.sync.client
import websockets.sync.server

import mgpy
from mgpy import Ev
from tests.conftest import run_until
from tests.net.certs import Certs, make_certs
from tests.net.test_tls import Rec, _hello, _https, _in_thread

Conn = mgpy.Connection


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A CA, server and client certificates made for this module."""
    return make_certs(tmp_path_factory.mktemp("pki"))


_BIG = hashlib.sha256(b"ten").digest() * (10 * 1024 * 1024 // 32)  # 10 MiB


def _curl(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["curl", "-sS", "--noproxy", "*", *args], capture_output=True, timeout=timeout, check=False
    )


@pytest.fixture
def web_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    (root / "index.html").write_bytes(b"<h1>mgpy over TLS</h1>\n")
    (root / "blob.bin").write_bytes(os.urandom(3_000_000))  # > cache: the file pump
    return root


def _site(root: Path) -> Any:
    opts = mgpy.ServeOpts(document_root=str(root))

    def handler(c: Conn, ev: Any, ev_data: Any) -> None:
        if ev == Ev.HTTP_REQUEST:
            if ev_data.uri == "/big":
                mgpy.http_reply(c, 200, _BIG, {"Content-Type": "application/octet-stream"})
            else:
                mgpy.serve_http(c, ev_data, opts)
        elif ev == Ev.WS_FRAME:
            c.send_websocket_frame(ev_data.opcode, ev_data.data)

    return handler


class TestCurl:
    def test_static_files(
        self, mgr: mgpy.Manager, certs: Certs, web_root: Path, tmp_path: Path
    ) -> None:
        port = _https(mgr, certs, _site(web_root))
        out = tmp_path / "blob.out"
        r = _in_thread(
            mgr,
            lambda: _curl(
                "--cacert",
                certs.ca,
                "-w",
                "%{http_code} %{http_version}\\n",
                f"https://localhost:{port}/",
                "-o",
                str(tmp_path / "index.out"),
                f"https://localhost:{port}/blob.bin",
                "-o",
                str(out),
            ),
        )
        assert r.returncode == 0, r.stderr
        assert r.stdout.decode().split("\n")[:2] == ["200 1.1", "200 1.1"]  # ALPN: http/1.1
        assert (tmp_path / "index.out").read_bytes() == (web_root / "index.html").read_bytes()
        assert out.read_bytes() == (web_root / "blob.bin").read_bytes()

    def test_10_mib_download(
        self, mgr: mgpy.Manager, certs: Certs, web_root: Path, tmp_path: Path
    ) -> None:
        port = _https(mgr, certs, _site(web_root))
        out = tmp_path / "big.out"
        r = _in_thread(
            mgr,
            lambda: _curl("--cacert", certs.ca, f"https://localhost:{port}/big", "-o", str(out)),
            timeout=30,
        )
        assert r.returncode == 0, r.stderr
        assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(_BIG).digest()

    def test_wrong_host_name_is_refused_by_curl(self, mgr: mgpy.Manager, certs: Certs) -> None:
        srec = Rec(_hello)
        port = _https(mgr, certs, srec)
        r = _in_thread(
            mgr,
            lambda: _curl(
                "--cacert",
                certs.ca,
                "--resolve",
                f"wrong.example:{port}:127.0.0.1",
                f"https://wrong.example:{port}/",
            ),
        )
        assert r.returncode == 60  # CURLE_PEER_FAILED_VERIFICATION
        assert b"wrong.example" in r.stderr
        run_until(mgr, lambda: len(mgr.connections) == 1)
        # curl checks the name after the handshake completed: the server saw a connection
        # that closed without a request
        assert "HTTP_REQUEST" not in srec.names()

    def test_plain_http_to_tls_port(self, mgr: mgpy.Manager, certs: Certs) -> None:
        port = _https(mgr, certs)
        r = _in_thread(mgr, lambda: _curl("-w", "%{http_code}", f"http://127.0.0.1:{port}/"))
        assert r.stdout.endswith(b"HTTPS port\r\n400")

    def test_https_to_plain_port_fails_fast(self, mgr: mgpy.Manager) -> None:
        lc = mgr.bind("127.0.0.1:0", _hello)
        lc.set_protocol_http_websocket()
        r = _in_thread(mgr, lambda: _curl("-k", "-m", "5", f"https://127.0.0.1:{lc.local[1]}/"))
        assert r.returncode == 35  # CURLE_SSL_CONNECT_ERROR, not the -m 5 timeout (28)


class TestWebsockets:
    def test_websockets_client_over_wss_to_mgpy(
        self, mgr: mgpy.Manager, certs: Certs, web_root: Path
    ) -> None:
        port = _https(mgr, certs, _site(web_root))
        ctx = ssl.create_default_context(cafile=certs.ca)
        big = os.urandom(900_000)

        def talk() -> list[Any]:
            with websockets.sync.client.connect(
                f"wss://localhost:{port}/ws", ssl=ctx, proxy=None, compression=None, open_timeout=5
            ) as ws:
                got = []
                for msg in ("hello", b"\x00\x01", big, "bye"):
                    ws.send(msg)
                    got.append(ws.recv(timeout=5))
                return got

        assert _in_thread(mgr, talk) == ["hello", b"\x00\x01", big, "bye"]

    def test_connect_ws_over_wss_to_websockets_server(
        self, mgr: mgpy.Manager, certs: Certs
    ) -> None:
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        sctx.load_cert_chain(certs.server_cert, certs.server_key)

        def echo(ws: Any) -> None:
            for msg in ws:
                ws.send(msg)

        with websockets.sync.server.serve(
            echo, "127.0.0.1", 0, ssl=sctx, compression=None
        ) as server:
            port = server.socket.getsockname()[1]
            th = threading.Thread(target=server.serve_forever, daemon=True)
            th.start()
            got: list[Any] = []

            def cli(c: Conn, ev: Any, ev_data: Any) -> None:
                if ev == Ev.WS_HANDSHAKE_DONE:
                    c.send_websocket_frame(mgpy.WS_OP_TEXT, "ping over wss")
                    c.send_websocket_frame(mgpy.WS_OP_BINARY, b"\xff" * 200_000)
                elif ev == Ev.WS_FRAME:
                    got.append((ev_data.opcode, ev_data.data))
                    if len(got) == 2:
                        c.ws_close(1000)

            crec = Rec(cli)
            mgr.connect_ws(f"wss://localhost:{port}/", crec, tls=mgpy.TlsOpts(ca=certs.ca))
            run_until(mgr, lambda: "CLOSE" in crec.names())
            server.shutdown()
        assert crec.first("WS_HANDSHAKE_DONE").resp_code == 101
        assert got == [(mgpy.WS_OP_TEXT, b"ping over wss"), (mgpy.WS_OP_BINARY, b"\xff" * 200_000)]
        assert "ERROR" not in crec.names()


class TestHttpServer:
    def test_connect_http_to_python_https_server(self, mgr: mgpy.Manager, certs: Certs) -> None:
        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                body = f"python says {self.path} sni-host={self.headers['Host']}".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        sctx.load_cert_chain(certs.server_cert, certs.server_key)
        sni: list[str | None] = []

        def on_sni(sock: Any, name: str | None, ctx: Any) -> None:
            sni.append(name)

        sctx.sni_callback = on_sni
        srv.socket = sctx.wrap_socket(srv.socket, server_side=True)
        th = threading.Thread(target=srv.serve_forever, daemon=True)
        th.start()
        try:
            port = srv.server_address[1]
            crec = Rec()
            mgr.connect_http(
                f"https://localhost:{port}/hi?x=1", crec, tls=mgpy.TlsOpts(ca=certs.ca)
            )
            ip = Rec()
            mgr.connect_http(f"https://127.0.0.1:{port}/", ip, tls=mgpy.TlsOpts(ca=certs.ca))
            run_until(mgr, lambda: "HTTP_REPLY" in crec.names() and "HTTP_REPLY" in ip.names())
        finally:
            srv.shutdown()
            srv.server_close()
        reply = crec.first("HTTP_REPLY")
        assert reply.resp_code == 200
        assert reply.body == f"python says /hi?x=1 sni-host=localhost:{port}".encode()
        assert sorted(sni, key=str) == [None, "localhost"]  # RFC 6066 3: no SNI for IP literals


@pytest.fixture
def cli_server(certs: Certs, web_root: Path) -> Iterator[int]:
    """``python -m mgpy --tls-cert --tls-key`` on a free port; yields the port."""
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mgpy",
            "--root",
            str(web_root),
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            certs.server_cert,
            "--tls-key",
            certs.server_key,
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stdout is not None
        line = p.stdout.readline()
        m = re.search(r"on https://127\.0\.0\.1:(\d+)/", line)
        assert m, (line, p.stderr.read() if p.poll() is not None and p.stderr else "")
        yield int(m.group(1))
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


class TestCli:
    def test_cli_serves_https_and_wss(self, cli_server: int, certs: Certs, web_root: Path) -> None:
        port = cli_server
        r = _curl("--cacert", certs.ca, f"https://localhost:{port}/index.html")
        assert r.returncode == 0, r.stderr
        assert r.stdout == (web_root / "index.html").read_bytes()
        ctx = ssl.create_default_context(cafile=certs.ca)
        with websockets.sync.client.connect(
            f"wss://localhost:{port}/ws", ssl=ctx, proxy=None, open_timeout=5
        ) as ws:
            ws.send("echo me")
            assert ws.recv(timeout=5) == "echo me"

    def test_cli_tls_key_missing_is_a_one_line_error(self, certs: Certs, web_root: Path) -> None:
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "mgpy",
                "--root",
                str(web_root),
                "--listen",
                "127.0.0.1:0",
                "--tls-cert",
                certs.server_cert,
                "--tls-key",
                str(web_root / "missing.key"),
            ],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        assert r.returncode == 2
        assert r.stderr.count("\n") == 1 and "missing.key' does not exist" in r.stderr

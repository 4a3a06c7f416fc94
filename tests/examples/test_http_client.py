"""examples/http_client.py: run as a subprocess against Python's http.server in a thread."""

from __future__ import annotations

import base64
import hashlib
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "http_client.py"
BIG = bytes(range(256)) * 8192  # 2 MiB, streamed in chunks


class Peer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, code: int, body: bytes, **headers: str) -> None:
        self.send_response(code)
        for k, v in headers.items():
            self.send_header(k.replace("_", "-"), v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/big":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(BIG), 65536):
                self.wfile.write(b"%x\r\n%s\r\n" % (65536, BIG[i : i + 65536]))
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/private":
            want = "Basic " + base64.b64encode(b"bob:pw").decode()
            if self.headers.get("Authorization") == want:
                self._send(200, b"secret stuff")
            else:
                self._send(401, b"no")
        else:
            self._send(200, b"hello\n", X_Served_By="peer", Content_Type="text/plain")

    def do_POST(self) -> None:
        data = self.rfile.read(int(self.headers["Content-Length"]))
        self._send(
            201,
            b"%s got %s type=%s"
            % (self.command.encode(), data, (self.headers["Content-Type"] or "").encode()),
        )

    do_PUT = do_POST


@pytest.fixture(scope="module")
def peer() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Peer)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def run(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, str(EXAMPLE), *args], capture_output=True, timeout=20)


def test_help() -> None:
    out = run("--help")
    assert out.returncode == 0
    for opt in (b"-X", b"-d", b"-H", b"url"):
        assert opt in out.stdout


def test_get_prints_status_headers_and_body(peer: str) -> None:
    out = run(f"http://{peer}/")
    assert out.returncode == 0, out.stderr
    head, _, body = out.stdout.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200 OK"
    assert b"X-Served-By: peer" in lines
    assert body == b"hello\n"


def test_post_with_data_and_header(peer: str) -> None:
    out = run("-X", "PUT", "-d", "a=1", "-H", "Content-Type: text/x-test", f"http://{peer}/p")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(b"HTTP/1.1 201 Created\r\n")
    assert out.stdout.endswith(b"PUT got a=1 type=text/x-test")


def test_data_from_file_defaults_to_post(peer: str, tmp_path: Path) -> None:
    f = tmp_path / "body.txt"
    f.write_bytes(b"from a file")
    out = run("-d", f"@{f}", f"http://{peer}/p")
    assert out.stdout.endswith(b"POST got from a file type=")


def test_basic_auth_from_url(peer: str) -> None:
    assert run(f"http://bob:pw@{peer}/private").stdout.endswith(b"\r\n\r\nsecret stuff")
    out = run(f"http://{peer}/private")
    assert out.returncode == 0 and out.stdout.startswith(b"HTTP/1.1 401 ")


def test_big_chunked_body_streams_to_stdout(peer: str) -> None:
    out = run(f"http://{peer}/big")
    assert out.returncode == 0, out.stderr
    body = out.stdout.partition(b"\r\n\r\n")[2]
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(BIG).hexdigest()


def test_refused_connection_exits_1() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    out = run(f"http://127.0.0.1:{port}/")
    assert out.returncode == 1
    assert out.stdout == b""
    assert b"ECONNREFUSED" in out.stderr and b"Traceback" not in out.stderr


def test_bad_arguments_exit_2() -> None:
    assert run("-H", "no colon", "http://127.0.0.1:1/").returncode == 2
    out = run("ftp://127.0.0.1/")
    assert out.returncode == 2 and b"Traceback" not in out.stderr

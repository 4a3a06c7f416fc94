"""The `mgpy` command as a user meets it, in-process with real sockets: early answers
(426 on the WebSocket paths, 405 for a POST to a static file before its body), --auth-file
guarding uploads and both WebSocket paths, the access log, --no-ws-compression,
--max-upload-size."""

from __future__ import annotations

import hashlib
import logging
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mgpy.__main__ import Server, build_parser
from tests.conftest import run_until
from tests.net.test_mqtt_helpers import RawClient, free_port
from tests.net.test_ws_server import upgrade_request

REALM = "lab"


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., tuple[Server, int]]]:
    made: list[Server] = []

    def make(*extra: str) -> tuple[Server, int]:
        (tmp_path / "index.html").write_text("<h1>hi</h1>")
        argv = ["--root", str(tmp_path), "--listen", "127.0.0.1:0", *extra]
        srv = Server(build_parser().parse_args(argv))
        srv.start()
        made.append(srv)
        assert srv.listener is not None
        return srv, srv.listener.local[1]

    yield make
    for srv in made:
        srv.mgr.close()


def exchange(srv: Server, port: int, request: bytes, until: bytes = b"\r\n\r\n") -> bytes:
    """Send ``request`` on a fresh connection; return what arrived once ``until`` did."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setblocking(False)
    s.sendall(request)
    got = bytearray()

    def read() -> bool:
        try:
            d = s.recv(65536)
        except BlockingIOError:
            return False
        if not d:
            return True
        got.extend(d)
        return until in got

    run_until(srv.mgr, read)
    s.close()
    return bytes(got)


class TestEarlyAnswers:
    @pytest.mark.parametrize("path", ["/ws", "/ws/push"])
    def test_a_plain_get_of_a_websocket_path_gets_426(
        self, make_server: Callable[..., tuple[Server, int]], path: str
    ) -> None:
        srv, port = make_server()
        got = exchange(srv, port, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = got.split(b"\r\n\r\n")[0].lower()
        assert head.startswith(b"http/1.1 426")
        assert b"\r\nupgrade: websocket" in head and b"sec-websocket-version: 13" in head

    def test_a_post_to_a_static_file_is_refused_before_its_body(
        self, make_server: Callable[..., tuple[Server, int]]
    ) -> None:
        srv, port = make_server()
        req = b"POST /index.html HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n"
        got = exchange(srv, port, req)  # no body byte sent: the answer must come anyway
        assert got.startswith(b"HTTP/1.1 405")
        assert b"\r\nAllow: GET, HEAD" in got

    def test_an_upload_when_uploads_are_off_is_refused_before_its_body(
        self, make_server: Callable[..., tuple[Server, int]]
    ) -> None:
        srv, port = make_server()
        req = (
            b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n"
            b"Content-Type: multipart/form-data; boundary=xyz\r\n\r\n"
        )
        got = exchange(srv, port, req, until=b"}")
        assert got.startswith(b"HTTP/1.1 403") and b"uploads are disabled" in got


class TestAuthFileGuardsEverything:
    @pytest.fixture
    def guarded(
        self, make_server: Callable[..., tuple[Server, int]], tmp_path: Path
    ) -> tuple[Server, int]:
        ha1 = hashlib.md5(f"ann:{REALM}:pw".encode()).hexdigest()
        creds = tmp_path.parent / f"{tmp_path.name}-htdigest"
        creds.write_text(f"ann:{REALM}:{ha1}\n")
        up = tmp_path.parent / f"{tmp_path.name}-up"
        return make_server(
            "--auth-file", str(creds), "--auth-realm", REALM, "--upload-dir", str(up)
        )

    @pytest.mark.parametrize(
        "request_bytes",
        [
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            upgrade_request(path="/ws"),
            upgrade_request(path="/ws/push"),
            b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 9000000\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n\r\n",
        ],
        ids=["static", "ws", "ws-push", "upload"],
    )
    def test_without_credentials_every_path_gets_401_on_its_head(
        self, guarded: tuple[Server, int], request_bytes: bytes
    ) -> None:
        srv, port = guarded
        got = exchange(srv, port, request_bytes)
        assert got.startswith(b"HTTP/1.1 401"), got[:80]
        assert b"WWW-Authenticate: Digest" in got

    def test_the_mqtt_broker_checks_the_same_passwords(
        self, make_server: Callable[..., tuple[Server, int]], tmp_path: Path
    ) -> None:
        ha1 = hashlib.md5(f"ann:{REALM}:pw".encode()).hexdigest()
        creds = tmp_path.parent / f"{tmp_path.name}-mqtt-htdigest"
        creds.write_text(f"ann:{REALM}:{ha1}\n")
        mqtt_port = free_port()
        srv, _port = make_server(
            "--auth-file", str(creds), "--auth-realm", REALM, "--mqtt", f"127.0.0.1:{mqtt_port}"
        )  # fmt: skip
        tries = [("ann", b"pw", 0), ("ann", b"wrong", 0x86), ("eve", b"pw", 0x86),
                 ("ann", b"\xff\xfe", 0x86), (None, None, 0x87)]  # fmt: skip
        for user, password, code in tries:
            raw = RawClient(srv.mgr, mqtt_port, version=5)
            ack = raw.connect(f"c-{user}", username=user, password=password)
            assert ack.reason_code == code, (user, password, ack)
            raw.sock.close()


class TestAccessLog:
    def test_one_line_per_request_and_websocket_close(
        self, make_server: Callable[..., tuple[Server, int]], caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="mgpy.access")
        srv, port = make_server()
        exchange(srv, port, b"GET /index.html?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", until=b"</h1>")
        exchange(srv, port, b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n", until=b"Found\n")
        # written when the response is complete, so before the client could read it
        lines = [r.getMessage() for r in caplog.records if r.name == "mgpy.access"]
        ok = next(line for line in lines if "/index.html" in line)
        assert '"GET /index.html HTTP/1.1" 200' in ok and ok.startswith("127.0.0.1:")
        assert ok.split()[-2].endswith("B") and ok.endswith("ms")
        assert any('"GET /missing HTTP/1.1" 404' in line for line in lines)

    def test_no_access_log_turns_it_off(
        self, make_server: Callable[..., tuple[Server, int]], caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="mgpy.access")
        srv, port = make_server("--no-access-log")
        exchange(srv, port, b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n", until=b"</h1>")
        assert [r for r in caplog.records if r.name == "mgpy.access"] == []


def test_no_ws_compression_is_not_negotiated(
    make_server: Callable[..., tuple[Server, int]],
) -> None:
    offer = b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    for extra, expect in ((), True), (("--no-ws-compression",), False):
        srv, port = make_server(*extra)
        req = upgrade_request(path="/ws").replace(b"\r\n\r\n", b"\r\n" + offer + b"\r\n")
        got = exchange(srv, port, req)
        assert got.startswith(b"HTTP/1.1 101")
        assert (b"permessage-deflate" in got) is expect


def test_max_upload_size_is_a_size(make_server: Callable[..., tuple[Server, int]]) -> None:
    srv, _port = make_server("--max-upload-size", "2M")
    assert srv.args.max_upload == 2 * 1024 * 1024


def test_websocket_open_and_close_are_logged(
    make_server: Callable[..., tuple[Server, int]], caplog: pytest.LogCaptureFixture
) -> None:
    from tests.net.test_ws_server import RawWs

    caplog.set_level(logging.INFO, logger="mgpy.access")
    srv, port = make_server()
    ws = RawWs(srv.mgr, port)
    assert ws.handshake(upgrade_request(path="/ws")) == 101
    ws.send_frame(0x88, b"\x03\xe8")  # close 1000
    run_until(
        srv.mgr,
        lambda: any("closed after" in r.getMessage() for r in caplog.records),
    )
    lines = [r.getMessage() for r in caplog.records if r.name == "mgpy.access"]
    assert any('"GET /ws HTTP/1.1" 101' in line for line in lines)
    assert any("WebSocket /ws closed after" in line for line in lines)

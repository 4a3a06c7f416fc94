"""connect_http against Python's http.server (ThreadingHTTPServer in a thread).

Covers Content-Length, chunked and read-until-close replies, POST bodies,
request headers, Basic auth from ``user:pass@`` in the URL, HTTP_CHUNK while
a big body arrives, and CONNECT/CLOSE on failures.  The Manager polls in the
test thread.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import mgpy
from mgpy import Ev, F
from tests.conftest import run_until

BIG = bytes(range(256)) * 12 * 1024  # 3 MiB, larger than Limits.max_body


MEDIUM = bytes(range(256)) * 2400  # 600 KiB


class PeerHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if self.path == "/cl":
            self._reply(200, b"hello", {"X-Test": "yes"})
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b"one,", b"two,", b"three"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\nX-Trailer: t\r\n\r\n")
        elif self.path == "/until-close":
            # HTTP/1.0 style: no Content-Length, the body ends when the server closes
            self.close_connection = True
            self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n")
            self.wfile.write(b"read me until the end")
        elif self.path == "/big":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(BIG), 100_000):
                piece = BIG[i : i + 100_000]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/medium":
            self._reply(200, MEDIUM)
        elif self.path == "/headers":
            body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
            self._reply(200, body, {"Content-Type": "application/json"})
        elif self.path == "/auth":
            want = "Basic " + base64.b64encode(b"alice:s3cret").decode()
            if self.headers.get("Authorization") == want:
                self._reply(200, b"welcome alice")
            else:
                self._reply(401, b"who are you", {"WWW-Authenticate": 'Basic realm="t"'})
        elif self.path == "/204":
            self.send_response(204)
            self.end_headers()
        else:
            self._reply(404, b"not found")

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length", "0"))
        data = self.rfile.read(n)
        self._reply(200, b"%s %s %s" % (self.command.encode(), self.path.encode(), data))

    do_PUT = do_POST


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that stops reading mid-body (max_body test) is expected


@pytest.fixture(scope="module")
def peer() -> Iterator[str]:
    srv = QuietServer(("127.0.0.1", 0), PeerHandler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


class Client:
    """Records what a connect_http handler sees."""

    def __init__(self, delete_chunks: bool = False) -> None:
        self.events: list[str] = []
        self.connect_status: int | None = None
        self.reply: mgpy.HttpMessage | None = None
        self.chunks: list[int] = []
        self.sha = hashlib.sha256()
        self.delete_chunks = delete_chunks
        self.error: str | None = None
        self.closed = False

    def __call__(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.POLL:
            return
        self.events.append(Ev(ev).name)
        if ev == Ev.CONNECT:
            self.connect_status = ev_data
        elif ev == Ev.HTTP_CHUNK:
            self.chunks.append(len(ev_data.body))
            if self.delete_chunks:
                self.sha.update(ev_data.body)
                c.flags |= F.DELETE_CHUNK
        elif ev == Ev.HTTP_REPLY:
            self.reply = ev_data
            self.sha.update(ev_data.body)
            c.close()
        elif ev == Ev.ERROR:
            self.error = ev_data
        elif ev == Ev.CLOSE:
            self.closed = True


def fetch(mgr: mgpy.Manager, url: str, cl: Client | None = None, **kw: Any) -> Client:
    cl = cl or Client()
    mgr.connect_http(url, cl, **kw)
    run_until(mgr, lambda: cl.closed, timeout=10)
    return cl


class TestReplies:
    def test_content_length_reply(self, mgr: mgpy.Manager, peer: str) -> None:
        cl = fetch(mgr, peer + "/cl")
        assert cl.connect_status == 0
        hm = cl.reply
        assert hm is not None
        assert hm.resp_code == 200 and hm.resp_status_msg == "OK"
        assert hm.body == b"hello"
        assert hm.header("x-test") == "yes"
        assert cl.events[0] == "CONNECT" and cl.events[-1] == "CLOSE"
        assert cl.events.count("HTTP_REPLY") == 1

    def test_chunked_reply(self, mgr: mgpy.Manager, peer: str) -> None:
        hm = fetch(mgr, peer + "/chunked").reply
        assert hm is not None and hm.chunked
        assert hm.body == b"one,two,three"

    def test_read_until_close_reply(self, mgr: mgpy.Manager, peer: str) -> None:
        cl = fetch(mgr, peer + "/until-close")
        hm = cl.reply
        assert hm is not None
        assert hm.proto == "HTTP/1.0" and hm.body == b"read me until the end"
        assert cl.error is None
        assert cl.events[-2:] == ["HTTP_REPLY", "CLOSE"]

    def test_204_reply(self, mgr: mgpy.Manager, peer: str) -> None:
        hm = fetch(mgr, peer + "/204").reply
        assert hm is not None and hm.resp_code == 204 and hm.body == b""

    def test_head_reply_has_no_body(self, mgr: mgpy.Manager, peer: str) -> None:
        hm = fetch(mgr, peer + "/cl", method="HEAD").reply
        assert hm is not None
        assert hm.header("content-length") == "5" and hm.body == b""

    def test_404_is_a_reply_not_an_error(self, mgr: mgpy.Manager, peer: str) -> None:
        cl = fetch(mgr, peer + "/nope")
        assert cl.reply is not None and cl.reply.resp_code == 404
        assert cl.error is None


class TestRequests:
    def test_post_body(self, mgr: mgpy.Manager, peer: str) -> None:
        hm = fetch(mgr, peer + "/submit", body=b"a=1&b=2").reply
        assert hm is not None and hm.body == b"POST /submit a=1&b=2"

    def test_put_with_str_body(self, mgr: mgpy.Manager, peer: str) -> None:
        hm = fetch(mgr, peer + "/doc", method="put", body="héllo").reply
        assert hm is not None and hm.body == "PUT /doc héllo".encode()

    def test_headers_are_sent(self, mgr: mgpy.Manager, peer: str) -> None:
        hm = fetch(mgr, peer + "/headers", headers={"X-One": "1", "Accept": "text/plain"}).reply
        assert hm is not None
        got = json.loads(hm.body)
        assert got["x-one"] == "1" and got["accept"] == "text/plain"
        assert got["host"] == peer.removeprefix("http://")

    def test_headers_as_pairs(self, mgr: mgpy.Manager, peer: str) -> None:
        hm = fetch(mgr, peer + "/headers", headers=[("X-Two", "2")]).reply
        assert hm is not None and json.loads(hm.body)["x-two"] == "2"

    def test_basic_auth_from_the_url(self, mgr: mgpy.Manager, peer: str) -> None:
        url = peer.replace("http://", "http://alice:s3cret@") + "/auth"
        hm = fetch(mgr, url).reply
        assert hm is not None and hm.resp_code == 200 and hm.body == b"welcome alice"

    def test_no_credentials_gives_401(self, mgr: mgpy.Manager, peer: str) -> None:
        hm = fetch(mgr, peer + "/auth").reply
        assert hm is not None and hm.resp_code == 401

    def test_header_injection_in_request_is_refused(self, mgr: mgpy.Manager, peer: str) -> None:
        cl = Client()
        before = len(mgr.connections)
        with pytest.raises(mgpy.LocalProtocolError):
            mgr.connect_http(peer + "/cl", cl, headers={"X": "a\r\nEvil: 1"})
        with pytest.raises(mgpy.LocalProtocolError):
            mgr.connect_http(peer + "/cl", cl, method="GET /x")
        assert len(mgr.connections) == before  # refused before any connection was made
        assert cl.events == []


class TestStreaming:
    def test_chunks_arrive_while_a_big_body_streams(self, mgr: mgpy.Manager, peer: str) -> None:
        cl = fetch(mgr, peer + "/big", Client(delete_chunks=True))
        assert cl.reply is not None and cl.reply.resp_code == 200
        assert len(cl.chunks) > 1
        assert max(cl.chunks) <= mgr.limits.max_body
        assert cl.sha.hexdigest() == hashlib.sha256(BIG).hexdigest()

    def test_big_body_without_delete_chunk_hits_max_body(
        self, mgr: mgpy.Manager, peer: str
    ) -> None:
        cl = fetch(mgr, peer + "/big")
        assert cl.reply is None
        assert cl.error is not None and "max_body" in cl.error

    def test_a_kept_body_read_in_tiny_pieces_is_not_copied_per_read(
        self, mgr: mgpy.Manager, peer: str
    ) -> None:
        # ~1200 reads of <= 512 bytes; HTTP_CHUNK copies the whole kept body each time, so
        # past 16 KiB it waits for the body to grow by a quarter (linear, not quadratic)
        cl = fetch(mgr, peer + "/medium", limits=mgpy.Limits(max_recv_buffer=512))
        assert cl.reply is not None and cl.reply.body == MEDIUM
        assert 1 < len(cl.chunks) < 150
        assert cl.chunks == sorted(cl.chunks)  # the body so far, growing


class TestLifetime:
    def test_connection_closes_after_the_reply(self, mgr: mgpy.Manager, peer: str) -> None:
        """One request per connection: CLOSE follows HTTP_REPLY without c.close()."""
        events: list[str] = []

        def h(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            if ev not in (Ev.POLL, Ev.SEND, Ev.RECV):
                events.append(Ev(ev).name)

        mgr.connect_http(peer + "/cl", h)
        run_until(mgr, lambda: "CLOSE" in events)
        assert events == ["CONNECT", "HTTP_REPLY", "CLOSE"]

    def test_bytes_after_the_reply_are_ignored(self, mgr: mgpy.Manager) -> None:
        lst = socket.socket()
        lst.bind(("127.0.0.1", 0))
        lst.listen()
        cl = Client()
        mgr.connect_http(f"http://127.0.0.1:{lst.getsockname()[1]}/", cl)
        run_until(mgr, lambda: cl.connect_status == 0)
        conn, _ = lst.accept()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokGARBAGE\r\n\r\n")
        run_until(mgr, lambda: cl.closed)
        conn.close()
        lst.close()
        assert cl.reply is not None and cl.reply.body == b"ok"
        assert cl.error is None


class TestFailures:
    def test_refused_port(self, mgr: mgpy.Manager) -> None:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there now
        cl = fetch(mgr, f"http://127.0.0.1:{port}/")
        assert cl.connect_status == errno.ECONNREFUSED
        assert cl.events == ["CONNECT", "ERROR", "CLOSE"]

    def test_unresolvable_host(self, mgr: mgpy.Manager) -> None:
        cl = fetch(mgr, "http://no-such-host.invalid/")  # RFC 6761: never resolves
        assert cl.connect_status not in (None, 0)
        assert cl.events[0] == "CONNECT" and cl.events[-1] == "CLOSE"
        assert cl.reply is None
        assert cl.error is not None and "no-such-host.invalid" in cl.error

    def test_server_closing_mid_body_is_an_error(self, mgr: mgpy.Manager) -> None:
        lst = socket.socket()
        lst.bind(("127.0.0.1", 0))
        lst.listen()
        lst.setblocking(False)
        cl = Client()
        mgr.connect_http(f"http://127.0.0.1:{lst.getsockname()[1]}/", cl)
        conns: list[socket.socket] = []

        def accepted() -> bool:
            try:
                conns.append(lst.accept()[0])
            except BlockingIOError:
                return False
            return True

        run_until(mgr, accepted)
        conns[0].sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        conns[0].close()
        run_until(mgr, lambda: cl.closed)
        lst.close()
        assert cl.reply is None
        assert cl.error is not None

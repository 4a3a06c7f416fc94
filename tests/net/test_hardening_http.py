"""Issue 12 (items 1-5, 7) and issue 13 (determinism) over real sockets on 127.0.0.1.

Refusing on the head: a request whose answer its head decides is answered at once and
the connection closed, before the client sends its body -- the tests send only the head
of a 2 MB request and wait for the answer.  ``Expect: 100-continue`` gets a 100 only for
a body the server will read.  Bytes go whole and one per write (TCP_NODELAY, the server
polled between writes).  The Manager polls in the test thread.
"""

from __future__ import annotations

import dataclasses
import hashlib
import socket
import time
from typing import Any

import pytest

import mgpy
from mgpy import Ev, F, Limits
from tests.conftest import run_until
from tests.net.test_adversarial_http import Client, Resp, parse_responses, serve

TWO_MB = 2 * 1024 * 1024
CONTINUE = "Expect: 100-continue\r\n"
REALM = "hardening"
#: {(user, realm): HA1}: an htdigest table for a protected endpoint
TABLE = {("alice", REALM): hashlib.md5(f"alice:{REALM}:secret".encode()).hexdigest()}


def post_head(path: str, length: int, extra: str = "", method: str = "POST") -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {length}\r\n{extra}\r\n"
    ).encode()


class App:
    """Records every HTTP event; buffers bodies unless ``stream``; answers HTTP_REQUEST."""

    def __init__(self, stream: bool = False, early: dict[str, Any] | None = None) -> None:
        self.events: list[str] = []
        self.stream = stream
        self.sha = hashlib.sha256()
        self.got = 0
        self.early = early or {}  # path -> fn(c, hm) run at HTTP_HEADERS

    def __call__(self, c: mgpy.Connection, ev: Any, hm: Any) -> None:
        if ev in (Ev.HTTP_HEADERS, Ev.HTTP_CHUNK, Ev.HTTP_REQUEST, Ev.HTTP_MULTIPART_REQUEST):
            self.events.append(Ev(ev).name)
        if ev == Ev.HTTP_HEADERS:
            fn = self.early.get(hm.uri)
            if fn is not None:
                fn(c, hm)
        elif ev == Ev.HTTP_CHUNK and self.stream:
            self.sha.update(hm.body)
            self.got += len(hm.body)
            c.flags |= F.DELETE_CHUNK
        elif ev == Ev.HTTP_REQUEST:
            if self.stream:
                self.sha.update(hm.body)
                self.got += len(hm.body)
            else:
                self.got = len(hm.body)
            mgpy.http_reply(c, 200, f"{hm.method} {hm.uri} {self.got}")


def head_then_eof(cl: Client, timeout: float = 5.0) -> list[Resp]:
    """Wait for the server's answer and its close; the body was never sent."""
    return parse_responses(cl.read_to_eof(timeout))


def bytewise(cl: Client, data: bytes) -> None:
    """Send ``data`` one byte per write, letting the server read each one."""
    for i in range(len(data)):
        cl.send(data[i : i + 1])
        cl.mgr.poll(0)


# --------------------------------------------------------------------------------------
# item 1: Transfer-Encoding (RFC 9112 6.1, 6.3); item 2: CONNECT (RFC 9110 9.3.6)
# --------------------------------------------------------------------------------------
FRAMING = [
    ("chunked-gzip", b"Transfer-Encoding: chunked, gzip\r\n", 400),
    ("chunked-chunked", b"Transfer-Encoding: chunked, chunked\r\n", 400),
    (
        "chunked-then-identity",
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
        400,
    ),
    ("unknown-alone", b"Transfer-Encoding: frobnicate\r\n", 400),
    ("gzip-chunked", b"Transfer-Encoding: gzip, chunked\r\n", 501),
]


class TestFraming:
    @pytest.mark.parametrize("split", ["whole", "bytewise"])
    @pytest.mark.parametrize(
        ("field", "status"), [r[1:] for r in FRAMING], ids=[r[0] for r in FRAMING]
    )
    def test_transfer_encoding(
        self, mgr: mgpy.Manager, field: bytes, status: int, split: str
    ) -> None:
        app = App()
        cl = Client(mgr, serve(mgr, app))
        data = b"POST /u HTTP/1.1\r\nHost: t\r\n" + field + b"\r\n5\r\nhello\r\n0\r\n\r\n"
        if split == "whole":
            cl.send(data)
        else:
            bytewise(cl, data)
        rs = head_then_eof(cl)
        assert [r.status for r in rs] == [status]
        assert rs[0].headers["connection"] == "close"
        assert app.events == []  # never reached the application

    @pytest.mark.parametrize("split", ["whole", "bytewise"])
    @pytest.mark.parametrize(
        "framing",
        [b"Content-Length: 5\r\n", b"Content-Length: 0\r\n", b"Transfer-Encoding: chunked\r\n"],
    )
    def test_connect_with_content_is_400(
        self, mgr: mgpy.Manager, framing: bytes, split: str
    ) -> None:
        app = App()
        cl = Client(mgr, serve(mgr, app))
        data = b"CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n" + framing + b"\r\nhello"
        if split == "whole":
            cl.send(data)
        else:
            bytewise(cl, data)
        assert [r.status for r in head_then_eof(cl)] == [400]
        assert app.events == []

    def test_connect_without_content_reaches_the_application(self, mgr: mgpy.Manager) -> None:
        app = App()
        cl = Client(mgr, serve(mgr, app))
        cl.send(b"CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n")
        assert [r.status for r in cl.responses(1)] == [200]
        assert app.events == ["HTTP_REQUEST"]


# --------------------------------------------------------------------------------------
# item 3: refuse on the head, at once
# --------------------------------------------------------------------------------------
class TestRefuseOnTheHead:
    def test_declared_body_over_max_body_is_413_before_the_body(self, mgr: mgpy.Manager) -> None:
        app = App()  # buffers
        cl = Client(mgr, serve(mgr, app))
        cl.send(post_head("/buffer", TWO_MB))
        rs = head_then_eof(cl)
        assert [r.status for r in rs] == [413]
        assert rs[0].headers["connection"] == "close"
        # the handler was asked whether it streams (one empty HTTP_CHUNK), never got the body
        assert app.events == ["HTTP_HEADERS", "HTTP_CHUNK"]

    def test_body_at_max_body_is_still_read(self, mgr: mgpy.Manager) -> None:
        limits = dataclasses.replace(Limits(), max_body=1000)
        app = App()
        cl = Client(mgr, serve(mgr, app, limits))
        cl.send(post_head("/buffer", 1000) + b"x" * 1000)
        assert [r.body for r in cl.responses(1)] == [b"POST /buffer 1000"]
        assert app.events[0] == "HTTP_HEADERS" and app.events[-1] == "HTTP_REQUEST"

    @pytest.mark.parametrize("size", [TWO_MB, 3 * TWO_MB + 7])
    def test_a_streaming_handler_takes_any_size(self, mgr: mgpy.Manager, size: int) -> None:
        app = App(stream=True)
        cl = Client(mgr, serve(mgr, app))
        body = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
        cl.send(post_head("/stream", size) + body)
        assert [r.body for r in cl.responses(1)] == [f"POST /stream {size}".encode()]
        assert app.sha.digest() == hashlib.sha256(body).digest()

    def test_chunked_body_over_max_body_still_413(self, mgr: mgpy.Manager) -> None:
        limits = dataclasses.replace(Limits(), max_body=1000)
        app = App()
        cl = Client(mgr, serve(mgr, app, limits))
        head = b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        cl.send(head + b"7d0\r\n" + b"x" * 2000 + b"\r\n")
        assert [r.status for r in head_then_eof(cl)] == [413]

    def test_protected_endpoint_401_before_the_body(self, mgr: mgpy.Manager) -> None:
        app = App()
        lc = mgr.bind("127.0.0.1:0", app)
        lc.set_protocol_http_websocket()
        secret = App()
        mgpy.register_http_endpoint(lc, "/secret/**", secret, auth_file=TABLE, auth_domain=REALM)
        cl = Client(mgr, lc.local[1])
        cl.send(post_head("/secret/x", TWO_MB))
        rs = head_then_eof(cl)
        assert [r.status for r in rs] == [401]
        assert rs[0].headers["www-authenticate"].startswith("Digest ")
        assert secret.events == [] and app.events == []

    def test_application_answers_405_with_allow_at_headers(self, mgr: mgpy.Manager) -> None:
        def refuse(c: mgpy.Connection, hm: mgpy.HttpMessage) -> None:
            mgpy.http_send_error(c, 405, headers={"Allow": "GET, HEAD"})

        app = App(early={"/static": refuse})
        cl = Client(mgr, serve(mgr, app))
        cl.send(post_head("/static", TWO_MB))
        rs = head_then_eof(cl)
        assert [(r.status, r.headers["allow"]) for r in rs] == [(405, "GET, HEAD")]
        assert rs[0].headers["connection"] == "close"
        assert app.events == ["HTTP_HEADERS"]  # no HTTP_CHUNK, no HTTP_REQUEST

    def test_serve_http_at_headers_refuses_post_to_static_files(
        self, mgr: mgpy.Manager, tmp_path: Any
    ) -> None:
        """What the CLI does: serve_http at HTTP_HEADERS for a method static files refuse."""
        (tmp_path / "index.html").write_text("hi")
        opts = mgpy.ServeOpts(document_root=str(tmp_path))

        def h(c: mgpy.Connection, ev: Any, hm: Any) -> None:
            if ev == Ev.HTTP_HEADERS and hm.method not in ("GET", "HEAD"):
                mgpy.serve_http(c, hm, opts)
            elif ev == Ev.HTTP_REQUEST:
                mgpy.serve_http(c, hm, opts)

        cl = Client(mgr, serve(mgr, h))
        cl.send(post_head("/index.html", TWO_MB))
        rs = head_then_eof(cl)
        assert rs[0].status == 405 and "GET" in rs[0].headers["allow"]

    def test_handler_can_404_early_and_the_connection_closes(self, mgr: mgpy.Manager) -> None:
        app = App(early={"/nowhere": lambda c, hm: mgpy.http_send_error(c, 404)})
        cl = Client(mgr, serve(mgr, app))
        cl.send(post_head("/nowhere", TWO_MB) + b"x" * 100_000)
        rs = head_then_eof(cl)
        assert [r.status for r in rs] == [404]
        assert app.events == ["HTTP_HEADERS"]

    def test_a_raw_answer_at_headers_ends_the_request(self, mgr: mgpy.Manager) -> None:
        def raw(c: mgpy.Connection, hm: mgpy.HttpMessage) -> None:
            c.send(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

        app = App(early={"/raw": raw})
        cl = Client(mgr, serve(mgr, app))
        cl.send(post_head("/raw", TWO_MB))
        assert [r.status for r in head_then_eof(cl)] == [403]
        assert app.events == ["HTTP_HEADERS"]

    def test_a_head_sent_at_headers_with_its_body_later(self, mgr: mgpy.Manager) -> None:
        def later(c: mgpy.Connection, hm: mgpy.HttpMessage) -> None:
            mgpy.send_head(c, 409, 4)
            c.call_later(0.05, lambda: c.send(b"busy"))

        app = App(early={"/later": later})
        cl = Client(mgr, serve(mgr, app))
        cl.send(post_head("/later", TWO_MB))
        rs = head_then_eof(cl)
        assert [(r.status, r.body) for r in rs] == [(409, b"busy")]
        assert app.events == ["HTTP_HEADERS"]

    def test_exception_at_headers_is_500_and_close(
        self, mgr: mgpy.Manager, caplog: pytest.LogCaptureFixture
    ) -> None:
        def boom(c: mgpy.Connection, hm: mgpy.HttpMessage) -> None:
            raise RuntimeError("boom")

        app = App(early={"/boom": boom})
        cl = Client(mgr, serve(mgr, app))
        cl.send(post_head("/boom", 10))
        assert [r.status for r in head_then_eof(cl)] == [500]
        assert any("HTTP_HEADERS" in r.getMessage() for r in caplog.records)

    def test_events_of_a_request_that_goes_on(self, mgr: mgpy.Manager) -> None:
        """HTTP_HEADERS only for requests with a body; keep-alive and pipelining unchanged."""
        app = App()
        cl = Client(mgr, serve(mgr, app))
        cl.send(
            b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n"
            + post_head("/b", 5)
            + b"hello"
            + b"GET /c HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        rs = cl.responses(3)
        assert [r.body for r in rs] == [b"GET /a 0", b"POST /b 5", b"GET /c 0"]
        # (HTTP_CHUNK follows reads that leave the body incomplete: here, maybe none)
        assert [e for e in app.events if e != "HTTP_CHUNK"] == [
            "HTTP_REQUEST",
            "HTTP_HEADERS",
            "HTTP_REQUEST",
            "HTTP_REQUEST",
        ]
        assert not cl.pump()  # still open

    @pytest.mark.parametrize("expect", ["", CONTINUE])
    @pytest.mark.parametrize("case", ["413", "401", "405", "404"])
    def test_answer_follows_the_last_byte_of_the_head(
        self, mgr: mgpy.Manager, case: str, expect: str
    ) -> None:
        """Head sent one byte per write: nothing before its last byte, then the final
        status at once (never a 100), and the close; the body is never sent."""
        app = App(
            early={
                "/405": lambda c, hm: mgpy.http_send_error(c, 405, headers={"Allow": "GET"}),
                "/404": lambda c, hm: mgpy.http_send_error(c, 404),
            }
        )
        lc = mgr.bind("127.0.0.1:0", app)
        lc.set_protocol_http_websocket()
        mgpy.register_http_endpoint(lc, "/401", App(), auth_file=TABLE, auth_domain=REALM)
        cl = Client(mgr, lc.local[1])
        head = post_head(f"/{case}", TWO_MB, expect)
        bytewise(cl, head[:-1])
        mgr.poll(0)
        cl.pump()
        assert cl.data == b""
        cl.send(head[-1:])
        rs = head_then_eof(cl)
        assert [r.status for r in rs] == [int(case)]
        assert b"100 Continue" not in cl.data

    def test_multipart_gets_headers_first(self, mgr: mgpy.Manager) -> None:
        app = App(early={})
        cl = Client(mgr, serve(mgr, app))
        body = b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--b--\r\n"
        head = post_head("/up", len(body), "Content-Type: multipart/form-data; boundary=b\r\n")
        cl.send(head + body)
        run_until(mgr, lambda: "HTTP_MULTIPART_REQUEST" in app.events)
        assert app.events[:2] == ["HTTP_HEADERS", "HTTP_MULTIPART_REQUEST"]


# --------------------------------------------------------------------------------------
# item 4: Expect: 100-continue (RFC 9110 10.1.1)
# --------------------------------------------------------------------------------------


def wait_head(cl: Client) -> bytes:
    """Poll until a complete response head arrived; return everything read so far."""
    run_until(cl.mgr, lambda: cl.pump() or b"\r\n\r\n" in cl.data)
    return bytes(cl.data)


class TestExpectContinue:
    def test_100_only_when_the_body_will_be_read(self, mgr: mgpy.Manager) -> None:
        app = App()
        cl = Client(mgr, serve(mgr, app))
        cl.send(post_head("/ok", 5, CONTINUE))
        assert wait_head(cl) == b"HTTP/1.1 100 Continue\r\n\r\n"
        cl.data.clear()
        cl.send(b"hello")
        rs = cl.responses(1)
        assert [(r.status, r.body) for r in rs] == [(200, b"POST /ok 5")]
        assert b"100 Continue" not in cl.data  # one 100, not two

    @pytest.mark.parametrize("case", ["413", "401", "405", "404-multipart"])
    def test_final_status_instead_of_100(self, mgr: mgpy.Manager, case: str) -> None:
        app = App(early={"/refuse": lambda c, hm: mgpy.http_send_error(c, 405)})
        lc = mgr.bind("127.0.0.1:0", app)
        lc.set_protocol_http_websocket()
        mgpy.register_http_endpoint(lc, "/secret", App(), auth_file=TABLE, auth_domain=REALM)
        cl = Client(mgr, lc.local[1])
        if case == "413":
            cl.send(post_head("/big", TWO_MB, CONTINUE))
        elif case == "401":
            cl.send(post_head("/secret", 10, CONTINUE))
        elif case == "405":
            cl.send(post_head("/refuse", 10, CONTINUE))
        else:
            mp = "Content-Type: multipart/form-data; boundary=b\r\n"

            def h(c: mgpy.Connection, ev: Any, hm: Any) -> None:
                if ev == Ev.HTTP_MULTIPART_REQUEST:
                    mgpy.http_send_error(c, 404)

            lc.handler = h
            cl = Client(mgr, lc.local[1])
            cl.send(post_head("/up", 100, CONTINUE + mp))
        data = cl.read_to_eof()
        assert b"100 Continue" not in data
        want = {"413": 413, "401": 401, "405": 405, "404-multipart": 404}[case]
        assert [r.status for r in parse_responses(data)] == [want]

    def test_multipart_accepted_gets_100(self, mgr: mgpy.Manager) -> None:
        app = App()
        cl = Client(mgr, serve(mgr, app))
        mp = "Content-Type: multipart/form-data; boundary=b\r\n"
        body = b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--b--\r\n"
        cl.send(post_head("/up", len(body), CONTINUE + mp))
        assert wait_head(cl) == b"HTTP/1.1 100 Continue\r\n\r\n"

    def test_streaming_handler_over_max_body_gets_100(self, mgr: mgpy.Manager) -> None:
        app = App(stream=True)
        cl = Client(mgr, serve(mgr, app))
        cl.send(post_head("/s", TWO_MB, CONTINUE))
        assert wait_head(cl) == b"HTTP/1.1 100 Continue\r\n\r\n"
        cl.data.clear()
        cl.send(b"y" * TWO_MB)
        assert [r.status for r in cl.responses(1)] == [200]
        assert app.got == TWO_MB

    def test_no_100_to_http10(self, mgr: mgpy.Manager) -> None:
        app = App()
        cl = Client(mgr, serve(mgr, app))
        cl.send(b"POST /x HTTP/1.0\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nhi")
        data = cl.read_to_eof()
        assert b"100 Continue" not in data and data.startswith(b"HTTP/1.1 200")


# --------------------------------------------------------------------------------------
# item 5: chunk extensions per message
# --------------------------------------------------------------------------------------
class TestChunkExtensions:
    @pytest.mark.parametrize("split", ["whole", "bytewise"])
    def test_over_16k_of_extensions_is_400(self, mgr: mgpy.Manager, split: str) -> None:
        app = App()
        cl = Client(mgr, serve(mgr, app))
        line = b"1;" + b"e" * 4000 + b"\r\nx\r\n"  # under max_chunk_line (4 KiB)
        data = b"POST /e HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + line * 5
        if split == "whole":
            cl.send(data)
        else:
            bytewise(cl, data)
        assert [r.status for r in head_then_eof(cl)] == [400]
        assert "HTTP_REQUEST" not in app.events

    def test_within_the_allowance_is_served(self, mgr: mgpy.Manager) -> None:
        app = App()
        cl = Client(mgr, serve(mgr, app))
        line = b"1;" + b"e" * 4000 + b"\r\nx\r\n"
        head = b"POST /e HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        cl.send((head + line * 4 + b"0\r\n\r\n") * 2)  # the allowance is per message
        assert [r.body for r in cl.responses(2)] == [b"POST /e 4"] * 2


# --------------------------------------------------------------------------------------
# issue 13: one status per head, however split
# --------------------------------------------------------------------------------------
class TestDeterminism:
    HEAD = b"GET / HTTP/1.1 x\r\nHost: t\r\n" + b"".join(b"X%d: 1\r\n" % i for i in range(120))

    @pytest.mark.parametrize("split", ["whole", "bytewise", "after-request-line"])
    def test_bad_request_line_and_too_many_fields(self, mgr: mgpy.Manager, split: str) -> None:
        """Was 431 whole and 400 when split after the request line."""
        app = App()
        cl = Client(mgr, serve(mgr, app))
        data = self.HEAD + b"\r\n"
        if split == "whole":
            cl.send(data)
        elif split == "bytewise":
            bytewise(cl, data)
        else:
            cut = data.index(b"\r\n") + 2
            cl.send(data[:cut])
            mgr.poll(0)
            cl.send(data[cut:])
        assert [r.status for r in head_then_eof(cl)] == [400]

    @pytest.mark.parametrize("split", ["whole", "bytewise"])
    def test_multipart_padding_cap(self, mgr: mgpy.Manager, split: str) -> None:
        limits = dataclasses.replace(Limits(), max_part_headers=64)
        app = App()
        cl = Client(mgr, serve(mgr, app, limits))
        body = (
            b"--b" + b" " * 65 + b"\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--b--\r\n"
        )
        head = post_head("/up", len(body), "Content-Type: multipart/form-data; boundary=b\r\n")
        if split == "whole":
            cl.send(head + body)
        else:
            bytewise(cl, head + body)
        assert [r.status for r in head_then_eof(cl)] == [400]


# --------------------------------------------------------------------------------------
# item 7: the HTTP client reads what RFC 9112 tells a user agent to accept
# --------------------------------------------------------------------------------------
class RawServer:
    """A one-shot raw HTTP peer driven from the test thread: reads the request head,
    then writes ``response`` (whole or one byte per write) and closes."""

    def __init__(self, mgr: mgpy.Manager, response: bytes, bytewise: bool) -> None:
        self.mgr = mgr
        self.response = response
        self.bytewise = bytewise
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(1)
        self.ls.setblocking(False)
        self.url = f"http://127.0.0.1:{self.ls.getsockname()[1]}/x"

    def serve(self) -> None:
        conn: socket.socket | None = None

        def accepted() -> bool:
            nonlocal conn
            try:
                conn, _ = self.ls.accept()
            except BlockingIOError:
                return False
            return True

        run_until(self.mgr, accepted)
        assert conn is not None
        conn.settimeout(5)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        got = b""
        deadline = time.monotonic() + 5
        while b"\r\n\r\n" not in got:
            assert time.monotonic() < deadline
            self.mgr.poll(1)
            conn.setblocking(False)
            try:
                got += conn.recv(65536)
            except BlockingIOError:
                pass
        conn.setblocking(True)
        step = 1 if self.bytewise else len(self.response)
        for i in range(0, len(self.response), step):
            conn.sendall(self.response[i : i + step])
            self.mgr.poll(0)
        conn.close()
        self.ls.close()


class Reply:
    def __init__(self) -> None:
        self.events: list[str] = []
        self.reply: mgpy.HttpMessage | None = None

    def __call__(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev in (Ev.HTTP_REPLY, Ev.ERROR, Ev.CLOSE):
            self.events.append(Ev(ev).name)
        if ev == Ev.HTTP_REPLY:
            self.reply = ev_data


class TestClient:
    @pytest.mark.parametrize("bytewise", [False, True])
    def test_obs_fold_in_a_response_is_unfolded(self, mgr: mgpy.Manager, bytewise: bool) -> None:
        resp = (
            b"HTTP/1.1 200 OK\r\nX-Long: part one\r\n\tpart two\r\n   part three\r\n"
            b"Content-Length: 2\r\nConnection: close\r\n\r\nok"
        )
        peer = RawServer(mgr, resp, bytewise)
        rec = Reply()
        mgr.connect_http(peer.url, rec)
        peer.serve()
        run_until(mgr, lambda: "CLOSE" in rec.events)
        assert rec.events == ["HTTP_REPLY", "CLOSE"]
        assert rec.reply is not None
        assert rec.reply.header("x-long") == "part one part two part three"
        assert rec.reply.body == b"ok"

    @pytest.mark.parametrize("bytewise", [False, True])
    @pytest.mark.parametrize("te", ["gzip", "chunked, gzip", "identity"])
    def test_te_not_ending_in_chunked_is_read_until_close(
        self, mgr: mgpy.Manager, te: str, bytewise: bool
    ) -> None:
        body = b"5\r\nhello\r\n0\r\n\r\n... and more until the close"
        resp = f"HTTP/1.1 200 OK\r\nTransfer-Encoding: {te}\r\n\r\n".encode() + body
        peer = RawServer(mgr, resp, bytewise)
        rec = Reply()
        mgr.connect_http(peer.url, rec)
        peer.serve()
        run_until(mgr, lambda: "CLOSE" in rec.events)
        assert rec.events == ["HTTP_REPLY", "CLOSE"]
        assert rec.reply is not None and rec.reply.body == body


# --------------------------------------------------------------------------------------
# 426 for a plain GET on a WebSocket path (what the CLI calls for issue 12 item 6)
# --------------------------------------------------------------------------------------
class TestUpgradeRequired:
    def test_http_send_error_426_names_the_upgrade(self, mgr: mgpy.Manager) -> None:
        def h(c: mgpy.Connection, ev: Any, hm: Any) -> None:
            if ev == Ev.HTTP_REQUEST:
                if hm.uri == "/ws":
                    mgpy.http_send_error(c, 426)
                else:
                    mgpy.http_reply(c, 200, "ok")

        cl = Client(mgr, serve(mgr, h))
        cl.send(b"GET /ws HTTP/1.1\r\nHost: t\r\n\r\nGET /next HTTP/1.1\r\nHost: t\r\n\r\n")
        first, second = cl.responses(2)
        assert first.status == 426
        # RFC 9110 15.5.22 and 7.8: Upgrade, with the "upgrade" connection option
        assert first.headers["upgrade"] == "websocket"
        assert first.headers["connection"] == "upgrade"
        assert first.headers["sec-websocket-version"] == "13"
        assert (second.status, second.body) == (200, b"ok")  # the connection stays usable

    def test_426_to_http10_keeps_alive_and_upgrade(self, mgr: mgpy.Manager) -> None:
        def h(c: mgpy.Connection, ev: Any, hm: Any) -> None:
            if ev == Ev.HTTP_REQUEST:
                mgpy.http_send_error(c, 426, headers={"Upgrade": "mqtt"})

        cl = Client(mgr, serve(mgr, h))
        cl.send(b"GET /ws HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        (r,) = cl.responses(1)
        assert r.headers["upgrade"] == "mqtt"
        assert r.headers["connection"] == "keep-alive, upgrade"

    def test_wrong_websocket_version_426_names_the_upgrade(self, mgr: mgpy.Manager) -> None:
        cl = Client(mgr, serve(mgr, App()))
        cl.send(
            b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"
        )
        (r,) = parse_responses(cl.read_to_eof())
        assert r.status == 426 and r.headers["upgrade"] == "websocket"
        assert r.headers["connection"] == "close, upgrade"


# --------------------------------------------------------------------------------------
# endpoint auth on the head, the recipe the CLI uses for --auth-file (issue 12 item 10)
# --------------------------------------------------------------------------------------
class TestEndpointAuthOnTheHead:
    @pytest.fixture
    def port(self, mgr: mgpy.Manager) -> int:
        app = App()
        lc = mgr.bind("127.0.0.1:0", app)
        lc.set_protocol_http_websocket()
        for pattern in ("/upload", "/ws"):  # "/ws" also covers /ws/push
            mgpy.register_http_endpoint(lc, pattern, app, auth_file=TABLE, auth_domain=REALM)
        port: int = lc.local[1]
        return port

    @pytest.mark.parametrize("path", ["/ws", "/ws/push"])
    def test_websocket_upgrade_is_401_without_credentials(
        self, mgr: mgpy.Manager, port: int, path: str
    ) -> None:
        cl = Client(mgr, port)
        head = (
            f"GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        cl.send(head.encode())
        data = cl.read_to_eof()
        assert data.startswith(b"HTTP/1.1 401 ") and b" 101 " not in data

    def test_multipart_upload_is_401_before_the_body(self, mgr: mgpy.Manager, port: int) -> None:
        cl = Client(mgr, port)
        mp = "Content-Type: multipart/form-data; boundary=b\r\n"
        cl.send(post_head("/upload", TWO_MB, CONTINUE + mp))
        data = cl.read_to_eof()
        assert data.startswith(b"HTTP/1.1 401 ") and b"100 Continue" not in data

    def test_other_paths_stay_open(self, mgr: mgpy.Manager, port: int) -> None:
        cl = Client(mgr, port)
        cl.send(post_head("/other", 2) + b"hi")
        assert [r.status for r in cl.responses(1)] == [200]

"""HTTP server helpers over real sockets: replies, chunks, redirects, errors, request
helpers, endpoint routing and handler failures."""

from __future__ import annotations

import base64
import socket
import time
from typing import Any, NamedTuple

import pytest

import mgpy
from mgpy import Ev
from tests.conftest import run_until


class Resp(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes


def parse_responses(data: bytes, heads: int = 0) -> list[Resp]:
    """Split a byte stream into responses; the first ``heads`` answer HEAD requests."""
    out: list[Resp] = []
    pos = 0
    while pos < len(data):
        end = data.index(b"\r\n\r\n", pos)
        lines = data[pos:end].decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        pos = end + 4
        if status < 200 or status in (204, 304) or len(out) < heads:
            body = b""
        elif "content-length" in headers:
            n = int(headers["content-length"])
            body = data[pos : pos + n]
            assert len(body) == n, "truncated response"
            pos += n
        elif headers.get("transfer-encoding") == "chunked":
            parts = []
            while True:
                e = data.index(b"\r\n", pos)
                size = int(data[pos:e], 16)
                parts.append(data[e + 2 : e + 2 + size])
                pos = e + 4 + size
                if not size:
                    break
            body = b"".join(parts)
        else:
            body, pos = data[pos:], len(data)
        out.append(Resp(status, headers, body))
    return out


class Raw:
    """A raw client socket driven from the test thread while the manager polls."""

    def __init__(self, mgr: mgpy.Manager, port: int) -> None:
        self.mgr = mgr
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setblocking(False)
        self.data = bytearray()
        self.eof = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)  # small requests: the kernel buffer takes them at once

    def pump(self) -> bool:
        while not self.eof:
            try:
                d = self.sock.recv(65536)
            except BlockingIOError:
                break
            if not d:
                self.eof = True
            self.data += d
        return self.eof

    def responses(self, n: int, heads: int = 0) -> list[Resp]:
        def done() -> bool:
            self.pump()
            try:
                return len(parse_responses(bytes(self.data), heads)) >= n
            except (ValueError, AssertionError):
                return False

        run_until(self.mgr, done)
        return parse_responses(bytes(self.data), heads)

    def read_to_eof(self) -> bytes:
        run_until(self.mgr, self.pump)
        return bytes(self.data)

    def still_open(self, seconds: float = 0.05) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.mgr.poll(5)
            if self.pump():
                return False
        return True

    def close(self) -> None:
        self.sock.close()


def serve(mgr: mgpy.Manager, handler: Any) -> int:
    lc = mgr.bind("127.0.0.1:0", handler)
    lc.set_protocol_http_websocket()
    return int(lc.local[1])


def get(path: str, extra: bytes = b"", method: bytes = b"GET") -> bytes:
    return method + b" " + path.encode() + b" HTTP/1.1\r\nHost: t\r\n" + extra + b"\r\n"


class TestReplies:
    def test_http_reply_frames_the_body_and_adds_date(self, mgr: mgpy.Manager) -> None:
        def h(c: mgpy.Connection, ev: Any, hm: Any) -> None:
            if ev == Ev.HTTP_REQUEST:
                mgpy.http_reply(
                    c,
                    201,
                    '{"id": 1}',
                    [("Content-Type", "application/json"), ("X-A", "1"), ("X-A", "2")],
                )

        raw = Raw(mgr, serve(mgr, h))
        raw.send(get("/"))
        [r] = raw.responses(1)
        assert r.status == 201 and r.body == b'{"id": 1}'
        assert r.headers["content-type"] == "application/json"
        assert r.headers["date"].endswith(" GMT")
        assert raw.data.count(b"X-A: ") == 2
        assert "connection" not in r.headers and raw.still_open()

    def test_head_gets_the_headers_of_get_without_body(self, mgr: mgpy.Manager) -> None:
        def h(c: mgpy.Connection, ev: Any, hm: Any) -> None:
            if ev == Ev.HTTP_REQUEST:
                mgpy.http_reply(c, 200, "x" * 100)

        raw = Raw(mgr, serve(mgr, h))
        raw.send(get("/", method=b"HEAD") + get("/"))
        rs = raw.responses(2, heads=1)
        assert rs[0].headers["content-length"] == "100" and rs[0].body == b""
        assert rs[1].body == b"x" * 100

    def test_head_of_a_streamed_response_sends_no_chunks(self, mgr: mgpy.Manager) -> None:
        """Handler code written for GET also answers HEAD: the chunks are not sent."""

        def h(c: mgpy.Connection, ev: Any, hm: Any) -> None:
            if ev == Ev.HTTP_REQUEST:
                c.send_head(200, headers={"Content-Type": "text/plain"})
                c.send_http_chunk("abc")
                c.send_http_chunk("")

        raw = Raw(mgr, serve(mgr, h))
        raw.send(get("/", method=b"HEAD") + get("/"))
        rs = raw.responses(2, heads=1)
        assert rs[0].body == b"" and rs[1].body == b"abc"
        assert raw.data.count(b"abc") == 1
        assert raw.still_open()

    def test_204_and_304_carry_no_body(self, mgr: mgpy.Manager) -> None:
        def h(c: mgpy.Connection, ev: Any, hm: Any) -> None:
            if ev == Ev.HTTP_REQUEST:
                mgpy.http_reply(c, 204 if hm.uri == "/a" else 304, "ignored")

        raw = Raw(mgr, serve(mgr, h))
        raw.send(get("/a") + get("/b") + get("/a"))
        rs = raw.responses(3)
        assert [r.status for r in rs] == [204, 304, 204]
        assert b"ignored" not in raw.data and b"Content-Length" not in raw.data

    def test_send_head_then_body_with_send(self, mgr: mgpy.Manager) -> None:
        def h(c: mgpy.Connection, ev: Any, hm: Any) -> None:
            if ev == Ev.HTTP_REQUEST:
                c.send_head(200, 10, {"Content-Type": "text/plain"})
                c.send(b"01234")
                c.send("56789")

        raw = Raw(mgr, serve(mgr, h))
        raw.send(get("/1") + get("/2"))
        assert [r.body for r in raw.responses(2)] == [b"0123456789"] * 2

    def test_chunked_response_with_printf(self, mgr: mgpy.Manager) -> None:
        def h(c: mgpy.Connection, ev: Any, hm: Any) -> None:
            if ev == Ev.HTTP_REQUEST:
                c.send_head(200)
                for i in range(3):
                    c.printf_http_chunk("line %d\n", i)
                c.send_http_chunk(b"")

        raw = Raw(mgr, serve(mgr, h))
        raw.send(get("/"))
        [r] = raw.responses(1)
        assert r.headers["transfer-encoding"] == "chunked"
        assert r.body == b"line 0\nline 1\nline 2\n"
        assert raw.data.endswith(b"0\r\n\r\n") and raw.still_open()

    @pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
    def test_redirect(self, mgr: mgpy.Manager, code: int) -> None:
        def h(c: mgpy.Connection, ev: Any, hm: Any) -> None:
            if ev == Ev.HTTP_REQUEST:
                mgpy.http_send_redirect(c, code, "/new?a=1&b=<2>", {"Cache-Control": "no-store"})

        raw = Raw(mgr, serve(mgr, h))
        raw.send(get("/old"))
        [r] = raw.responses(1)
        assert r.status == code
        assert r.headers["location"] == "/new?a=1&b=<2>"
        assert r.headers["cache-control"] == "no-store"
        assert b'href="/new?a=1&amp;b=&lt;2&gt;"' in r.body
        assert raw.still_open()

    def test_redirect_refuses_a_non_redirect_status(self, mgr: mgpy.Manager) -> None:
        errors: list[Exception] = []

        def h(c: mgpy.Connection, ev: Any, hm: Any) -> None:
            if ev == Ev.HTTP_REQUEST:
                try:
                    mgpy.http_send_redirect(c, 200, "/x")
                except mgpy.LocalProtocolError as e:
                    errors.append(e)
                mgpy.http_reply(c, 200, "fine")

        raw = Raw(mgr, serve(mgr, h))
        raw.send(get("/"))
        assert raw.responses(1)[0].body == b"fine"
        assert len(errors) == 1


class TestSendError:
    @pytest.mark.parametrize("code", [401, 403, 404, 405, 409, 429, 500, 503])
    def test_errors_that_keep_the_connection(self, mgr: mgpy.Manager, code: int) -> None:
        def h(c: mgpy.Connection, ev: Any, hm: Any) -> None:
            if ev == Ev.HTTP_REQUEST:
                mgpy.http_send_error(c, code)

        raw = Raw(mgr, serve(mgr, h))
        raw.send(get("/a") + get("/b"))
        rs = raw.responses(2)
        assert [r.status for r in rs] == [code, code]
        assert rs[0].body.startswith(b"%d " % code)
        assert "connection" not in rs[0].headers
        if code == 405:
            assert "allow" in rs[0].headers
        assert raw.still_open()

    @pytest.mark.parametrize("code", [400, 408, 413, 414, 431, 501, 505])
    def test_errors_that_close_the_connection(self, mgr: mgpy.Manager, code: int) -> None:
        def h(c: mgpy.Connection, ev: Any, hm: Any) -> None:
            if ev == Ev.HTTP_REQUEST:
                mgpy.http_send_error(c, code, "Custom reason")

        raw = Raw(mgr, serve(mgr, h))
        raw.send(get("/a") + get("/b"))
        rs = parse_responses(raw.read_to_eof())
        assert len(rs) == 1
        assert rs[0].status == code and rs[0].headers["connection"] == "close"
        assert rs[0].body == b"%d Custom reason\n" % code


class TestHeaderInjection:
    @pytest.mark.parametrize(
        "call",
        [
            lambda c: mgpy.http_reply(c, 200, "x", {"X-Evil": "a\r\nSet-Cookie: pwned=1"}),
            lambda c: mgpy.http_reply(c, 200, "x", {"X-Evil": "a\nSet-Cookie: pwned=1"}),
            lambda c: mgpy.http_reply(c, 200, "x", {"Set-Cookie: pwned=1\r\nX": "a"}),
            lambda c: mgpy.http_reply(c, 200, "x", {"X-Nul": "a\x00b"}),
            lambda c: c.send_head(200, 1, {"X-Evil": "a\r\n\r\npwned"}),
            lambda c: mgpy.http_send_redirect(c, 302, "/x\r\nSet-Cookie: pwned=1"),
        ],
        ids=["crlf-value", "lf-value", "crlf-name", "nul", "send_head", "redirect"],
    )
    def test_crlf_in_a_header_raises_and_nothing_is_sent(
        self, mgr: mgpy.Manager, call: Any
    ) -> None:
        errors: list[Exception] = []

        def h(c: mgpy.Connection, ev: Any, hm: Any) -> None:
            if ev == Ev.HTTP_REQUEST:
                try:
                    call(c)
                except mgpy.LocalProtocolError as e:
                    errors.append(e)
                mgpy.http_reply(c, 200, "safe")

        raw = Raw(mgr, serve(mgr, h))
        raw.send(get("/"))
        [r] = raw.responses(1)
        assert r.body == b"safe"
        assert len(errors) == 1
        assert b"pwned" not in raw.data


class TestRequestHelpers:
    def test_vars_headers_and_auth_seen_by_the_handler(self, mgr: mgpy.Manager) -> None:
        seen: dict[str, Any] = {}

        def h(c: mgpy.Connection, ev: Any, hm: mgpy.HttpMessage) -> None:
            if ev == Ev.HTTP_REQUEST:
                seen["q"] = mgpy.get_http_var(hm.query_string, "name")
                seen["plus"] = mgpy.get_http_var(hm.query_string, "x")
                seen["missing"] = mgpy.get_http_var(hm.query_string, "nope")
                seen["form"] = mgpy.get_http_var(hm.body, "msg")
                seen["ctype"] = mgpy.get_http_header(hm, "CONTENT-TYPE")
                seen["xparam"] = mgpy.http_parse_header(mgpy.get_http_header(hm, "X-P") or "", "q")
                seen["auth"] = mgpy.get_http_basic_auth(hm)
                seen["path"] = mgpy.url_decode(hm.uri, form=False)
                mgpy.http_reply(c, 200, "ok")

        raw = Raw(mgr, serve(mgr, h))
        body = b"msg=" + mgpy.url_encode("a&b=c ü").encode() + b"&other=1"
        auth = base64.b64encode(b"user:p:ss").decode()
        path = "/" + mgpy.url_encode("dir name/ü.txt", safe="/")
        raw.send(
            b"POST " + path.encode() + b"?name=J%C3%BCrgen&x=a+b HTTP/1.1\r\nHost: t\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b'X-P: text; q="a \\"quoted\\" value"; r=1\r\n'
            b"Authorization: Basic " + auth.encode() + b"\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body
        )
        raw.responses(1)
        assert seen == {
            "q": "Jürgen",
            "plus": "a b",
            "missing": None,
            "form": "a&b=c ü",
            "ctype": "application/x-www-form-urlencoded",
            "xparam": 'a "quoted" value',
            "auth": ("user", "p:ss"),
            "path": "/dir name/ü.txt",
        }


class TestEndpoints:
    def test_longest_match_wins_and_the_endpoint_gets_later_events(self, mgr: mgpy.Manager) -> None:
        log: list[tuple[str, str]] = []

        def make(name: str) -> Any:
            def h(c: mgpy.Connection, ev: Any, hm: Any) -> None:
                if ev == Ev.HTTP_REQUEST:
                    log.append((name, hm.uri))
                    mgpy.http_reply(c, 200, name)
                elif ev == Ev.CLOSE:
                    log.append((name, "CLOSE"))

            return h

        lc = mgr.bind("127.0.0.1:0", make("default"))
        mgpy.register_http_endpoint(lc, "/api/**", make("api"))
        mgpy.register_http_endpoint(lc, "/api/items/*", make("item"))
        mgpy.register_http_endpoint(lc, "/api/items/special", make("special"))
        mgpy.register_http_endpoint(lc, "/a|/b", make("alt"))
        raw = Raw(mgr, lc.local[1])
        paths = [
            "/api/x/y",
            "/api/items/5",
            "/api/items/special",
            "/api/items/5/sub",
            "/other",
            "/b",
            "/api/items/7",
        ]
        raw.send(b"".join(get(p) for p in paths))
        rs = raw.responses(len(paths))
        assert [r.body.decode() for r in rs] == [
            "api",
            "item",
            "special",
            "api",
            "default",
            "alt",
            "item",
        ]
        raw.close()
        run_until(mgr, lambda: ("item", "CLOSE") in log)
        # CLOSE went to the handler of the last request, and only to it
        assert [e for e in log if e[1] == "CLOSE"] == [("item", "CLOSE")]


class TestHandlerFailures:
    def test_exception_gives_500_and_closes_only_that_connection(
        self, mgr: mgpy.Manager, caplog: pytest.LogCaptureFixture
    ) -> None:
        def h(c: mgpy.Connection, ev: Any, hm: Any) -> None:
            if ev == Ev.HTTP_REQUEST:
                if hm.uri == "/boom":
                    raise RuntimeError("bug in the application")
                mgpy.http_reply(c, 200, "ok")

        port = serve(mgr, h)
        good, bad = Raw(mgr, port), Raw(mgr, port)
        good.send(get("/"))
        good.responses(1)
        bad.send(get("/boom") + get("/after"))
        rs = parse_responses(bad.read_to_eof())
        assert [r.status for r in rs] == [500]
        assert rs[0].headers["connection"] == "close"
        assert b"bug in the application" not in bad.data  # never echoed to the peer
        assert "bug in the application" in caplog.text
        good.send(get("/again"))
        assert [r.body for r in good.responses(2)] == [b"ok", b"ok"]
        assert good.still_open()

    def test_exception_in_http_chunk_gives_500(self, mgr: mgpy.Manager) -> None:
        def h(c: mgpy.Connection, ev: Any, hm: Any) -> None:
            if ev == Ev.HTTP_CHUNK:
                raise ValueError("cannot store")

        raw = Raw(mgr, serve(mgr, h))
        raw.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100)
        rs = parse_responses(raw.read_to_eof())
        assert [r.status for r in rs] == [500]

    def test_unanswered_request_blocks_only_its_connection(self, mgr: mgpy.Manager) -> None:
        def h(c: mgpy.Connection, ev: Any, hm: Any) -> None:
            if ev == Ev.HTTP_REQUEST and hm.uri != "/never":
                mgpy.http_reply(c, 200, "ok")

        port = serve(mgr, h)
        stuck, other = Raw(mgr, port), Raw(mgr, port)
        stuck.send(get("/never") + get("/queued"))
        other.send(get("/"))
        assert other.responses(1)[0].body == b"ok"
        assert stuck.still_open() and stuck.data == b""

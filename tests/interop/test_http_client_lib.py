"""Python's http.client against mgpy's HTTP/1.1 server.

http.client runs in a thread (it blocks) while the Manager polls in the test
thread: keep-alive sequences on one connection, chunked request bodies,
100-continue, HEAD, HTTP/1.0, and pipelining (requests written at once on a
raw socket, responses parsed with http.client in order, one of them answered
later from a timer and one chunked).
"""

from __future__ import annotations

import http.client
import io
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import mgpy
from mgpy import Ev, F
from tests.conftest import run_until


class App:
    def __init__(self) -> None:
        self.accepts = 0
        self.order: list[str] = []

    def __call__(self, c: mgpy.Connection, ev: Any, hm: Any) -> None:
        if ev == Ev.ACCEPT:
            self.accepts += 1
        elif ev == Ev.HTTP_CHUNK and hm.uri == "/count":
            c.user_data = (c.user_data or 0) + len(hm.body)
            c.flags |= F.DELETE_CHUNK
        elif ev == Ev.HTTP_REQUEST:
            self.order.append(hm.uri)
            if hm.uri == "/later":
                c.set_timer(time.time() + 0.1)
            elif hm.uri == "/chunked":
                c.send_head(200)
                c.send_http_chunk("chun")
                c.send_http_chunk("ked")
                c.send_http_chunk("")
            elif hm.uri == "/count":
                n = (c.user_data or 0) + len(hm.body)
                c.user_data = None
                mgpy.http_reply(c, 200, str(n))
            elif hm.uri == "/missing":
                mgpy.http_send_error(c, 404)
            else:
                mgpy.http_reply(
                    c, 200, f"{hm.method} {hm.uri} {hm.body.decode()}", {"X-Proto": hm.proto}
                )
        elif ev == Ev.TIMER:
            mgpy.http_reply(c, 200, "answered later")


@pytest.fixture
def server(mgr: mgpy.Manager) -> tuple[App, int]:
    app = App()
    lc = mgr.bind("127.0.0.1:0", app)
    lc.set_protocol_http_websocket()
    return app, int(lc.local[1])


def in_thread(mgr: mgpy.Manager, fn: Callable[[], Any], timeout: float = 10) -> Any:
    """Run a blocking client in a thread while polling the manager; return its result."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = fn()
        except BaseException as e:  # re-raised in the test thread
            out["error"] = e

    t = threading.Thread(target=run)
    t.start()
    run_until(mgr, lambda: not t.is_alive(), timeout)
    t.join()
    if "error" in out:
        raise out["error"]
    return out["result"]


def test_keep_alive_sequence(mgr: mgpy.Manager, server: tuple[App, int]) -> None:
    app, port = server

    def client() -> list[tuple[int, bytes]]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        got = []
        for method, path, body in [
            ("GET", "/a", None),
            ("POST", "/b", b"x=1"),
            ("PUT", "/c", b"data"),
            ("DELETE", "/d", None),
            ("GET", "/missing", None),
            ("GET", "/e", None),
        ]:
            conn.request(method, path, body=body)
            r = conn.getresponse()
            got.append((r.status, r.read()))
        conn.close()
        return got

    assert in_thread(mgr, client) == [
        (200, b"GET /a "),
        (200, b"POST /b x=1"),
        (200, b"PUT /c data"),
        (200, b"DELETE /d "),
        (404, b"404 Not Found\n"),
        (200, b"GET /e "),
    ]
    assert app.accepts == 1


def test_chunked_request_body(mgr: mgpy.Manager, server: tuple[App, int]) -> None:
    _, port = server
    pieces = [b"a" * 1000, b"b" * 70000, b"", b"c"]  # http.client skips the empty one

    def client() -> bytes:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request(
            "POST",
            "/count",
            body=iter(pieces),
            encode_chunked=True,
            headers={"Transfer-Encoding": "chunked"},
        )
        return conn.getresponse().read()

    assert in_thread(mgr, client) == b"71001"


def test_expect_100_continue(mgr: mgpy.Manager, server: tuple[App, int]) -> None:
    _, port = server

    def client() -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("POST", "/e", body=b"payload", headers={"Expect": "100-continue"})
        r = conn.getresponse()  # skips the interim 100
        return r.status, r.read()

    assert in_thread(mgr, client) == (200, b"POST /e payload")


def test_head(mgr: mgpy.Manager, server: tuple[App, int]) -> None:
    _, port = server

    def client() -> tuple[str | None, bytes, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("HEAD", "/h")
        r = conn.getresponse()
        head = (r.getheader("Content-Length"), r.read())
        conn.request("GET", "/h")
        return head[0], head[1], conn.getresponse().read()

    assert in_thread(mgr, client) == ("8", b"", b"GET /h ")  # len("HEAD /h ")


class Http10Connection(http.client.HTTPConnection):
    _http_vsn = 10
    _http_vsn_str = "HTTP/1.0"


def test_http10_closes(mgr: mgpy.Manager, server: tuple[App, int]) -> None:
    _, port = server

    def client() -> tuple[bytes, str | None, bool]:
        conn = Http10Connection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/old")
        r = conn.getresponse()
        body = r.read()
        return body, r.getheader("Connection"), r.will_close

    assert in_thread(mgr, client) == (b"GET /old ", "close", True)


def test_http10_keep_alive(mgr: mgpy.Manager, server: tuple[App, int]) -> None:
    app, port = server

    def client() -> list[bytes]:
        conn = Http10Connection("127.0.0.1", port, timeout=5)
        out = []
        for p in ("/1", "/2"):
            conn.request("GET", p, headers={"Connection": "keep-alive"})
            r = conn.getresponse()
            assert r.getheader("Connection") == "keep-alive"
            out.append(r.read())
        return out

    assert in_thread(mgr, client) == [b"GET /1 ", b"GET /2 "]
    assert app.accepts == 1


class _Shared:
    """One buffered stream read by several HTTPResponse objects in turn (close is a no-op)."""

    def __init__(self, f: io.BufferedIOBase) -> None:
        self.f = f

    def makefile(self, mode: str) -> _Shared:
        return self

    def close(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self.f, name)


def test_pipelined_responses_in_order(mgr: mgpy.Manager, server: tuple[App, int]) -> None:
    app, port = server
    paths = ["/first", "/later", "/chunked", "/last"]

    def client() -> list[tuple[int, bytes]]:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"".join(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % p.encode() for p in paths))
            f = s.makefile("rb")
            out = []
            for _ in paths:
                r = http.client.HTTPResponse(_Shared(f), method="GET")  # type: ignore[arg-type]
                r.begin()
                out.append((r.status, r.read()))
            return out

    assert in_thread(mgr, client) == [
        (200, b"GET /first "),
        (200, b"answered later"),
        (200, b"chunked"),
        (200, b"GET /last "),
    ]
    assert app.order == paths

"""HTTP/1.1 server flow over real sockets: keep-alive, pipelining, 100-continue, HTTP/1.0,
timeouts and streamed request bodies (HTTP_CHUNK + DELETE_CHUNK).

The Manager polls in the test thread; clients are raw non-blocking sockets
driven from the same thread (or a thread for blocking bulk uploads).
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from typing import Any, NamedTuple

import pytest

import mgpy
from mgpy import Ev, F, Limits
from tests.conftest import run_until


class Resp(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes


def parse_responses(data: bytes, heads: int = 0) -> list[Resp]:
    """Split a byte stream into responses (Content-Length, chunked or until EOF).

    The first ``heads`` responses are taken to answer HEAD requests (no body).
    """
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
                assert data[e + 2 + size : e + 4 + size] == b"\r\n"
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
        view = memoryview(data)
        deadline = time.monotonic() + 5
        while view:
            try:
                view = view[self.sock.send(view) :]
            except BlockingIOError:
                assert time.monotonic() < deadline, "server stopped reading"
                self.mgr.poll(1)

    def pump(self) -> bool:
        """Read what is available; return True once the server closed."""
        while not self.eof:
            try:
                d = self.sock.recv(65536)
            except BlockingIOError:
                break
            except ConnectionResetError:
                d = b""
            if not d:
                self.eof = True
            self.data += d
        return self.eof

    def read_until(self, marker: bytes, count: int = 1, timeout: float = 5.0) -> bytes:
        run_until(self.mgr, lambda: self.pump() or self.data.count(marker) >= count, timeout)
        return bytes(self.data)

    def responses(self, n: int, timeout: float = 5.0) -> list[Resp]:
        """Wait until ``n`` complete responses have arrived and return them."""

        def done() -> bool:
            self.pump()
            try:
                return len(parse_responses(bytes(self.data))) >= n
            except (ValueError, AssertionError):
                return False

        run_until(self.mgr, done, timeout)
        return parse_responses(bytes(self.data))

    def read_to_eof(self, timeout: float = 5.0) -> bytes:
        run_until(self.mgr, self.pump, timeout)
        return bytes(self.data)

    def still_open(self, seconds: float = 0.1) -> bool:
        """Poll for ``seconds``; True if the server did not close meanwhile."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.mgr.poll(5)
            if self.pump():
                return False
        return True

    def close(self) -> None:
        self.sock.close()


def serve(mgr: mgpy.Manager, handler: Any, limits: Limits | None = None) -> int:
    lc = mgr.bind("127.0.0.1:0", handler, limits=limits)
    lc.set_protocol_http_websocket()
    return int(lc.local[1])


def echo(c: mgpy.Connection, ev: Any, hm: Any) -> None:
    if ev == Ev.HTTP_REQUEST:
        mgpy.http_reply(c, 200, hm.method.encode() + b" " + hm.uri.encode() + b" " + hm.body)


def get(path: str, extra: bytes = b"") -> bytes:
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\n" + extra + b"\r\n"


class TestKeepAlive:
    def test_http11_connection_serves_sequential_requests(self, mgr: mgpy.Manager) -> None:
        raw = Raw(mgr, serve(mgr, echo))
        for i in range(3):
            raw.send(get(f"/{i}"))
            assert raw.responses(i + 1)[i].body == f"GET /{i} ".encode()
        assert raw.still_open()
        accepted = mgr.accepted
        raw.close()
        assert accepted == 1

    def test_connection_close_is_honoured(self, mgr: mgpy.Manager) -> None:
        raw = Raw(mgr, serve(mgr, echo))
        raw.send(get("/x", b"Connection: close\r\n"))
        [r] = parse_responses(raw.read_to_eof())
        assert r.status == 200 and r.headers["connection"] == "close"

    def test_http10_closes_by_default(self, mgr: mgpy.Manager) -> None:
        raw = Raw(mgr, serve(mgr, echo))
        raw.send(b"GET /old HTTP/1.0\r\n\r\n")
        data = raw.read_to_eof()
        [r] = parse_responses(data)
        assert r.body == b"GET /old "
        assert r.headers["connection"] == "close"

    def test_http10_keep_alive_when_asked(self, mgr: mgpy.Manager) -> None:
        raw = Raw(mgr, serve(mgr, echo))
        raw.send(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        [r] = raw.responses(1)
        assert r.headers["connection"] == "keep-alive"
        assert raw.still_open()
        raw.send(b"GET /b HTTP/1.0\r\n\r\n")
        rs = parse_responses(raw.read_to_eof())
        assert [x.body for x in rs] == [b"GET /a ", b"GET /b "]

    def test_http10_streamed_response_is_close_delimited(self, mgr: mgpy.Manager) -> None:
        def h(c: mgpy.Connection, ev: Any, hm: Any) -> None:
            if ev == Ev.HTTP_REQUEST:
                c.send_head(200)
                c.send_http_chunk(b"part1,")
                c.printf_http_chunk("part%d", 2)
                c.send_http_chunk(b"")

        raw = Raw(mgr, serve(mgr, h))
        raw.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        data = raw.read_to_eof()
        assert b"Transfer-Encoding" not in data  # RFC 9112 6.1: no chunked to 1.0
        [r] = parse_responses(data)
        assert r.body == b"part1,part2"
        assert r.headers["connection"] == "close"


class TestPipelining:
    def test_responses_come_in_request_order(self, mgr: mgpy.Manager) -> None:
        """/slow is answered from a timer, /chunked in chunks; order is still kept."""
        seen: list[str] = []

        def h(c: mgpy.Connection, ev: Any, hm: Any) -> None:
            if ev == Ev.HTTP_REQUEST:
                seen.append(hm.uri)
                if hm.uri == "/slow":
                    c.set_timer(time.time() + 0.1)
                elif hm.uri == "/chunked":
                    c.send_head(200, headers={"Content-Type": "text/plain"})
                    c.send_http_chunk("a")
                    c.send_http_chunk("b")
                    c.send_http_chunk("")
                else:
                    mgpy.http_reply(c, 200, hm.uri)
            elif ev == Ev.TIMER:
                seen.append("timer")
                mgpy.http_reply(c, 200, "/slow done")

        raw = Raw(mgr, serve(mgr, h))
        raw.send(get("/1") + get("/slow") + get("/chunked") + get("/4"))
        rs = raw.responses(4)
        assert [r.body for r in rs] == [b"/1", b"/slow done", b"ab", b"/4"]
        assert rs[2].headers["transfer-encoding"] == "chunked"
        # the next request is read only after the previous response completed
        assert seen == ["/1", "/slow", "timer", "/chunked", "/4"]
        assert raw.still_open()

    def test_async_streamed_response_holds_back_the_next(self, mgr: mgpy.Manager) -> None:
        """A Content-Length body sent in pieces over several polls completes before /next."""
        pending: list[mgpy.Connection] = []

        def h(c: mgpy.Connection, ev: Any, hm: Any) -> None:
            if ev == Ev.HTTP_REQUEST:
                if hm.uri == "/big":
                    c.send_head(200, 6)
                    c.send(b"abc")
                    pending.append(c)
                else:
                    mgpy.http_reply(c, 200, "next")

        raw = Raw(mgr, serve(mgr, h))
        raw.send(get("/big") + get("/next"))
        raw.read_until(b"abc")
        assert raw.still_open(0.05)
        assert b"next" not in raw.data
        pending[0].send(b"def")
        rs = raw.responses(2)
        assert [r.body for r in rs] == [b"abcdef", b"next"]

    def test_two_hundred_requests_in_one_write(self, mgr: mgpy.Manager) -> None:
        raw = Raw(mgr, serve(mgr, echo))
        raw.send(b"".join(get(f"/{i}") for i in range(200)))
        rs = raw.responses(200)
        assert [r.body for r in rs] == [f"GET /{i} ".encode() for i in range(200)]

    def test_reading_pauses_and_resumes_behind_a_slow_response(self, mgr: mgpy.Manager) -> None:
        """With a small receive buffer, queued requests wait in the socket, none is lost."""

        def h(c: mgpy.Connection, ev: Any, hm: Any) -> None:
            if ev == Ev.HTTP_REQUEST:
                if hm.uri == "/slow":
                    c.set_timer(time.time() + 0.1)
                else:
                    mgpy.http_reply(c, 200, hm.uri)
            elif ev == Ev.TIMER:
                mgpy.http_reply(c, 200, "slow")

        raw = Raw(mgr, serve(mgr, h, Limits(max_recv_buffer=2048, recv_size=1024)))
        paths = ["/slow"] + [f"/{i}" for i in range(300)]  # ~10 KB of requests
        raw.send(b"".join(get(p) for p in paths))
        rs = raw.responses(len(paths))
        assert [r.body.decode() for r in rs] == ["slow", *paths[1:]]

    def test_raw_send_response_counts_as_answered(self, mgr: mgpy.Manager) -> None:
        def h(c: mgpy.Connection, ev: Any, hm: Any) -> None:
            if ev == Ev.HTTP_REQUEST:
                c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nraw")

        raw = Raw(mgr, serve(mgr, h))
        raw.send(get("/a") + get("/b"))
        assert [r.body for r in raw.responses(2)] == [b"raw", b"raw"]

    def test_request_after_connection_close_is_not_answered(self, mgr: mgpy.Manager) -> None:
        raw = Raw(mgr, serve(mgr, echo))
        raw.send(get("/a", b"Connection: close\r\n") + get("/b"))
        rs = parse_responses(raw.read_to_eof())
        assert [r.body for r in rs] == [b"GET /a "]


class TestExpectContinue:
    def test_100_continue_before_the_body(self, mgr: mgpy.Manager) -> None:
        raw = Raw(mgr, serve(mgr, echo))
        raw.send(
            b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        assert raw.read_until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        raw.send(b"hello")
        rs = raw.responses(2)
        assert rs[0].status == 100
        assert rs[1].status == 200 and rs[1].body == b"POST /up hello"

    def test_no_100_for_http10(self, mgr: mgpy.Manager) -> None:
        raw = Raw(mgr, serve(mgr, echo))
        raw.send(b"POST /up HTTP/1.0\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nhi")
        data = raw.read_to_eof()
        assert data.startswith(b"HTTP/1.1 200 ")
        assert b" 100 " not in data

    def test_early_final_answer_needs_no_body(self, mgr: mgpy.Manager) -> None:
        """A handler may answer from HTTP_CHUNK; the rest of the body is then ignored."""

        def h(c: mgpy.Connection, ev: Any, hm: Any) -> None:
            if ev == Ev.HTTP_CHUNK:
                mgpy.http_send_error(c, 403)

        raw = Raw(mgr, serve(mgr, h))
        raw.send(b"PUT /x HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
        [r] = parse_responses(raw.read_to_eof())
        assert r.status == 403 and r.headers["connection"] == "close"


class TestTimeouts:
    def test_slowloris_gets_408_at_the_header_deadline(self, mgr: mgpy.Manager) -> None:
        """Bytes keep arriving, but the head must complete within header_timeout."""
        raw = Raw(mgr, serve(mgr, echo, Limits(header_timeout=0.3)))
        start = time.monotonic()
        line = b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 1000
        i = 0
        while not raw.pump() and time.monotonic() - start < 5:
            if i < len(line):
                raw.send(line[i : i + 1])
                i += 1
            end = time.monotonic() + 0.02
            while time.monotonic() < end:
                mgr.poll(5)
        elapsed = time.monotonic() - start
        assert raw.eof
        assert 0.25 <= elapsed < 1.5
        [r] = parse_responses(bytes(raw.data))
        assert r.status == 408 and r.headers["connection"] == "close"

    def test_silent_new_connection_is_closed_without_a_response(self, mgr: mgpy.Manager) -> None:
        raw = Raw(mgr, serve(mgr, echo, Limits(header_timeout=0.2)))
        start = time.monotonic()
        assert raw.read_to_eof(timeout=3) == b""
        assert time.monotonic() - start >= 0.15

    def test_idle_keep_alive_connection_closes_quietly(self, mgr: mgpy.Manager) -> None:
        raw = Raw(mgr, serve(mgr, echo, Limits(keepalive_timeout=0.2)))
        raw.send(get("/"))
        raw.responses(1)
        start = time.monotonic()
        data = raw.read_to_eof(timeout=3)
        assert len(parse_responses(data)) == 1
        assert time.monotonic() - start >= 0.15

    def test_stalled_body_gets_408(self, mgr: mgpy.Manager) -> None:
        raw = Raw(mgr, serve(mgr, echo, Limits(body_timeout=0.2)))
        raw.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        start = time.monotonic()
        [r] = parse_responses(raw.read_to_eof(timeout=3))
        assert r.status == 408
        assert 0.15 <= time.monotonic() - start < 2

    def test_slow_handler_is_not_timed_out(self, mgr: mgpy.Manager) -> None:
        """Timeouts guard the client, not the application: a late answer still arrives."""

        def h(c: mgpy.Connection, ev: Any, hm: Any) -> None:
            if ev == Ev.HTTP_REQUEST:
                c.set_timer(time.time() + 0.3)
            elif ev == Ev.TIMER:
                mgpy.http_reply(c, 200, "late")

        lim = Limits(header_timeout=0.1, keepalive_timeout=0.1, body_timeout=0.1)
        raw = Raw(mgr, serve(mgr, h, lim))
        raw.send(get("/"))
        assert raw.responses(1)[0].body == b"late"


class TestStreamingBodies:
    def _upload(self, mgr: mgpy.Manager, port: int, head: bytes, body: bytes) -> bytes:
        out: dict[str, bytes] = {}

        def client() -> None:
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.settimeout(10)
                s.sendall(head + body)
                data = b""
                while d := s.recv(65536):
                    data += d
                out["data"] = data

        t = threading.Thread(target=client)
        t.start()
        run_until(mgr, lambda: not t.is_alive(), timeout=15)
        t.join()
        return out["data"]

    @pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
    def test_delete_chunk_streams_a_body_larger_than_max_body(
        self, mgr: mgpy.Manager, chunked: bool
    ) -> None:
        payload = bytes(range(256)) * (16 * 1024 + 7)  # ~4 MiB
        lim = Limits(max_body=64 * 1024, max_recv_buffer=64 * 1024)
        sha = hashlib.sha256()
        largest = [0]

        def h(c: mgpy.Connection, ev: Any, hm: Any) -> None:
            if ev == Ev.HTTP_CHUNK:
                largest[0] = max(largest[0], len(hm.body))
                sha.update(hm.body)
                c.flags |= F.DELETE_CHUNK
            elif ev == Ev.HTTP_REQUEST:
                sha.update(hm.body)
                mgpy.http_reply(c, 200, sha.hexdigest(), {"Connection": "close"})

        port = serve(mgr, h, lim)
        if chunked:
            step = 10000
            body = (
                b"".join(
                    b"%x\r\n%s\r\n" % (len(payload[i : i + step]), payload[i : i + step])
                    for i in range(0, len(payload), step)
                )
                + b"0\r\n\r\n"
            )
            head = b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        else:
            body = payload
            head = b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(payload)
        [r] = parse_responses(self._upload(mgr, port, head, body))
        assert r.status == 200
        assert r.body.decode() == hashlib.sha256(payload).hexdigest()
        assert 0 < largest[0] <= 64 * 1024

    def test_chunks_without_delete_grow_until_the_request(self, mgr: mgpy.Manager) -> None:
        sizes: list[int] = []
        prefix_ok = [True]
        payload = bytes(range(256)) * 2000

        def h(c: mgpy.Connection, ev: Any, hm: Any) -> None:
            if ev == Ev.HTTP_CHUNK:
                sizes.append(len(hm.body))
                prefix_ok[0] &= payload.startswith(hm.body)
            elif ev == Ev.HTTP_REQUEST:
                mgpy.http_reply(
                    c, 200, b"ok" if hm.body == payload else b"bad", {"Connection": "close"}
                )

        port = serve(mgr, h)
        head = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(payload)
        [r] = parse_responses(self._upload(mgr, port, head, payload))
        assert r.body == b"ok"
        assert prefix_ok[0]
        assert sizes == sorted(sizes)

    def test_buffered_body_over_max_body_is_413(self, mgr: mgpy.Manager) -> None:
        got: list[Any] = []
        port = serve(mgr, lambda c, ev, hm: got.append(ev), Limits(max_body=10_000))
        head = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 200000\r\n\r\n"
        [r] = parse_responses(self._upload(mgr, port, head, b"x" * 200000))
        assert r.status == 413
        assert Ev.HTTP_REQUEST not in got

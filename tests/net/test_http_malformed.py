"""Malformed HTTP requests over real sockets: each gets its status, ``Connection: close``, EOF.

The server runs in the test thread (``mgr.poll``); a raw non-blocking client
socket writes the bytes and reads until the server closes.  Limits are small
so oversize inputs stay small.  No request in the table may reach the
application, and no second response may follow the error (request smuggling).
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest

import mgpy
from mgpy import Ev, Limits
from tests.conftest import run_until

LIMITS = Limits(
    max_request_line=1024,
    max_header_line=512,
    max_headers_size=2048,
    max_header_count=20,
    max_chunk_line=64,
    max_body=1000,
)

H = b"Host: a\r\n"


class App:
    """Answers every request with 200 and records what reached it."""

    def __init__(self) -> None:
        self.requests: list[mgpy.HttpMessage] = []

    def __call__(self, c: mgpy.Connection, ev: Any, hm: Any) -> None:
        if ev == Ev.HTTP_REQUEST:
            self.requests.append(hm)
            mgpy.http_reply(c, 200, b"ok " + hm.uri.encode())


class Raw:
    """A raw client socket driven from the test thread while the manager polls."""

    def __init__(self, mgr: mgpy.Manager, port: int) -> None:
        self.mgr = mgr
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setblocking(False)
        self.data = bytearray()
        self.eof = False

    def send(self, data: bytes, timeout: float = 5.0) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        while view:
            try:
                n = self.sock.send(view)
                view = view[n:]
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
            if not d:
                self.eof = True
            self.data += d
        return self.eof

    def read_to_eof(self, timeout: float = 5.0) -> bytes:
        run_until(self.mgr, self.pump, timeout)
        return bytes(self.data)

    def close(self) -> None:
        self.sock.close()


def count_responses(data: bytes) -> int:
    return data.count(b"HTTP/1.1 ")


@pytest.fixture
def server(mgr: mgpy.Manager) -> tuple[int, App]:
    app = App()
    lc = mgr.bind("127.0.0.1:0", app, limits=LIMITS)
    lc.set_protocol_http_websocket()
    return lc.local[1], app


def chunked(body: bytes) -> bytes:
    return b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + body


# (id, bytes, status): every row is a complete message or the error must not wait for more
TABLE: list[tuple[str, bytes, int]] = [
    # --- framing / smuggling (RFC 9112 6.1, 6.3) ---
    (
        "cl-and-te",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "te-and-cl",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Length: 5\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "cl-duplicate-conflict",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        400,
    ),
    ("cl-list-conflict", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5, 6\r\n\r\nhello!", 400),
    ("cl-plus-sign", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nhello", 400),
    ("cl-negative", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n", 400),
    ("cl-hex", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0x5\r\n\r\nhello", 400),
    ("cl-empty", b"POST / HTTP/1.1\r\n" + H + b"Content-Length:\r\n\r\n", 400),
    ("cl-inner-space", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1 2\r\n\r\n", 400),
    (
        "cl-20-digits",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: " + b"9" * 20 + b"\r\n\r\n",
        400,
    ),
    # RFC 9112 6.3 (4): chunked not the final coding -> 400 and close
    ("te-gzip", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n", 400),
    ("te-identity", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: identity\r\n\r\n", 400),
    (
        "te-chunked-chunked",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "te-two-fields",
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "te-chunked-then-identity-field",
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "te-chunked-not-last",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        400,
    ),
    ("te-xchunked", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n", 400),
    # RFC 9112 6.1: a well-formed list ending in chunked, a coding we lack first -> 501
    (
        "te-gzip-chunked",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        501,
    ),
    # RFC 9110 9.3.6: CONNECT has no content
    (
        "connect-content-length",
        b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nContent-Length: 5\r\n\r\nhello",
        400,
    ),
    (
        "connect-chunked",
        b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    ("te-empty", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: ,\r\n\r\n", 400),
    ("te-in-http10", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    # --- field syntax (RFC 9112 2.2, 5.1, 5.2; RFC 9110 5.5) ---
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  continued\r\n\r\n", 400),
    ("obs-fold-first-line", b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
    ("space-before-colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    ("tab-before-colon", b"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400),
    ("bare-lf", b"GET / HTTP/1.1\nHost: a\n\n", 400),
    ("bare-lf-in-headers", b"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", 400),
    ("bare-cr", b"GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", 400),
    ("nul-in-value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400),
    ("del-in-value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", 400),
    ("bad-header-name", b"GET / HTTP/1.1\r\nHost: a\r\nX(y): 1\r\n\r\n", 400),
    ("empty-header-name", b"GET / HTTP/1.1\r\nHost: a\r\n: 1\r\n\r\n", 400),
    ("no-colon", b"GET / HTTP/1.1\r\nHost: a\r\nJustAName\r\n\r\n", 400),
    # --- request line (RFC 9112 3) ---
    ("bad-method-token", b"G(T / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("method-with-slash", b"GE/T / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("leading-space", b" GET / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("double-space", b"GET  / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("missing-target", b"GET HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("trailing-junk", b"GET / HTTP/1.1 x\r\n" + H + b"\r\n", 400),
    ("target-fragment", b"GET /a#b HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("target-del", b"GET /\x7f HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("lowercase-http", b"GET / http/1.1\r\n" + H + b"\r\n", 400),
    ("http-3", b"GET / HTTP/3\r\n" + H + b"\r\n", 400),
    ("http-2.0", b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505),
    ("http-0.9-style", b"GET / HTTP/0.9\r\n" + H + b"\r\n", 505),
    ("connect-origin-form", b"CONNECT / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("asterisk-not-options", b"GET * HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("absolute-userinfo", b"GET http://u@a/ HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("tls-client-hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),
    ("many-empty-lines", b"\r\n" * 10 + b"GET / HTTP/1.1\r\n" + H + b"\r\n", 400),
    # --- Host (RFC 9112 3.2) ---
    ("missing-host-1.1", b"GET / HTTP/1.1\r\nX: 1\r\n\r\n", 400),
    ("two-hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("host-with-space", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    ("host-userinfo", b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400),
    ("host-bad-port", b"GET / HTTP/1.1\r\nHost: a:b\r\n\r\n", 400),
    # --- expectations (RFC 9110 10.1.1) ---
    ("expect-foo", b"POST / HTTP/1.1\r\n" + H + b"Expect: foo\r\nContent-Length: 1\r\n\r\nx", 417),
    # --- limits: each sends just past the limit, without a terminator ---
    ("request-line-too-long", b"GET /" + b"a" * 1020, 414),
    ("header-line-too-long", b"GET / HTTP/1.1\r\n" + H + b"X: " + b"v" * 510, 431),
    (
        "too-many-headers",
        b"GET / HTTP/1.1\r\n" + b"".join(b"X%d: 1\r\n" % i for i in range(21)),
        431,
    ),
    (
        "head-too-large",
        b"GET / HTTP/1.1\r\n" + b"".join(b"X%d: %s\r\n" % (i, b"v" * 120) for i in range(17)),
        431,
    ),
    (
        "body-over-max-body-cl",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5000\r\n\r\n" + b"x" * 1001,
        413,
    ),
    ("body-over-max-body-chunked", chunked(b"3e9\r\n" + b"x" * 1001), 413),
    # --- chunked framing (RFC 9112 7.1) ---
    ("chunk-size-not-hex", chunked(b"zz\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk-size-0x", chunked(b"0x5\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk-size-negative", chunked(b"-5\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk-size-17-digits", chunked(b"0" * 16 + b"5\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk-data-no-crlf", chunked(b"5\r\nhelloXX0\r\n\r\n"), 400),
    ("chunk-size-bare-lf", chunked(b"5\nhello\r\n0\r\n\r\n"), 400),
    ("chunk-ext-ctl", chunked(b"5;a=\x01\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk-line-too-long", chunked(b"5;" + b"e" * 70), 400),
    # 300 lines of 59 extension bytes: each line is short, the message is not (CVE-2024-22019)
    ("chunk-ext-per-message", chunked((b"1;" + b"e" * 58 + b"\r\nx\r\n") * 300), 400),
    ("bad-trailer", chunked(b"5\r\nhello\r\n0\r\nbad trailer\r\n\r\n"), 400),
    # --- WebSocket upgrade that is not one ---
    (
        "ws-upgrade-no-key",
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
        b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n",
        400,
    ),
]


@pytest.mark.parametrize(
    ("data", "status"), [(d, s) for _, d, s in TABLE], ids=[i for i, _, _ in TABLE]
)
def test_malformed_request_gets_status_and_close(
    mgr: mgpy.Manager, server: tuple[int, App], data: bytes, status: int
) -> None:
    port, app = server
    raw = Raw(mgr, port)
    try:
        raw.send(data)
        got = raw.read_to_eof(timeout=5.0)
    finally:
        raw.close()
    head = got.split(b"\r\n\r\n", 1)[0]
    assert got.startswith(b"HTTP/1.1 %d " % status), got[:80]
    assert b"\r\nConnection: close" in head
    assert count_responses(got) == 1
    assert app.requests == []


def test_table_is_big_enough() -> None:
    assert len(TABLE) >= 40
    assert len({i for i, _, _ in TABLE}) == len(TABLE)


class TestSmuggling:
    def test_cl_te_body_never_becomes_a_second_request(
        self, mgr: mgpy.Manager, server: tuple[int, App]
    ) -> None:
        port, app = server
        smuggled = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
        body = b"0\r\n\r\n" + smuggled
        raw = Raw(mgr, port)
        raw.send(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body
        )
        got = raw.read_to_eof()
        raw.close()
        assert got.startswith(b"HTTP/1.1 400 ")
        assert count_responses(got) == 1
        assert b"smuggled" not in got
        assert app.requests == []

    def test_requests_pipelined_after_a_bad_one_are_dropped(
        self, mgr: mgpy.Manager, server: tuple[int, App]
    ) -> None:
        port, app = server
        raw = Raw(mgr, port)
        raw.send(
            b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
            b"GET /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx"
            b"GET /3 HTTP/1.1\r\nHost: a\r\n\r\n"
        )
        got = raw.read_to_eof()
        raw.close()
        assert got.startswith(b"HTTP/1.1 200 ")
        assert got.count(b"HTTP/1.1 ") == 2
        second = got[got.index(b"HTTP/1.1 ", 1) :]
        assert second.startswith(b"HTTP/1.1 400 ")
        assert b"Connection: close" in second
        assert [hm.uri for hm in app.requests] == ["/1"]

    def test_te_chunked_in_http10_with_hidden_request(
        self, mgr: mgpy.Manager, server: tuple[int, App]
    ) -> None:
        port, app = server
        raw = Raw(mgr, port)
        raw.send(
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n"
            b"0\r\n\r\nGET /smuggled HTTP/1.0\r\n\r\n"
        )
        got = raw.read_to_eof()
        raw.close()
        assert got.startswith(b"HTTP/1.1 400 ")
        assert count_responses(got) == 1
        assert app.requests == []


class TestErrorsDoNotWait:
    """A limit is enforced on the bytes that broke it, not when the message completes."""

    @staticmethod
    def _head_of(size: int) -> bytes:
        """Valid header lines, no terminating blank line, exactly ``size`` bytes."""
        head = b"GET / HTTP/1.1\r\nHost: a\r\n"
        i = 0
        while len(head) + 100 < size:
            head += b"X-%02d: %s\r\n" % (i, b"v" * 92)
            i += 1
        return head + b"Y: " + b"v" * (size - len(head) - 3)

    @pytest.mark.parametrize(
        ("data", "status"),
        [
            (b"GET /" + b"a" * (LIMITS.max_request_line - 4), 414),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"v" * (LIMITS.max_header_line - 2), 431),
            (_head_of(LIMITS.max_headers_size + 1), 431),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n"
                + b"x" * (LIMITS.max_body + 1),
                413,
            ),
        ],
        ids=["request-line", "header-line", "head", "body"],
    )
    def test_limit_plus_one_without_terminator(  # one byte over, nothing after it
        self, mgr: mgpy.Manager, server: tuple[int, App], data: bytes, status: int
    ) -> None:
        port, _ = server
        raw = Raw(mgr, port)
        raw.send(data)
        # the client keeps the connection open and sends nothing more
        got = raw.read_to_eof(timeout=3.0)
        raw.close()
        assert got.startswith(b"HTTP/1.1 %d " % status)

    def test_error_reaches_a_client_still_sending_a_big_body(
        self, mgr: mgpy.Manager, server: tuple[int, App]
    ) -> None:
        """413 after 1000 bytes of a 16 MB upload: the client finishes sending and reads it.

        The server half-closes and drains (lingering close, RFC 9112 9.6), so the
        client sees no ECONNRESET and its receive queue is not destroyed.
        """
        port, app = server
        size = 16 * 1024 * 1024
        out: dict[str, Any] = {}

        def client() -> None:
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.settimeout(10)
                try:
                    s.sendall(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % size)
                    s.sendall(b"x" * size)
                    out["sent"] = True
                except OSError as e:
                    out["send_error"] = e
                data = b""
                try:
                    while True:
                        d = s.recv(65536)
                        if not d:
                            break
                        data += d
                except OSError as e:
                    out["recv_error"] = e
                out["data"] = data

        t = threading.Thread(target=client)
        t.start()
        run_until(mgr, lambda: not t.is_alive(), timeout=15)
        t.join()
        assert out.get("send_error") is None and out.get("recv_error") is None
        assert out["data"].startswith(b"HTTP/1.1 413 ")
        assert b"Connection: close" in out["data"]
        assert app.requests == []
        # the server closes its side once the client has closed
        run_until(mgr, lambda: len(mgr.connections) == 1)

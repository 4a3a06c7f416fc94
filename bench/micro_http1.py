"""Micro-benchmarks of the sans-IO HTTP/1.1 core (mgpy/proto/http1.py).

Run: ``.venv/bin/python bench/micro_http1.py [--quick]``.  Prints microseconds
per message (best of 5 timeit repeats), parsing from a bytearray the way the
I/O layer does, with one reader reused as on a keep-alive connection.
Budget from the design: a bare selectors loop costs ~5 us per request, so a
small GET must parse in ~1-2 us for mgpy to reach 1.5x uvicorn.
"""

from __future__ import annotations

import sys
import timeit
from collections.abc import Callable

from mgpy.limits import Limits
from mgpy.proto import http1

MINIMAL_GET = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
BROWSER_GET = (
    b"GET /static/app.js?v=3 HTTP/1.1\r\n"
    b"Host: 127.0.0.1:8080\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br, zstd\r\n"
    b"Connection: keep-alive\r\n"
    b"Referer: http://127.0.0.1:8080/\r\n"
    b"Cookie: session=0123456789abcdef; theme=dark\r\n"
    b"\r\n"
)
POST_1K = (
    b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Length: 1024\r\n\r\n" + b"x" * 1024
)
CHUNKED_100 = (
    b"POST /stream HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"".join(http1.encode_chunk(b"%02d-payload-bytes" % i) for i in range(100))
    + http1.encode_chunk(b"")
)
RESP_HEADERS = [("Content-Type", "text/plain"), ("Content-Length", "13")]


def _parse_all(reader: http1.HttpReader, data: bytes) -> Callable[[], int]:
    """A callable parsing one whole message from a fresh bytearray; returns the event count."""

    def run() -> int:
        buf = bytearray(data)
        count = 0
        while True:
            ev, n = reader.next_event(buf)
            if n:
                del buf[:n]
            if ev is http1.NEED_DATA:
                return count
            count += 1

    return run


def _best(fn: Callable[[], object], number: int) -> float:
    """Best-of-7 microseconds per call (the minimum is the least disturbed run)."""
    return min(timeit.repeat(fn, number=number // 2 or 1, repeat=7)) / (number // 2 or 1) * 1e6


def _references(quick: bool) -> list[tuple[str, Callable[[], object], int]]:
    """httptools (C, what uvicorn uses) and h11 (pure Python) on the same two GETs, if installed."""
    k = 10 if quick else 1
    out: list[tuple[str, Callable[[], object], int]] = []
    try:
        import httptools  # type: ignore[import-not-found]
    except ImportError:
        pass
    else:

        class Proto:
            def on_url(self, url: bytes) -> None:
                self.url = url

            def on_header(self, name: bytes, value: bytes) -> None:
                self.headers.append((name, value))

        proto = Proto()
        parser = httptools.HttpRequestParser(proto)

        def feed(data: bytes) -> Callable[[], object]:
            def run() -> object:
                proto.headers = []
                return parser.feed_data(data)

            return run

        out.append(("[ref] httptools minimal GET", feed(MINIMAL_GET), 200_000 // k))
        out.append(("[ref] httptools browser GET", feed(BROWSER_GET), 100_000 // k))
    try:
        import h11
    except ImportError:
        pass
    else:

        def h11_parse(data: bytes) -> Callable[[], object]:
            def run() -> object:
                conn = h11.Connection(h11.SERVER)
                conn.receive_data(data)
                return conn.next_event()

            return run

        out.append(("[ref] h11 minimal GET (+Connection)", h11_parse(MINIMAL_GET), 20_000 // k))
    return out


def main() -> None:
    """Time every case and print a table."""
    quick = "--quick" in sys.argv
    k = 10 if quick else 1
    server = http1.HttpReader("server", Limits())
    get_buf = bytearray(MINIMAL_GET)
    browser_buf = bytearray(BROWSER_GET)
    cases: list[tuple[str, Callable[[], object], int]] = [
        ("minimal GET, next_event only", lambda: server.next_event(get_buf), 200_000 // k),
        ("browser GET, next_event only", lambda: server.next_event(browser_buf), 100_000 // k),
        ("minimal GET (1 header)", _parse_all(server, MINIMAL_GET), 200_000 // k),
        ("browser GET (8 headers)", _parse_all(server, BROWSER_GET), 100_000 // k),
        ("POST 1 KiB Content-Length", _parse_all(server, POST_1K), 100_000 // k),
        ("POST chunked, 100 chunks", _parse_all(server, CHUNKED_100), 10_000 // k),
        ("status_line(200)", lambda: http1.status_line(200), 500_000 // k),
        (
            "response_head 200, 2 headers",
            lambda: http1.response_head(200, RESP_HEADERS),
            200_000 // k,
        ),
        ("encode_chunk 16 bytes", lambda: http1.encode_chunk(b"0123456789abcdef"), 500_000 // k),
        *_references(quick),
    ]
    for name, fn, number in cases:
        print(f"{name:36s} {_best(fn, number):7.2f} us", flush=True)


if __name__ == "__main__":
    main()

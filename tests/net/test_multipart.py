"""Streaming multipart/form-data events over real sockets (mgpy.http.multipart).

The event sequence a handler sees must not depend on how the body was cut
into reads: every test that compares sequences merges consecutive
HTTP_PART_DATA events (their number is a matter of read sizes; their bytes
are not).
"""

from __future__ import annotations

import dataclasses
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import mgpy
from mgpy import Ev, F, Limits
from tests.conftest import run_until

MP_EVENTS = (
    Ev.HTTP_MULTIPART_REQUEST,
    Ev.HTTP_PART_BEGIN,
    Ev.HTTP_PART_DATA,
    Ev.HTTP_PART_END,
    Ev.HTTP_MULTIPART_REQUEST_END,
)

BOUNDARY = "----mgpyBoundary7MA4YWxkTrZu0gW"


# --------------------------------------------------------------------------------
# helpers shared with test_upload.py / test_auth.py
# --------------------------------------------------------------------------------
def form_body(
    parts: list[tuple[str, str | None, bytes]],
    boundary: str = BOUNDARY,
    extra_headers: dict[str, str] | None = None,
) -> bytes:
    """Encode ``(name, filename or None, data)`` parts as multipart/form-data."""
    out = bytearray()
    for name, filename, data in parts:
        out += f"--{boundary}\r\n".encode()
        disp = f'Content-Disposition: form-data; name="{name}"'
        if filename is not None:
            disp += f'; filename="{filename}"'
        out += disp.encode() + b"\r\n"
        if filename is not None:
            out += b"Content-Type: application/octet-stream\r\n"
        for k, v in (extra_headers or {}).items():
            out += f"{k}: {v}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out)


def post_head(
    path: str,
    length: int | None,
    boundary: str = BOUNDARY,
    extra: str = "",
    ctype: str | None = None,
) -> bytes:
    """A POST head with Content-Length (or chunked when ``length`` is None)."""
    ct = ctype if ctype is not None else f"multipart/form-data; boundary={boundary}"
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (
        f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: {ct}\r\n{framing}\r\n{extra}\r\n"
    ).encode()


def chunked(data: bytes, size: int = 1000) -> bytes:
    """Encode ``data`` with chunked transfer coding."""
    out = bytearray()
    for i in range(0, len(data), size):
        piece = data[i : i + size]
        out += b"%x\r\n" % len(piece) + piece + b"\r\n"
    return bytes(out + b"0\r\n\r\n")


@dataclasses.dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def read_response(s: socket.socket, buf: bytearray) -> Response | None:
    """Read one Content-Length framed response (skipping 1xx); None at EOF before a head."""
    while True:
        while b"\r\n\r\n" not in buf:
            d = s.recv(65536)
            if not d:
                return None
            buf += d
        i = buf.index(b"\r\n\r\n")
        lines = bytes(buf[:i]).decode("latin-1").split("\r\n")
        del buf[: i + 4]
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        if 100 <= status < 200:
            continue
        n = int(headers.get("content-length", "0"))
        while len(buf) < n:
            d = s.recv(65536)
            if not d:
                break
            buf += d
        body = bytes(buf[:n])
        del buf[:n]
        return Response(status, headers, body)


class RawClient:
    """A blocking socket client on a thread: send pieces, read ``n`` responses, then EOF."""

    def __init__(
        self,
        port: int,
        pieces: list[bytes],
        n: int = 1,
        read_eof: bool = False,
        shut_wr: bool = False,
        close_after_send: bool = False,
        on_sent: Callable[[], None] | None = None,
    ) -> None:
        self.port = port
        self.pieces = pieces
        self.n = n
        self.read_eof = read_eof
        self.shut_wr = shut_wr
        self.close_after_send = close_after_send
        self.responses: list[Response] = []
        self.eof = False
        self.error: BaseException | None = None
        self.sent = 0
        self.on_sent = on_sent
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self) -> None:
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=20)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with s:
                for p in self.pieces:
                    s.sendall(p)
                    self.sent += len(p)
                if self.on_sent is not None:
                    self.on_sent()
                if self.close_after_send:
                    return
                if self.shut_wr:
                    s.shutdown(socket.SHUT_WR)
                buf = bytearray()
                for _ in range(self.n):
                    r = read_response(s, buf)
                    if r is None:
                        self.eof = True
                        return
                    self.responses.append(r)
                if self.read_eof:
                    while True:
                        d = s.recv(65536)
                        if not d:
                            self.eof = True
                            break
        except BaseException as e:  # reported by the test
            self.error = e

    def done(self) -> bool:
        return not self.t.is_alive()


def merged(events: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Merge runs of PART_DATA events: ("DATA", bytes) runs become one."""
    out: list[tuple[Any, ...]] = []
    for e in events:
        if e[0] == "DATA" and out and out[-1][0] == "DATA":
            out[-1] = ("DATA", out[-1][1] + e[1])
        else:
            out.append(e)
    return out


class Recorder:
    """Records the multipart events (data bytes included) and answers at REQUEST_END."""

    def __init__(self, answer: bool = True) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.answer = answer
        self.requests: list[list[tuple[Any, ...]]] = []
        self.closed = 0

    def __call__(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.HTTP_MULTIPART_REQUEST:
            self.events.append(("REQUEST", ev_data.method, ev_data.uri))
        elif ev == Ev.HTTP_PART_BEGIN:
            self.events.append(
                ("BEGIN", ev_data.var_name, ev_data.file_name, tuple(ev_data.headers))
            )
        elif ev == Ev.HTTP_PART_DATA:
            assert len(ev_data.data) <= c.limits.part_data_size
            self.events.append(("DATA", bytes(ev_data.data)))
        elif ev == Ev.HTTP_PART_END:
            self.events.append(("END", ev_data.var_name, ev_data.status))
        elif ev == Ev.HTTP_MULTIPART_REQUEST_END:
            self.events.append(("REQUEST_END", ev_data.status))
            if ev_data.status == 0:
                self.requests.append(merged(self.events))
                self.events = []
                if self.answer:
                    sizes = [len(e[1]) for e in self.requests[-1] if e[0] == "DATA"]
                    mgpy.http_reply(c, 200, json.dumps(sizes))
        elif ev == Ev.HTTP_REQUEST:
            mgpy.http_reply(c, 200, b"plain " + ev_data.body)
        elif ev == Ev.CLOSE:
            self.closed += 1


@pytest.fixture
def server() -> Iterator[Callable[..., tuple[mgpy.Manager, int]]]:
    """Factory: a Manager with an HTTP listener on 127.0.0.1:0 running ``handler``."""
    mgrs: list[mgpy.Manager] = []

    def make(handler: Any, limits: Limits | None = None) -> tuple[mgpy.Manager, int]:
        m = mgpy.Manager(limits=limits)
        mgrs.append(m)
        lc = m.bind("127.0.0.1:0", handler)
        lc.set_protocol_http_websocket()
        return m, lc.local[1]

    yield make
    for m in mgrs:
        m.close()


def run_client(mgr: mgpy.Manager, cli: RawClient, timeout: float = 10.0) -> RawClient:
    run_until(mgr, cli.done, timeout)
    if cli.error is not None:
        raise cli.error
    return cli


SAMPLE_PARTS: list[tuple[str, str | None, bytes]] = [
    ("title", None, b"holiday pictures"),
    # data that looks like the start of a delimiter must stay data
    ("a", "a.txt", b"line1\r\n--" + BOUNDARY[:-3].encode() + b"\r\nline3\r\n-"),
    ("empty", "empty.bin", b""),
    ("b", "b.bin", bytes(range(256)) * 40),  # > part_data_size pieces when it is small
    ("last", None, b"\r\n\r\n--"),
]


def expected_events(parts: list[tuple[str, str | None, bytes]]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = [("REQUEST", "POST", "/form")]
    for name, filename, data in parts:
        hs: list[tuple[str, str]] = []
        disp = f'form-data; name="{name}"'
        if filename is not None:
            disp += f'; filename="{filename}"'
        hs.append(("Content-Disposition", disp))
        if filename is not None:
            hs.append(("Content-Type", "application/octet-stream"))
        out.append(("BEGIN", name, filename, tuple(hs)))
        if data:
            out.append(("DATA", data))
        out.append(("END", name, 0))
    out.append(("REQUEST_END", 0))
    return out


# --------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------
class TestSplitInvariance:
    @pytest.mark.parametrize("how", ["whole", "one_byte", "random_splits", "chunked_random"])
    def test_same_events_and_bytes_however_the_body_is_cut(self, server: Any, how: str) -> None:
        body = form_body(SAMPLE_PARTS)
        limits = Limits(part_data_size=4096)
        rnd = random.Random(1234)
        if how == "chunked_random":
            wire = post_head("/form", None) + chunked(body, 777)
        else:
            wire = post_head("/form", len(body)) + body
        if how == "whole":
            pieces = [wire]
        elif how == "one_byte":
            # the server reads one byte per recv(): every boundary is split everywhere
            limits = dataclasses.replace(limits, recv_size=1)
            pieces = [wire]
        else:
            pieces, i = [], 0
            while i < len(wire):
                k = rnd.randint(1, 300)
                pieces.append(wire[i : i + k])
                i += k
            limits = dataclasses.replace(limits, recv_size=rnd.randint(5, 50))
        rec = Recorder()
        mgr, port = server(rec, limits)
        cli = run_client(mgr, RawClient(port, pieces), timeout=60)
        assert cli.responses[0].status == 200
        assert rec.requests == [expected_events(SAMPLE_PARTS)]
        assert json.loads(cli.responses[0].body) == [len(d) for _n, _f, d in SAMPLE_PARTS if d]

    def test_part_headers_reach_part_begin(self, server: Any) -> None:
        body = form_body([("f", "x.csv", b"1,2\n")], extra_headers={"X-Note": "caf\xe9"})
        body = body.replace(b"application/octet-stream", b"text/csv")
        rec = Recorder()
        mgr, port = server(rec)
        run_client(mgr, RawClient(port, [post_head("/form", len(body)) + body]))
        begin = rec.requests[0][1]
        assert begin[0] == "BEGIN" and begin[2] == "x.csv"
        assert ("Content-Type", "text/csv") in begin[3]
        assert ("X-Note", "caf\xe9") in begin[3]

    def test_epilogue_after_the_close_delimiter_is_ignored(self, server: Any) -> None:
        body = b"preamble\r\n" + form_body([("a", None, b"x")]) + b"epilogue" * 100
        rec = Recorder()
        mgr, port = server(rec)
        cli = run_client(mgr, RawClient(port, [post_head("/form", len(body)) + body]))
        assert cli.responses[0].status == 200
        assert [e[0] for e in rec.requests[0]] == ["REQUEST", "BEGIN", "DATA", "END", "REQUEST_END"]

    def test_form_without_parts_ends_cleanly(self, server: Any) -> None:
        body = f"--{BOUNDARY}--\r\n".encode()
        rec = Recorder()
        mgr, port = server(rec)
        cli = run_client(mgr, RawClient(port, [post_head("/form", len(body)) + body]))
        assert cli.responses[0].status == 200
        assert rec.requests == [[("REQUEST", "POST", "/form"), ("REQUEST_END", 0)]]


class TestKeepAliveAndPipelining:
    def test_two_uploads_in_sequence_on_one_connection_then_a_get(self, server: Any) -> None:
        b1 = form_body([("f", "1.txt", b"first")])
        b2 = form_body([("f", "2.txt", b"second" * 10000)])
        wire = (
            post_head("/form", len(b1))
            + b1
            + post_head("/form", None)
            + chunked(b2)
            + b"GET /after HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        rec = Recorder()
        mgr, port = server(rec)
        # pipelined: all three requests leave in one write
        cli = run_client(mgr, RawClient(port, [wire], n=3))
        assert [r.status for r in cli.responses] == [200, 200, 200]
        assert cli.responses[2].body == b"plain "
        assert [r[1][1:3] for r in rec.requests] == [("f", "1.txt"), ("f", "2.txt")]
        assert rec.requests[0][2] == ("DATA", b"first")
        assert rec.requests[1][2] == ("DATA", b"second" * 10000)

    def test_pipelined_uploads_split_into_small_reads(self, server: Any) -> None:
        b1 = form_body([("a", "a", b"A" * 5000)])
        b2 = form_body([("b", "b", b"B" * 5000)])
        wire = post_head("/form", len(b1)) + b1 + post_head("/form", len(b2)) + b2
        rec = Recorder()
        mgr, port = server(rec, Limits(recv_size=97, part_data_size=1000))
        cli = run_client(mgr, RawClient(port, [wire], n=2))
        assert [r.status for r in cli.responses] == [200, 200]
        assert [r[2] for r in rec.requests] == [("DATA", b"A" * 5000), ("DATA", b"B" * 5000)]

    def test_expect_100_continue_is_answered_after_multipart_request(self, server: Any) -> None:
        body = form_body([("f", "f", b"x" * 100)])
        head = post_head("/form", len(body), extra="Expect: 100-continue\r\n")
        got = bytearray()

        def cli() -> None:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(head)
                while b"\r\n\r\n" not in got:
                    got.extend(s.recv(1000))
                s.sendall(body)
                while b"\r\n\r\n" not in got[got.index(b"\r\n\r\n") + 4 :]:
                    got.extend(s.recv(1000))

        rec = Recorder()
        mgr, port = server(rec)
        t = threading.Thread(target=cli, daemon=True)
        t.start()
        run_until(mgr, lambda: not t.is_alive())
        assert got.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")


class TestFlowControl:
    def test_partial_consumption_redelivers_the_rest_in_order(self, server: Any) -> None:
        data = bytes(random.Random(5).randbytes(300_000))
        body = form_body([("f", "f.bin", data)])
        got = bytearray()
        sizes: list[int] = []

        def handler(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            if ev == Ev.HTTP_PART_DATA:
                take = min(1000, len(ev_data.data))
                sizes.append(len(ev_data.data))
                got.extend(ev_data.data[:take])
                ev_data.num_data_consumed = take
            elif ev == Ev.HTTP_MULTIPART_REQUEST_END and ev_data.status == 0:
                mgpy.http_reply(c, 200, str(len(got)))

        mgr, port = server(handler, Limits(part_data_size=8192))
        cli = run_client(mgr, RawClient(port, [post_head("/u", len(body)) + body]), 30)
        assert cli.responses[0].body == str(len(data)).encode()
        assert bytes(got) == data
        # the unconsumed rest comes back first: sizes shrink by 1000 within one piece
        assert sizes[0] == 8192 and sizes[1] == 7192

    def test_reading_pauses_while_data_is_unconsumed(self, server: Any) -> None:
        data = b"z" * (48 << 20)
        body = form_body([("f", "big", data)])
        state = {"hold": True, "got": 0}

        def handler(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            if ev == Ev.HTTP_PART_DATA:
                if state["hold"]:
                    ev_data.num_data_consumed = 0
                else:
                    state["got"] += len(ev_data.data)
            elif ev == Ev.HTTP_MULTIPART_REQUEST_END and ev_data.status == 0:
                mgpy.http_reply(c, 200, "done")

        lim = Limits(max_recv_buffer=256 << 10, part_data_size=64 << 10, body_timeout=0)
        mgr, port = server(handler, lim)
        cli = RawClient(port, [post_head("/u", len(body)), body])
        # let the server run until it stops taking bytes: bytes_in stays flat
        last, flat = -1, 0
        deadline = time.monotonic() + 20
        while flat < 30 and time.monotonic() < deadline:
            mgr.poll(5)
            flat = flat + 1 if mgr.bytes_in == last else 0
            last = mgr.bytes_in
        assert flat >= 30, "the server kept reading although the handler consumed nothing"
        assert mgr.bytes_in < 24 << 20  # kernel buffers, not the 48 MiB body
        assert not cli.done()  # the client is blocked in sendall
        state["hold"] = False
        run_client(mgr, cli, timeout=60)
        assert cli.responses[0].body == b"done"
        assert state["got"] == len(data)


class TestAborts:
    def test_dropped_connection_ends_part_and_request_with_negative_status(
        self, server: Any
    ) -> None:
        body = form_body([("a", None, b"1"), ("f", "f.bin", b"x" * 100_000)])
        cut = body[: len(body) // 2]
        rec = Recorder()
        mgr, port = server(rec)
        run_client(mgr, RawClient(port, [post_head("/u", len(body)) + cut], close_after_send=True))
        run_until(mgr, lambda: rec.closed == 1)
        names = merged(rec.events)
        assert names[-2:] == [("END", "f", -1), ("REQUEST_END", -1)]
        assert ("END", "a", 0) in names

    def test_drop_between_parts_gives_request_end_only(self, server: Any) -> None:
        # part "a" is complete (its delimiter arrived), the next part's headers never do
        body = form_body([("a", None, b"1")]).replace(
            f"--{BOUNDARY}--\r\n".encode(), f"--{BOUNDARY}\r\nContent-Dispo".encode()
        )
        rec = Recorder()
        mgr, port = server(rec)
        run_client(mgr, RawClient(port, [post_head("/u", 10_000) + body], close_after_send=True))
        run_until(mgr, lambda: rec.closed == 1)
        assert rec.events[-1] == ("REQUEST_END", -1)
        assert [e for e in rec.events if e[0] == "END"] == [("END", "a", 0)]

    def test_handler_answering_early_gets_abort_events_and_client_reads_the_answer(
        self, server: Any
    ) -> None:
        big = form_body([("f", "f", b"q" * (8 << 20))])
        events: list[tuple[str, int]] = []

        def handler(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            if ev == Ev.HTTP_PART_DATA and not events:
                events.append(("answered", 0))
                mgpy.http_reply(c, 413, "too big", {"Connection": "close"})
            elif ev in (Ev.HTTP_PART_END, Ev.HTTP_MULTIPART_REQUEST_END):
                events.append((Ev(ev).name, ev_data.status))

        mgr, port = server(handler)
        # the client keeps sending the whole 8 MiB body, then reads: no reset on its way
        cli = run_client(mgr, RawClient(port, [post_head("/u", len(big)), big], read_eof=True), 30)
        assert cli.responses[0].status == 413 and cli.responses[0].body == b"too big"
        assert cli.eof
        assert events == [
            ("answered", 0),
            ("HTTP_PART_END", -1),
            ("HTTP_MULTIPART_REQUEST_END", -1),
        ]

    def test_refusal_at_multipart_request_skips_100_continue(self, server: Any) -> None:
        body = form_body([("f", "f", b"x")])

        def handler(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            if ev == Ev.HTTP_MULTIPART_REQUEST:
                mgpy.http_send_error(c, 404)

        mgr, port = server(handler)
        head = post_head("/nope", len(body), extra="Expect: 100-continue\r\n")
        raw = bytearray()

        def cli() -> None:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(head)
                while True:
                    d = s.recv(1000)
                    if not d:
                        break
                    raw.extend(d)
                    if b"404 Not Found\n" in raw:
                        s.shutdown(socket.SHUT_WR)  # never send the body

        t = threading.Thread(target=cli, daemon=True)
        t.start()
        run_until(mgr, lambda: not t.is_alive())
        assert raw.startswith(b"HTTP/1.1 404 ")
        assert b"100 Continue" not in raw


class TestMalformed:
    @pytest.mark.parametrize(
        "name, ctype, body",
        [
            ("no boundary", "multipart/form-data", form_body([("a", None, b"1")])),
            (
                "bad boundary",
                "multipart/form-data; boundary=" + "x" * 80,
                form_body([("a", None, b"1")]),
            ),
            (
                "bad part header",
                None,
                (
                    f"--{BOUNDARY}\r\nContent-Disposition form-data\r\n\r\nx\r\n--{BOUNDARY}--\r\n"
                ).encode(),
            ),
            (
                "no content-disposition",
                None,
                f"--{BOUNDARY}\r\nX: y\r\n\r\nx\r\n--{BOUNDARY}--\r\n".encode(),
            ),
            (
                "missing final boundary",
                None,
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="a"\r\n\r\nxyz'.encode(),
            ),
            ("too many parts", None, form_body([("p", None, b"1")] * 5)),
            (
                "oversized part headers",
                None,
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="a"\r\nX-Pad: {"p" * 9000}'
                f"\r\n\r\nx\r\n--{BOUNDARY}--\r\n".encode(),
            ),
            (
                "garbage after boundary",
                None,
                f"--{BOUNDARY}junk\r\n\r\nx\r\n--{BOUNDARY}--\r\n".encode(),
            ),
            ("no preamble end", None, b"x" * 20000),
        ],
    )
    def test_bad_body_gets_400_and_close_and_server_keeps_serving(
        self, server: Any, name: str, ctype: str | None, body: bytes
    ) -> None:
        rec = Recorder()
        mgr, port = server(rec, Limits(max_parts=4))
        cli = run_client(
            mgr,
            RawClient(port, [post_head("/u", len(body), ctype=ctype) + body], read_eof=True),
        )
        assert cli.responses[0].status == 400, name
        assert cli.responses[0].headers.get("connection") == "close"
        assert cli.eof
        if rec.events:  # the request had started: it ends with status -1, never 0
            assert rec.events[-1] == ("REQUEST_END", -1)
        assert rec.requests == []
        ok = form_body([("a", None, b"fine")])
        cli2 = run_client(mgr, RawClient(port, [post_head("/form", len(ok)) + ok]))
        assert cli2.responses[0].status == 200

    def test_handler_exception_closes_only_that_connection(self, server: Any) -> None:
        ends: list[int] = []

        def handler(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            if ev == Ev.HTTP_PART_BEGIN and ev_data.var_name == "boom":
                raise RuntimeError("handler bug")
            if ev == Ev.HTTP_PART_END:
                ends.append(ev_data.status)
            if ev == Ev.HTTP_MULTIPART_REQUEST_END and ev_data.status == 0:
                mgpy.http_reply(c, 200, "ok")

        mgr, port = server(handler)
        bad = form_body([("boom", None, b"1")])
        cli = run_client(mgr, RawClient(port, [post_head("/u", len(bad)) + bad], read_eof=True))
        assert cli.responses[0].status == 500 and cli.eof
        ok = form_body([("fine", None, b"1")])
        cli2 = run_client(mgr, RawClient(port, [post_head("/u", len(ok)) + ok]))
        assert cli2.responses[0].body == b"ok"
        assert ends == [-1, 0]  # the failed part was aborted, so cleanup code runs


def test_a_form_larger_than_max_body_streams_through(server: Any) -> None:
    """A 20 MiB form goes through with max_body 64 KiB: multipart is streamed, not buffered."""
    data = b"m" * (20 << 20)
    body = form_body([("f", "f", data)])
    total = {"n": 0}

    def handler(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.HTTP_PART_DATA:
            total["n"] += len(ev_data.data)
            assert not c.flags & F.DELETE_CHUNK
        elif ev == Ev.HTTP_MULTIPART_REQUEST_END and ev_data.status == 0:
            mgpy.http_reply(c, 200, str(total["n"]))

    mgr, port = server(handler, Limits(max_body=64 << 10))
    cli = run_client(mgr, RawClient(port, [post_head("/u", len(body)), body]), 60)
    assert cli.responses[0].body == str(len(data)).encode()

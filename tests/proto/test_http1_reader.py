"""HttpReader on valid input: every case is fed whole, one byte per call and
with the next message appended, and all three must give the same events."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pytest

from mgpy.errors import LocalProtocolError, RemoteProtocolError
from mgpy.events import HttpMessage
from mgpy.limits import Limits
from mgpy.proto.http1 import END, NEED_DATA, HttpReader

LIMITS = Limits()
NEXT_REQUEST = b"GET /next HTTP/1.1\r\nHost: next.example\r\n\r\n"
NEXT_RESPONSE = b"HTTP/1.1 204 No Content\r\nX-Next: 1\r\n\r\n"


def drive(
    side: str,
    pieces: Iterable[bytes],
    methods: Sequence[str] = (),
    limits: Limits = LIMITS,
    eof: bool = True,
) -> tuple[list[object], bytearray]:
    """Feed ``pieces`` the way the I/O layer does; return the events and what is left.

    Bytes are appended to one bytearray, ``consumed`` is deleted from its front
    after every event, consecutive body pieces are merged.  On the client side
    ``expect_response`` is called before each response with the next of
    ``methods`` (GET when they run out); a 101 or a 2xx to CONNECT stops it.
    """
    reader = HttpReader("client" if side == "client" else "server", limits)
    todo = list(methods)
    current = ["GET"]

    def expect() -> None:
        current[0] = todo.pop(0) if todo else "GET"
        reader.expect_response(current[0])

    if side == "client":
        expect()
    buf = bytearray()
    events: list[object] = []
    switched = False

    def pump(at_eof: bool) -> None:
        nonlocal switched
        while not switched:
            ev, n = reader.next_event(buf, at_eof)
            assert 0 <= n <= len(buf)
            if ev is NEED_DATA:
                assert n == 0, "NEED_DATA must not consume"
                return
            del buf[:n]
            if isinstance(ev, (bytes, bytearray, memoryview)):
                assert type(ev) is bytes and len(ev) > 0, "body pieces are non-empty bytes"
                assert reader.in_body
                if events and isinstance(events[-1], bytes):
                    events[-1] += ev
                else:
                    events.append(ev)
            elif ev is END:
                assert not reader.in_body
                events.append(END)
                if side == "client":
                    expect()
            else:
                assert isinstance(ev, HttpMessage)
                events.append(ev)
                if side == "client":
                    if ev.resp_code == 101 or (current[0] == "CONNECT" and ev.resp_code < 300):
                        switched = True
                    elif not reader.in_body:
                        expect()

    for piece in pieces:
        buf += piece
        pump(False)
    if eof:
        pump(True)
    return events, buf


def snapshot(events: list[object]) -> list[object]:
    """Comparable form of events: every attribute of each HttpMessage."""
    out: list[object] = []
    for ev in events:
        if isinstance(ev, HttpMessage):
            out.append(tuple(getattr(ev, k) for k in HttpMessage.__slots__))
        else:
            out.append(ev)
    return out


def parse3(
    side: str,
    data: bytes,
    methods: Sequence[str] = (),
    trailing: bool = True,
    limits: Limits = LIMITS,
) -> list[object]:
    """Parse ``data`` whole, byte by byte and with a trailing message; return the events."""
    whole, rest = drive(side, [data], methods, limits)
    assert rest == b""
    bytewise, rest = drive(side, [data[i : i + 1] for i in range(len(data))], methods, limits)
    assert rest == b""
    assert snapshot(bytewise) == snapshot(whole)
    if trailing:
        nxt = NEXT_RESPONSE if side == "client" else NEXT_REQUEST
        alone, _ = drive(side, [nxt], (), limits)
        both, rest = drive(side, [data + nxt], [*methods, "GET"], limits)
        assert rest == b""
        assert snapshot(both) == snapshot(whole) + snapshot(alone)
        both_bytewise, _ = drive(side, [bytes([b]) for b in data + nxt], [*methods, "GET"], limits)
        assert snapshot(both_bytewise) == snapshot(both)
    return whole


def head(events: list[object], i: int = 0) -> HttpMessage:
    ev = events[i]
    assert isinstance(ev, HttpMessage)
    return ev


class TestRequests:
    def test_server_receives_minimal_get(self) -> None:
        data = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
        events = parse3("server", data)
        assert len(events) == 1
        hm = head(events)
        assert (hm.method, hm.uri, hm.query_string, hm.proto) == ("GET", "/", "", "HTTP/1.1")
        assert hm.headers == [("Host", "127.0.0.1:8080")]
        assert hm.head == data and hm.body == b"" and hm.message == data
        assert hm.keep_alive and hm.content_length == 0 and not hm.chunked
        assert hm.upgrade == "" and not hm.expect_continue and hm.resp_code == 0

    def test_message_has_every_slot_set(self) -> None:
        hm = head(parse3("server", b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", trailing=False))
        for name in HttpMessage.__slots__:
            getattr(hm, name)  # AttributeError if the fast constructor missed one

    def test_server_receives_query_and_raw_path(self) -> None:
        data = b"GET /a%20b/c?x=1&y=%2F?z HTTP/1.1\r\nHost: h\r\n\r\n"
        hm = head(parse3("server", data))
        assert hm.uri == "/a%20b/c"
        assert hm.query_string == "x=1&y=%2F?z"

    def test_server_receives_head_request(self) -> None:
        hm = head(parse3("server", b"HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n"))
        assert hm.method == "HEAD" and hm.content_length == 0

    def test_server_receives_post_with_content_length(self) -> None:
        data = b"POST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world"
        events = parse3("server", data)
        assert events[1:] == [b"hello world", END]
        hm = head(events)
        assert hm.content_length == 11 and not hm.chunked and hm.body == b""

    def test_server_receives_zero_content_length_as_no_body(self) -> None:
        events = parse3("server", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")
        assert len(events) == 1 and head(events).content_length == 0

    def test_server_accepts_identical_repeated_content_length(self) -> None:
        data = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\ncontent-length: 3\r\n\r\nabc"
        assert parse3("server", data)[1:] == [b"abc", END]

    def test_server_receives_chunked_with_extensions_and_trailers(self) -> None:
        data = (
            b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n"
            b"5;name=value;flag\r\nhello\r\n"
            b'6 ; q = "a \\" b"\r\n world\r\n'
            b"A\r\n0123456789\r\n"
            b"0;last\r\nX-Trailer: yes\r\nX-Other:  1 \r\n\r\n"
        )
        events = parse3("server", data)
        assert events[1:] == [b"hello world0123456789", END]
        hm = head(events)
        assert hm.chunked and hm.content_length == -1 and hm.keep_alive

    def test_server_receives_chunked_without_trailers(self) -> None:
        data = (
            b"PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        )
        assert parse3("server", data)[1:] == [b"abc", END]

    def test_server_receives_empty_chunked_body(self) -> None:
        data = b"PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        assert parse3("server", data)[1:] == [END]

    def test_server_receives_pipelined_requests(self) -> None:
        data = (
            b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
            b"POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nab"
            b"POST /3 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\ncd\r\n0\r\n\r\n"
            b"GET /4 HTTP/1.1\r\nHost: h\r\n\r\n"
        )
        events = parse3("server", data)
        assert [head(events, i).uri for i in (0, 1, 4, 7)] == ["/1", "/2", "/3", "/4"]
        assert events[2:4] == [b"ab", END]
        assert events[5:7] == [b"cd", END]

    def test_server_ignores_crlf_after_a_body(self) -> None:
        data = (
            b"POST /1 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nab\r\n"
            b"GET /2 HTTP/1.1\r\nHost: h\r\n\r\n"
        )
        events = parse3("server", data)
        assert events[1:3] == [b"ab", END] and head(events, 3).uri == "/2"

    def test_server_receives_request_from_immutable_bytes(self) -> None:
        reader = HttpReader("server", LIMITS)
        data = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
        ev, n = reader.next_event(data)
        assert isinstance(ev, HttpMessage) and reader.in_body
        assert reader.next_event(data[n:]) == (b"abc", 3)
        assert reader.next_event(b"") == (END, 0)

    def test_server_receives_http10_without_keep_alive(self) -> None:
        hm = head(parse3("server", b"GET / HTTP/1.0\r\n\r\n"))
        assert hm.proto == "HTTP/1.0" and not hm.keep_alive and hm.headers == []

    def test_server_receives_http10_with_keep_alive(self) -> None:
        data = b"GET / HTTP/1.0\r\nHost: h\r\nConnection: Keep-Alive\r\n\r\n"
        hm = head(parse3("server", data))
        assert hm.proto == "HTTP/1.0" and hm.keep_alive

    def test_server_receives_connection_close(self) -> None:
        data = b"GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, Close\r\n\r\n"
        assert not head(parse3("server", data)).keep_alive

    def test_server_receives_expect_100_continue(self) -> None:
        data = (
            b"PUT /f HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 4\r\n\r\nbody"
        )
        events = parse3("server", data)
        assert head(events).expect_continue
        assert events[1:] == [b"body", END]

    def test_server_ignores_expect_continue_from_http10(self) -> None:
        data = b"PUT /f HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx"
        assert not head(parse3("server", data)).expect_continue

    def test_server_receives_websocket_upgrade(self) -> None:
        data = (
            b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n"
            b"Upgrade: WebSocket\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        hm = head(parse3("server", data))
        assert hm.upgrade == "websocket" and hm.keep_alive

    def test_server_ignores_upgrade_without_connection_token(self) -> None:
        data = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n"
        assert head(parse3("server", data)).upgrade == ""

    def test_server_receives_absolute_form(self) -> None:
        data = b"GET http://example.com:8080/a/b?x=1 HTTP/1.1\r\nHost: other\r\n\r\n"
        hm = head(parse3("server", data))
        assert (hm.uri, hm.query_string) == ("/a/b", "x=1")
        assert hm.headers == [("Host", "other")]

    def test_server_receives_absolute_form_without_path(self) -> None:
        hm = head(parse3("server", b"GET HTTPS://[::1]:443 HTTP/1.1\r\nHost: h\r\n\r\n"))
        assert (hm.uri, hm.query_string) == ("/", "")

    def test_server_receives_options_asterisk(self) -> None:
        hm = head(parse3("server", b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"))
        assert (hm.method, hm.uri) == ("OPTIONS", "*")

    def test_server_receives_connect_authority_form(self) -> None:
        data = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
        hm = head(parse3("server", data))
        assert (hm.method, hm.uri, hm.query_string) == ("CONNECT", "example.com:443", "")

    def test_server_ignores_leading_empty_lines(self) -> None:
        request = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
        hm = head(parse3("server", b"\r\n\r\n" + request))
        assert hm.head == request

    def test_server_keeps_obs_text_and_strips_ows(self) -> None:
        data = (
            b"GET / HTTP/1.1\r\nHost: h\r\nX-Name: caf\xe9 \xff\r\n"
            b"X-Pad: \t a  b \t \r\nX-Empty:\r\nX-Spaces:   \r\nx-odd_name!#: v:w\r\n\r\n"
        )
        hm = head(parse3("server", data))
        assert hm.headers == [
            ("Host", "h"),
            ("X-Name", "caf\xe9 \xff"),
            ("X-Pad", "a  b"),
            ("X-Empty", ""),
            ("X-Spaces", ""),
            ("x-odd_name!#", "v:w"),
        ]
        assert hm.header("x-name") == "café ÿ"

    def test_server_accepts_host_forms(self) -> None:
        for host in (b"", b"example.com", b"[::1]:80", b"a-b.c_d~e%41:", b"x:8080"):
            data = b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"
            assert head(parse3("server", data, trailing=False)).header("host") == host.decode()

    def test_server_streams_a_large_body_with_bounded_pieces(self) -> None:
        body = bytes(range(256)) * 400
        data = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        reader = HttpReader("server", LIMITS)
        buf = bytearray()
        got = []
        for i in range(0, len(data), 1000):
            buf += data[i : i + 1000]
            while True:
                ev, n = reader.next_event(buf)
                del buf[:n]
                if ev is NEED_DATA:
                    break
                if isinstance(ev, bytes):
                    assert len(ev) <= 1000
                    got.append(ev)
        assert b"".join(got) == body and not reader.in_body

    def test_server_streams_large_chunks_with_bounded_pieces(self) -> None:
        body = b"x" * 50000
        data = (
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n" % len(body)
            + body
            + b"\r\n0\r\n\r\n"
        )
        pieces = [data[i : i + 4096] for i in range(0, len(data), 4096)]
        events, _ = drive("server", pieces)
        assert events[1:] == [body, END]
        reader = HttpReader("server", LIMITS)
        buf = bytearray(pieces[0])
        assert isinstance(reader.next_event(buf)[0], HttpMessage)


class TestResponses:
    def test_client_receives_content_length_response(self) -> None:
        data = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
        events = parse3("client", data)
        hm = head(events)
        assert (hm.resp_code, hm.resp_status_msg, hm.proto) == (200, "OK", "HTTP/1.1")
        assert hm.content_length == 5 and hm.keep_alive and hm.method == ""
        assert events[1:] == [b"hello", END]

    def test_client_receives_chunked_response(self) -> None:
        data = (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\nExpires: never\r\n\r\n"
        )
        events = parse3("client", data)
        assert head(events).chunked and events[1:] == [b"Wikipedia", END]

    def test_client_reads_body_until_close(self) -> None:
        data = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of this is body"
        events = parse3("client", data, trailing=False)
        hm = head(events)
        assert hm.content_length == -1 and not hm.keep_alive
        assert events[1:] == [b"all of this is body", END]

    def test_client_reads_empty_body_until_close(self) -> None:
        events = parse3("client", b"HTTP/1.0 200 OK\r\n\r\n", trailing=False)
        assert events[1:] == [END]

    def test_client_receives_head_response_without_body(self) -> None:
        data = b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"
        events = parse3("client", data, methods=["HEAD"])
        assert len(events) == 1 and head(events).content_length == 0

    @pytest.mark.parametrize("code", [204, 304])
    def test_client_receives_bodyless_status(self, code: int) -> None:
        data = b"HTTP/1.1 %d X\r\nContent-Length: 10\r\n\r\n" % code
        events = parse3("client", data)
        assert len(events) == 1 and head(events).resp_code == code

    def test_client_skips_100_continue(self) -> None:
        data = (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        )
        events = parse3("client", data)
        assert head(events).resp_code == 200 and events[1:] == [b"ok", END]
        assert head(events).head.startswith(b"HTTP/1.1 200")

    def test_client_stops_at_101(self) -> None:
        data = (
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        )
        events = parse3("client", data, trailing=False)
        hm = head(events)
        assert hm.resp_code == 101 and hm.upgrade == "websocket" and len(events) == 1
        reader = HttpReader("client", LIMITS)
        buf = bytearray(data + b"\x81\x02hi")
        ev, n = reader.next_event(buf)
        del buf[:n]
        assert isinstance(ev, HttpMessage) and buf == b"\x81\x02hi"
        with pytest.raises(LocalProtocolError):
            reader.next_event(buf)

    def test_client_stops_after_connect_success(self) -> None:
        events, rest = drive(
            "client", [b"HTTP/1.1 200 Connection established\r\n\r\nTLS"], ["CONNECT"]
        )
        assert head(events).resp_code == 200 and rest == b"TLS"

    def test_client_receives_http10_keep_alive_response(self) -> None:
        data = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx"
        events = parse3("client", data)
        assert head(events).keep_alive and head(events).proto == "HTTP/1.0"

    def test_client_receives_connection_close_response(self) -> None:
        data = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx"
        assert not head(parse3("client", data)).keep_alive

    @pytest.mark.parametrize(
        "line", [b"HTTP/1.1 200", b"HTTP/1.1 200 ", b"HTTP/1.1 404 Not \tFound\xe9"]
    )
    def test_client_accepts_missing_or_odd_reason(self, line: bytes) -> None:
        events = parse3("client", line + b"\r\nContent-Length: 0\r\n\r\n")
        assert head(events).resp_status_msg == line[13:].decode("latin-1")

    def test_client_receives_pipelined_responses(self) -> None:
        data = (
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
            b"HTTP/1.1 304 Not Modified\r\n\r\n"
        )
        events = parse3("client", data, methods=["HEAD", "GET", "GET"])
        assert [type(e).__name__ for e in events] == [
            "HttpMessage",
            "HttpMessage",
            "bytes",
            "Sentinel",
            "HttpMessage",
        ]
        assert events[2] == b"abc"


class TestEof:
    def test_eof_at_message_boundary_is_quiet(self) -> None:
        reader = HttpReader("server", LIMITS)
        assert reader.next_event(bytearray(), eof=True) == (NEED_DATA, 0)
        assert reader.next_event(bytearray(b"\r\n"), eof=True) == (NEED_DATA, 0)

    @pytest.mark.parametrize(
        "data",
        [
            b"GET / HTTP/1.1\r\nHost: h\r\n",
            b"G",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nabc",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y\r\n",
        ],
    )
    def test_eof_mid_message_is_an_error(self, data: bytes) -> None:
        for pieces in ([data], [bytes([b]) for b in data]):
            with pytest.raises(RemoteProtocolError) as info:
                drive("server", pieces)
            assert info.value.status == 400

    def test_eof_after_interim_response_is_an_error(self) -> None:
        with pytest.raises(RemoteProtocolError):
            drive("client", [b"HTTP/1.1 100 Continue\r\n\r\n"])

    def test_eof_mid_content_length_response_is_an_error(self) -> None:
        with pytest.raises(RemoteProtocolError):
            drive("client", [b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"])


class TestScanCost:
    def test_head_arriving_byte_by_byte_is_scanned_once(self) -> None:
        class CountingBuffer(bytearray):
            scanned = 0

            def find(self, sub: object, start: object = None, *args: object) -> int:  # type: ignore[override]
                CountingBuffer.scanned += len(self) - (start if isinstance(start, int) else 0)
                return super().find(sub, start, *args)  # type: ignore[arg-type]

        data = b"GET / HTTP/1.1\r\nHost: h\r\nX-Filler: " + b"a" * 4000 + b"\r\n"
        data += b"".join(b"X-%d: %s\r\n" % (i, b"b" * 50) for i in range(60)) + b"\r\n"
        reader = HttpReader("server", LIMITS)
        buf = CountingBuffer()
        for i in range(len(data) - 1):
            buf.append(data[i])
            assert reader.next_event(buf) == (NEED_DATA, 0)
        buf.append(data[-1])
        ev, n = reader.next_event(buf)
        assert isinstance(ev, HttpMessage) and n == len(data) and len(ev.headers) == 62
        assert CountingBuffer.scanned < 10 * len(data)

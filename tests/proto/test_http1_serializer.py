"""The HTTP/1.1 serializer: exact bytes, round trips through HttpReader, and
no way to split a message with a header name, value or reason phrase."""

from __future__ import annotations

import pytest

from mgpy.errors import LocalProtocolError
from mgpy.proto.http1 import (
    END,
    check_header,
    encode_chunk,
    reason_phrase,
    request_head,
    response_head,
    status_line,
)

from .test_http1_reader import drive, head


class TestStatusLine:
    def test_reason_phrases(self) -> None:
        assert reason_phrase(200) == "OK"
        assert reason_phrase(404) == "Not Found"
        assert reason_phrase(413) == "Content Too Large"
        assert reason_phrase(431) == "Request Header Fields Too Large"
        assert reason_phrase(299) == ""

    def test_status_line_is_cached(self) -> None:
        assert status_line(200) == b"HTTP/1.1 200 OK\r\n"
        assert status_line(200) is status_line(200)
        assert status_line(505) == b"HTTP/1.1 505 HTTP Version Not Supported\r\n"
        assert status_line(299) == b"HTTP/1.1 299 \r\n"

    @pytest.mark.parametrize("code", [0, 99, 600, 1000, -200])
    def test_status_line_refuses_invalid_codes(self, code: int) -> None:
        with pytest.raises(LocalProtocolError):
            status_line(code)
        with pytest.raises(LocalProtocolError):
            response_head(code, [], reason="X")


class TestResponseHead:
    def test_response_head_is_exactly_what_was_asked(self) -> None:
        out = response_head(200, [("Content-Type", "text/plain"), ("Content-Length", "5")])
        assert out == b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n"
        assert response_head(204, []) == b"HTTP/1.1 204 No Content\r\n\r\n"

    def test_response_head_with_reason_and_http10(self) -> None:
        out = response_head(404, [("X-A", "caf\xe9\tb")], reason="Nope", proto="HTTP/1.0")
        assert out == b"HTTP/1.0 404 Nope\r\nX-A: caf\xe9\tb\r\n\r\n"
        assert response_head(404, [], reason="") == b"HTTP/1.1 404 \r\n\r\n"

    def test_response_head_accepts_any_iterable_of_pairs(self) -> None:
        expected = b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n"
        assert response_head(200, {"A": "1", "B": "2"}.items()) == expected
        assert response_head(200, (p for p in [("A", "1"), ("B", "2")])) == expected

    def test_response_round_trips_through_the_reader(self) -> None:
        headers = [("Content-Type", "text/html"), ("Transfer-Encoding", "chunked"), ("X-E", "")]
        data = (
            response_head(200, headers)
            + encode_chunk(b"<p>")
            + encode_chunk(b"hi")
            + encode_chunk(b"")
        )
        events, rest = drive("client", [data])
        hm = head(events)
        assert hm.resp_code == 200 and hm.resp_status_msg == "OK" and hm.headers == headers
        assert events[1:] == [b"<p>hi", END] and rest == b""

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("X-A", "x\r\nSet-Cookie: evil=1"),
            ("X-A", "x\nSet-Cookie: evil=1"),
            ("X-A", "x\rSet-Cookie: evil=1"),
            ("X-A", "x\x00y"),
            ("X-A", "x\x7f"),
            ("X-A", "\x1b[31m"),
            ("X-A", "\u2028"),
            ("X-A: b\r\nEvil", "1"),
            ("X-A: b", "1"),
            ("X A", "1"),
            ("", "1"),
            ("X-\xe9", "1"),
            ("a\x00b", "c"),
            ("X-A", "b\x00Evil\x00c"),
        ],
    )
    def test_response_head_refuses_splitting(self, name: str, value: str) -> None:
        with pytest.raises(LocalProtocolError):
            check_header(name, value)
        with pytest.raises(LocalProtocolError):
            response_head(200, [("Content-Length", "0"), (name, value)])
        with pytest.raises(LocalProtocolError):
            request_head("GET", "/", [(name, value), ("Host", "h")])

    @pytest.mark.parametrize("reason", ["OK\r\nSet-Cookie: x", "a\nb", "\x00"])
    def test_response_head_refuses_bad_reason(self, reason: str) -> None:
        with pytest.raises(LocalProtocolError):
            response_head(200, [], reason=reason)

    def test_response_head_refuses_unknown_protocol(self) -> None:
        with pytest.raises(LocalProtocolError):
            response_head(200, [], proto="HTTP/2")

    def test_check_header_accepts_valid_fields(self) -> None:
        check_header("X-Custom_1!#$%&'*+.^`|~", 'v\t a \x80\xff "q" ; = , : /')
        check_header("A", "")


class TestRequestHead:
    def test_request_round_trips_through_the_reader(self) -> None:
        data = request_head("POST", "/up?x=1", [("Host", "example.com"), ("Content-Length", "3")])
        assert data == b"POST /up?x=1 HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\n\r\n"
        events, _ = drive("server", [data + b"abc"])
        hm = head(events)
        assert (hm.method, hm.uri, hm.query_string) == ("POST", "/up", "x=1")
        assert events[1:] == [b"abc", END]

    @pytest.mark.parametrize(
        ("method", "target"),
        [
            ("G T", "/"),
            ("GET\r\n", "/"),
            ("", "/"),
            ("GET", "/a b"),
            ("GET", "/\r\nX: y"),
            ("GET", ""),
            ("GET", "/#frag"),
            ("GET", "/caf\xe9"),
        ],
    )
    def test_request_head_refuses_bad_request_line(self, method: str, target: str) -> None:
        with pytest.raises(LocalProtocolError):
            request_head(method, target, [("Host", "h")])


class TestChunks:
    def test_encode_chunk(self) -> None:
        assert encode_chunk(b"") == b"0\r\n\r\n"
        assert encode_chunk(b"hello") == b"5\r\nhello\r\n"
        big = b"z" * 70000
        assert encode_chunk(big) == b"11170\r\n" + big + b"\r\n"

    def test_chunks_round_trip(self) -> None:
        parts = [b"a", b"\r\n", b"0\r\n\r\n", bytes(range(256)) * 40]
        data = request_head("PUT", "/", [("Host", "h"), ("Transfer-Encoding", "chunked")])
        data += b"".join(encode_chunk(p) for p in parts) + encode_chunk(b"")
        events, rest = drive("server", [data[i : i + 7] for i in range(0, len(data), 7)])
        assert events[1:] == [b"".join(parts), END] and rest == b""

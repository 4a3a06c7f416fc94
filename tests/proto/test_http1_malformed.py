"""HttpReader on malformed and oversized input: the right status, raised as
soon as the violation is visible, and a dead reader afterwards."""

from __future__ import annotations

import time

import pytest

from mgpy.errors import LimitExceeded, RemoteProtocolError
from mgpy.events import HttpMessage
from mgpy.limits import Limits
from mgpy.proto.http1 import NEED_DATA, HttpReader

from .test_http1_reader import LIMITS, drive

H = b"Host: h"  # a field line for req()
HL = H + b"\r\n"  # the same with its CRLF


def req(first: bytes, *fields: bytes, body: bytes = b"") -> bytes:
    """A request with the given request line and raw field lines (each without CRLF)."""
    return first + b"\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n" + body


CHUNKED = b"Transfer-Encoding: chunked"

# (request bytes, expected status); each row breaks exactly one rule
MALFORMED: list[tuple[str, bytes, int]] = [
    # --- framing: RFC 9112 6.1, 6.3 -----------------------------------------
    (
        "cl_and_te",
        req(b"POST / HTTP/1.1", H, b"Content-Length: 3", CHUNKED, body=b"0\r\n\r\n"),
        400,
    ),
    (
        "te_and_cl",
        req(b"POST / HTTP/1.1", H, CHUNKED, b"Content-Length: 3", body=b"0\r\n\r\n"),
        400,
    ),
    ("cl_plus_sign", req(b"POST / HTTP/1.1", H, b"Content-Length: +3", body=b"abc"), 400),
    ("cl_minus_sign", req(b"POST / HTTP/1.1", H, b"Content-Length: -3"), 400),
    ("cl_inner_space", req(b"POST / HTTP/1.1", H, b"Content-Length: 1 2"), 400),
    ("cl_hex", req(b"POST / HTTP/1.1", H, b"Content-Length: 0x10"), 400),
    ("cl_empty", req(b"POST / HTTP/1.1", H, b"Content-Length:"), 400),
    ("cl_19_digits", req(b"POST / HTTP/1.1", H, b"Content-Length: 1000000000000000000"), 400),
    (
        "cl_conflicting_headers",
        req(b"POST / HTTP/1.1", H, b"Content-Length: 3", b"Content-Length: 4"),
        400,
    ),
    ("cl_conflicting_list", req(b"POST / HTTP/1.1", H, b"Content-Length: 3, 4"), 400),
    ("cl_list_empty_member", req(b"POST / HTTP/1.1", H, b"Content-Length: 3,,3"), 400),
    ("cl_unicode_digit", req(b"POST / HTTP/1.1", H, b"Content-Length: \xb2"), 400),
    # RFC 9112 6.3 (4): chunked not the final coding -> 400; 6.1: a well-formed list
    # ending in chunked with a coding mgpy does not implement first -> 501
    ("te_gzip", req(b"POST / HTTP/1.1", H, b"Transfer-Encoding: gzip"), 400),
    ("te_identity", req(b"POST / HTTP/1.1", H, b"Transfer-Encoding: identity"), 400),
    ("te_chunked_not_last", req(b"POST / HTTP/1.1", H, b"Transfer-Encoding: chunked, gzip"), 400),
    ("te_gzip_chunked", req(b"POST / HTTP/1.1", H, b"Transfer-Encoding: gzip, chunked"), 501),
    (
        "te_two_codings_chunked",
        req(b"POST / HTTP/1.1", H, b"Transfer-Encoding: gzip;q=1, deflate, chunked"),
        501,
    ),
    ("te_bad_coding_chunked", req(b"POST / HTTP/1.1", H, b"Transfer-Encoding: g/z, chunked"), 400),
    ("te_chunked_twice", req(b"POST / HTTP/1.1", H, b"Transfer-Encoding: chunked, chunked"), 400),
    ("te_chunked_two_fields", req(b"POST / HTTP/1.1", H, CHUNKED, CHUNKED), 400),
    (
        "te_chunked_then_identity_field",
        req(b"POST / HTTP/1.1", H, CHUNKED, b"Transfer-Encoding: identity"),
        400,
    ),
    ("te_chunked_with_param", req(b"POST / HTTP/1.1", H, b"Transfer-Encoding: chunked;a=b"), 400),
    ("te_empty", req(b"POST / HTTP/1.1", H, b"Transfer-Encoding: "), 400),
    ("te_in_http10", req(b"POST / HTTP/1.0", H, CHUNKED, body=b"0\r\n\r\n"), 400),
    ("te_chunkedx", req(b"POST / HTTP/1.1", H, b"Transfer-Encoding: xchunked"), 400),
    # RFC 9110 9.3.6: CONNECT has no content
    (
        "connect_content_length",
        req(b"CONNECT h:443 HTTP/1.1", b"Host: h:443", b"Content-Length: 5"),
        400,
    ),
    (
        "connect_content_length_0",
        req(b"CONNECT h:443 HTTP/1.1", b"Host: h:443", b"Content-Length: 0"),
        400,
    ),
    ("connect_chunked", req(b"CONNECT h:443 HTTP/1.1", b"Host: h:443", CHUNKED), 400),
    # --- chunked body: RFC 9112 7.1 ----------------------------------------------
    ("chunk_size_not_hex", req(b"POST / HTTP/1.1", H, CHUNKED, body=b"g\r\n"), 400),
    ("chunk_size_empty", req(b"POST / HTTP/1.1", H, CHUNKED, body=b"\r\nabc"), 400),
    ("chunk_size_0x", req(b"POST / HTTP/1.1", H, CHUNKED, body=b"0x5\r\nhello\r\n"), 400),
    ("chunk_size_negative", req(b"POST / HTTP/1.1", H, CHUNKED, body=b"-5\r\n"), 400),
    ("chunk_size_17_digits", req(b"POST / HTTP/1.1", H, CHUNKED, body=b"1" * 17 + b"\r\n"), 400),
    ("chunk_size_space", req(b"POST / HTTP/1.1", H, CHUNKED, body=b" 5\r\nhello\r\n"), 400),
    (
        "chunk_size_trailing_space",
        req(b"POST / HTTP/1.1", H, CHUNKED, body=b"5 \r\nhello\r\n"),
        400,
    ),
    ("chunk_size_bare_lf", req(b"POST / HTTP/1.1", H, CHUNKED, body=b"5\nhello\r\n"), 400),
    ("chunk_ext_bad_name", req(b"POST / HTTP/1.1", H, CHUNKED, body=b"5;a b\r\nhello\r\n"), 400),
    (
        "chunk_ext_unclosed_quote",
        req(b"POST / HTTP/1.1", H, CHUNKED, body=b'5;a="b\r\nhello\r\n'),
        400,
    ),
    ("chunk_ext_ctl", req(b"POST / HTTP/1.1", H, CHUNKED, body=b"5;a=\x01\r\nhello\r\n"), 400),
    (
        "chunk_data_no_crlf",
        req(b"POST / HTTP/1.1", H, CHUNKED, body=b"5\r\nhelloX\r\n0\r\n\r\n"),
        400,
    ),
    ("chunk_data_lf_only", req(b"POST / HTTP/1.1", H, CHUNKED, body=b"5\r\nhello\n0\r\n\r\n"), 400),
    ("chunk_data_too_long", req(b"POST / HTTP/1.1", H, CHUNKED, body=b"3\r\nhello\r\n"), 400),
    (
        "trailer_bad_field",
        req(b"POST / HTTP/1.1", H, CHUNKED, body=b"0\r\nbad trailer\r\n\r\n"),
        400,
    ),
    ("trailer_obs_fold", req(b"POST / HTTP/1.1", H, CHUNKED, body=b"0\r\nA: b\r\n c\r\n\r\n"), 400),
    # --- line endings and field syntax: RFC 9112 2.2, 5.1, 5.2; RFC 9110 5.5 ------
    ("bare_lf_after_request_line", b"GET / HTTP/1.1\nHost: h\r\n\r\n", 400),
    ("bare_lf_everywhere", b"GET / HTTP/1.1\nHost: h\n\n", 400),
    ("bare_lf_in_field", req(b"GET / HTTP/1.1", H, b"A: b\nC: d"), 400),
    ("bare_cr_in_field", req(b"GET / HTTP/1.1", H, b"A: b\rC: d"), 400),
    ("bare_cr_request_line", b"GET / HTTP/1.1\rHost: h\r\n\r\n", 400),
    ("obs_fold", req(b"GET / HTTP/1.1", H, b"A: b", b" c"), 400),
    ("obs_fold_tab", req(b"GET / HTTP/1.1", H, b"A: b", b"\tc"), 400),
    ("first_field_folded", req(b"GET / HTTP/1.1", b" Host: h"), 400),
    ("space_before_colon", req(b"GET / HTTP/1.1", b"Host : h"), 400),
    ("tab_before_colon", req(b"GET / HTTP/1.1", H, b"Content-Length\t: 0"), 400),
    ("nul_in_value", req(b"GET / HTTP/1.1", H, b"A: b\x00c"), 400),
    ("ctl_in_value", req(b"GET / HTTP/1.1", H, b"A: b\x1bc"), 400),
    ("del_in_value", req(b"GET / HTTP/1.1", H, b"A: b\x7fc"), 400),
    ("vt_in_value", req(b"GET / HTTP/1.1", H, b"A: \x0b"), 400),
    ("no_colon", req(b"GET / HTTP/1.1", H, b"NoColon"), 400),
    ("empty_name", req(b"GET / HTTP/1.1", H, b": value"), 400),
    ("non_token_name", req(b"GET / HTTP/1.1", H, b"A(b): c"), 400),
    ("non_token_name_slash", req(b"GET / HTTP/1.1", H, b"A/b: c"), 400),
    ("obs_text_name", req(b"GET / HTTP/1.1", H, b"X-\xe9: c"), 400),
    ("too_many_empty_lines", b"\r\n" * 9 + req(b"GET / HTTP/1.1", H), 400),
    # --- request line: RFC 9112 3 ----------------------------------------------------
    ("non_token_method", req(b"G(T / HTTP/1.1", H), 400),
    ("method_with_colon", req(b"GE:T / HTTP/1.1", H), 400),
    ("leading_space", req(b" GET / HTTP/1.1", H), 400),
    ("double_space", req(b"GET  / HTTP/1.1", H), 400),
    ("tab_separator", req(b"GET\t/ HTTP/1.1", H), 400),
    ("trailing_space", req(b"GET / HTTP/1.1 ", H), 400),
    ("missing_version", req(b"GET /", H), 400),
    ("http2_version", req(b"GET / HTTP/2.0", H), 505),
    ("http12_version", req(b"GET / HTTP/1.2", H), 505),
    ("http09_version", req(b"GET / HTTP/0.9", H), 505),
    ("version_letters", req(b"GET / HTTP/x", H), 400),
    ("version_lower", req(b"GET / http/1.1", H), 400),
    ("version_two_digits", req(b"GET / HTTP/1.10", H), 400),
    ("fragment_in_target", req(b"GET /a#frag HTTP/1.1", H), 400),
    ("ctl_in_target", req(b"GET /a\x01b HTTP/1.1", H), 400),
    ("del_in_target", req(b"GET /a\x7fb HTTP/1.1", H), 400),
    ("obs_text_in_target", req(b"GET /caf\xe9 HTTP/1.1", H), 400),
    ("space_in_target", req(b"GET /a b HTTP/1.1", H), 400),
    ("relative_target", req(b"GET a/b HTTP/1.1", H), 400),
    ("asterisk_not_options", req(b"GET * HTTP/1.1", H), 400),
    ("authority_not_connect", req(b"GET example.com:80 HTTP/1.1", H), 400),
    ("connect_origin_form", req(b"CONNECT / HTTP/1.1", H), 400),
    ("connect_no_port", req(b"CONNECT example.com HTTP/1.1", H), 400),
    ("absolute_empty_host", req(b"GET http:///a HTTP/1.1", H), 400),
    ("absolute_userinfo", req(b"GET http://user@example.com/ HTTP/1.1", H), 400),
    ("absolute_other_scheme", req(b"GET ftp://example.com/ HTTP/1.1", H), 400),
    ("tls_client_hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),
    # --- Host: RFC 9112 3.2 ------------------------------------------------------------
    ("missing_host", req(b"GET / HTTP/1.1", b"Accept: */*"), 400),
    ("two_hosts", req(b"GET / HTTP/1.1", H, b"Host: h"), 400),
    ("two_hosts_http10", req(b"GET / HTTP/1.0", H, b"host: other"), 400),
    ("host_with_space", req(b"GET / HTTP/1.1", b"Host: a b"), 400),
    ("host_with_slash", req(b"GET / HTTP/1.1", b"Host: a/b"), 400),
    ("host_with_at", req(b"GET / HTTP/1.1", b"Host: user@a"), 400),
    ("host_bad_port", req(b"GET / HTTP/1.1", b"Host: a:8x"), 400),
    ("host_bad_pct", req(b"GET / HTTP/1.1", b"Host: a%zz"), 400),
    ("host_obs_text", req(b"GET / HTTP/1.1", b"Host: caf\xe9"), 400),
    ("host_unclosed_bracket", req(b"GET / HTTP/1.1", b"Host: [::1"), 400),
    # --- Expect: RFC 9110 10.1.1 -----------------------------------------------------
    ("expect_foo", req(b"GET / HTTP/1.1", H, b"Expect: foo"), 417),
    ("expect_continue_and_foo", req(b"GET / HTTP/1.1", H, b"Expect: 100-continue, foo"), 417),
]


def _status_when_fed(pieces: list[bytes], limits: Limits = LIMITS) -> int:
    with pytest.raises(RemoteProtocolError) as info:
        drive("server", pieces, limits=limits)
    return info.value.status


def test_malformed_table_is_large() -> None:
    assert len(MALFORMED) >= 40
    assert len({name for name, _, _ in MALFORMED}) == len(MALFORMED)


@pytest.mark.parametrize(("name", "data", "status"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_server_refuses_malformed_request(name: str, data: bytes, status: int) -> None:
    assert _status_when_fed([data]) == status
    assert _status_when_fed([bytes([b]) for b in data]) == status


@pytest.mark.parametrize(
    ("name", "data", "status"), MALFORMED[:12], ids=[m[0] for m in MALFORMED[:12]]
)
def test_reader_stays_dead_after_an_error(name: str, data: bytes, status: int) -> None:
    reader = HttpReader("server", LIMITS)
    buf = bytearray(data)
    with pytest.raises(RemoteProtocolError):
        for _ in range(10):
            _, n = reader.next_event(buf)
            del buf[:n]
    good = bytearray(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        reader.next_event(good)
    assert info.value.status == status and not reader.in_body


SMALL = Limits(
    max_request_line=64,
    max_header_line=48,
    max_headers_size=256,
    max_header_count=4,
    max_chunk_line=32,
)


def _raises_at(data: bytes, status: int, side: str = "server") -> None:
    """``data`` alone (no terminator) must already raise ``status``, whole and byte by byte."""
    for pieces in ([data], [bytes([b]) for b in data]):
        with pytest.raises(LimitExceeded) as info:
            drive(side, pieces, limits=SMALL, eof=False)
        assert info.value.status == status


def _waits(data: bytes, side: str = "server") -> None:
    """``data`` (an incomplete head within the limits) only waits for more."""
    for pieces in ([data], [bytes([b]) for b in data]):
        events, rest = drive(side, pieces, limits=SMALL, eof=False)
        assert events == [] and rest == data


class TestLimits:
    def test_request_line_at_limit_is_accepted(self) -> None:
        line = b"GET /" + b"a" * (64 - len(b"GET / HTTP/1.1\r\n")) + b" HTTP/1.1\r\n"
        assert len(line) == 64
        events, _ = drive("server", [line + HL + b"\r\n"], limits=SMALL)
        assert len(events) == 1

    def test_long_request_line_is_414_before_it_ends(self) -> None:
        data = b"GET /" + b"a" * 200
        _waits(data[:63])
        _raises_at(data[:65], 414)

    def test_long_request_line_is_414_when_complete(self) -> None:
        line = b"GET /" + b"a" * (65 - len(b"GET / HTTP/1.1\r\n")) + b" HTTP/1.1\r\n"
        assert len(line) == 65
        assert _status_when_fed([line + HL + b"\r\n"], SMALL) == 414

    def test_header_line_at_limit_is_accepted(self) -> None:
        field = b"X: " + b"v" * (48 - 5) + b"\r\n"
        assert len(field) == 48
        events, _ = drive("server", [b"GET / HTTP/1.1\r\n" + HL + field + b"\r\n"], limits=SMALL)
        assert len(events) == 1

    def test_long_header_line_is_431_before_it_ends(self) -> None:
        start = b"GET / HTTP/1.1\r\n" + HL
        data = start + b"X: " + b"v" * 200
        _waits(data[: len(start) + 47])
        _raises_at(data[: len(start) + 49], 431)

    def test_long_header_line_is_431_when_complete(self) -> None:
        data = b"GET / HTTP/1.1\r\n" + HL + b"X: " + b"v" * 44 + b"\r\n\r\n"
        assert _status_when_fed([data], SMALL) == 431

    def test_too_many_headers_is_431_before_the_head_ends(self) -> None:
        start = b"GET / HTTP/1.1\r\n" + HL + b"A: 1\r\nB: 2\r\nC: 3\r\n"
        _waits(start)
        _raises_at(start + b"D: 4\r\n", 431)
        assert _status_when_fed([start + b"D: 4\r\n\r\n"], SMALL) == 431

    def test_header_count_at_limit_is_accepted(self) -> None:
        data = b"GET / HTTP/1.1\r\n" + HL + b"A: 1\r\nB: 2\r\nC: 3\r\n\r\n"
        events, _ = drive("server", [data], limits=SMALL)
        assert len(events) == 1

    def test_large_head_is_431_before_it_ends(self) -> None:
        fields = b"".join(b"X%d: %s\r\n" % (i, b"v" * 40) for i in range(8))
        data = b"GET / HTTP/1.1\r\n" + HL + fields + b"\r\n"
        many = Limits(max_request_line=64, max_header_line=48, max_headers_size=256)
        assert len(data) > 300
        for pieces in ([data[:257]], [bytes([b]) for b in data[:257]]):
            with pytest.raises(LimitExceeded) as info:
                drive("server", pieces, limits=many, eof=False)
            assert info.value.status == 431
        events, _ = drive("server", [data[:255]], limits=many, eof=False)
        assert events == []

    def test_large_complete_head_is_431(self) -> None:
        fields = b"".join(b"X%d: %s\r\n" % (i, b"v" * 40) for i in range(6))
        data = b"GET / HTTP/1.1\r\n" + HL + fields + b"\r\n"
        many = Limits(max_headers_size=256)
        assert _status_when_fed([data], many) == 431

    def test_long_chunk_line_is_400_before_it_ends(self) -> None:
        start = b"POST / HTTP/1.1\r\n" + HL + CHUNKED + b"\r\n\r\n"
        line = b"5;" + b"e" * 100
        reader = HttpReader("server", SMALL)
        buf = bytearray(start + line[:31])
        ev, n = reader.next_event(buf)
        del buf[:n]
        assert isinstance(ev, HttpMessage) and reader.in_body
        assert reader.next_event(buf) == (NEED_DATA, 0)
        buf += line[31:33]
        with pytest.raises(LimitExceeded) as info:
            reader.next_event(buf)
        assert info.value.status == 400

    def test_large_trailer_section_is_431(self) -> None:
        start = b"POST / HTTP/1.1\r\n" + HL + CHUNKED + b"\r\n\r\n0\r\n"
        trailers = b"".join(b"T%d: %s\r\n" % (i, b"t" * 30) for i in range(20))
        with pytest.raises(LimitExceeded) as info:
            drive("server", [start + trailers], limits=Limits(max_headers_size=256), eof=False)
        assert info.value.status == 431

    def test_client_limits_raise_remote_protocol_errors(self) -> None:
        data = b"HTTP/1.1 200 OK\r\nX: " + b"v" * 100
        with pytest.raises(RemoteProtocolError):
            drive("client", [data], limits=SMALL, eof=False)


class TestMalformedResponses:
    @pytest.mark.parametrize(
        "data",
        [
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n Folded-first: x\r\n\r\n",
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 99 Low\r\n\r\n",
            b"HTTP/1.1 600 High\r\n\r\n",
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/2.0 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nBad Field: x\r\n\r\n",
            b"HTTP/1.1 200 O\x00K\r\n\r\n",
            b"HTTPS/1.1 200 OK\r\n\r\n",
            b"<html>",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ],
    )
    def test_client_refuses_malformed_response(self, data: bytes) -> None:
        for pieces in ([data], [bytes([b]) for b in data]):
            with pytest.raises(RemoteProtocolError):
                drive("client", pieces)


class TestBacktracking:
    """Pathological lines cost O(n): quadratic backtracking would take minutes here."""

    BIG = Limits(max_header_line=1 << 17, max_headers_size=1 << 18, max_chunk_line=1 << 17)

    @pytest.mark.parametrize(
        "value",
        [
            b" " * 60000,
            b" " * 30000 + b"a" * 30000 + b"\x00",
            b"a" + b" " * 60000 + b"b\x00",
            b" a" * 30000 + b" ",
            b" \t" * 30000 + b"\x01",
        ],
    )
    def test_long_whitespace_values_are_linear(self, value: bytes) -> None:
        data = b"GET / HTTP/1.1\r\nHost: h\r\nX:" + value + b"\r\n\r\n"
        start = time.perf_counter()
        try:
            drive("server", [data], limits=self.BIG)
        except RemoteProtocolError as e:
            assert e.status == 400
        assert time.perf_counter() - start < 2.0

    @pytest.mark.parametrize(
        "line",
        [b"5;a" + b" " * 60000 + b"x", b"5" + b";a=b" * 15000 + b" x", b'5;a="' + b'\\"' * 30000],
    )
    def test_long_chunk_extensions_are_linear(self, line: bytes) -> None:
        data = b"POST / HTTP/1.1\r\nHost: h\r\n" + CHUNKED + b"\r\n\r\n" + line + b"\r\n"
        start = time.perf_counter()
        with pytest.raises(RemoteProtocolError):
            drive("server", [data], limits=self.BIG)
        assert time.perf_counter() - start < 2.0

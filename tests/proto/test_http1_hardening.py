"""HttpReader hardening (issues 12 and 13): a bad head gets one status however it is
split, chunk extensions are bounded per message, and the client side reads what
RFC 9112 tells a user agent to accept (obs-fold, a Transfer-Encoding that does not
end in chunked)."""

from __future__ import annotations

import random

import pytest

from mgpy.errors import LimitExceeded, RemoteProtocolError
from mgpy.events import HttpMessage
from mgpy.limits import Limits
from mgpy.proto.http1 import END, NEED_DATA, HttpReader

from .test_http1_reader import drive, parse3

SMALL = Limits(
    max_request_line=64,
    max_header_line=48,
    max_headers_size=256,
    max_header_count=4,
    max_chunk_line=32,
)


def status_of(side: str, pieces: list[bytes], limits: Limits = SMALL) -> int | None:
    """The status the reader raises for ``pieces`` (None: no error)."""
    try:
        drive(side, pieces, limits=limits, eof=False)
    except RemoteProtocolError as e:
        return e.status
    return None


def splits(data: bytes, seed: int) -> list[list[bytes]]:
    """Whole, byte by byte, cut once at every offset, and a few random multi-cuts."""
    out = [[data], [bytes([b]) for b in data]]
    out += [[data[:i], data[i:]] for i in range(1, len(data))]
    rnd = random.Random(seed)
    for _ in range(20):
        cuts = sorted(rnd.sample(range(1, len(data)), min(4, len(data) - 1)))
        out.append([data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)])
    return out


HOST = b"Host: h\r\n"
LONG_FIELD = b"X: " + b"v" * 60 + b"\r\n"  # over max_header_line (48)
FIVE_FIELDS = b"A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n"  # over max_header_count (4)

# (name, head, status): every head breaks two rules; the first in wire order decides
TWO_RULES: list[tuple[str, bytes, int]] = [
    # issue 13: was 431 whole, 400 split after the request line
    ("bad_request_line_then_too_many", b"GET / HTTP/1.1 x\r\n" + HOST + FIVE_FIELDS + b"\r\n", 400),
    ("bad_request_line_then_long_field", b"GET  / HTTP/1.1\r\n" + LONG_FIELD + b"\r\n", 400),
    ("version_then_long_field", b"GET / HTTP/3.0\r\n" + HOST + LONG_FIELD + b"\r\n", 505),
    ("bare_lf_then_long_field", b"GET / HTTP/1.1\r\nA: b\nc\r\n" + LONG_FIELD + b"\r\n", 400),
    ("long_field_with_late_bare_lf", b"GET / HTTP/1.1\r\nX: " + b"v" * 50 + b"\n\r\n\r\n", 431),
    ("long_field_with_early_bare_cr", b"GET / HTTP/1.1\r\nX: v\rv" + b"v" * 50 + b"\r\n\r\n", 400),
    ("long_request_line_with_bare_lf", b"GET /" + b"a" * 70 + b"\n HTTP/1.1\r\n\r\n", 414),
    ("garbage_then_long_request_line", b"\x16GET /" + b"a" * 70 + b" HTTP/1.1\r\n\r\n", 400),
    ("too_many_then_bad_host", b"GET / HTTP/1.1\r\nHost: a b\r\n" + FIVE_FIELDS + b"\r\n", 431),
    ("too_many_then_obs_fold", b"GET / HTTP/1.1\r\n" + HOST + FIVE_FIELDS + b" fold\r\n\r\n", 431),
    (
        "obs_fold_then_long_field",
        b"GET / HTTP/1.1\r\n" + HOST + b"A: b\r\n c\r\n" + LONG_FIELD,
        431,
    ),
    (
        "too_large_then_bare_cr",
        b"GET /"
        + b"a" * 48
        + b" HTTP/1.1\r\n"
        + b"".join(b"F%d: %s\r\n" % (i, b"v" * 40) for i in range(4))
        + b"Y: "
        + b"y" * 20
        + b"\rz\r\n\r\n",
        431,
    ),
    ("expect_then_bad_line", b"GET / HTTP/1.1\r\n" + HOST + b"Expect: x\r\nA b\r\n\r\n", 400),
    ("te_gzip_then_too_many", b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n" + FIVE_FIELDS, 431),
]


class TestOneStatusPerHead:
    """Issue 13: the status of a head is the one its bytes give one at a time."""

    @pytest.mark.parametrize(
        ("data", "status"), [r[1:] for r in TWO_RULES], ids=[r[0] for r in TWO_RULES]
    )
    def test_two_rules_same_status_however_split(self, data: bytes, status: int) -> None:
        got = {status_of("server", pieces) for pieces in splits(data, len(data))}
        assert got == {status}

    @pytest.mark.parametrize(
        "data",
        [
            b"HTTP/1.1 200 OK\r\nX: " + b"v" * 50 + b"\n\r\n\r\n",
            b"HTTPX/1.1 200 OK\r\n" + LONG_FIELD + b"\r\n",
            b"HTTP/1.1 200 OK\r\n" + FIVE_FIELDS + b"X\r\n\r\n",
            b"HTTP/9.9 200 OK\r\n" + LONG_FIELD + b"\r\n",
        ],
    )
    def test_client_heads_too(self, data: bytes) -> None:
        got = {status_of("client", pieces) for pieces in splits(data, 7)}
        assert len(got) == 1 and None not in got

    def test_random_heads_are_split_independent(self) -> None:
        """Heads built from good and bad lines: whole == byte by byte == any split."""
        rnd = random.Random(1312)
        lines = [
            HOST,
            b"A: b\r\n",
            b"A: b\nc\r\n",
            b" fold\r\n",
            b"B: \x01\r\n",
            LONG_FIELD,
            b"C: " + b"c" * 44 + b"\r\n",
            b"D: d\re\r\n",
            b"Bad Name: x\r\n",
        ]
        starts = [b"GET / HTTP/1.1\r\n", b"GET / HTTP/2.0\r\n", b"G\x01T / HTTP/1.1\r\n"]
        for _ in range(150):
            head = rnd.choice(starts) + b"".join(
                rnd.choice(lines) for _ in range(rnd.randint(0, 7))
            )
            data = head + b"\r\n"
            whole = status_of("server", [data])
            for pieces in splits(data, rnd.randint(0, 1 << 30))[:40]:
                assert status_of("server", pieces) == whole, (data, pieces)

    def test_good_heads_at_the_limits_still_pass(self) -> None:
        data = (
            b"GET /"
            + b"a" * (64 - 16)
            + b" HTTP/1.1\r\n"
            + HOST
            + b"A: "
            + b"a" * 43
            + b"\r\nB: 1\r\nC: 2\r\n\r\n"
        )
        assert status_of("server", [data]) is None
        events = parse3("server", data, limits=SMALL)
        assert isinstance(events[0], HttpMessage) and events[0].header("c") == "2"


def chunked_request(lines: list[bytes]) -> bytes:
    head = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    return head + b"".join(line + b"\r\nx\r\n" for line in lines) + b"0\r\n\r\n"


class TestChunkExtensionsPerMessage:
    """Issue 12 item 5: extension bytes are bounded per message (Go, Node CVE fixes)."""

    EXT = b";" + b"e" * 999  # 1000 extension bytes on a line below max_chunk_line

    def test_under_the_allowance_is_read(self) -> None:
        data = chunked_request([b"1" + self.EXT] * 16)  # 16 000 bytes
        events = parse3("server", data)
        assert events[1:] == [b"x" * 16, END]

    def test_over_the_allowance_is_400_whole_and_byte_by_byte(self) -> None:
        data = chunked_request([b"1" + self.EXT] * 17)  # 17 000 bytes
        for pieces in ([data], [bytes([b]) for b in data]):
            with pytest.raises(LimitExceeded) as info:
                drive("server", pieces)
            assert info.value.status == 400 and "extension" in str(info.value)

    def test_allowance_is_per_message(self) -> None:
        one = chunked_request([b"1" + self.EXT] * 16)
        events, rest = drive("server", [one * 3])
        assert rest == b"" and events.count(END) == 3

    def test_client_side_bounded_too(self) -> None:
        body = b"".join(b"1" + self.EXT + b"\r\nx\r\n" for _ in range(17)) + b"0\r\n\r\n"
        data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body
        with pytest.raises(LimitExceeded):
            drive("client", [data])


class TestClientLeniency:
    """Issue 12 item 7: what RFC 9112 tells a user agent to accept in a response."""

    def test_obs_fold_is_replaced_by_a_space(self) -> None:
        data = (
            b"HTTP/1.1 200 OK\r\nX-A: one\r\n  two\r\n\tthree \r\nX-B: b\r\n"
            b"Content-Length: 2\r\n\r\nok"
        )
        events = parse3("client", data)
        hm = events[0]
        assert isinstance(hm, HttpMessage)
        assert hm.header("x-a") == "one two three" and hm.header("x-b") == "b"
        assert events[1:] == [b"ok", END]

    def test_folded_framing_header_counts(self) -> None:
        data = b"HTTP/1.1 200 OK\r\nContent-Length:\r\n 3\r\n\r\nabc"
        events = parse3("client", data)
        assert events[1:] == [b"abc", END]

    @pytest.mark.parametrize(
        "te", [b"gzip", b"chunked, gzip", b"identity", b"x/y", b"chunked;a=b", b" "]
    )
    def test_te_not_ending_in_chunked_is_read_until_close(self, te: bytes) -> None:
        data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + te + b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        for pieces in ([data], [bytes([b]) for b in data]):
            events, _ = drive("client", pieces)
            hm = events[0]
            assert isinstance(hm, HttpMessage) and not hm.keep_alive
            assert events[1:] == [b"5\r\nhello\r\n0\r\n\r\n", END]

    def test_coding_then_chunked_is_dechunked(self) -> None:
        data = (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
            b"3\r\n\x1f\x8b\x08\r\n0\r\n\r\n"
        )
        events = parse3("client", data)
        assert isinstance(events[0], HttpMessage) and events[0].chunked
        assert events[1:] == [b"\x1f\x8b\x08", END]

    def test_server_still_refuses_obs_fold(self) -> None:
        data = b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n"
        assert status_of("server", [data], Limits()) == 400

    def test_until_close_response_ends_only_at_eof(self) -> None:
        reader = HttpReader("client", Limits())
        reader.expect_response("GET")
        buf = bytearray(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nab")
        ev, n = reader.next_event(buf)
        del buf[:n]
        assert isinstance(ev, HttpMessage)
        assert reader.next_event(buf) == (b"ab", 2)
        assert reader.next_event(bytearray()) == (NEED_DATA, 0)
        assert reader.next_event(bytearray(), eof=True) == (END, 0)

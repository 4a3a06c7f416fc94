"""mgpy.proto.ranges: Range resolution, entity tags, preconditions, If-Range, Accept-Encoding."""

from __future__ import annotations

import pytest

from mgpy.proto.httputil import format_http_date
from mgpy.proto.ranges import (
    MAX_RANGES,
    choose_coding,
    content_range,
    etag_match,
    evaluate_preconditions,
    if_range_allows,
    multipart_head,
    multipart_tail,
    parse_etags,
    parse_range,
)

SIZE = 1000


class TestRangeRfc9110_14_1:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("bytes=0-0", [(0, 0)]),
            ("bytes=0-499", [(0, 499)]),
            ("bytes=500-999", [(500, 999)]),
            ("bytes=500-5000", [(500, 999)]),  # last-pos past the end is clamped
            ("bytes=900-", [(900, 999)]),  # open-ended
            ("bytes=-100", [(900, 999)]),  # suffix
            ("bytes=-5000", [(0, 999)]),  # suffix longer than the file: all of it
            ("BYTES=1-2", [(1, 2)]),  # the unit is case-insensitive
            ("bytes= 1 - 2 ", [(1, 2)]),
            ("bytes=0-9,20-29", [(0, 9), (20, 29)]),
            ("bytes=20-29,0-9", [(20, 29), (0, 9)]),  # request order is kept
            ("bytes=0-9,,20-29,", [(0, 9), (20, 29)]),  # empty list elements ignored
            ("bytes=0-9,2000-3000", [(0, 9)]),  # the unsatisfiable one is dropped
        ],
    )
    def test_server_resolves_satisfiable_ranges(
        self, value: str, expected: list[tuple[int, int]]
    ) -> None:
        assert parse_range(value, SIZE) == expected

    @pytest.mark.parametrize(
        "value",
        ["bytes=1000-", "bytes=1000-2000", "bytes=5000-,6000-7000", "bytes=-0"],
    )
    def test_server_receives_unsatisfiable_set_gives_416(self, value: str) -> None:
        assert parse_range(value, SIZE) == []

    @pytest.mark.parametrize(
        "value",
        [
            "items=0-1",  # unknown unit
            "bytes 0-1",
            "bytes=",
            "bytes=abc",
            "bytes=5-1",  # last < first: invalid, ignore the header
            "bytes=1-2-3",
            "bytes=0x10-20",
            "bytes=-",
            "bytes=+1-2",
            "bytes=1-2,x",
            "bytes=" + "9" * 30 + "-",
        ],
    )
    def test_server_ignores_malformed_range(self, value: str) -> None:
        assert parse_range(value, SIZE) is None

    def test_server_ignores_too_many_ranges(self) -> None:
        many = "bytes=" + ",".join(f"{i * 2}-{i * 2}" for i in range(MAX_RANGES + 1))
        assert parse_range(many, SIZE) is None
        ok = "bytes=" + ",".join(f"{i * 2}-{i * 2}" for i in range(MAX_RANGES))
        assert parse_range(ok, SIZE) == [(i * 2, i * 2) for i in range(MAX_RANGES)]

    def test_overlapping_ranges_are_coalesced_not_amplified(self) -> None:
        # CVE-2011-3192 shape: many overlapping ranges must not multiply the output
        assert parse_range("bytes=" + "0-999," * 10 + "0-999", SIZE) == [(0, 999)]
        assert parse_range("bytes=0-10,5-20,30-40", SIZE) == [(0, 20), (30, 40)]
        assert parse_range("bytes=0-9,10-19", SIZE) == [(0, 19)]  # adjacent

    def test_empty_representation(self) -> None:
        assert parse_range("bytes=0-", 0) == []
        assert parse_range("bytes=-10", 0) is None  # "all of it": send the empty 200


class TestFraming:
    def test_content_range_and_multipart_parts(self) -> None:
        assert content_range(0, 9, 100) == "bytes 0-9/100"
        head = multipart_head("BND", "text/plain", 0, 9, 100)
        assert head == (
            b"\r\n--BND\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-9/100\r\n\r\n"
        )
        assert multipart_tail("BND") == b"\r\n--BND--\r\n"


class TestEtags:
    def test_list_parsing_keeps_commas_inside_tags(self) -> None:
        assert parse_etags('"a", W/"b,c" ,"d"') == [(False, '"a"'), (True, '"b,c"'), (False, '"d"')]
        assert parse_etags("*") is None
        assert parse_etags('junk, "x"') == [(False, '"x"')]
        assert parse_etags('"unterminated') == []

    def test_weak_and_strong_comparison_rfc9110_13_1_2(self) -> None:
        assert etag_match('W/"x"', '"x"')
        assert not etag_match('W/"x"', '"x"', strong=True)
        assert etag_match('"y", "x"', '"x"', strong=True)
        assert not etag_match('"X"', '"x"')
        assert etag_match("*", '"anything"')


MTIME = 784111777.0  # Sun, 06 Nov 1994 08:49:37 GMT
LM = format_http_date(MTIME)
EARLIER = format_http_date(MTIME - 10)
LATER = format_http_date(MTIME + 10)
TAG = '"abc"'


def pre(method: str = "GET", **kw: str) -> int:
    return evaluate_preconditions(
        method,
        kw.get("im"),
        kw.get("inm"),
        kw.get("ims"),
        kw.get("ius"),
        TAG,
        MTIME + 0.75,  # sub-second mtimes compare at one-second resolution
    )


class TestPreconditionsRfc9110_13_2_2:
    def test_no_conditions(self) -> None:
        assert pre() == 200

    def test_if_none_match(self) -> None:
        assert pre(inm=TAG) == 304
        assert pre(inm='W/"abc"') == 304  # weak comparison
        assert pre(inm='"zzz", "abc"') == 304
        assert pre(inm="*") == 304
        assert pre(inm='"zzz"') == 200
        assert pre("HEAD", inm=TAG) == 304

    def test_if_modified_since(self) -> None:
        assert pre(ims=LM) == 304
        assert pre(ims=LATER) == 304
        assert pre(ims=EARLIER) == 200
        assert pre(ims="not a date") == 200  # invalid dates are ignored

    def test_if_none_match_wins_over_if_modified_since(self) -> None:
        assert pre(inm='"zzz"', ims=LATER) == 200
        assert pre(inm=TAG, ims=EARLIER) == 304

    def test_if_match_and_if_unmodified_since(self) -> None:
        assert pre(im=TAG) == 200
        assert pre(im='W/"abc"') == 412  # If-Match is strong
        assert pre(im='"zzz"') == 412
        assert pre(ius=EARLIER) == 412
        assert pre(ius=LM) == 200
        assert pre(im=TAG, ius=EARLIER) == 200  # If-Unmodified-Since ignored with If-Match
        assert pre(im='"zzz"', inm=TAG) == 412  # step 1 before step 3

    def test_if_range_rfc9110_13_1_5(self) -> None:
        assert if_range_allows(TAG, TAG, MTIME)
        assert not if_range_allows('W/"abc"', TAG, MTIME)
        assert not if_range_allows('"old"', TAG, MTIME)
        assert if_range_allows(LM, TAG, MTIME + 0.5)
        assert not if_range_allows(EARLIER, TAG, MTIME)
        assert not if_range_allows(LATER, TAG, MTIME)  # a date must match exactly
        assert not if_range_allows("garbage", TAG, MTIME)


class TestAcceptEncodingRfc9110_12_5_3:
    @pytest.mark.parametrize(
        ("header", "expected"),
        [
            (None, "identity"),
            ("", "identity"),
            ("br", "br"),
            ("gzip, deflate, br", "br"),  # equal q: the server's preference (br) wins
            ("gzip", "gzip"),
            ("x-gzip", "gzip"),
            ("br;q=0, gzip", "gzip"),
            ("br;q=0", "identity"),
            ("br;q=0.5, gzip;q=0.8", "gzip"),
            ("br;q=0.5, identity", "identity"),  # identity listed at 1.0 beats br at 0.5
            ("br;q=0.5", "br"),  # identity unlisted: acceptable but least preferred
            ("*", "br"),
            ("*;q=0.5, gzip;q=0.9", "gzip"),
            ("*;q=0", None),  # nothing acceptable: 406
            ("identity;q=0", None),
            ("identity;q=0, gzip;q=0.1", "gzip"),
            ("br;q=bogus, gzip", "gzip"),  # a malformed weight makes the coding unacceptable
            ("BR", "br"),
            ("deflate", "identity"),
        ],
    )
    def test_choose(self, header: str | None, expected: str | None) -> None:
        assert choose_coding(header, ["br", "gzip"]) == expected

    def test_choose_only_among_available(self) -> None:
        assert choose_coding("br", ["gzip"]) == "identity"
        assert choose_coding("br, gzip", ["gzip"]) == "gzip"
        assert choose_coding("br", []) == "identity"
        assert choose_coding("*;q=0", []) is None

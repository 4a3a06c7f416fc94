"""Tests for mgpy.proto.httputil: URL coding, form vars, header params, auth, globs, dates."""

from __future__ import annotations

import base64
import random
import time
from functools import cache

import pytest

from mgpy.errors import LocalProtocolError
from mgpy.proto.httputil import (
    basic_auth_header,
    format_http_date,
    get_http_var,
    get_http_vars,
    glob_match,
    http_parse_header,
    parse_basic_auth,
    parse_header_params,
    parse_http_date,
    parse_list_header,
    parse_qvalues,
    request_target,
    select_endpoint,
    url_decode,
    url_encode,
)


class TestUrlDecode:
    @pytest.mark.parametrize(
        ("raw", "form", "expected"),
        [
            ("a%20b", True, "a b"),
            ("a+b", True, "a b"),
            ("a+b", False, "a+b"),
            ("a%2Bb", True, "a+b"),
            ("%e2%82%ac", True, "\u20ac"),
            ("%E2%82%AC", False, "\u20ac"),
            ("caf\u00e9%21", True, "caf\u00e9!"),
            (b"caf%C3%A9", True, "caf\u00e9"),
            ("%zz", True, "%zz"),
            ("%4", True, "%4"),
            ("%", True, "%"),
            ("100%", True, "100%"),
            ("%%41", True, "%A"),
            ("%ff", True, "\ufffd"),
            ("%00", True, "\x00"),
            ("", True, ""),
        ],
    )
    def test_decodes(self, raw: str | bytes, form: bool, expected: str) -> None:
        assert url_decode(raw, form) == expected

    @pytest.mark.parametrize(
        "text", ["hello world", "a&b=c+d", "\u20acuro \u00fcn\u00efcode", "~-._", "/p?q#f", "", "%"]
    )
    def test_round_trips_through_url_encode(self, text: str) -> None:
        encoded = url_encode(text)
        assert url_decode(encoded, form=False) == text
        assert url_decode(encoded, form=True) == text


class TestUrlEncode:
    @pytest.mark.parametrize(
        ("raw", "safe", "expected"),
        [
            ("a b", "", "a%20b"),
            ("AZaz09-._~", "", "AZaz09-._~"),
            ("/a/b", "", "%2Fa%2Fb"),
            ("/a/b", "/", "/a/b"),
            ("a+b&c=d", "", "a%2Bb%26c%3Dd"),
            ("\u20ac", "", "%E2%82%AC"),
            (b"\xff", "", "%FF"),
        ],
    )
    def test_encodes_all_but_unreserved_and_safe(
        self, raw: str | bytes, safe: str, expected: str
    ) -> None:
        assert url_encode(raw, safe) == expected


class TestHttpVars:
    @pytest.mark.parametrize(
        ("buf", "name", "expected"),
        [
            ("a=1&b=2", "b", "2"),
            ("a=1&a=2", "a", "1"),
            ("a", "a", ""),
            ("a=", "a", ""),
            ("a=1", "b", None),
            ("", "a", None),
            ("x=a+b", "x", "a b"),
            ("x=a%2Bb", "x", "a+b"),
            ("a=1;b=2", "b", None),
            ("a=1;b=2", "a", "1;b=2"),
            ("first%20name=Jo", "first name", "Jo"),
            ("first+name=Jo", "first name", "Jo"),
            ("a%3Db=1", "a=b", "1"),
            ("A=1", "a", None),
            ("xa=1&a=2", "a", "2"),
            ("a=b=c", "a", "b=c"),
            ("&&a=1&&", "a", "1"),
            (b"k=%E2%82%AC", "k", "\u20ac"),
            ("k=\u20ac", "k", "\u20ac"),
        ],
    )
    def test_get_http_var(self, buf: str | bytes, name: str, expected: str | None) -> None:
        assert get_http_var(buf, name) == expected

    def test_get_http_var_on_a_form_body(self) -> None:
        body = b"user=j%C3%B6rg&comment=1+%2B+1+%3D+2&empty="
        assert get_http_var(body, "user") == "j\u00f6rg"
        assert get_http_var(body, "comment") == "1 + 1 = 2"
        assert get_http_var(body, "empty") == ""

    def test_get_http_vars_keeps_order_and_repeats(self) -> None:
        assert get_http_vars("a=1&b=&c&d=x+y&a=2") == [
            ("a", "1"),
            ("b", ""),
            ("c", ""),
            ("d", "x y"),
            ("a", "2"),
        ]


class TestHeaderParams:
    CD = 'form-data; name="a\\"b"; filename=x.txt'

    @pytest.mark.parametrize(
        ("value", "name", "expected"),
        [
            (CD, "name", 'a"b'),
            (CD, "filename", "x.txt"),
            (CD, "NAME", 'a"b'),
            (CD, "form-data", None),
            (CD, "missing", None),
            ("form-data; xname=1; name=2", "name", "2"),
            ("form-data; xname=1", "name", None),
            ("form-data; filename=a", "name", None),
            ('Digest username="u", realm="r", nc=00000001', "realm", "r"),
            ('Digest username="u", realm="r", nc=00000001', "nc", "00000001"),
            ('Digest username="u", realm="r", nc=00000001', "Digest", None),
            ('a="x,y;z", b=2', "a", "x,y;z"),
            ('a="x,y;z", b=2', "b", "2"),
            ('a="x\\"; name=evil"; name=good', "name", "good"),
            ('a = "spaced" ; b=1', "a", "spaced"),
            ("text/html; charset=UTF-8", "charset", "UTF-8"),
            ('name="unterminated', "name", "unterminated"),
            ('name=""', "name", ""),
            ("name=", "name", ""),
            ('a="\\\\"', "a", "\\"),
            ('filename="C:\\\\x\\\\y.txt"', "filename", "C:\\x\\y.txt"),
            ("a=1; a=2", "a", "1"),
            ("a=1,b=2;c=3", "c", "3"),
            ("", "a", None),
            ("a=1", "", None),
        ],
    )
    def test_http_parse_header(self, value: str, name: str, expected: str | None) -> None:
        assert http_parse_header(value, name) == expected

    def test_parse_header_params_lowercases_keys(self) -> None:
        assert parse_header_params('form-data; Name="a"; FILENAME="f.txt"') == (
            "form-data",
            {"name": "a", "filename": "f.txt"},
        )

    def test_parse_header_params_without_leading_item(self) -> None:
        assert parse_header_params("name=x; a=1; a=2") == ("", {"name": "x", "a": "1"})

    def test_parse_header_params_digest(self) -> None:
        assert parse_header_params('Digest realm="r@h", qop="auth,auth-int", stale=TRUE') == (
            "Digest",
            {"realm": "r@h", "qop": "auth,auth-int", "stale": "TRUE"},
        )


class TestListsAndQvalues:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("a, b ,, c", ["a", "b", "c"]),
            ('a, "c, d", e', ["a", "c, d", "e"]),
            ('"a\\"b"', ['a"b']),
            ("gzip;q=0.5, br", ["gzip;q=0.5", "br"]),
            ('x;p="1,2", y', ['x;p="1,2"', "y"]),
            ("", []),
            (" , ,", []),
        ],
    )
    def test_parse_list_header(self, value: str, expected: list[str]) -> None:
        assert parse_list_header(value) == expected

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("br;q=0.8, gzip, *;q=0", [("br", 0.8), ("gzip", 1.0), ("*", 0.0)]),
            ("GZIP;Q=0.5", [("gzip", 0.5)]),
            ("x; q=0.5; level=1", [("x", 0.5)]),
            ("x;level=1", [("x", 1.0)]),
            ("x;q=1.000", [("x", 1.0)]),
            ("x;q=1.5", [("x", 0.0)]),
            ("x;q=abc", [("x", 0.0)]),
            ("x;q=0.1234", [("x", 0.0)]),
            ("x;q=", [("x", 0.0)]),
            ("x;q=-1", [("x", 0.0)]),
            ("identity, , br", [("identity", 1.0), ("br", 1.0)]),
            ("", []),
        ],
    )
    def test_parse_qvalues(self, value: str, expected: list[tuple[str, float]]) -> None:
        assert parse_qvalues(value) == expected


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


class TestBasicAuth:
    def test_rfc7617_example(self) -> None:
        assert basic_auth_header("Aladdin", "open sesame") == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        assert parse_basic_auth("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==") == ("Aladdin", "open sesame")

    def test_rfc7617_utf8_example(self) -> None:
        assert basic_auth_header("test", "123\u00a3") == "Basic dGVzdDoxMjPCow=="
        assert parse_basic_auth("Basic dGVzdDoxMjPCow==") == ("test", "123\u00a3")

    def test_scheme_is_case_insensitive(self) -> None:
        assert parse_basic_auth("bASIC   " + _b64(b"u:p")) == ("u", "p")

    def test_password_may_contain_colons(self) -> None:
        assert parse_basic_auth("Basic " + _b64(b"u:p:q")) == ("u", "p:q")
        assert parse_basic_auth("Basic " + _b64(b":")) == ("", "")

    def test_latin1_credentials_from_legacy_clients(self) -> None:
        assert parse_basic_auth("Basic " + _b64(b"test:123\xa3")) == ("test", "123\u00a3")

    @pytest.mark.parametrize(
        "value",
        [None, "", "Basic", "Basic ", "Bearer abc", "Basic !!!!", "Basic " + _b64(b"nocolon")],
    )
    def test_absent_or_malformed_is_none(self, value: str | None) -> None:
        assert parse_basic_auth(value) is None

    @pytest.mark.parametrize(("user", "password"), [("a:b", "x"), ("a\n", "x"), ("a", "x\r")])
    def test_header_refuses_invalid_credentials(self, user: str, password: str) -> None:
        with pytest.raises(LocalProtocolError):
            basic_auth_header(user, password)


def _reference_glob(pattern: str, path: str) -> int:
    """Obvious exponential-in-theory matcher used to check the NFA on small inputs."""
    best = -1
    for alt in pattern.split("|"):
        if not alt or alt == "$":
            continue
        anchored = alt.endswith("$")
        if anchored:
            alt = alt[:-1]

        @cache
        def ends(pi: int, si: int, alt: str = alt) -> frozenset[int]:
            if pi == len(alt):
                return frozenset([si])
            if alt.startswith("**", pi):
                out: set[int] = set()
                for k in range(si, len(path) + 1):
                    out |= ends(pi + 2, k)
                return frozenset(out)
            c = alt[pi]
            if c == "*":
                out = set()
                k = si
                while True:
                    out |= ends(pi + 1, k)
                    if k == len(path) or path[k] == "/":
                        break
                    k += 1
                return frozenset(out)
            if si < len(path) and (path[si] == c or (c == "?" and path[si] != "/")):
                return ends(pi + 1, si + 1)
            return frozenset()

        for e in ends(0, 0):
            ok = e == len(path) or path[e] == "/" or (e > 0 and path[e - 1] == "/")
            if anchored and e != len(path):
                ok = False
            if ok and e > best:
                best = e
    return best


class TestGlobMatch:
    @pytest.mark.parametrize(
        ("pattern", "path", "expected"),
        [
            ("/api", "/api", 4),
            ("/api", "/api/", 4),
            ("/api", "/api/x", 4),
            ("/api", "/apix", -1),
            ("/api", "/ap", -1),
            ("/api/", "/api/x", 5),
            ("/api/", "/api", -1),
            ("/", "/anything/at/all", 1),
            ("/a/*", "/a/b", 4),
            ("/a/*", "/a/b/c", 4),
            ("/a/*", "/a/", 3),
            ("/a/**", "/a/b/c", 6),
            ("/a/**", "/a", -1),
            ("/a/*.txt", "/a/x.txt", 8),
            ("/a/*.txt", "/a/b/x.txt", -1),
            ("**.txt", "/a/b/x.txt", 10),
            ("**.txt", "/a/b/x.txt/more", 10),
            ("**.txt$", "/a/b/x.txt/more", -1),
            ("/a?c", "/abc", 4),
            ("/a?c", "/a/c", -1),
            ("/x|/api", "/api/v", 4),
            ("/api|/api/v1", "/api/v1/x", 7),
            ("/api/v1|/api", "/api/v1/x", 7),
            ("/a$", "/a", 2),
            ("/a$", "/a/", -1),
            ("/a/***", "/a/b/c", 6),
            ("/*/x", "/abc/x/y", 6),
            ("", "/x", -1),
            ("|", "/x", -1),
        ],
    )
    def test_table(self, pattern: str, path: str, expected: int) -> None:
        assert glob_match(pattern, path) == expected

    def test_agrees_with_a_reference_matcher(self) -> None:
        rng = random.Random(7)
        for _ in range(3000):
            pattern = "".join(rng.choice("ab/*?") for _ in range(rng.randint(0, 7)))
            if rng.random() < 0.2:
                pattern += "$"
            if rng.random() < 0.2:
                pattern += "|" + "".join(rng.choice("ab/*") for _ in range(rng.randint(1, 4)))
            path = "".join(rng.choice("ab/") for _ in range(rng.randint(0, 9)))
            assert glob_match(pattern, path) == _reference_glob(pattern, path), (pattern, path)

    @pytest.mark.parametrize(
        ("pattern", "path"),
        [
            ("**a**a**a**b", "a" * 50_000),
            ("*a*a*a*a*a*a*a*b", "a" * 50_000),
            ("/" + "**/" * 40 + "x", "/" + "a/" * 20_000),
            ("|".join(["**a**a**b"] * 20), "a" * 5_000),
        ],
    )
    def test_pathological_patterns_finish_fast(self, pattern: str, path: str) -> None:
        start = time.perf_counter()
        assert glob_match(pattern, path) == -1
        assert time.perf_counter() - start < 1.0

    @pytest.mark.parametrize(
        ("patterns", "path", "expected"),
        [
            (["/api", "/**"], "/api/x", 1),
            (["/api/*", "/api/v1"], "/api/v1", 1),
            (["/api/v1", "/api/*"], "/api/v1", 0),
            (["/a", "/a"], "/a/b", 0),
            (["/a", "/a|/b"], "/a/b", 1),
            (["/x", "/y"], "/z", None),
            ([], "/z", None),
        ],
    )
    def test_select_endpoint_longest_match_then_longest_pattern_then_first(
        self, patterns: list[str], path: str, expected: int | None
    ) -> None:
        assert select_endpoint(patterns, path) == expected


class TestHttpDate:
    TS = 784111777.0

    @pytest.mark.parametrize(
        "value",
        [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "  Sun, 06 Nov 1994 08:49:37 GMT ",
        ],
    )
    def test_rfc9110_formats(self, value: str) -> None:
        assert parse_http_date(value) == self.TS

    def test_format(self) -> None:
        assert format_http_date(self.TS) == "Sun, 06 Nov 1994 08:49:37 GMT"
        assert format_http_date(self.TS + 0.9) == "Sun, 06 Nov 1994 08:49:37 GMT"
        assert format_http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT"

    @pytest.mark.parametrize("ts", [0.0, 951782400.0, 1709164800.0, 4102444799.0])
    def test_round_trip(self, ts: float) -> None:
        assert parse_http_date(format_http_date(ts)) == ts

    def test_rfc850_two_digit_year_is_at_most_50_years_ahead(self) -> None:
        now_2024 = 1718000000.0
        assert parse_http_date("Thursday, 01-Jan-70 00:00:00 GMT", now=now_2024) == float(
            3155760000
        )
        assert parse_http_date("Tuesday, 01-Jan-80 00:00:00 GMT", now=now_2024) == 315532800.0

    @pytest.mark.parametrize(
        "value",
        [
            "",
            "garbage",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 31 Feb 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:60:00 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37",
            "Sun Nov 06 08:49:37 1994 GMT",
            "Sun, 00 Nov 1994 08:49:37 GMT",
        ],
    )
    def test_malformed_is_none(self, value: str) -> None:
        assert parse_http_date(value) is None


class TestRequestTarget:
    @pytest.mark.parametrize(
        "head,target",
        [
            (b"GET /a%20b?x=1&y HTTP/1.1\r\nHost: h\r\n\r\n", "/a%20b?x=1&y"),  # undecoded
            (b"OPTIONS * HTTP/1.1\r\n\r\n", "*"),
            (b"GET http://h/p?q HTTP/1.1\r\n\r\n", "http://h/p?q"),  # absolute-form
            (b"GET /no-crlf HTTP/1.1", "/no-crlf"),
            (b"GET /too many spaces HTTP/1.1\r\n\r\n", None),
            (b"\r\n", None),
        ],
    )
    def test_as_received(self, head: bytes, target: str | None) -> None:
        assert request_target(head) == target

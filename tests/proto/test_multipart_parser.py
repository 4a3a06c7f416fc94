"""Tests for the streaming multipart/form-data parser (RFC 7578, RFC 2046 5.1).

Every well-formed body is fed whole, one byte per call, with an epilogue, and
in many random splits; all must give the same events and the same part bytes.
"""

from __future__ import annotations

import base64
import dataclasses
import email.policy
import random
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from typing import Any

import pytest
import requests
from urllib3 import encode_multipart_formdata

from mgpy.errors import LimitExceeded, LocalProtocolError, RemoteProtocolError
from mgpy.limits import Limits
from mgpy.proto.multipart import (
    NEED_DATA,
    MultipartEnd,
    MultipartParser,
    PartBegin,
    PartEnd,
    boundary_from_content_type,
    parse_content_disposition,
)

B = b"----WebKitFormBoundary7MA4YWxkTrZu0gW"
LIMITS = Limits()

# An event as compared in tests: ("begin", name, filename, headers), ("data", bytes),
# ("end",) or ("close",).  Adjacent data events are merged.
Norm = tuple[Any, ...]


def pieces_whole(body: bytes, rng: random.Random) -> list[bytes]:
    return [body]


def pieces_bytewise(body: bytes, rng: random.Random) -> list[bytes]:
    return [body[i : i + 1] for i in range(len(body))]


def pieces_random(body: bytes, rng: random.Random) -> list[bytes]:
    out, i = [], 0
    while i < len(body):
        n = rng.choice((1, 2, 3, 5, 7, 13, 40, 64, 100, 1000, 5000))
        out.append(body[i : i + n])
        i += n
    return out


class Result:
    """What a run produced: normalised events, raw events, largest data event."""

    def __init__(self) -> None:
        self.norm: list[Norm] = []
        self.raw: list[object] = []
        self.max_data = 0
        self.max_leftover = 0


def run(
    body: bytes,
    pieces: list[bytes],
    boundary: bytes = B,
    limits: Limits = LIMITS,
    eof: bool = True,
) -> Result:
    """Feed ``pieces`` the way the glue does (append, pull until NEED_DATA, delete)."""
    p = MultipartParser(boundary, limits)
    res = Result()
    buf = bytearray()

    def pull(at_eof: bool) -> None:
        while True:
            ev, n = p.next_event(buf, at_eof)
            assert 0 <= n <= len(buf)
            del buf[:n]
            if ev is NEED_DATA:
                res.max_leftover = max(res.max_leftover, len(buf))
                return
            assert n > 0, f"{ev!r} consumed nothing"
            res.raw.append(ev)
            if isinstance(ev, bytes):
                assert 0 < len(ev) <= max(1, limits.part_data_size)
                res.max_data = max(res.max_data, len(ev))
                if res.norm and res.norm[-1][0] == "data":
                    res.norm[-1][1].extend(ev)
                else:
                    res.norm.append(("data", bytearray(ev)))
            elif isinstance(ev, PartBegin):
                res.norm.append(("begin", ev.name, ev.filename, ev.headers))
            elif isinstance(ev, PartEnd):
                res.norm.append(("end",))
            else:
                assert isinstance(ev, MultipartEnd)
                res.norm.append(("close",))

    for piece in pieces:
        buf += piece
        pull(False)
    if eof:
        pull(True)
    res.norm = [("data", bytes(e[1])) if e[0] == "data" else e for e in res.norm]
    return res


def parse_all(
    body: bytes, boundary: bytes = B, limits: Limits = LIMITS, seeds: int = 8
) -> list[Norm]:
    """Parse ``body`` whole, bytewise, with an epilogue and in random splits; same events."""
    expected = run(body, [body], boundary, limits).norm
    assert run(body, pieces_bytewise(body, random.Random(0)), boundary, limits).norm == expected
    tail = body + b"\r\nthis epilogue is ignored\r\n--" + boundary + b"--\r\n"
    assert run(tail, [tail], boundary, limits).norm == expected
    for seed in range(seeds):
        rng = random.Random(seed)
        assert run(body, pieces_random(body, rng), boundary, limits).norm == expected
    return expected


def rejects(body: bytes, boundary: bytes = B, limits: Limits = LIMITS) -> RemoteProtocolError:
    """Assert every way of feeding ``body`` raises RemoteProtocolError with status 400."""
    first: RemoteProtocolError | None = None
    rng = random.Random(1)
    for make in (pieces_whole, pieces_bytewise, pieces_random):
        with pytest.raises(RemoteProtocolError) as info:
            run(body, make(body, rng), boundary, limits)
        assert info.value.status == 400
        first = first or info.value
    assert first is not None
    return first


def part(name: str, data: bytes, filename: str | None = None, ctype: str | None = None) -> bytes:
    cd = f'form-data; name="{name}"'
    if filename is not None:
        cd += f'; filename="{filename}"'
    head = f"Content-Disposition: {cd}\r\n"
    if ctype:
        head += f"Content-Type: {ctype}\r\n"
    return head.encode() + b"\r\n" + data


def form(*parts: bytes, boundary: bytes = B) -> bytes:
    out = b"".join(b"--" + boundary + b"\r\n" + p + b"\r\n" for p in parts)
    return out + b"--" + boundary + b"--\r\n"


def fields(events: list[Norm]) -> list[tuple[str, str | None, bytes]]:
    """Collapse events into (name, filename, data) per part, checking their order."""
    out: list[tuple[str, str | None, bytes]] = []
    state = "between"
    for ev in events:
        if ev[0] == "begin":
            assert state == "between"
            out.append((ev[1], ev[2], b""))
            state = "in"
        elif ev[0] == "data":
            assert state == "in"
            name, fn, data = out[-1]
            out[-1] = (name, fn, data + ev[1])
        elif ev[0] == "end":
            assert state == "in"
            state = "between"
        else:
            assert state == "between" and ev is events[-1]
            state = "closed"
    assert state == "closed"
    return out


class TestWellFormed:
    def test_one_field(self) -> None:
        events = parse_all(form(part("greeting", b"hello world")))
        assert events == [
            (
                "begin",
                "greeting",
                None,
                [("Content-Disposition", 'form-data; name="greeting"')],
            ),
            ("data", b"hello world"),
            ("end",),
            ("close",),
        ]

    def test_several_fields_and_files_with_tricky_binary_data(self) -> None:
        tricky = [
            b"\r\n--" + B[:-1],
            b"\r\n--" + B[:-1] + b"\r\n--" + B[:5] + b"\r",
            b"--" + B + b"\r\n",  # no CRLF in front: not a delimiter
            b"\r\r\n\r\n--\r\n-" + B,
            b"\n--" + B + b"--",
            b"\r",
            b"\r\n",
            b"\r\n--",
            b"trailing CR\r",
            bytes(range(256)) * 3,
        ]
        parts = [part(f"f{i}", d, filename=f"file{i}.bin") for i, d in enumerate(tricky)]
        parts.insert(3, part("text", "héllo wörld".encode()))
        events = parse_all(form(*parts))
        got = fields(events)
        want: list[tuple[str, str | None, bytes]]
        want = [(f"f{i}", f"file{i}.bin", d) for i, d in enumerate(tricky)]
        want.insert(3, ("text", None, "héllo wörld".encode()))
        assert got == want

    def test_empty_part_has_no_data_event(self) -> None:
        events = parse_all(form(part("empty", b""), part("f", b"", filename="")))
        assert [e[0] for e in events] == ["begin", "end", "begin", "end", "close"]
        assert events[2][1:3] == ("f", "")  # an empty file input still says filename=""

    def test_preamble_and_epilogue_are_ignored(self) -> None:
        body = b"This is the preamble.\r\n--x\r\nignored\r\n" + form(part("a", b"1"))
        events = parse_all(body + b"epilogue \r\n--" + B + b"\r\nmore epilogue")
        assert fields(events) == [("a", None, b"1")]

    def test_empty_preamble_before_crlf_delimiter(self) -> None:
        assert fields(parse_all(b"\r\n" + form(part("a", b"1")))) == [("a", None, b"1")]

    def test_transport_padding_after_boundaries(self) -> None:
        body = (
            b"--" + B + b" \t \r\n" + part("a", b"1")
            + b"\r\n--" + B + b"\t\r\n" + part("b", b"2")
            + b"\r\n--" + B + b"--  \r\n"
        )  # fmt: skip
        assert fields(parse_all(body)) == [("a", None, b"1"), ("b", None, b"2")]

    def test_close_delimiter_without_final_crlf(self) -> None:
        body = form(part("a", b"1"))[:-2]
        assert fields(parse_all(body)) == [("a", None, b"1")]

    def test_form_with_no_fields(self) -> None:
        assert parse_all(b"--" + B + b"--\r\n") == [("close",)]

    def test_filename_star_utf8_wins_over_filename(self) -> None:
        head = (
            b'Content-Disposition: form-data; name="doc"; filename="EUR rates.txt";'
            b" filename*=UTF-8''%e2%82%ac%20rates.txt\r\n\r\n"
        )
        events = parse_all(form(head + b"x"))
        assert events[0][1:3] == ("doc", "€ rates.txt")

    def test_raw_utf8_filename_as_browsers_send_it(self) -> None:
        events = parse_all(form(part("f", b"x", filename="résumé 日本.pdf")))
        assert events[0][2] == "résumé 日本.pdf"

    def test_quoted_names_with_escapes(self) -> None:
        head = (
            b'Content-Disposition: form-data; name="a \\"quoted\\" name";'
            b' filename="back\\\\slash \\"q\\".txt"\r\n\r\n'
        )
        events = parse_all(form(head + b"x"))
        assert events[0][1:3] == ('a "quoted" name', 'back\\slash "q".txt')

    def test_old_ie_full_path_filename_is_not_unescaped(self) -> None:
        head = b'Content-Disposition: form-data; name="f"; filename="C:\\Users\\me\\a.txt"\r\n\r\n'
        assert parse_all(form(head + b"x"))[0][2] == "C:\\Users\\me\\a.txt"

    def test_part_headers_content_type_and_extra_headers(self) -> None:
        head = (
            b"content-disposition:form-data;name=upload;filename=a.png\r\n"
            b"Content-Type:   image/png  \r\n"
            b"X-Custom: 1\t\r\n\r\n"
        )
        ev = run(form(head + b"\x89PNG"), [form(head + b"\x89PNG")]).raw[0]
        assert isinstance(ev, PartBegin)
        assert (ev.name, ev.filename) == ("upload", "a.png")
        assert ev.headers == [
            ("content-disposition", "form-data;name=upload;filename=a.png"),
            ("Content-Type", "image/png"),
            ("X-Custom", "1"),
        ]
        assert ev.header("CONTENT-TYPE") == "image/png"
        assert ev.header("missing") is None

    def test_large_part_streams_with_bounded_events_and_memory(self) -> None:
        data = random.Random(7).randbytes(1 << 20)
        body = form(part("big", data, filename="big.bin"), part("after", b"tail"))
        limits = dataclasses.replace(LIMITS, part_data_size=16 * 1024)
        pieces = [body[i : i + 65536] for i in range(0, len(body), 65536)]
        res = run(body, pieces, limits=limits)
        assert fields(res.norm) == [("big", "big.bin", data), ("after", None, b"tail")]
        assert res.max_data == 16 * 1024
        # only a possible delimiter prefix is ever held back
        assert res.max_leftover < len(b"\r\n--" + B)
        rng = random.Random(8)
        for _ in range(3):
            assert run(body, pieces_random(body, rng), limits=limits).norm == res.norm
        assert run(body, [body], limits=limits).norm == res.norm

    def test_data_is_emitted_without_waiting_for_the_delimiter(self) -> None:
        p = MultipartParser(B, LIMITS)
        buf = bytearray(form(part("a", b""))[: -len(B) - 8] + b"abc\r\n--" + B[:4])
        ev, n = p.next_event(buf)
        assert isinstance(ev, PartBegin)
        del buf[:n]
        assert p.next_event(buf) == (b"abc", 3)
        del buf[:3]
        assert p.next_event(buf) == (NEED_DATA, 0)
        buf += b"X"  # not the boundary after all: the held-back bytes are data
        assert p.next_event(buf) == (b"\r\n--" + B[:4] + b"X", 4 + len(B[:4]) + 1)

    def test_requests_client_body(self) -> None:
        png = random.Random(3).randbytes(5000) + b"\r\n--"
        files: dict[str, Any] = {
            "photo": ("pic.png", png, "image/png"),
            "notes": ("notes.txt", b"line1\r\nline2\r\n"),
        }
        req = requests.Request(
            "POST",
            "http://127.0.0.1/upload",
            data={"title": "holiday", "tags": ["a", "b"]},
            files=files,
        ).prepare()
        ctype = req.headers["Content-Type"]
        assert isinstance(req.body, bytes) and isinstance(ctype, str)
        boundary = boundary_from_content_type(ctype)
        events = parse_all(req.body, boundary=boundary)
        assert fields(events) == [
            ("title", None, b"holiday"),
            ("tags", None, b"a"),
            ("tags", None, b"b"),
            ("photo", "pic.png", png),
            ("notes", "notes.txt", b"line1\r\nline2\r\n"),
        ]
        photo = next(e for e in events if e[0] == "begin" and e[1] == "photo")
        assert ("Content-Type", "image/png") in photo[3]

    def test_urllib3_encoder_body(self) -> None:
        body, ctype = encode_multipart_formdata(
            [("k", "v"), ("f", ("ünï.txt", b"\x00\r\n\xff", "application/octet-stream"))]
        )
        events = parse_all(body, boundary=boundary_from_content_type(ctype))
        assert fields(events) == [("k", None, b"v"), ("f", "ünï.txt", b"\x00\r\n\xff")]

    def test_email_package_body(self) -> None:
        msg = MIMEMultipart("form-data")
        text = MIMEText("hello", "plain", "utf-8")
        text.add_header("Content-Disposition", "form-data", name="msg")
        blob = MIMEApplication(b"\x00\x01binary", "octet-stream")
        blob.add_header("Content-Disposition", "form-data", name="blob", filename="b.dat")
        msg.attach(text)
        msg.attach(blob)
        raw = msg.as_bytes(policy=email.policy.HTTP)
        head, _, body = raw.partition(b"\r\n\r\n")
        ctype = next(
            line.split(b":", 1)[1].decode() for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-type:")
        )  # fmt: skip
        got = fields(parse_all(body, boundary=boundary_from_content_type(ctype)))
        # the email package base64-encodes both parts (Content-Transfer-Encoding: base64)
        assert [(n, f, base64.b64decode(d)) for n, f, d in got] == [
            ("msg", None, b"hello"),
            ("blob", "b.dat", b"\x00\x01binary"),
        ]


class TestRandomValidBodies:
    """Random forms round-trip: the parser returns exactly the parts that were encoded."""

    ALPHABET = [b"\r", b"\n", b"-", b"--", b"\r\n", b"\r\n--", b" ", b"x", b"\x00", b"\xff"]

    def test_round_trip(self) -> None:
        rng = random.Random(1234)
        for _ in range(150):
            boundary = rng.choice([b"b", b"xy", B, b"a'()+_,./:=? z", bytes(70 * b"q")])
            delim = b"\r\n--" + boundary
            alphabet = [*self.ALPHABET, boundary, boundary[:-1], delim[:-1]]
            want = []
            for i in range(rng.randrange(0, 5)):
                while True:
                    data = b"".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 30)))
                    if delim not in data:
                        break
                want.append((f"n{i}", rng.choice([None, f"f{i}"]), data))
            parts = [part(n, d, filename=f) for n, f, d in want]
            body = form(*parts, boundary=boundary)
            limits = dataclasses.replace(LIMITS, part_data_size=rng.choice([1, 3, 7, 64]))
            assert fields(parse_all(body, boundary, limits, seeds=2)) == want


def head_of(cd: bytes) -> bytes:
    return form(b"Content-Disposition: " + cd + b"\r\n\r\nx")


ONE = form(part("a", b"1"))
TWO = form(part("a", b"1"), part("b", b"2"))
DELIM = b"\r\n--" + B
CD = b"Content-Disposition: form-data; name=a"

FRAMING = {
    "empty-body": b"",
    "no-delimiter": b"hello world",
    "truncated-boundary": b"--" + B[:-1] + b"\r\n",
    "nothing-after-first-delimiter": b"--" + B + b"\r\n",
    "missing-final-boundary": b"--" + B + b"\r\n" + part("a", b"1"),
    "close-delimiter-cut": ONE[:-4],
    "eof-in-headers": b"--" + B + b"\r\n" + CD + b"\r\n",
    "garbage-after-first-delimiter": b"--" + B + b"X\r\n" + part("a", b"1"),
    "garbage-after-delimiter": ONE.replace(DELIM + b"--", DELIM + b"X-"),
    "garbage-after-padding": TWO.replace(DELIM + b"\r\n", DELIM + b" x\r\n"),
    "single-dash-close": ONE.replace(DELIM + b"--", DELIM + b"-x"),
    "bare-lf-after-delimiter": ONE.replace(B + b"\r\n", B + b"\n", 1),
    "bare-cr-in-padding": ONE.replace(B + b"\r\n", B + b" \r \n", 1),
}

BAD_HEADERS = {
    "no-colon": b"Content-Disposition form-data; name=a",
    "space-in-name": b"Content Disposition: form-data; name=a",
    "space-before-colon": b"Content-Disposition : form-data; name=a",
    "empty-name": b": form-data; name=a",
    "obs-fold": CD + b"\r\n folded",
    "obs-fold-tab": CD + b"\r\n\tfolded",
    "nul-in-value": CD + b"\x00",
    "bare-lf-in-value": CD + b"\nb",
    "bare-cr-in-value": CD + b"\rb",
    "del-in-value": b"X-A: 1\x7f\r\n" + CD,
    "no-content-disposition": b"Content-Type: text/plain",
    "two-content-dispositions": CD + b"\r\n" + CD,
    "not-form-data": b"Content-Disposition: attachment; name=a",
    "no-name": b"Content-Disposition: form-data",
    "filename-but-no-name": b"Content-Disposition: form-data; filename=a.txt",
    "repeated-param": CD + b"; name=b",
    "repeated-param-case": CD + b"; NAME=b",
    "unterminated-quote": b'Content-Disposition: form-data; name="a',
    "junk-after-quote": b'Content-Disposition: form-data; name="a"junk',
    "space-in-token": CD + b" b",
    "empty-value": b"Content-Disposition: form-data; name=",
    "missing-semicolon": b"Content-Disposition: form-data name=a",
    "missing-type": b"Content-Disposition: ; name=a",
    "quoted-ext-value": CD + b"; filename*=\"UTF-8''a\"",
    "ext-value-one-quote": CD + b"; filename*=UTF-8'a",
    "ext-value-bad-percent": CD + b"; filename*=UTF-8''%zz",
    "ext-value-bad-utf8": CD + b"; filename*=UTF-8''%ff",
    "ext-value-charset": CD + b"; filename*=rot13''a",
}


class TestMalformed:
    @pytest.mark.parametrize("body", FRAMING.values(), ids=FRAMING.keys())
    def test_framing(self, body: bytes) -> None:
        rejects(body)

    @pytest.mark.parametrize("head", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
    def test_part_headers(self, head: bytes) -> None:
        rejects(form(head + b"\r\n\r\nx"))

    def test_part_without_headers(self) -> None:
        rejects(form(b"\r\nx"))

    def test_oversized_part_headers_detected_at_limit_plus_one(self) -> None:
        limits = dataclasses.replace(LIMITS, max_part_headers=100)
        start = b"--" + B + b"\r\n"
        line = b"Content-Disposition: form-data; name=a\r\nX-Pad: "
        fill = line + b"p" * (101 - len(line))
        assert len(fill) == 101
        p = MultipartParser(B, limits)
        assert p.next_event(start + fill[:99]) == (NEED_DATA, len(start))
        for fed in (fill, fill[:100]):  # 100 bytes and no CRLF CRLF: already too long
            p = MultipartParser(B, limits)
            with pytest.raises(LimitExceeded) as info:
                p.next_event(start + fed)  # not eof: the parser does not wait for more
            assert info.value.status == 400
        rejects(form(fill + b"\r\n\r\nx"), limits=limits)

    def test_part_headers_exactly_at_limit_are_accepted(self) -> None:
        section = b"Content-Disposition: form-data; name=a\r\nX-Pad: "
        section += b"p" * (100 - len(section) - 4) + b"\r\n\r\n"
        assert len(section) == 100
        limits = dataclasses.replace(LIMITS, max_part_headers=100)
        assert fields(parse_all(form(section + b"x"), limits=limits)) == [("a", None, b"x")]

    def test_oversized_preamble(self) -> None:
        limits = dataclasses.replace(LIMITS, max_part_headers=64)
        ok = b"p" * 64 + b"\r\n" + form(part("a", b"1"))
        assert fields(parse_all(ok, limits=limits)) == [("a", None, b"1")]
        rejects(b"p" * 65 + b"\r\n" + form(part("a", b"1")), limits=limits)
        dl = len(b"\r\n--" + B)
        p = MultipartParser(B, limits)
        assert p.next_event(b"p" * (64 + dl - 1)) == (NEED_DATA, 64)
        p = MultipartParser(B, limits)
        with pytest.raises(LimitExceeded):  # a delimiter can no longer start at offset <= 64
            p.next_event(b"p" * (64 + dl))

    def test_unbounded_transport_padding(self) -> None:
        limits = dataclasses.replace(LIMITS, max_part_headers=64)
        rejects(b"--" + B + b" " * 100 + b"\r\n" + part("a", b"1"), limits=limits)

    @pytest.mark.parametrize("where", ["first", "middle"])
    def test_padding_cap_holds_however_the_padding_arrives(self, where: str) -> None:
        """Issue 13: whole, the padding and its CRLF were accepted at any length."""
        limits = dataclasses.replace(LIMITS, max_part_headers=64)

        def padded(n: int) -> bytes:
            body = form(part("a", b"1"), part("b", b"2"))
            delim = b"--" + B + b"\r\n"
            at = body.index(delim) if where == "first" else body.rindex(delim)
            pad = b" \t" * (n // 2) + b" " * (n % 2)
            return body[: at + len(delim) - 2] + pad + body[at + len(delim) - 2 :]

        assert fields(parse_all(padded(64), limits=limits)) == [
            ("a", None, b"1"),
            ("b", None, b"2"),
        ]
        err = rejects(padded(65), limits=limits)
        assert isinstance(err, LimitExceeded) and "padding" in str(err)

    def test_too_many_parts(self) -> None:
        limits = dataclasses.replace(LIMITS, max_parts=3)
        three = [part(f"p{i}", b"v") for i in range(3)]
        assert len(fields(parse_all(form(*three), limits=limits))) == 3
        err = rejects(form(*three, part("p3", b"v")), limits=limits)
        assert isinstance(err, LimitExceeded)

    def test_parser_stays_failed(self) -> None:
        p = MultipartParser(B, LIMITS)
        with pytest.raises(RemoteProtocolError):
            p.next_event(b"--" + B + b"X")
        with pytest.raises(RemoteProtocolError):
            p.next_event(form(part("a", b"1")))

    def test_boundary_prefix_followed_by_garbage_is_data_but_full_boundary_is_not(self) -> None:
        ok = form(part("a", b"\r\n--" + B[:-1] + b"X"))
        assert fields(parse_all(ok)) == [("a", None, b"\r\n--" + B[:-1] + b"X")]
        rejects(form(part("a", b"\r\n--" + B + b"X")))

    def test_invalid_boundary_given_to_parser_is_a_local_error(self) -> None:
        for bad in (b"", b"a" * 71, b"ends in space ", b"bad\r\n", "é".encode()):
            with pytest.raises(LocalProtocolError):
                MultipartParser(bad, LIMITS)


class TestBoundaryFromContentType:
    @pytest.mark.parametrize(
        ("value", "boundary"),
        [
            ("multipart/form-data; boundary=abc", b"abc"),
            ("Multipart/Form-Data;BOUNDARY=abc", b"abc"),
            ('multipart/form-data; boundary="a b:c=d?"', b"a b:c=d?"),
            ("multipart/form-data; charset=utf-8; boundary=----x", b"----x"),
            ("multipart/form-data; boundary=" + "z" * 70, b"z" * 70),
            ("  multipart/form-data ; boundary=abc ;", b"abc"),
            ("multipart/form-data; boundary==_Part_1", b"=_Part_1"),
        ],
    )
    def test_valid(self, value: str, boundary: bytes) -> None:
        assert boundary_from_content_type(value) == boundary

    @pytest.mark.parametrize(
        "value",
        [
            "",
            "text/plain; boundary=abc",
            "multipart/mixed; boundary=abc",
            "multipart/form-data",
            "multipart/form-data; charset=utf-8",
            "multipart/form-data; boundary=",
            'multipart/form-data; boundary=""',
            "multipart/form-data; boundary=" + "z" * 71,
            'multipart/form-data; boundary="ends in space "',
            'multipart/form-data; boundary="bad\\"quote"',
            "multipart/form-data; boundary=a\x00b",
            "multipart/form-data; boundary=ab\u00e9",
            "multipart/form-data; boundary=a; boundary=b",
            "multipart/form-data; boundary=[abc]",
            "multipart/form-data boundary=abc",
        ],
    )
    def test_invalid(self, value: str) -> None:
        with pytest.raises(RemoteProtocolError) as info:
            boundary_from_content_type(value)
        assert info.value.status == 400


class TestContentDisposition:
    def test_parameters(self) -> None:
        kind, params = parse_content_disposition(
            "Form-Data; Name=\"x\"; FILENAME=plain.txt; filename*=utf-8'en'%C3%A9.txt"
        )
        assert kind == "form-data"
        assert params == {"name": "x", "filename": "é.txt"}

    def test_iso_8859_1_ext_value(self) -> None:
        assert parse_content_disposition("form-data; name*=ISO-8859-1''%E9")[1] == {"name": "é"}


class TestFuzz:
    """Mutated bodies either parse or raise RemoteProtocolError; nothing else, never hang."""

    VOCAB = [
        *(b"\r\n", b"\r", b"\n", b"--", b"-", b" ", b"\t", b":", b";", b'"', b"\\", b"="),
        *(b"\x00", b"\xff", b"\r\n\r\n", b"name", b"Content-Disposition: form-data; "),
    ]

    def mutate(self, body: bytes, rng: random.Random) -> bytes:
        data = bytearray(body)
        vocab = [*self.VOCAB, B, B[:-3], b"\r\n--" + B, b"--" + B + b"--"]
        for _ in range(rng.randrange(1, 5)):
            op = rng.randrange(5)
            at = rng.randrange(len(data) + 1)
            if op == 0 and data:
                data[min(at, len(data) - 1)] = rng.randrange(256)
            elif op == 1:
                data[at:at] = rng.choice(vocab)
            elif op == 2:
                del data[at : at + rng.randrange(1, 20)]
            elif op == 3:
                data[at:at] = data[at : at + rng.randrange(1, 40)]
            else:
                del data[at:]
        return bytes(data)

    def test_fuzz(self) -> None:
        rng = random.Random(20240601)
        seeds = [
            form(part("a", b"1"), part("f", b"\r\n--" + B[:-1], filename="x.bin")),
            form(part("name", b"value", ctype="text/plain"), part("e", b"")),
            b"pre\r\n" + form(part("a", b"x" * 50)) + b"epi",
            form(
                b'Content-Disposition: form-data; name="q\\""; filename*=UTF-8\'\'%c3%a9\r\n\r\nz'
            ),
        ]
        outcomes = {"ok": 0, "error": 0}
        for _ in range(2500):
            body = self.mutate(rng.choice(seeds), rng)
            limits = Limits(
                max_parts=rng.choice([1, 2, 1000]),
                max_part_headers=rng.choice([16, 60, 8192]),
                part_data_size=rng.choice([1, 5, 65536]),
            )
            pieces = pieces_random(body, rng) if rng.random() < 0.8 else [body]
            try:
                res = run(body, pieces, limits=limits, eof=rng.random() < 0.9)
            except RemoteProtocolError as e:
                assert e.status == 400
                outcomes["error"] += 1
            else:
                assert len(res.raw) <= len(body) + 1
                outcomes["ok"] += 1
        assert outcomes["ok"] > 100 and outcomes["error"] > 100

    def test_random_bytes(self) -> None:
        rng = random.Random(99)
        for _ in range(500):
            body = rng.randbytes(rng.randrange(0, 200))
            if rng.random() < 0.5:
                body = b"--" + B + b"\r\n" + body
            with pytest.raises(RemoteProtocolError):
                run(body, pieces_random(body, rng))

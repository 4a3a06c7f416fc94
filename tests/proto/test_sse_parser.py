"""The event-stream parser against WHATWG HTML 9.2.5/9.2.6, fed whole, one byte at a time
and with a trailing partial event (all three must dispatch the same events)."""

from __future__ import annotations

import random

import pytest

from mgpy.errors import LimitExceeded, RemoteProtocolError
from mgpy.proto.sse import NEED_DATA, SseEvent, SseParser, format_event

#: an event whose blank line never comes: it must not be dispatched
TRAILING = b"data: never dispatched\n"


def drain(p: SseParser) -> list[SseEvent]:
    out = []
    while (ev := p.next_event()) is not NEED_DATA:
        assert isinstance(ev, SseEvent)
        out.append(ev)
    return out


def parse(stream: bytes, **kw: int) -> tuple[list[SseEvent], SseParser]:
    """Events of ``stream`` fed three ways (they must agree), and the last parser."""
    results = []
    parser = SseParser()
    for chunks in (
        [stream],
        [stream[i : i + 1] for i in range(len(stream))],
        [stream + TRAILING],
    ):
        parser = SseParser(**kw)
        events: list[SseEvent] = []
        for chunk in chunks:
            parser.feed(chunk)
            events += drain(parser)
        parser.eof()
        events += drain(parser)
        results.append(events)
    assert results[0] == results[1] == results[2]
    return results[0], parser


def datas(stream: bytes) -> list[str]:
    return [e.data for e in parse(stream)[0]]


class TestLines:
    @pytest.mark.parametrize(
        "stream",
        [
            b"data: a\ndata: b\n\n",
            b"data: a\r\ndata: b\r\n\r\n",
            b"data: a\rdata: b\r\r",
            b"data: a\r\ndata: b\n\r",
            b"data: a\rdata: b\r\n\n",
        ],
    )
    def test_client_accepts_crlf_lf_and_cr_line_ends(self, stream: bytes) -> None:
        # 9.2.5: CRLF, a lone LF and a lone CR all end a line
        assert datas(stream) == ["a\nb"]

    def test_cr_at_end_of_read_ends_the_line_at_once(self) -> None:
        p = SseParser()
        p.feed(b"data: x\r\r")
        assert drain(p) == [SseEvent("x")]  # not held back waiting for a possible LF
        p.feed(b"\ndata: y\n\n")  # this LF belongs to the CR before it: not a blank line
        assert drain(p) == [SseEvent("y")]

    def test_crlf_split_across_reads_is_one_line_end(self) -> None:
        p = SseParser()
        p.feed(b"data: x\r")
        p.feed(b"\n")
        assert drain(p) == []
        p.feed(b"\r\n")
        assert drain(p) == [SseEvent("x")]

    def test_leading_bom_is_dropped_once(self) -> None:
        assert datas(b"\xef\xbb\xbfdata: x\n\n") == ["x"]
        # a second BOM is part of the field name "\ufeffdata", an unknown field
        assert datas(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\ndata: y\n\n") == ["y"]

    def test_invalid_utf8_is_replaced(self) -> None:
        assert datas(b"data: a\xffb\xc3\n\n") == ["a\ufffdb\ufffd"]

    def test_multibyte_character_split_across_reads(self) -> None:
        assert datas("data: \u00e9\u20ac\U0001f600\n\n".encode()) == ["\u00e9\u20ac\U0001f600"]

    def test_event_without_blank_line_is_discarded_at_eof(self) -> None:
        assert datas(b"data: a\n\ndata: b\n") == ["a"]
        assert datas(b"data: a\n\ndata: b") == ["a"]


class TestFields:
    def test_data_lines_are_joined_with_lf(self) -> None:
        assert datas(b"data: msg\ndata: msg\n\ndata:\n\ndata:end\n\n") == ["msg\nmsg", "", "end"]

    def test_only_one_leading_space_is_removed(self) -> None:
        assert datas(b"data:   x\n\ndata:\tx\n\ndata:x \n\n") == ["  x", "\tx", "x "]

    def test_value_keeps_later_colons(self) -> None:
        assert datas(b"data: a: b:c\n\n") == ["a: b:c"]

    def test_field_without_colon_has_empty_value(self) -> None:
        # "data" alone appends an empty line: the event is dispatched with data ""
        assert datas(b"data\n\ndata\ndata\n\n") == ["", "\n"]

    def test_comments_unknown_and_miscased_fields_are_ignored(self) -> None:
        stream = b": comment\n:\nfoo: bar\nDATA: no\ndata : no\nData: no\ndata: yes\n\n"
        assert datas(stream) == ["yes"]

    def test_event_field_sets_type_until_dispatch(self) -> None:
        events, _ = parse(b"event: add\ndata: 1\n\ndata: 2\n\nevent:\ndata: 3\n\n")
        assert [(e.type, e.data) for e in events] == [
            ("add", "1"),
            ("message", "2"),
            ("message", "3"),
        ]

    def test_blank_line_without_data_dispatches_nothing_and_resets_type(self) -> None:
        events, _ = parse(b"event: x\n\ndata: y\n\n\n\n")
        assert events == [SseEvent("y", "message", "")]

    def test_id_persists_across_events(self) -> None:
        events, parser = parse(b"id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n")
        assert [e.id for e in events] == ["1", "1", ""]
        assert parser.last_event_id == ""

    def test_id_is_applied_at_dispatch_even_after_data(self) -> None:
        events, parser = parse(b"data: a\nid: 42\n\n")
        assert events == [SseEvent("a", "message", "42")]
        assert parser.last_event_id == "42"

    def test_id_without_data_still_sets_last_event_id(self) -> None:
        events, parser = parse(b"id: 7\n\n")
        assert events == [] and parser.last_event_id == "7"

    def test_id_with_nul_is_ignored(self) -> None:
        events, parser = parse(b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n")
        assert [e.id for e in events] == ["1", "1"]
        assert parser.last_event_id == "1"

    @pytest.mark.parametrize(
        ("line", "retry"),
        [
            (b"retry: 1500", 1500),
            (b"retry:0", 0),
            (b"retry: 1500ms", None),
            (b"retry: -1", None),
            (b"retry: 1.5", None),
            (b"retry: ", None),
            (b"retry", None),
            ("retry: \u0661\u0662".encode(), None),  # Arabic-Indic digits are not ASCII digits
            (b"retry:  15", None),  # the second space stays in the value
        ],
    )
    def test_retry_counts_only_ascii_digits(self, line: bytes, retry: int | None) -> None:
        _, parser = parse(line + b"\n")
        assert parser.retry == retry

    def test_retry_is_kept_until_a_valid_one_replaces_it(self) -> None:
        _, parser = parse(b"retry: 100\nretry: x\n\n")
        assert parser.retry == 100


class TestTrickle:
    def test_long_line_fed_one_byte_at_a_time(self) -> None:
        text = "0123456789abcdef" * 8192  # 128 KiB: pieces are joined once, at the line end
        p = SseParser()
        for b in f"data: {text}\n\n".encode():
            p.feed(bytes((b,)))
        assert drain(p) == [SseEvent(text)]


class TestEofAndReconnect:
    def test_eof_drops_partial_event_but_keeps_id_and_retry(self) -> None:
        p = SseParser()
        p.feed(b"retry: 10\nid: 5\ndata: a\n\nevent: x\ndata: partial\ndata: more")
        assert drain(p) == [SseEvent("a", "message", "5")]
        p.eof()
        p.feed(b"\xef\xbb\xbfdata: next\n\n")  # a new connection may start with a BOM
        assert drain(p) == [SseEvent("next", "message", "5")]
        assert p.retry == 10


class TestLimits:
    def test_line_without_end_longer_than_max_event_is_refused(self) -> None:
        p = SseParser(max_event=100)
        p.feed(b"data: " + b"x" * 90)
        with pytest.raises(LimitExceeded):
            p.feed(b"x" * 20)

    def test_event_with_too_much_data_is_refused(self) -> None:
        p = SseParser(max_event=100)
        with pytest.raises(LimitExceeded):
            p.feed(b"data: 0123456789\n" * 20)

    def test_many_events_under_the_limit_are_fine(self) -> None:
        stream = b"data: 0123456789\n\n" * 1000
        events, _ = parse(stream, max_event=100)
        assert len(events) == 1000


class TestRoundTrip:
    def test_serialized_events_parse_back(self) -> None:
        rnd = random.Random(2008)
        pieces = ["a", "\u00e9", " ", ":", "\r", "\n", "\r\n", "data: ", "x" * 50, "\x00"]
        stream = b""
        expected = []
        for i in range(300):
            data = "".join(rnd.choice(pieces) for _ in range(rnd.randrange(0, 12)))
            kind = rnd.choice([None, "tick", "chat message"])
            stream += format_event(data, event=kind, id=i)
            normalized = data.replace("\r\n", "\n").replace("\r", "\n")
            expected.append(SseEvent(normalized, kind or "message", str(i)))
        assert parse(stream)[0] == expected

    def test_random_bytes_parse_or_raise_limit_exceeded(self) -> None:
        rnd = random.Random(9)
        alphabet = [b"\r", b"\n", b":", b" ", b"data", b"id", b"event", b"retry", b"\x00"]
        alphabet += [b"\xef\xbb\xbf", b"\xff", b"1", b"x"]
        for _ in range(500):
            stream = b"".join(rnd.choice(alphabet) for _ in range(rnd.randrange(200)))
            p = SseParser(max_event=64)
            try:
                for i in range(0, len(stream), 7):
                    p.feed(stream[i : i + 7])
                    for ev in drain(p):
                        assert "\r" not in ev.data and "\x00" not in ev.id
            except RemoteProtocolError as exc:
                assert isinstance(exc, LimitExceeded)

"""The SSE server side: event serializer, comments, stream headers, Last-Event-ID, replay."""

from __future__ import annotations

import pytest

from mgpy.errors import LocalProtocolError
from mgpy.proto.sse import (
    KEEPALIVE_INTERVAL,
    MIME_TYPE,
    ReplayBuffer,
    format_comment,
    format_event,
    last_event_id,
    response_headers,
)


class TestFormatEvent:
    def test_server_sends_data_event(self) -> None:
        assert format_event("hello") == b"data: hello\n\n"

    def test_server_sends_every_field(self) -> None:
        out = format_event("x", event="tick", id=7, retry=2500)
        assert out == b"id: 7\nevent: tick\nretry: 2500\ndata: x\n\n"

    @pytest.mark.parametrize(
        ("data", "lines"),
        [
            ("a\nb", b"data: a\ndata: b\n"),
            ("a\r\nb", b"data: a\ndata: b\n"),
            ("a\rb", b"data: a\ndata: b\n"),
            ("a\r\rb", b"data: a\ndata:\ndata: b\n"),
            ("a\n", b"data: a\ndata:\n"),
            ("", b"data:\n"),
            (" lead", b"data:  lead\n"),  # the client removes exactly one space
        ],
    )
    def test_server_splits_multiline_data(self, data: str, lines: bytes) -> None:
        assert format_event(data) == lines + b"\n"

    def test_data_is_utf8(self) -> None:
        assert format_event("\u00e9\u20ac") == "data: \u00e9\u20ac\n\n".encode()
        assert format_event("\u00e9".encode()) == "data: \u00e9\n\n".encode()

    def test_data_bytes_that_are_not_utf8_are_refused(self) -> None:
        with pytest.raises(LocalProtocolError):
            format_event(b"\xff")

    def test_event_without_data_carries_id_and_retry(self) -> None:
        assert format_event(id=3, retry=0) == b"id: 3\nretry: 0\n\n"

    def test_empty_id_clears_the_client_last_event_id(self) -> None:
        assert format_event("x", id="") == b"id:\ndata: x\n\n"

    @pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\r\n"])
    def test_event_or_id_with_line_end_is_refused(self, bad: str) -> None:
        with pytest.raises(LocalProtocolError):
            format_event("x", event=bad)
        with pytest.raises(LocalProtocolError):
            format_event("x", id=bad)

    def test_id_with_nul_is_refused(self) -> None:
        with pytest.raises(LocalProtocolError):
            format_event("x", id="a\x00b")

    @pytest.mark.parametrize("bad", [-1, 1.5, True, "100"])
    def test_retry_must_be_a_non_negative_int(self, bad: object) -> None:
        with pytest.raises(LocalProtocolError):
            format_event("x", retry=bad)  # type: ignore[arg-type]


class TestCommentsAndHeaders:
    def test_keepalive_comment(self) -> None:
        assert format_comment() == b":\n"
        assert format_comment("keepalive") == b": keepalive\n"

    def test_multiline_comment_stays_a_comment(self) -> None:
        assert format_comment("a\nb\rc") == b": a\n: b\n: c\n"

    def test_keepalive_interval_follows_the_spec_advice(self) -> None:
        assert KEEPALIVE_INTERVAL == 15.0

    def test_stream_headers(self) -> None:
        headers = dict(response_headers())
        assert headers["Content-Type"] == MIME_TYPE == "text/event-stream"
        assert headers["Cache-Control"] == "no-store"
        assert headers["X-Accel-Buffering"] == "no"
        assert "Content-Length" not in headers


class TestLastEventId:
    def test_header_is_found_case_insensitively(self) -> None:
        assert last_event_id([("Host", "x"), ("last-event-id", "42")]) == "42"
        assert last_event_id({"Last-Event-ID": "abc"}) == "abc"

    def test_absent_or_empty_header_is_none(self) -> None:
        assert last_event_id([("Host", "x")]) is None
        assert last_event_id({"Last-Event-ID": ""}) is None

    def test_utf8_id_decoded_as_latin1_by_the_http_parser(self) -> None:
        wire = "caf\u00e9".encode().decode("latin-1")  # what a latin-1 head decode gives
        assert last_event_id([("Last-Event-ID", wire)]) == "caf\u00e9"

    def test_id_that_is_not_utf8_is_none(self) -> None:
        assert last_event_id([("Last-Event-ID", "\xff")]) is None

    def test_first_of_several_headers_counts(self) -> None:
        assert last_event_id([("Last-Event-ID", "1"), ("Last-Event-ID", "2")]) == "1"


class TestReplayBuffer:
    def test_reconnecting_client_gets_missed_events(self) -> None:
        replay = ReplayBuffer[str](capacity=10)
        for i in range(1, 6):
            replay.append(i, f"e{i}")
        assert replay.since(2) == ["e3", "e4", "e5"]
        assert replay.since("2") == ["e3", "e4", "e5"]  # as read from Last-Event-ID
        assert replay.since(5) == []
        assert replay.since(None) == []  # a first connection

    def test_id_too_old_is_signalled(self) -> None:
        replay = ReplayBuffer[int](capacity=3)
        for i in range(1, 11):
            replay.append(i, i)
        assert len(replay) == 3
        assert replay.since(7) == [8, 9, 10]  # 7 was evicted last: nothing after it was
        assert replay.since(6) is None  # 7 is gone: it would be missed

    @pytest.mark.parametrize("bad", [0, 99, "x", "-1", "1.0", " 2", "\u0662"])
    def test_unknown_id_is_signalled(self, bad: int | str) -> None:
        replay = ReplayBuffer[int](capacity=10)
        for i in (1, 2, 3):
            replay.append(i, i)
        assert replay.since(bad) is None

    def test_ids_with_gaps(self) -> None:
        replay = ReplayBuffer[str](capacity=10)
        for i in (10, 20, 30):
            replay.append(i, str(i))
        assert replay.since(10) == ["20", "30"]
        assert replay.since(15) is None  # never issued

    def test_ids_must_increase(self) -> None:
        replay = ReplayBuffer[int](capacity=10)
        replay.append(5, 5)
        with pytest.raises(LocalProtocolError):
            replay.append(5, 5)
        with pytest.raises(LocalProtocolError):
            replay.append(4, 4)
        with pytest.raises(LocalProtocolError):
            replay.append("6", 6)  # type: ignore[arg-type]

    def test_empty_buffer(self) -> None:
        replay = ReplayBuffer[int](capacity=1)
        assert replay.last_id is None and len(replay) == 0
        assert replay.since(1) is None
        with pytest.raises(ValueError):
            ReplayBuffer[int](capacity=0)

    def test_long_run_stays_bounded_and_correct(self) -> None:
        replay = ReplayBuffer[int](capacity=50)
        for i in range(10_000):
            replay.append(i, i)
            assert len(replay) == min(i + 1, 50)
        assert replay.last_id == 9999
        assert replay.since(9949) == list(range(9950, 10_000))
        assert replay.since(9948) is None

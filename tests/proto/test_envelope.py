"""The envelope of hub messages relayed through Redis (mgpy.proto.envelope)."""

from __future__ import annotations

import pytest

from mgpy.proto.envelope import MAGIC, Envelope, envelope_tail, parse_envelope


def wire(ident: int, tail: bytes) -> bytes:
    """What the publishing script puts on the channel: ``mgpy1 <id>`` + the tail."""
    return MAGIC + b" %d" % ident + tail


def test_round_trip_with_an_event_and_a_payload_holding_newlines_and_spaces() -> None:
    data = b"line one\nline two with spaces\n"
    env = parse_envelope(wire(1733500000123, envelope_tail(1, b"node-a", 7, "chat", data)))
    assert env == Envelope(1733500000123, 1, b"node-a", 7, "chat", data)


def test_no_event_and_binary_data() -> None:
    env = parse_envelope(wire(5, envelope_tail(2, b"n", 1, None, b"\x00\xff\n")))
    assert env is not None and env.event is None and env.op == 2 and env.data == b"\x00\xff\n"


def test_a_foreign_origin_has_no_sequence_number() -> None:
    env = parse_envelope(b"mgpy1 9 1 elsewhere x\nhi")
    assert env is not None and env.node == b"elsewhere" and env.seq is None and env.data == b"hi"


@pytest.mark.parametrize(
    "data",
    [
        b"hello",  # a plain redis-cli PUBLISH
        b"mgpy1 12 1 n:1 ev",  # no newline: no payload separator
        b"mgpy1 x 1 n:1 ev\nhi",  # the id is not a number
        b"mgpy1 12 9 n:1 ev\nhi",  # not a text or binary opcode
        b"mgpy1 12 1 n:1\nhi",  # a field missing
        b"mgpy2 12 1 n:1 ev\nhi",  # another version of the format
    ],
)
def test_what_is_not_an_envelope_is_delivered_as_it_is(data: bytes) -> None:
    assert parse_envelope(data) is None

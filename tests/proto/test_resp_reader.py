"""The RESP reply reader: every RESP2/RESP3 type, pub/sub events, errors as values, limits.

Every case is fed whole, one byte at a time and followed by the start of another reply;
all three must give the same events.  Cases that hiredis handles the same way run on both
readers (``reader`` fixture); cases where the module notes say hiredis differs run on the
pure reader only.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable

import pytest

from mgpy._accel import extensions_disabled
from mgpy.errors import LimitExceeded, RemoteProtocolError
from mgpy.proto import resp_hiredis
from mgpy.proto.resp import (
    NEED_DATA,
    PubSubMessage,
    RespError,
    RespLimits,
    RespPush,
    RespReader,
    Subscription,
    pack_pipeline,
)
from mgpy.proto.resp_hiredis import HIREDIS_AVAILABLE, HiredisReader, new_reader

Factory = Callable[..., RespReader | HiredisReader]
FACTORIES: list[Factory] = [RespReader]
if HIREDIS_AVAILABLE:
    FACTORIES.append(HiredisReader)


@pytest.fixture
def hiredis_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """HiredisReader on the installed hiredis, even where MGPY_NO_EXTENSIONS turned it off."""
    monkeypatch.setattr(resp_hiredis, "_hiredis", importlib.import_module("hiredis"))


#: the start of a further reply, appended to check that it is left alone
TRAILING = b"$5\r\nhel"


@pytest.fixture(params=FACTORIES, ids=lambda f: f.__name__)
def reader(request: pytest.FixtureRequest) -> Factory:
    factory: Factory = request.param
    return factory


def drain(r: RespReader | HiredisReader) -> list[object]:
    out = []
    while (ev := r.next_event()) is not NEED_DATA:
        out.append(ev)
    return out


def read_all(factory: Factory, data: bytes, pubsub: bool = False, **kw: int) -> list[object]:
    """Events of ``data`` fed whole, byte by byte and with trailing data (must agree)."""
    results = []
    for chunks in ([data], [data[i : i + 1] for i in range(len(data))], [data + TRAILING]):
        r = factory(RespLimits(**kw)) if kw else factory()
        r.pubsub = pubsub
        out: list[object] = []
        for chunk in chunks:
            r.feed(chunk)
            out += drain(r)
        results.append(out)
    assert repr(results[0]) == repr(results[1]) == repr(results[2]), results  # repr: nan != nan
    return results[0]


def read_one(factory: Factory, data: bytes, pubsub: bool = False, **kw: int) -> object:
    events = read_all(factory, data, pubsub, **kw)
    assert len(events) == 1, events
    return events[0]


def refused(factory: Factory, data: bytes, **kw: int) -> RemoteProtocolError:
    """Assert ``data`` is refused, fed whole and byte by byte, and the reader stays dead."""
    caught = []
    for chunks in ([data], [data[i : i + 1] for i in range(len(data))]):
        r = factory(RespLimits(**kw)) if kw else factory()
        with pytest.raises(RemoteProtocolError) as info:
            for chunk in chunks:
                r.feed(chunk)
                drain(r)
        with pytest.raises(RemoteProtocolError):
            r.next_event()
        caught.append(info.value)
    assert type(caught[0]) is type(caught[1])
    return caught[0]


class TestSimpleTypes:
    @pytest.mark.parametrize(
        ("wire", "value"),
        [
            (b"+OK\r\n", b"OK"),
            (b"+\r\n", b""),
            (b":0\r\n", 0),
            (b":-1\r\n", -1),
            (b":9223372036854775807\r\n", 2**63 - 1),
            (b":-9223372036854775808\r\n", -(2**63)),
            (b"$5\r\nhello\r\n", b"hello"),
            (b"$0\r\n\r\n", b""),
            (b"$4\r\na\r\nb\r\n", b"a\r\nb"),
            (b"$-1\r\n", None),
            (b"_\r\n", None),
            (b"#t\r\n", True),
            (b"#f\r\n", False),
            (b",1.5\r\n", 1.5),
            (b",-2\r\n", -2.0),
            (b",1e+20\r\n", 1e20),
            (b",1.25E-3\r\n", 1.25e-3),
            (b",inf\r\n", math.inf),
            (b",-inf\r\n", -math.inf),
            (b"=15\r\ntxt:Some string\r\n", b"Some string"),
        ],
    )
    def test_reader_receives_scalar(self, reader: Factory, wire: bytes, value: object) -> None:
        got = read_one(reader, wire)
        assert got == value and type(got) is type(value)

    @pytest.mark.parametrize("wire", [b",nan\r\n", b",-nan\r\n", b",NAN\r\n", b",nan(0x1)\r\n"])
    def test_pure_reader_receives_every_nan_spelling(self, wire: bytes) -> None:
        # RESP3 spec 1.4: Redis before 7.2 may send libc's spellings of NaN
        got = read_one(RespReader, wire)
        assert isinstance(got, float) and math.isnan(got)

    def test_pure_reader_receives_big_number_as_int(self) -> None:
        wire = b"(3492890328409238509324850943850943825024385\r\n"
        assert read_one(RespReader, wire) == 3492890328409238509324850943850943825024385
        assert read_one(RespReader, b"(-12\r\n") == -12

    def test_pure_reader_receives_blob_error_as_value(self) -> None:
        got = read_one(RespReader, b"!21\r\nSYNTAX invalid syntax\r\n")
        assert got == RespError("SYNTAX invalid syntax")
        assert isinstance(got, RespError) and got.code == "SYNTAX"


class TestErrorsAsValues:
    def test_error_reply_is_a_value_and_later_replies_follow(self, reader: Factory) -> None:
        events = read_all(reader, b"+OK\r\n-WRONGTYPE Operation against a key\r\n:7\r\n")
        assert events[0] == b"OK" and events[2] == 7
        err = events[1]
        assert isinstance(err, RespError)
        assert err.code == "WRONGTYPE"
        assert err.message == "WRONGTYPE Operation against a key"
        assert str(err) == err.message

    def test_error_inside_an_array_stays_in_place(self, reader: Factory) -> None:
        # EXEC of a transaction: one failed command among others
        got = read_one(reader, b"*3\r\n+OK\r\n-ERR value is not an integer\r\n:2\r\n")
        assert got == [b"OK", RespError("ERR value is not an integer"), 2]

    def test_error_with_invalid_utf8_is_decoded_with_replacement(self, reader: Factory) -> None:
        got = read_one(reader, b"-ERR \xff bad\r\n")
        assert got == RespError("ERR \ufffd bad")


class TestAggregates:
    def test_reader_receives_nested_arrays(self, reader: Factory) -> None:
        wire = b"*2\r\n*3\r\n:1\r\n$5\r\nhello\r\n:2\r\n#f\r\n"
        assert read_one(reader, wire) == [[1, b"hello", 2], False]

    def test_empty_and_null_arrays(self, reader: Factory) -> None:
        assert read_all(reader, b"*0\r\n*-1\r\n*1\r\n*0\r\n") == [[], None, [[]]]

    def test_map_becomes_dict_and_set_becomes_list(self, reader: Factory) -> None:
        got = read_all(reader, b"%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n~2\r\n+a\r\n:1\r\n")
        assert got == [{b"first": 1, b"second": 2}, [b"a", 1]]

    def test_empty_map(self, reader: Factory) -> None:
        assert read_one(reader, b"%0\r\n") == {}

    def test_pure_reader_turns_unhashable_map_keys_into_tuples(self) -> None:
        got = read_one(RespReader, b"%1\r\n*2\r\n:1\r\n:2\r\n+v\r\n")
        assert got == {(1, 2): b"v"}

    def test_pipelined_replies_come_out_in_order(self, reader: Factory) -> None:
        wire = b"+OK\r\n:1\r\n$1\r\n1\r\n" * 50
        assert read_all(reader, wire) == [b"OK", 1, b"1"] * 50

    def test_pure_reader_joins_streamed_string(self) -> None:
        # RESP3 spec, "Streamed strings"
        wire = b"$?\r\n;4\r\nHell\r\n;5\r\no wor\r\n;2\r\nld\r\n;0\r\n"
        assert read_one(RespReader, wire) == b"Hello world"

    def test_pure_reader_joins_streamed_aggregates(self) -> None:
        wire = (
            b"*?\r\n:1\r\n:2\r\n.\r\n%?\r\n+a\r\n:1\r\n.\r\n~?\r\n.\r\n"
            b"*1\r\n*?\r\n$?\r\n;1\r\nx\r\n;0\r\n.\r\n"
        )
        assert read_all(RespReader, wire) == [[1, 2], {b"a": 1}, [], [[b"x"]]]

    def test_pure_reader_keeps_top_level_attributes_apart(self) -> None:
        # RESP3 spec, "Attribute type": the reply is the array, the attributes ride along
        wire = (
            b"|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n"
            b"*2\r\n:2039123\r\n:9543892\r\n"
        )
        r = RespReader()
        r.feed(wire + b":1\r\n")
        assert r.next_event() == [2039123, 9543892]
        assert r.attributes == {b"key-popularity": {b"a": 0.1923, b"b": 0.0012}}
        assert r.next_event() == 1
        assert r.attributes is None
        assert read_all(RespReader, wire) == [[2039123, 9543892]]

    def test_pure_reader_drops_attributes_inside_aggregates(self) -> None:
        wire = b"*3\r\n:1\r\n:2\r\n|1\r\n+ttl\r\n:3600\r\n:3\r\n"
        assert read_one(RespReader, wire) == [1, 2, 3]


class TestBigValues:
    @pytest.mark.parametrize("size", [65535, 65536, 1 << 20])
    def test_big_bulk_arriving_in_reads_is_one_value(self, reader: Factory, size: int) -> None:
        payload = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
        wire = b"$%d\r\n%s\r\n:1\r\n" % (size, payload)
        for step in (1000, 4096, 65536, len(wire)):
            r = reader()
            out: list[object] = []
            for i in range(0, len(wire), step):
                r.feed(wire[i : i + step])
                out += drain(r)
            assert out == [payload, 1]

    def test_blob_fed_one_byte_at_a_time(self, reader: Factory) -> None:
        payload = bytes(range(256)) * 200  # under _BIG_BLOB: waits in the parse buffer
        r = reader()
        out: list[object] = []
        for b in b"*2\r\n$51200\r\n%s\r\n:1\r\n" % payload:
            r.feed(bytes((b,)))
            out += drain(r)
        assert out == [[payload, 1]]

    def test_big_bulk_inside_array_split_inside_crlf(self) -> None:
        payload = b"q" * 100_000
        wire = b"*2\r\n$100000\r\n" + payload + b"\r\n:5\r\n"
        cut = wire.index(b"\r\n:5") + 1  # between the CR and the LF after the payload
        r = RespReader()
        r.feed(wire[:cut])
        assert r.next_event() is NEED_DATA
        r.feed(wire[cut:])
        assert r.next_event() == [payload, 5]

    def test_big_array_of_many_small_replies(self, reader: Factory) -> None:
        wire = b"*20000\r\n" + b"".join(
            b"$%d\r\n%d\r\n" % (len(b"%d" % i), i) for i in range(20000)
        )
        r = reader()
        out: list[object] = []
        for i in range(0, len(wire), 4096):
            r.feed(wire[i : i + 4096])
            out += drain(r)
        assert out == [[b"%d" % i for i in range(20000)]]

    def test_feed_accepts_bytearray_and_memoryview_and_copies(self, reader: Factory) -> None:
        r = reader()
        buf = bytearray(b"$3\r\nabc\r\n")
        r.feed(memoryview(buf)[:6])
        buf[4:6] = b"XX"  # the caller reuses its buffer
        r.feed(bytearray(b"c\r\n"))
        assert r.next_event() == b"abc"


class TestPubSub:
    MESSAGE = b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n"
    PMESSAGE = b"*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
    SMESSAGE = b"*3\r\n$8\r\nsmessage\r\n$2\r\nsh\r\n$1\r\nx\r\n"

    def test_resp2_subscribed_connection_gets_typed_events(self, reader: Factory) -> None:
        wire = (
            b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n"
            b"*3\r\n$10\r\npsubscribe\r\n$2\r\nn*\r\n:2\r\n"
            + self.MESSAGE
            + self.PMESSAGE
            + self.SMESSAGE
        )
        assert read_all(reader, wire, pubsub=True) == [
            Subscription("subscribe", b"news", 1),
            Subscription("psubscribe", b"n*", 2),
            PubSubMessage(b"news", b"hello"),
            PubSubMessage(b"news", b"hi", pattern=b"n*"),
            PubSubMessage(b"sh", b"x", sharded=True),
        ]

    def test_resp2_arrays_stay_plain_replies_outside_pubsub_mode(self, reader: Factory) -> None:
        # an LRANGE that happens to hold "message", "news", "hello"
        assert read_one(reader, self.MESSAGE) == [b"message", b"news", b"hello"]

    def test_ping_reply_in_pubsub_mode_is_a_plain_reply(self, reader: Factory) -> None:
        assert read_all(reader, b"*2\r\n$4\r\npong\r\n$0\r\n\r\n", pubsub=True) == [[b"pong", b""]]

    def test_reader_leaves_pubsub_mode_when_no_subscription_is_left(self, reader: Factory) -> None:
        r = reader()
        r.pubsub = True
        r.feed(
            b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"
            b"*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:0\r\n" + self.MESSAGE
        )
        assert r.next_event() == Subscription("subscribe", b"a", 1)
        assert r.pubsub
        assert r.next_event() == Subscription("unsubscribe", b"a", 0)
        assert not r.pubsub
        assert r.next_event() == [b"message", b"news", b"hello"]

    def test_shard_subscriptions_keep_pubsub_mode(self, reader: Factory) -> None:
        r = reader()
        r.pubsub = True
        r.feed(
            b"*3\r\n$10\r\nssubscribe\r\n$2\r\nsh\r\n:1\r\n"
            b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"
            b"*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:0\r\n"
        )
        assert [type(e) for e in drain(r)] == [Subscription] * 3
        assert r.pubsub  # the shard channel is still subscribed
        r.feed(b"*3\r\n$12\r\nsunsubscribe\r\n$2\r\nsh\r\n:0\r\n")
        assert r.next_event() == Subscription("sunsubscribe", b"sh", 0)
        assert not r.pubsub

    def test_unsubscribe_without_subscriptions_has_null_channel(self, reader: Factory) -> None:
        got = read_one(reader, b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n", pubsub=True)
        assert got == Subscription("unsubscribe", None, 0)

    def test_resp3_pushes_are_typed_without_pubsub_flag(self, reader: Factory) -> None:
        wire = (
            b">3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n"
            b">3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n"
            b">2\r\n$10\r\ninvalidate\r\n*1\r\n$3\r\nkey\r\n"
            b"$3\r\nGET\r\n"
        )
        assert read_all(reader, wire) == [
            Subscription("subscribe", b"news", 1),
            PubSubMessage(b"news", b"hello"),
            RespPush("invalidate", [[b"key"]]),
            b"GET",
        ]

    def test_resp3_unsubscribe_push_with_null_channel(self, reader: Factory) -> None:
        got = read_one(reader, b">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n")
        assert got == Subscription("unsubscribe", None, 0)

    def test_push_without_string_kind_is_refused(self, reader: Factory) -> None:
        refused(reader, b">1\r\n:1\r\n")

    def test_pure_reader_refuses_empty_push_and_push_inside_array(self) -> None:
        refused(RespReader, b">0\r\n")
        refused(RespReader, b"*1\r\n>1\r\n+message\r\n")


class TestLimits:
    def test_bulk_longer_than_max_bulk_is_refused_at_its_header(self) -> None:
        r = RespReader(RespLimits(max_bulk=1000))
        r.feed(b"$1001\r\n")
        with pytest.raises(LimitExceeded):
            r.next_event()
        assert read_one(RespReader, b"$1000\r\n" + b"x" * 1000 + b"\r\n", max_bulk=1000)

    def test_hiredis_reader_bounds_the_bytes_it_buffers(self, hiredis_on: None) -> None:
        r = HiredisReader(RespLimits(max_bulk=1000, max_line=100))
        r.feed(b"$5000\r\n")
        assert r.next_event() is NEED_DATA
        r.feed(b"x" * 1200)
        with pytest.raises(LimitExceeded):
            r.next_event()

    @pytest.mark.parametrize("header", [b"*11\r\n", b"~11\r\n", b"%6\r\n", b">11\r\n"])
    def test_aggregate_longer_than_max_elements_is_refused(self, header: bytes) -> None:
        exc = refused(RespReader, header, max_elements=10)
        assert isinstance(exc, LimitExceeded)

    def test_streamed_aggregate_longer_than_max_elements_is_refused(self) -> None:
        exc = refused(RespReader, b"*?\r\n" + b":1\r\n" * 11, max_elements=10)
        assert isinstance(exc, LimitExceeded)

    def test_nesting_deeper_than_max_depth_is_refused(self) -> None:
        assert read_one(RespReader, b"*1\r\n" * 4 + b":1\r\n", max_depth=4) == [[[[1]]]]
        exc = refused(RespReader, b"*1\r\n" * 5 + b":1\r\n", max_depth=4)
        assert isinstance(exc, LimitExceeded)

    def test_deep_nesting_is_a_limit_not_a_recursion_error(self) -> None:
        exc = refused(RespReader, b"*1\r\n" * 100_000)
        assert isinstance(exc, LimitExceeded)

    def test_line_longer_than_max_line_is_refused_without_its_crlf(self) -> None:
        assert read_one(RespReader, b"+" + b"a" * 100 + b"\r\n", max_line=100) == b"a" * 100
        exc = refused(RespReader, b"+" + b"a" * 102, max_line=100)
        assert isinstance(exc, LimitExceeded)

    def test_reply_larger_than_max_reply_is_refused(self) -> None:
        wire = b"*100\r\n" + b"$10\r\n0123456789\r\n" * 100
        assert len(read_one(RespReader, wire, max_reply=len(wire))) == 100  # type: ignore[arg-type]
        exc = refused(RespReader, wire, max_reply=len(wire) - 100)
        assert isinstance(exc, LimitExceeded)

    def test_streamed_string_longer_than_max_bulk_is_refused(self) -> None:
        exc = refused(RespReader, b"$?\r\n;6\r\nabcdef\r\n;6\r\nabcdef\r\n", max_bulk=10)
        assert isinstance(exc, LimitExceeded)

    def test_limit_exceeded_carries_status_and_close_code(self) -> None:
        exc = refused(RespReader, b"*11\r\n", max_elements=10)
        assert exc.status == 413 and exc.ws_code == 1009


class TestMalformed:
    @pytest.mark.parametrize(
        "wire",
        [
            b"x\r\n",  # unknown type byte
            b":abc\r\n",
            b": 12\r\n",
            b":+12\r\n",
            b":-0\r\n",
            b":012\r\n",
            b":1_000\r\n",
            b":9223372036854775808\r\n",  # outside int64
            b"$-2\r\n",
            b"$03\r\nabc\r\n",
            b"$+3\r\nabc\r\n",
            b"$3\r\nabc\r\r\n",
            b"*-2\r\n",
            b"*x\r\n",
            b"#x\r\n",
            b",abc\r\n",
            b"=3\r\nabc\r\n",  # verbatim string without its format
            b"+a\rb\r\n",  # CR inside a simple string
            b"-a\nb\r\n",
        ],
    )
    def test_reader_refuses_malformed_reply(self, reader: Factory, wire: bytes) -> None:
        refused(reader, wire)

    @pytest.mark.parametrize(
        "wire",
        [
            b"$3\r\nabcXY",  # hiredis does not check the CRLF after a blob
            b",.5\r\n",  # the spec: an integral part is required (hiredis uses strtod)
            b",1.\r\n",
            b"_x\r\n",
            b"(1.5\r\n",
            b"!-1\r\n",
            b"%-1\r\n",
            b";3\r\nabc\r\n",  # a chunk outside a streamed string
            b".\r\n",  # an end outside a streamed aggregate
            b"*2\r\n:1\r\n.\r\n",
            b"$?\r\n:1\r\n",  # a streamed string holds only ';' parts
            b"$?\r\n$1\r\na\r\n",
            b"$?\r\n*1\r\n:1\r\n",
            b"%?\r\n+a\r\n.\r\n",  # a streamed map with an odd count
            b"~?\r\n$?\r\n;1\r\nx\r\n.\r\n",
            b"%1\r\n:1\r\n*1\r\n>1\r\n+x\r\n",
            b"(" + b"1" * 5000 + b"\r\n",  # beyond CPython's int-from-string limit
        ],
    )
    def test_pure_reader_refuses_malformed_resp3(self, wire: bytes) -> None:
        refused(RespReader, wire)


class TestNewReader:
    def test_hiredis_is_used_unless_extensions_are_disabled(self) -> None:
        # hiredis is in the test extra: only MGPY_NO_EXTENSIONS may turn it off
        assert HIREDIS_AVAILABLE is not extensions_disabled()

    def test_new_reader_is_pure_unless_acceleration_is_asked_for(self) -> None:
        assert type(new_reader()) is RespReader
        expected = HiredisReader if HIREDIS_AVAILABLE else RespReader
        assert type(new_reader(accelerated=True)) is expected

    def test_new_reader_passes_limits(self) -> None:
        limits = RespLimits(max_bulk=10)
        assert new_reader(limits).limits is limits

    def test_replies_to_a_pipeline_round_trip(self, reader: Factory) -> None:
        # a client command is an array of blob strings: the reader can parse the encoder's output
        wire = pack_pipeline([("SET", "k", 1), ("GET", b"k"), ("ZADD", "z", 1.5, "m")])
        assert read_all(reader, wire) == [
            [b"SET", b"k", b"1"],
            [b"GET", b"k"],
            [b"ZADD", b"z", b"1.5", b"m"],
        ]

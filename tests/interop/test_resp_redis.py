"""The RESP codec against a real redis-server over plain blocking sockets.

One ``redis-server`` (Debian's package, installed by tools/sysdeps.sh) is started for the
module on a free 127.0.0.1 port with persistence off, waited for by polling PING with a
deadline, and stopped by its PID.  Every test runs with the pure reader and, when hiredis
is importable, with the hiredis reader too.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from mgpy.proto.resp import (
    NEED_DATA,
    PubSubMessage,
    RespError,
    RespPush,
    RespReader,
    Subscription,
    pack_pipeline,
)
from mgpy.proto.resp_hiredis import HIREDIS_AVAILABLE, HiredisReader
from tests.redis_server import MISSING, REDIS, running


@pytest.fixture(autouse=True)
def _needs_redis() -> None:
    if REDIS is None:
        pytest.fail(MISSING)


IO_TIMEOUT = 10.0
READ_SIZE = 65536

Factory = Callable[[], RespReader | HiredisReader]
FACTORIES: list[Factory] = [RespReader]
if HIREDIS_AVAILABLE:
    FACTORIES.append(HiredisReader)


class Client:
    """A blocking socket speaking RESP through the codec under test."""

    def __init__(self, port: int, factory: Factory) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        self.reader = factory()

    def send(self, *commands: tuple[object, ...]) -> None:
        self.sock.sendall(pack_pipeline(commands))  # type: ignore[arg-type]

    def read(self, count: int = 1) -> list[object]:
        """Read ``count`` events, failing at the deadline."""
        deadline = time.monotonic() + IO_TIMEOUT
        out: list[object] = []
        while len(out) < count:
            ev = self.reader.next_event()
            if ev is not NEED_DATA:
                out.append(ev)
                continue
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(out)} of {count} events within {IO_TIMEOUT}s")
            data = self.sock.recv(READ_SIZE)
            if not data:
                raise AssertionError("redis closed the connection")
            self.reader.feed(data)
        return out

    def call(self, *args: object) -> object:
        self.send(args)
        return self.read()[0]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with running(tmp_path_factory.mktemp("redis"), sig=signal.SIGTERM) as srv:
        yield srv.port


@pytest.fixture(params=FACTORIES, ids=lambda f: f.__name__)
def client(redis_port: int, request: pytest.FixtureRequest) -> Iterator[Client]:
    c = Client(redis_port, request.param)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def publisher(redis_port: int) -> Iterator[Client]:
    c = Client(redis_port, RespReader)
    try:
        yield c
    finally:
        c.close()


def key(request: pytest.FixtureRequest, name: str) -> str:
    """A key or channel of this test alone (no glob characters: channels make patterns)."""
    node = request.node.name.replace("[", ".").replace("]", "")
    return f"{node}:{name}"


class TestPipelining:
    def test_pipelined_set_incr_get_replies_come_in_order(
        self, client: Client, request: pytest.FixtureRequest
    ) -> None:
        commands: list[tuple[object, ...]] = []
        expected: list[object] = []
        for i in range(300):
            k = key(request, f"n{i}")
            commands += [("SET", k, i), ("INCR", k), ("GET", k)]
            expected += [b"OK", i + 1, b"%d" % (i + 1)]
        client.send(*commands)  # one write of 900 commands
        assert client.read(len(expected)) == expected

    def test_error_reply_mid_pipeline_is_a_value(
        self, client: Client, request: pytest.FixtureRequest
    ) -> None:
        k = key(request, "text")
        client.send(("SET", k, "not a number"), ("INCR", k), ("GET", k))
        ok, err, value = client.read(3)
        assert ok == b"OK" and value == b"not a number"
        assert isinstance(err, RespError) and err.code == "ERR"
        assert "not an integer" in err.message

    def test_missing_key_is_none_and_unknown_command_an_error(self, client: Client) -> None:
        client.send(("GET", "no-such-key-anywhere"), ("NOSUCHCOMMAND", 1))
        missing, err = client.read(2)
        assert missing is None
        assert isinstance(err, RespError) and err.code == "ERR"


class TestBigValues:
    @pytest.mark.parametrize("size", [100 * 1024, 8 * 1024 * 1024])
    def test_big_bulk_value_round_trips(
        self, client: Client, request: pytest.FixtureRequest, size: int
    ) -> None:
        value = os.urandom(size)
        k = key(request, "big")
        client.send(("SET", k, value), ("GET", k), ("STRLEN", k), ("DEL", k))
        assert client.read(4) == [b"OK", value, size, 1]

    def test_many_values_in_one_array(self, client: Client, request: pytest.FixtureRequest) -> None:
        k = key(request, "list")
        items = [b"item-%05d" % i for i in range(20000)]
        client.send(("RPUSH", k, *items), ("LRANGE", k, 0, -1), ("DEL", k))
        assert client.read(3) == [len(items), items, 1]


class TestResp3:
    def test_hello_3_switches_to_resp3_types(
        self, client: Client, request: pytest.FixtureRequest
    ) -> None:
        hello = client.call("HELLO", 3)
        assert isinstance(hello, dict)
        assert hello[b"server"] == b"redis" and hello[b"proto"] == 3
        h, z, s = key(request, "h"), key(request, "z"), key(request, "s")
        client.send(
            ("HSET", h, "f1", "v1", "f2", "v2"),
            ("HGETALL", h),
            ("ZADD", z, 1.5, "m"),
            ("ZSCORE", z, "m"),
            ("SADD", s, "a", "b"),
            ("SMEMBERS", s),
            ("GET", key(request, "missing")),
            ("INFO", "server"),
            ("DEL", h, z, s),
        )
        added, hash_, zadd, score, sadd, members, missing, info, deleted = client.read(9)
        assert added == 2 and hash_ == {b"f1": b"v1", b"f2": b"v2"}  # a RESP3 map
        assert zadd == 1 and score == 1.5  # a RESP3 double
        assert sadd == 2 and sorted(members) == [b"a", b"b"]  # type: ignore[call-overload]
        assert missing is None  # RESP3 null
        assert isinstance(info, bytes) and info.startswith(b"# Server")  # a verbatim string
        assert deleted == 3

    def test_resp3_pubsub_pushes_interleave_with_replies(
        self, client: Client, publisher: Client, request: pytest.FixtureRequest
    ) -> None:
        channel = key(request, "ch").encode()
        client.call("HELLO", 3)
        client.send(("SUBSCRIBE", channel))
        assert client.read() == [Subscription("subscribe", channel, 1)]
        assert publisher.call("PUBLISH", channel, "hello") == 1
        client.send(("PING",))  # RESP3 allows any command on a subscribed connection
        assert client.read(2) == [PubSubMessage(channel, b"hello"), b"PONG"]

    def test_client_tracking_invalidation_is_a_generic_push(
        self, client: Client, publisher: Client, request: pytest.FixtureRequest
    ) -> None:
        k = key(request, "tracked")
        client.call("HELLO", 3)
        assert client.call("CLIENT", "TRACKING", "on") == b"OK"
        client.send(("GET", k))
        assert client.read() == [None]
        publisher.call("SET", k, "changed")
        assert client.read() == [RespPush("invalidate", [[k.encode()]])]


class TestResp2PubSub:
    def test_subscriber_receives_published_message_as_typed_event(
        self, client: Client, publisher: Client, request: pytest.FixtureRequest
    ) -> None:
        channel = key(request, "news").encode()
        client.reader.pubsub = True
        client.send(("SUBSCRIBE", channel), ("PSUBSCRIBE", channel + b"*"))
        assert client.read(2) == [
            Subscription("subscribe", channel, 1),
            Subscription("psubscribe", channel + b"*", 2),
        ]
        assert publisher.call("PUBLISH", channel, b"\x00binary\r\n") == 2
        events = client.read(2)
        assert PubSubMessage(channel, b"\x00binary\r\n") in events
        assert PubSubMessage(channel, b"\x00binary\r\n", pattern=channel + b"*") in events

    def test_unsubscribing_everything_leaves_pubsub_mode(
        self, client: Client, request: pytest.FixtureRequest
    ) -> None:
        channel = key(request, "c").encode()
        client.reader.pubsub = True
        client.send(("SUBSCRIBE", channel))
        assert client.read() == [Subscription("subscribe", channel, 1)]
        client.send(("UNSUBSCRIBE",), ("LRANGE", "no-such-list", 0, -1))
        assert client.read(2) == [Subscription("unsubscribe", channel, 0), []]
        assert not client.reader.pubsub

    def test_many_messages_in_one_read_all_arrive(
        self, client: Client, publisher: Client, request: pytest.FixtureRequest
    ) -> None:
        channel = key(request, "burst").encode()
        client.reader.pubsub = True
        client.send(("SUBSCRIBE", channel))
        client.read()
        publisher.send(*[("PUBLISH", channel, b"m%d" % i) for i in range(500)])
        assert publisher.read(500) == [1] * 500
        assert client.read(500) == [PubSubMessage(channel, b"m%d" % i) for i in range(500)]

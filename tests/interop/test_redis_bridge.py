"""The hub's Redis bridge against a real redis-server (Debian's package).

Each test starts its own ``redis-server`` on a free 127.0.0.1 port with persistence
off (``RedisServer``; stopped by PID, restarted on the same port to play an outage).
Two Managers in this process, each with its own ``Hub(redis=...)``, stand for two
worker processes: both are polled by the test thread.  Clients are mgpy WebSockets.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import mgpy
from mgpy import Ev
from mgpy._accel import extensions_disabled
from mgpy.proto.resp import RespReader
from mgpy.proto.resp_hiredis import HiredisReader
from mgpy.pubsub import Hub, Published
from mgpy.pubsub.redis import RedisBridge, parse_redis_url
from tests.net.certs import make_certs
from tests.net.test_ws_client import Client
from tests.redis_server import RedisServer, running


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with running(tmp_path) as srv:
        yield srv


@pytest.fixture
def mgrs() -> Iterator[list[mgpy.Manager]]:
    ms = [mgpy.Manager(), mgpy.Manager()]
    try:
        yield ms
    finally:
        for m in ms:
            m.close()


def run_all(mgrs: list[mgpy.Manager], cond: Callable[[], object], timeout: float = 10.0) -> None:
    """Poll every manager until ``cond()``; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        for m in mgrs:
            m.poll(5)


class Node:
    """One 'process': a manager, a bridged hub, a WebSocket listener subscribing every
    client to the topic in its path, and one mgpy client subscribed to 'chat'."""

    def __init__(self, mgr: mgpy.Manager, url: str, **hub: Any) -> None:
        self.mgr = mgr
        self.hub = Hub(mgr, url, **hub)
        lc = mgr.bind("127.0.0.1:0", self.handler)
        lc.set_protocol_http_websocket()
        self.port = lc.local[1]
        self.client = Client()
        mgr.connect_ws(f"ws://127.0.0.1:{self.port}/chat", self.client)

    def handler(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.WS_HANDSHAKE_DONE:
            self.hub.subscribe(c, ev_data.uri.strip("/"))

    def texts(self) -> list[str]:
        return [d.decode() for _, d in self.client.messages()]

    def ready(self) -> bool:
        return bool(self.hub.redis_up) and self.hub.subscribers("chat") == 1


class TestBridge:
    def test_a_publish_reaches_both_processes_with_the_same_ids(
        self, redis: RedisServer, mgrs: list[mgpy.Manager]
    ) -> None:
        a, b = Node(mgrs[0], redis.url), Node(mgrs[1], redis.url)
        run_all(mgrs, lambda: a.ready() and b.ready())
        a.hub.publish("chat", "from a")
        b.hub.publish("chat", "from b")
        a.hub.publish("elsewhere", "nobody listens")
        run_all(mgrs, lambda: len(a.texts()) == 2 and len(b.texts()) == 2)
        assert a.texts() == b.texts()  # one order for everybody: Redis'
        assert sorted(a.texts()) == ["from a", "from b"]
        assert a.hub.last_id == b.hub.last_id > 1_000_000_000  # INCR, seeded by the clock
        assert mgrs[0].counters["pubsub.not_crossed"] == 0

    def test_a_hub_parsing_with_hiredis_bridges_with_a_pure_one(
        self, redis: RedisServer, mgrs: list[mgpy.Manager]
    ) -> None:
        a, b = Node(mgrs[0], redis.url, hiredis=True), Node(mgrs[1], redis.url)
        run_all(mgrs, lambda: a.ready() and b.ready())
        assert a.hub.bridge is not None and b.hub.bridge is not None
        conns = a.hub.bridge.conn, b.hub.bridge.conn
        assert conns[0] is not None and conns[1] is not None
        # MGPY_NO_EXTENSIONS wins over hiredis=True: that hub parses in pure Python too
        expected = RespReader if extensions_disabled() else HiredisReader
        assert type(conns[0].proto_data.reader) is expected
        assert type(conns[1].proto_data.reader) is RespReader
        big = "x" * 70_000  # a bulk string over several reads
        for i in range(20):
            (a if i % 2 else b).hub.publish("chat", f"m{i}")
        a.hub.publish("chat", big)
        run_all(mgrs, lambda: len(a.texts()) == 21 and len(b.texts()) == 21)
        assert a.texts() == b.texts() and a.texts()[-1] == big
        assert a.hub.last_id == b.hub.last_id

    def test_replay_ids_agree_across_processes(
        self, redis: RedisServer, mgrs: list[mgpy.Manager]
    ) -> None:
        a, b = Node(mgrs[0], redis.url), Node(mgrs[1], redis.url)
        run_all(mgrs, lambda: a.ready() and b.ready())
        for i in range(5):
            (a if i % 2 else b).hub.publish("chat", f"m{i}", event="chat")
        run_all(mgrs, lambda: len(a.texts()) == 5 and len(b.texts()) == 5)
        seen_a = [(p.id, p.data) for p in a.hub.replay.logs["chat"].items]
        seen_b = [(p.id, p.data) for p in b.hub.replay.logs["chat"].items]
        assert seen_a == seen_b and len(seen_a) == 5
        ids = [i for i, _ in seen_a]
        assert ids == sorted(ids) and len(set(ids)) == 5

    def test_redis_killed_and_restarted_local_delivery_goes_on_then_both_reconnect(
        self, redis: RedisServer, mgrs: list[mgpy.Manager], caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.WARNING, logger="mgpy")
        a, b = Node(mgrs[0], redis.url), Node(mgrs[1], redis.url)
        run_all(mgrs, lambda: a.ready() and b.ready())
        a.hub.publish("chat", "before")
        run_all(mgrs, lambda: b.texts() == ["before"] and a.texts() == ["before"])
        redis.stop(signal.SIGKILL)
        run_all(mgrs, lambda: a.hub.redis_up is False and b.hub.redis_up is False)
        a.hub.publish("chat", "during")  # cannot cross: local only, counted
        run_all(mgrs, lambda: a.texts() == ["before", "during"])
        assert b.texts() == ["before"]
        assert mgrs[0].counters["pubsub.not_crossed"] == 1
        assert "Redis link" in caplog.text and "lost" in caplog.text
        redis.start()  # the same port
        run_all(mgrs, lambda: a.hub.redis_up and b.hub.redis_up, timeout=20)
        b.hub.publish("chat", "after")
        run_all(mgrs, lambda: a.texts()[-1:] == ["after"] and b.texts()[-1:] == ["after"])
        assert b.texts() == ["before", "after"]
        assert "up again" in caplog.text and "1 messages" in caplog.text

    def test_messages_in_flight_when_the_link_drops_are_delivered_locally(
        self, redis: RedisServer, mgrs: list[mgpy.Manager]
    ) -> None:
        a = Node(mgrs[0], redis.url)
        run_all(mgrs[:1], a.ready)
        assert redis.proc is not None
        os.kill(redis.proc.pid, signal.SIGSTOP)  # Redis hangs: nothing comes back ...
        try:
            for i in range(3):
                a.hub.publish("chat", f"stuck {i}")
            mgrs[0].poll(50)
            assert a.texts() == [] and a.hub.bridge is not None
            assert len(a.hub.bridge.pending) == 3
            assert a.hub.bridge.conn is not None
            a.hub.bridge.conn.abort()  # ... and the link goes (as a PING timeout would)
            run_all(mgrs[:1], lambda: len(a.texts()) == 3)
        finally:
            os.kill(redis.proc.pid, signal.SIGCONT)
        assert a.texts() == ["stuck 0", "stuck 1", "stuck 2"]
        assert mgrs[0].counters["pubsub.not_crossed"] == 3

    def test_publishes_right_after_redis_died_keep_their_order(
        self, redis: RedisServer, mgrs: list[mgpy.Manager]
    ) -> None:
        a = Node(mgrs[0], redis.url)
        run_all(mgrs[:1], a.ready)
        redis.stop(signal.SIGKILL)
        for i in range(4):  # the first writes still succeed, a later one fails
            a.hub.publish("chat", f"n{i}")
        run_all(mgrs[:1], lambda: len(a.texts()) == 4)
        assert a.texts() == ["n0", "n1", "n2", "n3"]

    def test_a_plain_redis_publish_under_the_prefix_is_delivered_without_id(
        self, redis: RedisServer, mgrs: list[mgpy.Manager]
    ) -> None:
        a = Node(mgrs[0], redis.url)
        run_all(mgrs[:1], a.ready)
        assert redis.command("PUBLISH", "mgpy:chat", "hello from redis-cli") == 1
        run_all(mgrs[:1], lambda: a.texts() == ["hello from redis-cli"])
        assert a.hub.replay.logs.get("chat") is None  # no id: not replayable

    def test_custom_prefix_and_database(self, redis: RedisServer, mgrs: list[mgpy.Manager]) -> None:
        url = redis.url[:-1] + "3"
        a, b = Node(mgrs[0], url, prefix="app1/"), Node(mgrs[1], url, prefix="app2/")
        run_all(mgrs, lambda: a.ready() and b.ready())
        a.hub.publish("chat", "app1 only")
        run_all(mgrs, lambda: a.texts() == ["app1 only"])
        assert b.texts() == []  # another prefix: another bus
        assert redis.command("SELECT", 3) == b"OK"
        seq = redis.command("EXISTS", "app1/seq")
        assert seq == 0  # the counter lives in db 3, not in db 0


class TestSilentRedis:
    def test_a_hung_redis_is_detected_by_ping_and_the_link_comes_back(
        self, redis: RedisServer, mgrs: list[mgpy.Manager], caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="mgpy")
        got: list[Published] = []
        bridge = RedisBridge(mgrs[0], redis.url, "hung:", got.append, ping_interval=0.2)
        try:
            run_all(mgrs[:1], lambda: bridge.up)
            assert redis.proc is not None
            os.kill(redis.proc.pid, signal.SIGSTOP)  # alive for TCP, silent for RESP
            try:
                run_all(mgrs[:1], lambda: not bridge.up)
                assert "did not answer PING" in caplog.text
                assert not bridge.publish("t", b"x", mgpy.WS_OP_TEXT, None)  # down: local only
                # re-dials: TCP connects (the kernel accepts), the handshake gets no answer
                run_all(mgrs[:1], lambda: "did not answer the handshake" in caplog.text)
            finally:
                os.kill(redis.proc.pid, signal.SIGCONT)
            run_all(mgrs[:1], lambda: bridge.up, timeout=15)
            assert bridge.publish("t", b"back", mgpy.WS_OP_TEXT, None)
            run_all(mgrs[:1], lambda: [p.data for p in got] == [b"back"])
        finally:
            bridge.close()


class TestAuth:
    def test_password_in_the_url_and_a_wrong_one_refused_and_logged(
        self, tmp_path: Path, mgrs: list[mgpy.Manager], caplog: pytest.LogCaptureFixture
    ) -> None:
        with running(tmp_path, ["--requirepass", "s3cr:t"]) as srv:
            good = Node(mgrs[0], f"redis://:s3cr%3At@127.0.0.1:{srv.port}")
            bad = Node(mgrs[1], f"redis://:wrong@127.0.0.1:{srv.port}")
            run_all(mgrs, good.ready)
            run_all(mgrs, lambda: "refused the hub" in caplog.text)
            assert bad.hub.redis_up is False
            assert "s3cr" not in caplog.text and "wrong" not in caplog.text  # no secrets
            good.hub.publish("chat", "authenticated")
            run_all(mgrs, lambda: good.texts() == ["authenticated"])


class TestTls:
    def test_rediss_verifies_the_server_and_bridges(
        self, tmp_path: Path, mgrs: list[mgpy.Manager], caplog: pytest.LogCaptureFixture
    ) -> None:
        certs = make_certs(tmp_path)
        with running(tmp_path, certs=certs) as srv:
            url = srv.url.replace("127.0.0.1", "localhost")
            a = Node(mgrs[0], url, redis_tls=mgpy.TlsOpts(ca=certs.ca, alpn=()))
            untrusted = Node(mgrs[1], url)  # the system's CAs do not know the test CA
            run_all(mgrs, a.ready)
            a.hub.publish("chat", "over TLS")
            run_all(mgrs, lambda: a.texts() == ["over TLS"])
            run_all(mgrs, lambda: "certificate verify failed" in caplog.text)
            assert untrusted.hub.redis_up is False


class TestUrl:
    def test_urls(self) -> None:
        u = parse_redis_url("rediss://user:p%40ss@redis.example:6380/2")
        assert (u.host, u.port, u.db, u.username, u.password, u.tls) == (
            "redis.example",
            6380,
            2,
            "user",
            "p@ss",
            True,
        )
        assert str(u) == "rediss://***@redis.example:6380/2"
        assert parse_redis_url("redis://[::1]").port == 6379
        for bad in ("http://x", "redis://", "redis://h:notaport", "redis://h/db1"):
            with pytest.raises(mgpy.Error):
                parse_redis_url(bad)

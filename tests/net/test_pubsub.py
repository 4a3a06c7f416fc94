"""Topics on one Manager (mgpy.pubsub.Hub): WebSocket subscribers over real sockets.

Clients are mgpy's own ``connect_ws`` (recording handlers) and, for a slow consumer,
a raw socket that stops reading; the server is the same Manager, polled by the test.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

import mgpy
from mgpy import Ev
from mgpy.pubsub import Hub, get_hub, publish, subscribe, unsubscribe
from tests.conftest import run_until
from tests.net.test_ws_client import Client
from tests.net.test_ws_server import RawWs, upgrade_request


class PushServer:
    """Accepts WebSockets; subscribes each to the topics named in its path
    (``/ws/a,b``); echoes text frames on unsubscribed connections."""

    def __init__(self) -> None:
        self.conns: list[mgpy.Connection] = []
        self.closed = 0

    def __call__(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.WS_HANDSHAKE_DONE:
            self.conns.append(c)
            topics = [t for t in ev_data.uri.rsplit("/", 1)[1].split(",") if t]
            if topics:
                subscribe(c, topics)
        elif ev == Ev.WS_FRAME and not get_hub(c.mgr).subscriptions(c):
            c.send_websocket_frame(ev_data.opcode, b"echo " + ev_data.data)
        elif ev == Ev.CLOSE and c in self.conns:
            self.closed += 1


def server(mgr: mgpy.Manager, **bind: Any) -> tuple[PushServer, int]:
    srv = PushServer()
    lc = mgr.bind("127.0.0.1:0", srv, **bind)
    lc.set_protocol_http_websocket()
    return srv, lc.local[1]


def clients(mgr: mgpy.Manager, port: int, paths: list[str], **kw: Any) -> list[Client]:
    out = []
    for p in paths:
        cli = Client()
        mgr.connect_ws(f"ws://127.0.0.1:{port}{p}", cli, **kw)
        out.append(cli)
    return out


def texts(cli: Client) -> list[str]:
    return [d.decode() for op, d in cli.messages() if op == mgpy.WS_OP_TEXT]


class TestPublish:
    def test_a_message_reaches_the_subscribers_of_its_topic_only(self, mgr: mgpy.Manager) -> None:
        hub = Hub(mgr)
        srv, port = server(mgr)
        a, b, ab, none = clients(mgr, port, ["/ws/a", "/ws/b", "/ws/a,b", "/ws/"])
        run_until(mgr, lambda: hub.subscribers("a") == 2 and hub.subscribers("b") == 2)
        run_until(mgr, lambda: len(srv.conns) == 4)
        hub.publish("a", "to a")
        hub.publish("b", "to b")
        hub.publish("nobody", "lost")
        run_until(mgr, lambda: len(texts(ab)) == 2 and texts(a) and texts(b))
        assert texts(a) == ["to a"] and texts(b) == ["to b"] and texts(ab) == ["to a", "to b"]
        none.c.send_websocket_frame(mgpy.WS_OP_TEXT, "hi")  # type: ignore[union-attr]
        run_until(mgr, lambda: texts(none))
        assert texts(none) == ["echo hi"]  # it never got a published message
        assert mgr.counters["pubsub.published"] == 3
        assert mgr.counters["pubsub.delivered"] == 4

    def test_binary_messages_and_compression_reach_every_websocket_intact(
        self, mgr: mgpy.Manager
    ) -> None:
        hub = Hub(mgr)
        srv, port = server(mgr)
        deflate, plain = clients(mgr, port, ["/ws/t"]) + clients(
            mgr, port, ["/ws/t"], compression=None
        )
        run_until(mgr, lambda: hub.subscribers("t") == 2)
        blob = bytes(range(256)) * 40
        hub.publish("t", blob, op=mgpy.WS_OP_BINARY)
        hub.publish("t", "text " * 500)
        for cli in (deflate, plain):
            run_until(mgr, lambda cli=cli: len(cli.messages()) == 2)
            assert cli.messages() == [
                (mgpy.WS_OP_BINARY, blob),
                (mgpy.WS_OP_TEXT, ("text " * 500).encode()),
            ]
        assert mgpy.ws_compression(srv.conns[0]) is not None
        assert mgpy.ws_compression(srv.conns[1]) is None

    def test_module_functions_use_the_managers_hub(self, mgr: mgpy.Manager) -> None:
        _srv, port = server(mgr)
        (cli,) = clients(mgr, port, ["/ws/news"])
        run_until(mgr, lambda: get_hub(mgr).subscribers("news") == 1)
        publish(mgr, "news", "extra")
        run_until(mgr, lambda: texts(cli) == ["extra"])
        assert get_hub(mgr) is get_hub(mgr)


class TestSubscriptions:
    def test_close_unsubscribes_and_others_keep_receiving(self, mgr: mgpy.Manager) -> None:
        hub = Hub(mgr)
        srv, port = server(mgr)
        a, b = clients(mgr, port, ["/ws/x", "/ws/x"])
        run_until(mgr, lambda: hub.subscribers("x") == 2 and a.c and b.c)
        a.c.ws_close(1000)  # type: ignore[union-attr]
        run_until(mgr, lambda: srv.closed == 1)
        assert hub.subscribers("x") == 1 and len(hub.members) == 1
        hub.publish("x", "still here")
        run_until(mgr, lambda: texts(b) == ["still here"])
        b.c.close()  # type: ignore[union-attr]
        run_until(mgr, lambda: srv.closed == 2)
        assert hub.subscribers("x") == 0 and not hub.members and not hub.topics

    def test_unsubscribe_stops_delivery_and_gives_the_connection_back(
        self, mgr: mgpy.Manager
    ) -> None:
        hub = Hub(mgr)
        srv, port = server(mgr)
        (cli,) = clients(mgr, port, ["/ws/x,y"])
        run_until(mgr, lambda: len(srv.conns) == 1)
        c = srv.conns[0]
        wrapped = c.proto_handler
        unsubscribe(c, "x")
        assert hub.subscriptions(c) == {"y"}
        hub.publish("x", "no")
        hub.publish("y", "yes")
        run_until(mgr, lambda: texts(cli))
        unsubscribe(c)  # all
        assert hub.subscriptions(c) == frozenset() and c.proto_handler is not wrapped
        cli.c.send_websocket_frame(mgpy.WS_OP_TEXT, "ping")  # type: ignore[union-attr]
        run_until(mgr, lambda: len(texts(cli)) == 2)
        assert texts(cli) == ["yes", "echo ping"]  # plain WebSocket again

    def test_subscribing_twice_delivers_once(self, mgr: mgpy.Manager) -> None:
        hub = Hub(mgr)
        srv, port = server(mgr)
        (cli,) = clients(mgr, port, ["/ws/x"])
        run_until(mgr, lambda: len(srv.conns) == 1)
        subscribe(srv.conns[0], ["x", "x"])
        hub.publish("x", "once")
        hub.publish("x", "twice")
        run_until(mgr, lambda: len(texts(cli)) == 2)
        assert texts(cli) == ["once", "twice"]

    def test_websocket_replay_since_an_id(self, mgr: mgpy.Manager) -> None:
        hub = Hub(mgr)
        srv, port = server(mgr)
        (cli,) = clients(mgr, port, ["/ws/"])
        run_until(mgr, lambda: len(srv.conns) == 1)
        hub.publish("log", "one")
        since = hub.last_id
        hub.publish("log", "two")
        hub.publish("log", b"\x03", op=mgpy.WS_OP_BINARY)
        assert hub.subscribe(srv.conns[0], "log", since=since) == 2
        hub.publish("log", "four")
        run_until(mgr, lambda: len(cli.messages()) == 3)
        assert cli.messages() == [
            (mgpy.WS_OP_TEXT, b"two"),
            (mgpy.WS_OP_BINARY, b"\x03"),
            (mgpy.WS_OP_TEXT, b"four"),
        ]


class TestMisuse:
    def test_only_open_websockets_and_streams_subscribe(self, mgr: mgpy.Manager) -> None:
        hub = Hub(mgr)
        refused: list[str] = []

        def h(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            if ev in (Ev.HTTP_REQUEST, Ev.WS_HANDSHAKE_REQUEST):
                try:
                    hub.subscribe(c, "t")
                except mgpy.LocalProtocolError as e:
                    refused.append(str(e))
                if ev == Ev.HTTP_REQUEST:
                    mgpy.http_reply(c, 200, "ok")

        lc = mgr.bind("127.0.0.1:0", h)
        lc.set_protocol_http_websocket()
        mgr.connect_http(f"http://127.0.0.1:{lc.local[1]}/", lambda *a: None)
        mgr.connect_ws(f"ws://127.0.0.1:{lc.local[1]}/", lambda *a: None)
        run_until(mgr, lambda: len(refused) == 2)
        assert all("open WebSocket" in r for r in refused)
        assert hub.subscribers("t") == 0

    def test_bad_topics_and_messages_raise(self, mgr: mgpy.Manager) -> None:
        hub = Hub(mgr)
        with pytest.raises(mgpy.LocalProtocolError):
            hub.publish("", "x")
        with pytest.raises(mgpy.LocalProtocolError):
            hub.publish("t" * 1025, "x")
        with pytest.raises(mgpy.LocalProtocolError):
            hub.publish("t", b"\xff\xfe")  # text must be UTF-8
        with pytest.raises(mgpy.LocalProtocolError):
            hub.publish("t", "x", op=mgpy.WS_OP_PING)
        with pytest.raises(mgpy.LocalProtocolError):
            hub.publish("t", "x", event="a\nb")
        assert mgr.counters["pubsub.published"] == 0

    def test_one_hub_per_manager(self, mgr: mgpy.Manager) -> None:
        hub = Hub(mgr)
        with pytest.raises(mgpy.Error):
            Hub(mgr)
        hub.close()
        assert get_hub(mgr) is not hub  # a new local one after close()

    def test_local_ids_grow_across_topics(self, mgr: mgpy.Manager) -> None:
        hub = Hub(mgr)
        ids = []
        for t in ("a", "b", "a"):
            hub.publish(t, "x")
            ids.append(hub.last_id)
        assert ids == sorted(set(ids)) and ids[0] > 1_000_000_000  # seeded from the clock


class TestSlowConsumer:
    def test_a_stalled_subscriber_is_closed_while_the_others_keep_up(
        self, mgr: mgpy.Manager
    ) -> None:
        limits = dataclasses.replace(mgpy.Limits(), ws_send_queue=64 * 1024)
        hub = Hub(mgr)
        srv, port = server(mgr, limits=limits, compression=None)
        stalled = RawWs(mgr, port, rcvbuf=4096)
        assert stalled.handshake(_upgrade("/ws/feed")) == 101
        stalled.reading = False
        (fast,) = clients(mgr, port, ["/ws/feed"])
        run_until(mgr, lambda: hub.subscribers("feed") == 2)
        chunk = "y" * 16384
        sent = 0
        victim = srv.conns[0]
        while victim.error_reason is None and sent < 2000:
            hub.publish("feed", chunk)
            sent += 1
            mgr.poll(0)
        assert "slow consumer" in (victim.error_reason or "")  # the stalled one: 1008 ...
        run_until(mgr, lambda: len(fast.messages()) == sent, timeout=20)  # ... not the other
        stalled.reading = True
        assert stalled.recv_close(timeout=20)[0] == 1008
        stalled.close()
        run_until(mgr, lambda: hub.subscribers("feed") == 1)


def _upgrade(path: str) -> bytes:
    return upgrade_request(path)

"""Server-Sent Events streams (mgpy.pubsub.sse) and topics on them, over real sockets.

The client is a raw socket on the test thread (``SseClient``): it sends a GET, reads
the head, de-chunks the body and parses it with the sans-IO ``SseParser``, exactly as
a browser's EventSource would; the server is a Manager polled by the same thread.
curl -N is the real peer of the last class.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
from typing import Any

import pytest

import mgpy
from mgpy import Ev
from mgpy.proto.sse import NEED_DATA, SseEvent, SseParser
from mgpy.pubsub import Hub, sse_comment, sse_end, sse_send, sse_start, sse_stream
from tests.conftest import run_until
from tests.net.socket_peer import SocketPeer


class SseClient(SocketPeer):
    """A raw-socket EventSource: GET, then the event stream parsed as the spec says."""

    def __init__(
        self,
        mgr: mgpy.Manager,
        port: int,
        path: str = "/events",
        last_id: str | None = None,
        http10: bool = False,
        method: str = "GET",
        rcvbuf: int = 0,
    ) -> None:
        super().__init__(mgr, port, rcvbuf)
        proto = "HTTP/1.0" if http10 else "HTTP/1.1"
        req = f"{method} {path} {proto}\r\nHost: x\r\nAccept: text/event-stream\r\n"
        if last_id is not None:
            req += f"Last-Event-ID: {last_id}\r\n"
        self.sock.sendall((req + "\r\n").encode())
        self.raw = bytearray()  # undecoded bytes after the head
        self.head: dict[str, str] = {}
        self.status = 0
        self.body = bytearray()  # de-chunked stream
        self.parser = SseParser()
        self.events: list[SseEvent] = []

    def on_data(self, data: bytes) -> None:
        self.raw += data

    def pump(self) -> None:
        self.read()
        if not self.status and b"\r\n\r\n" in self.raw:
            head, _, rest = bytes(self.raw).partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            self.status = int(lines[0].split()[1])
            for line in lines[1:]:
                k, _, v = line.partition(":")
                self.head[k.strip().lower()] = v.strip()
            self.raw[:] = rest
        if self.status:
            self._body()

    def _body(self) -> None:
        if self.head.get("transfer-encoding") != "chunked":
            new = bytes(self.raw)
            self.raw.clear()
        else:
            out = bytearray()
            while "ended" not in self.head:
                line_end = self.raw.find(b"\r\n")
                if line_end < 0:
                    break
                size = int(self.raw[:line_end], 16)
                if len(self.raw) < line_end + 2 + size + 2:
                    break
                out += self.raw[line_end + 2 : line_end + 2 + size]
                del self.raw[: line_end + 2 + size + 2]
                if size == 0:
                    self.head["ended"] = "yes"
            new = bytes(out)
        self.body += new
        self.parser.feed(new)
        while (ev := self.parser.next_event()) is not NEED_DATA:
            assert isinstance(ev, SseEvent)
            self.events.append(ev)

    def wait_events(self, n: int, timeout: float = 5.0) -> list[SseEvent]:
        self.until(lambda: len(self.events) >= n, timeout)
        return self.events


class Server:
    """A handler serving /events as a stream subscribed to ``topics``; counts CLOSEs."""

    def __init__(self, mgr: mgpy.Manager, topics: list[str], **start: Any) -> None:
        self.mgr = mgr
        self.topics = topics
        self.start = start
        self.streams: list[mgpy.Connection] = []
        self.closed = 0
        self.errors: list[str] = []
        self.requests: list[str] = []

    def __call__(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.HTTP_REQUEST:
            self.requests.append(ev_data.uri)
            if ev_data.uri == "/events":
                if sse_start(c, ev_data, **self.start) is not None:
                    self.streams.append(c)
                    if self.topics:
                        mgpy.pubsub.subscribe(c, self.topics)
            else:
                mgpy.http_reply(c, 200, "plain\n")
        elif ev == Ev.ERROR:
            self.errors.append(ev_data)
        elif ev == Ev.CLOSE and c in self.streams:
            self.closed += 1


def serve(mgr: mgpy.Manager, topics: list[str] | None = None, **kw: Any) -> tuple[Server, int]:
    limits = kw.pop("limits", None)
    srv = Server(mgr, topics or [], **kw)
    lc = mgr.bind("127.0.0.1:0", srv, limits=limits)
    lc.set_protocol_http_websocket()
    return srv, lc.local[1]


class TestStream:
    def test_head_events_and_multiline_data_as_eventsource_reads_them(
        self, mgr: mgpy.Manager
    ) -> None:
        srv, port = serve(mgr, retry=1500)
        cli = SseClient(mgr, port)
        run_until(mgr, lambda: srv.streams)
        c = srv.streams[0]
        assert sse_send(c, "line one\nline two\r\nline three", event="note", id=7)
        assert sse_send(c, "plain")
        events = cli.wait_events(2)
        assert cli.status == 200
        assert cli.head["content-type"] == "text/event-stream"
        assert cli.head["transfer-encoding"] == "chunked"
        assert cli.head["cache-control"] == "no-store"
        assert cli.parser.retry == 1500
        assert events[0] == SseEvent("line one\nline two\nline three", "note", "7")
        assert events[1] == SseEvent("plain", "message", "7")  # the last id persists
        cli.close()

    def test_keepalive_comment_only_on_an_idle_stream(self, mgr: mgpy.Manager) -> None:
        srv, port = serve(mgr, keepalive=0.1)
        cli = SseClient(mgr, port)
        cli.until(lambda: cli.body.count(b":\n") >= 2)
        assert cli.events == []  # comments dispatch nothing
        assert sse_stream(srv.streams[0]) is not None
        cli.close()

    def test_http10_client_gets_a_close_delimited_stream(self, mgr: mgpy.Manager) -> None:
        srv, port = serve(mgr)
        cli = SseClient(mgr, port, http10=True)
        run_until(mgr, lambda: srv.streams)
        sse_send(srv.streams[0], "old client")
        assert cli.wait_events(1)[0].data == "old client"
        assert "transfer-encoding" not in cli.head and "content-length" not in cli.head
        sse_end(srv.streams[0])  # HTTP/1.0: the end is the close
        cli.until(lambda: cli.eof)
        cli.close()

    def test_head_request_gets_the_head_only(self, mgr: mgpy.Manager) -> None:
        srv, port = serve(mgr)
        cli = SseClient(mgr, port, method="HEAD")
        cli.until(lambda: cli.status == 200)
        assert cli.head["content-type"] == "text/event-stream"
        assert srv.streams == []
        cli.close()

    def test_end_returns_the_connection_to_http_keep_alive(self, mgr: mgpy.Manager) -> None:
        srv, port = serve(mgr)
        cli = SseClient(mgr, port)
        run_until(mgr, lambda: srv.streams)
        c = srv.streams[0]
        sse_send(c, "bye")
        sse_end(c)
        cli.until(lambda: cli.head.get("ended") == "yes")
        assert sse_stream(c) is None
        with pytest.raises(mgpy.LocalProtocolError):
            sse_send(c, "after the end")
        cli.sock.sendall(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        cli.until(lambda: b"plain\n" in cli.raw)
        assert srv.requests == ["/events", "/next"]
        cli.close()

    def test_fields_a_client_would_misread_are_refused(self, mgr: mgpy.Manager) -> None:
        srv, port = serve(mgr)
        cli = SseClient(mgr, port)
        run_until(mgr, lambda: srv.streams)
        with pytest.raises(mgpy.LocalProtocolError):
            sse_send(srv.streams[0], "x", event="two\nlines")
        with pytest.raises(mgpy.LocalProtocolError):
            sse_send(srv.streams[0], b"\xff not utf-8")
        assert sse_comment(srv.streams[0], "still open")
        cli.until(lambda: b": still open\n" in cli.body)
        cli.close()

    def test_sse_start_outside_an_http_request_is_refused(self, mgr: mgpy.Manager) -> None:
        got: list[Exception] = []

        def h(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            if ev == Ev.ACCEPT:
                try:
                    sse_start(c)  # a raw TCP connection: no HTTP request
                except mgpy.LocalProtocolError as e:
                    got.append(e)

        lc = mgr.bind("127.0.0.1:0", h)
        s = socket.create_connection(("127.0.0.1", lc.local[1]))
        run_until(mgr, lambda: got)
        s.close()


class TestSlowReaders:
    LIMITS = dataclasses.replace(mgpy.Limits(), ws_send_queue=64 * 1024)

    def fill(self, mgr: mgpy.Manager, c: mgpy.Connection, stop: Any) -> int:
        n = 0
        big = "x" * 16384
        while not stop() and n < 5000:
            sse_send(c, big, id=n)
            n += 1
            mgr.poll(0)
        return n

    def test_close_policy_ends_the_stream_with_an_error(self, mgr: mgpy.Manager) -> None:
        srv, port = serve(mgr, limits=self.LIMITS)
        cli = SseClient(mgr, port, rcvbuf=4096)
        cli.reading = False
        run_until(mgr, lambda: srv.streams)
        c = srv.streams[0]
        self.fill(mgr, c, lambda: c.is_closing)
        assert c.is_closing and len(c.send_mbuf.buf) <= 64 * 1024 + 20000
        cli.reading = True
        cli.until(lambda: cli.eof, timeout=10)
        assert srv.errors and "slow consumer" in srv.errors[0]
        assert srv.closed == 1
        cli.close()

    def test_drop_policy_counts_and_keeps_the_stream(self, mgr: mgpy.Manager) -> None:
        limits = dataclasses.replace(self.LIMITS, ws_slow_policy="drop")
        srv, port = serve(mgr, limits=limits)
        cli = SseClient(mgr, port, rcvbuf=4096)
        cli.reading = False
        run_until(mgr, lambda: srv.streams)
        c = srv.streams[0]
        stream = sse_stream(c)
        assert stream is not None
        n = self.fill(mgr, c, lambda: stream.dropped >= 3)
        assert not c.is_closing and len(c.send_mbuf.buf) <= 64 * 1024 + 20000
        cli.reading = True
        sse_send(c, "after the storm", id="last")
        cli.until(lambda: cli.events and cli.events[-1].data == "after the storm", timeout=10)
        ids = [int(e.id) for e in cli.events[:-1]]
        assert ids == sorted(ids) and len(ids) + stream.dropped == n  # whole events dropped
        cli.close()


class TestTopicsOnStreams:
    def test_publish_reaches_each_subscribed_stream_once(self, mgr: mgpy.Manager) -> None:
        hub = Hub(mgr)
        _srv, port = serve(mgr, ["news"])
        a, b = SseClient(mgr, port), SseClient(mgr, port)
        run_until(mgr, lambda: hub.subscribers("news") == 2)
        hub.publish("news", "first\nsecond", event="headline")
        hub.publish("other", "not for them")
        hub.publish("news", b"\x00\x01", op=mgpy.WS_OP_BINARY)  # streams carry text only
        hub.publish("news", "third")
        for cli in (a, b):
            got = cli.wait_events(2)
            assert [(e.data, e.type) for e in got] == [
                ("first\nsecond", "headline"),
                ("third", "message"),
            ]
            assert int(got[1].id) > int(got[0].id) > 0
        a.close()
        run_until(mgr, lambda: hub.subscribers("news") == 1)  # unsubscribed on close
        b.close()
        run_until(mgr, lambda: hub.subscribers("news") == 0 and not hub.members)

    def test_last_event_id_gets_what_was_missed_across_topics(self, mgr: mgpy.Manager) -> None:
        hub = Hub(mgr, replay=10)
        _srv, port = serve(mgr, ["chat", "stats"])
        first = SseClient(mgr, port)
        run_until(mgr, lambda: hub.subscribers("chat") == 1)
        hub.publish("chat", "hello", event="chat")
        hub.publish("stats", "s1", event="stats")
        seen = first.wait_events(2)
        first.close()  # the client drops ...
        run_until(mgr, lambda: hub.subscribers("chat") == 0)
        hub.publish("chat", "missed 1", event="chat")  # ... and misses these
        hub.publish("stats", "missed 2", event="stats")
        hub.publish("chat", "missed 3", event="chat")
        again = SseClient(mgr, port, last_id=seen[-1].id)  # EventSource reconnects
        got = again.wait_events(3)
        assert [e.data for e in got] == ["missed 1", "missed 2", "missed 3"]
        hub.publish("chat", "live")
        assert again.wait_events(4)[3].data == "live"
        fresh = SseClient(mgr, port)  # no Last-Event-ID: live only
        run_until(mgr, lambda: hub.subscribers("chat") == 2)
        hub.publish("chat", "next")
        assert [e.data for e in fresh.wait_events(1)] == ["next"]
        again.close()
        fresh.close()

    def test_replay_buffer_is_bounded_and_says_so(self, mgr: mgpy.Manager) -> None:
        hub = Hub(mgr, replay=3)
        _srv, port = serve(mgr, ["t"])
        hub.publish("t", "zero")
        start = hub.last_id
        for i in range(1, 8):
            hub.publish("t", f"n{i}")
        cli = SseClient(mgr, port, last_id=str(start))
        got = cli.wait_events(3)
        assert [e.data for e in got] == ["n5", "n6", "n7"]  # only the last three were kept
        assert hub.stats()["replay_gaps"] == 1
        cli.close()

    def test_replay_buffer_is_bounded_in_bytes_too(self, mgr: mgpy.Manager) -> None:
        hub = Hub(mgr, replay=100, replay_bytes=10_000)
        _srv, port = serve(mgr, ["t"])
        hub.publish("t", "zero")
        start = hub.last_id
        for i in range(1, 6):
            hub.publish("t", f"{i}" * 3000)  # 15 000 bytes: the oldest ones go
        hub.publish("t", "x" * 20_000)  # larger than the whole buffer: never kept
        hub.publish("t", "last")
        cli = SseClient(mgr, port, last_id=str(start))
        got = cli.wait_events(4)
        assert [e.data[:1] for e in got] == ["3", "4", "5", "l"]
        log = hub.replay.logs["t"]
        assert log.size <= 10_000 and hub.stats()["replay_gaps"] == 1
        cli.close()


class TestCurl:
    @pytest.fixture(autouse=True)
    def _needs_curl(self) -> None:
        assert shutil.which("curl"), (
            "curl is not installed: `make test` installs it (tools/sysdeps.sh)"
        )

    def test_curl_no_buffer_receives_events_as_they_are_published(self, mgr: mgpy.Manager) -> None:
        hub = Hub(mgr)
        _srv, port = serve(mgr, ["feed"])
        p = subprocess.Popen(
            ["curl", "-sN", "--max-time", "20", f"http://127.0.0.1:{port}/events"],
            stdout=subprocess.PIPE,
        )
        try:
            run_until(mgr, lambda: hub.subscribers("feed") == 1, timeout=10)
            assert p.stdout is not None
            out = bytearray()
            os.set_blocking(p.stdout.fileno(), False)

            def read() -> bytes:
                try:
                    data = p.stdout.read() if p.stdout else b""
                except BlockingIOError:
                    data = b""
                out.extend(data or b"")
                return bytes(out)

            for i in range(3):
                hub.publish("feed", f"tick {i}\nsecond line", event="tick")
                run_until(mgr, lambda i=i: f"data: tick {i}".encode() in read(), timeout=10)
            text = bytes(out).decode()
            assert "event: tick\n" in text and "data: second line\n" in text
        finally:
            p.kill()
            p.wait(10)
        run_until(mgr, lambda: hub.subscribers("feed") == 0, timeout=10)

"""connect_ws(..., reconnect=ReconnectOpts()) over real sockets: server restarts, refused
connections, refusals that must not be retried, stopping.

The server runs on its own Manager (``Srv``) so that it can be closed and started
again on the same port while the client's Manager keeps its reconnecting WebSocket;
the test thread polls both.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import mgpy
from mgpy import Ev
from mgpy.ws.client import ReconnectOpts, WsEv, WsReconnect, connect_ws
from tests.net.certs import make_certs

FAST = ReconnectOpts(min_delay=0.02, max_delay=0.2)


class Srv:
    """A WebSocket echo server on a fixed port that can stop and start again."""

    def __init__(self, port: int = 0, refuse: int = 0, close_code: int = 0, **bind: Any):
        self.port = port
        self.refuse = refuse  # answer upgrades with this status
        self.close_code = close_code  # close each WebSocket with this code once open
        self.bind = bind
        self.mgr: mgpy.Manager | None = None
        self.accepts = 0
        self.conns: list[mgpy.Connection] = []

    def start(self) -> Srv:
        self.mgr = mgpy.Manager()
        lc = self.mgr.bind(f"127.0.0.1:{self.port}", self.handler, **self.bind)
        lc.set_protocol_http_websocket()
        self.port = lc.local[1]
        return self

    def stop(self) -> None:
        if self.mgr is not None:
            self.mgr.close()  # open WebSockets get 1001 "going away"
            self.mgr = None

    def handler(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.ACCEPT:
            self.accepts += 1
        elif ev == Ev.WS_HANDSHAKE_REQUEST and self.refuse:
            mgpy.http_send_error(c, self.refuse)
        elif ev == Ev.WS_HANDSHAKE_DONE:
            self.conns.append(c)
            if self.close_code:
                c.ws_close(self.close_code, "bye")
        elif ev == Ev.WS_FRAME:
            c.send_websocket_frame(ev_data.opcode, ev_data.data)


class Rec:
    """The client's handler: records (event name, detail) and the connections it saw."""

    def __init__(self, on: Callable[[mgpy.Connection, Any, Any], None] | None = None) -> None:
        self.events: list[tuple[str, Any]] = []
        self.conns: list[mgpy.Connection] = []
        self.on = on

    def __call__(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.POLL:
            return
        name = "RECONNECTING" if ev == WsEv.RECONNECTING else Ev(ev).name
        detail = ev_data
        if ev == WsEv.RECONNECTING:
            detail = (ev_data.reason, ev_data.delay)
        elif ev == Ev.WS_HANDSHAKE_DONE:
            detail = ev_data.resp_code
        elif ev == Ev.WS_FRAME:
            detail = ev_data.text
        self.events.append((name, detail))
        if c not in self.conns:
            self.conns.append(c)
        if self.on is not None:
            self.on(c, ev, ev_data)

    def names(self) -> list[str]:
        return [n for n, _ in self.events]

    def count(self, name: str) -> int:
        return self.names().count(name)

    def data(self, name: str) -> list[Any]:
        return [d for n, d in self.events if n == name]


@pytest.fixture
def cli() -> Iterator[mgpy.Manager]:
    m = mgpy.Manager()
    try:
        yield m
    finally:
        m.close()


def poll(cli: mgpy.Manager, srv: Srv | None, cond: Callable[[], object], timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        cli.poll(5)
        if srv is not None and srv.mgr is not None:
            srv.mgr.poll(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TestRestart:
    def test_survives_a_server_restart_and_stops_on_close(self, cli: mgpy.Manager) -> None:
        srv = Srv().start()
        rec = Rec()
        rc = connect_ws(cli, f"ws://127.0.0.1:{srv.port}/ws", rec, reconnect=FAST)
        assert isinstance(rc, WsReconnect)
        poll(cli, srv, lambda: rec.count("WS_HANDSHAKE_DONE") == 1)
        assert rc.up and rc.send_websocket_frame(mgpy.WS_OP_TEXT, "one")
        poll(cli, srv, lambda: rec.data("WS_FRAME") == ["one"])
        srv.stop()  # the server goes away (1001) ...
        poll(cli, srv, lambda: rec.count("RECONNECTING") >= 1)
        assert not rc.up and not rc.send_websocket_frame(mgpy.WS_OP_TEXT, "lost")
        assert "1001" in rec.data("RECONNECTING")[0][0]
        poll(cli, srv, lambda: rec.count("RECONNECTING") >= 3)  # refused while down
        srv.start()  # ... and comes back on the same port
        poll(cli, srv, lambda: rec.count("WS_HANDSHAKE_DONE") == 2)
        assert rc.send_websocket_frame(mgpy.WS_OP_TEXT, "two")
        poll(cli, srv, lambda: rec.data("WS_FRAME") == ["one", "two"])
        assert "CLOSE" not in rec.names()  # one logical connection all along
        assert rec.count("CONNECT") == rec.count("RECONNECTING") + 1
        rc.close()
        poll(cli, srv, lambda: "CLOSE" in rec.names())
        assert rec.names()[-1] == "CLOSE" and rec.count("CLOSE") == 1
        assert rc.stopped and rc.reason == "closed by the application"
        accepts = srv.accepts
        end = time.monotonic() + 0.5  # several backoff periods: no new attempt
        poll(cli, srv, lambda: time.monotonic() > end)
        assert srv.accepts == accepts and rec.names()[-1] == "CLOSE"
        srv.stop()

    def test_backoff_grows_while_refused_and_resets_after_success(self, cli: mgpy.Manager) -> None:
        port = free_port()
        rec = Rec()
        opts = ReconnectOpts(min_delay=0.01, max_delay=0.08, jitter=0.2)
        connect_ws(cli, f"ws://127.0.0.1:{port}/ws", rec, reconnect=opts)
        poll(cli, None, lambda: rec.count("RECONNECTING") >= 6)
        delays = [d for _, d in rec.data("RECONNECTING")]
        assert delays[0] <= 0.012 and delays[3] >= 0.064  # 0.01, 0.02, 0.04, 0.08 ...
        assert max(delays) <= 0.08 * 1.2 + 1e-9  # capped
        assert all("ECONNREFUSED" in r for r, _ in rec.data("RECONNECTING"))
        srv = Srv(port).start()
        poll(cli, srv, lambda: rec.count("WS_HANDSHAKE_DONE") == 1)
        n = rec.count("RECONNECTING")
        srv.stop()
        poll(cli, srv, lambda: rec.count("RECONNECTING") > n)
        assert rec.data("RECONNECTING")[n][1] <= 0.012  # a success reset the backoff

    def test_5xx_refusal_is_retried(self, cli: mgpy.Manager) -> None:
        srv = Srv(refuse=503).start()
        rec = Rec()
        connect_ws(cli, f"ws://127.0.0.1:{srv.port}/ws", rec, reconnect=FAST)
        poll(cli, srv, lambda: srv.accepts >= 3)
        assert 503 in rec.data("WS_HANDSHAKE_DONE")
        assert "503" in rec.data("RECONNECTING")[0][0]
        srv.refuse = 0
        poll(cli, srv, lambda: 101 in rec.data("WS_HANDSHAKE_DONE"))
        srv.stop()


class TestNoRetry:
    def test_4xx_refusal_is_final(self, cli: mgpy.Manager) -> None:
        srv = Srv(refuse=403).start()
        rec = Rec()
        rc = connect_ws(cli, f"ws://127.0.0.1:{srv.port}/ws", rec, reconnect=FAST)
        poll(cli, srv, lambda: "CLOSE" in rec.names())
        assert rec.data("WS_HANDSHAKE_DONE") == [403]
        assert "RECONNECTING" not in rec.names() and "403" in rc.reason
        end = time.monotonic() + 0.3
        poll(cli, srv, lambda: time.monotonic() > end)
        assert srv.accepts == 1
        srv.stop()

    def test_untrusted_certificate_is_final(self, cli: mgpy.Manager, tmp_path: Path) -> None:
        certs = make_certs(tmp_path)
        srv = Srv(tls=mgpy.TlsOpts(cert=certs.other_cert, key=certs.other_key)).start()
        rec = Rec()
        rc = connect_ws(
            cli,
            f"wss://localhost:{srv.port}/ws",
            rec,
            tls=mgpy.TlsOpts(ca=certs.ca),
            reconnect=FAST,
        )
        poll(cli, srv, lambda: "CLOSE" in rec.names())
        assert "certificate verify failed" in rc.reason
        assert "RECONNECTING" not in rec.names()
        end = time.monotonic() + 0.3
        poll(cli, srv, lambda: time.monotonic() > end)
        assert rec.count("CONNECT") == 1  # one attempt, never retried
        srv.stop()

    def test_server_normal_closure_ends_the_session(self, cli: mgpy.Manager) -> None:
        srv = Srv(close_code=1000).start()
        rec = Rec()
        rc = connect_ws(cli, f"ws://127.0.0.1:{srv.port}/ws", rec, reconnect=FAST)
        poll(cli, srv, lambda: "CLOSE" in rec.names())
        assert rc.reason == "the server closed the WebSocket (1000)"
        assert rec.count("WS_HANDSHAKE_DONE") == 1 and "RECONNECTING" not in rec.names()
        srv.stop()

    def test_other_server_close_codes_reconnect(self, cli: mgpy.Manager) -> None:
        srv = Srv(close_code=1011).start()  # internal error
        rec = Rec()
        connect_ws(cli, f"ws://127.0.0.1:{srv.port}/ws", rec, reconnect=FAST)
        poll(cli, srv, lambda: rec.count("WS_HANDSHAKE_DONE") >= 2)
        assert "(1011)" in rec.data("RECONNECTING")[0][0]
        srv.stop()

    def test_max_tries_gives_up(self, cli: mgpy.Manager) -> None:
        rec = Rec()
        opts = ReconnectOpts(min_delay=0.01, max_delay=0.02, max_tries=3)
        rc = connect_ws(cli, f"ws://127.0.0.1:{free_port()}/ws", rec, reconnect=opts)
        poll(cli, None, lambda: "CLOSE" in rec.names())
        assert rec.count("CONNECT") == 3 and rec.count("RECONNECTING") == 2
        assert rc.reason.startswith("gave up after 3 failed attempts")


class TestStopping:
    def test_close_while_waiting_delivers_close_once(self, cli: mgpy.Manager) -> None:
        rec = Rec()
        rc = connect_ws(cli, f"ws://127.0.0.1:{free_port()}/ws", rec, reconnect=FAST)
        poll(cli, None, lambda: rec.count("RECONNECTING") == 1)
        rc.close()
        poll(cli, None, lambda: "CLOSE" in rec.names())
        end = time.monotonic() + 0.3
        poll(cli, None, lambda: time.monotonic() > end)
        assert rec.count("CONNECT") == 1 and rec.count("CLOSE") == 1

    def test_close_from_the_handler_stops_the_series(self, cli: mgpy.Manager) -> None:
        srv = Srv().start()

        def on(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            if ev == Ev.WS_FRAME and ev_data.text == "quit":
                c.ws_close(1000, "done")

        rec = Rec(on)
        rc = connect_ws(cli, f"ws://127.0.0.1:{srv.port}/ws", rec, reconnect=FAST)
        poll(cli, srv, lambda: rc.up)
        rc.send_websocket_frame(mgpy.WS_OP_TEXT, "quit")  # echoed back: the handler closes
        poll(cli, srv, lambda: "CLOSE" in rec.names())
        assert rc.reason == "closed by the application" and "RECONNECTING" not in rec.names()
        srv.stop()

    def test_manager_close_delivers_the_final_close(self, cli: mgpy.Manager) -> None:
        srv = Srv().start()
        rec = Rec()
        rc = connect_ws(cli, f"ws://127.0.0.1:{srv.port}/ws", rec, reconnect=FAST)
        poll(cli, srv, lambda: rc.up)
        cli.close()
        assert rec.names()[-1] == "CLOSE" and rc.stopped
        srv.stop()

    def test_each_attempt_is_a_new_connection_with_the_same_user_data(
        self, cli: mgpy.Manager
    ) -> None:
        srv = Srv().start()
        rec = Rec()
        rc = connect_ws(cli, f"ws://127.0.0.1:{srv.port}/ws", rec, user_data="mine", reconnect=FAST)
        poll(cli, srv, lambda: rc.up)
        first = rc.conn
        srv.conns[0].close()  # dropped without a close frame
        poll(cli, srv, lambda: rec.count("WS_HANDSHAKE_DONE") == 2)
        assert rc.conn is not first and rc.conn is not None
        assert rc.conn.user_data == "mine" and first is not None and first.user_data == "mine"
        srv.stop()


def test_options_are_checked() -> None:
    for bad in (
        {"min_delay": 0},
        {"min_delay": 2, "max_delay": 1},
        {"jitter": 1.0},
        {"max_tries": -1},
    ):
        with pytest.raises(ValueError):
            ReconnectOpts(**bad)
    with pytest.raises(TypeError):
        connect_ws(mgpy.Manager(), "ws://127.0.0.1:1/", lambda *a: None, reconnect=1)  # type: ignore[call-overload]

"""Interop with the ``websockets`` library, both ways.

* websockets' sync client against mgpy's server (mgpy polled in a thread):
  text, binary, fragments both ways, 4 MiB messages, pings both ways, close
  codes both ways, subprotocol negotiation, a refused handshake (403) and a
  wrong version (426).
* mgpy's ``connect_ws`` against a websockets sync server (in a thread): echo,
  fragments, subprotocol, extra headers, Basic auth, pings, close handshake
  both ways.
"""

from __future__ import annotations

import base64
import contextlib
import os
import struct
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.sync.server import ServerConnection, basic_auth
from websockets.typing import Subprotocol

import mgpy
from mgpy import Ev, Limits
from tests.conftest import run_until
from tests.waiting import wait_until
from tests.ws_servers import MgpyThread, WebsocketsThread

BIG = 4 * 1024 * 1024
LIMITS = Limits(ws_max_message=8 * 1024 * 1024)
#: websockets client options: no compression (mgpy negotiates none anyway), no proxy
OPTS: dict[str, Any] = {
    "compression": None,
    "proxy": None,
    "max_size": 8 * 1024 * 1024,
    "open_timeout": 5,
    "close_timeout": 5,
}


# ------------------------------------------------------------------------------------
# mgpy server, websockets client
# ------------------------------------------------------------------------------------
class MgpyServer(MgpyThread):
    """mgpy's WebSocket server polled in a background thread; records what it sees."""

    def __init__(self) -> None:
        self.controls: list[tuple[int, bytes]] = []
        self.closed = 0
        self.requests: list[mgpy.HttpMessage] = []
        super().__init__(LIMITS)
        self.url = f"ws://127.0.0.1:{self.port}"

    def handler(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.WS_HANDSHAKE_REQUEST:
            self.requests.append(ev_data)
            if ev_data.uri == "/forbidden":
                mgpy.http_send_error(c, 403)
                return
            offered = (ev_data.header("Sec-WebSocket-Protocol") or "").replace(" ", "").split(",")
            if "chat" in offered:
                mgpy.ws_accept(c, protocol="chat")
        elif ev == Ev.WS_FRAME:
            if ev_data.data == b"close please":
                c.ws_close(4001, "as asked")
            elif ev_data.data == b"fragments please":
                c.send_websocket_frame(mgpy.WS_OP_TEXT | mgpy.WS_DONT_FIN, "frag")
                c.send_websocket_frame(mgpy.WS_OP_CONTINUE | mgpy.WS_DONT_FIN, "men")
                c.send_websocket_frame(mgpy.WS_OP_CONTINUE, "ted")
            elif ev_data.data == b"ping me":
                c.send_websocket_frame(mgpy.WS_OP_PING, b"from mgpy")
            else:
                c.send_websocket_frame(ev_data.opcode, ev_data.data)
        elif ev == Ev.WS_CONTROL_FRAME:
            self.controls.append((ev_data.opcode, ev_data.data))
        elif ev == Ev.CLOSE and c.is_websocket:
            self.closed += 1


@pytest.fixture(scope="module")
def server() -> Iterator[MgpyServer]:
    with MgpyServer() as s:
        yield s


class TestWebsocketsClientAgainstMgpy:
    def test_text_and_binary_echo(self, server: MgpyServer) -> None:
        with connect(server.url + "/ws", **OPTS) as ws:
            ws.send("hello ✓")
            assert ws.recv(timeout=5) == "hello ✓"
            ws.send(b"\x00\x01\x02\xff")
            assert ws.recv(timeout=5) == b"\x00\x01\x02\xff"

    def test_fragmented_message_from_the_client(self, server: MgpyServer) -> None:
        with connect(server.url + "/ws", **OPTS) as ws:
            ws.send(["frag", "men", "ted ✓"])  # websockets sends an iterable as fragments
            assert ws.recv(timeout=5) == "fragmented ✓"
            ws.send([b"\x01", b"\x02" * 1000, b"\x03"])
            assert ws.recv(timeout=5) == b"\x01" + b"\x02" * 1000 + b"\x03"

    def test_fragmented_message_from_the_server(self, server: MgpyServer) -> None:
        with connect(server.url + "/ws", **OPTS) as ws:
            ws.send("fragments please")
            assert ws.recv(timeout=5) == "fragmented"

    def test_4_mib_messages(self, server: MgpyServer) -> None:
        data = os.urandom(BIG)
        text = "é" * (BIG // 2)
        with connect(server.url + "/ws", **OPTS) as ws:
            ws.send(data)
            assert ws.recv(timeout=30) == data
            ws.send(text)
            assert ws.recv(timeout=30) == text

    def test_client_ping_gets_a_pong(self, server: MgpyServer) -> None:
        with connect(server.url + "/ws", **OPTS) as ws:
            assert ws.ping(b"are you there").wait(5)
        assert (mgpy.WS_OP_PING, b"are you there") in server.controls

    def test_server_ping_is_answered_by_websockets(self, server: MgpyServer) -> None:
        with connect(server.url + "/ws", **OPTS) as ws:
            ws.send("ping me")
            wait_until(lambda: (mgpy.WS_OP_PONG, b"from mgpy") in server.controls, 5.0, "the pong")

    def test_client_close_code_is_seen_and_echoed(self, server: MgpyServer) -> None:
        before = server.closed
        with connect(server.url + "/ws", **OPTS) as ws:
            ws.close(4000, "bye now")
        assert ws.close_code == 4000 and ws.close_reason == ""
        close = (mgpy.WS_OP_CLOSE, struct.pack("!H", 4000) + b"bye now")
        wait_until(lambda: close in server.controls, 5.0, "the client's close frame")
        wait_until(lambda: server.closed > before, 5.0, "the server's CLOSE")

    def test_server_close_code_reaches_the_client(self, server: MgpyServer) -> None:
        with connect(server.url + "/ws", **OPTS) as ws:
            ws.send("close please")
            with pytest.raises(ConnectionClosed) as e:
                ws.recv(timeout=5)
            assert e.value.rcvd is not None
            assert (e.value.rcvd.code, e.value.rcvd.reason) == (4001, "as asked")
            assert ws.close_code == 4001

    def test_normal_close_is_ok(self, server: MgpyServer) -> None:
        with connect(server.url + "/ws", **OPTS) as ws:
            ws.send("x")
            ws.recv(timeout=5)
        assert ws.close_code == 1000
        with pytest.raises(ConnectionClosedOK):
            ws.recv(timeout=1)

    def test_subprotocol_negotiation(self, server: MgpyServer) -> None:
        offer = [Subprotocol("superchat"), Subprotocol("chat")]
        with connect(server.url + "/ws", subprotocols=offer, **OPTS) as ws:
            assert ws.subprotocol == "chat"
            ws.send("in chat")
            assert ws.recv(timeout=5) == "in chat"
        with connect(server.url + "/ws", subprotocols=[Subprotocol("mqtt")], **OPTS) as ws:
            assert ws.subprotocol is None

    def test_refused_handshake_403(self, server: MgpyServer) -> None:
        with pytest.raises(InvalidStatus) as e:
            connect(server.url + "/forbidden", **OPTS)
        assert e.value.response.status_code == 403

    def test_wrong_version_426(self, server: MgpyServer) -> None:
        # websockets adds additional_headers after its own: two versions, neither alone 13
        with pytest.raises(InvalidStatus) as e:
            connect(server.url + "/ws", additional_headers={"Sec-WebSocket-Version": "8"}, **OPTS)
        assert e.value.response.status_code == 426
        assert e.value.response.headers["Sec-WebSocket-Version"] == "13"

    def test_many_clients_at_once(self, server: MgpyServer) -> None:
        with contextlib.ExitStack() as stack:
            conns: list[ClientConnection] = [
                stack.enter_context(connect(server.url + "/ws", **OPTS)) for _ in range(20)
            ]
            for i, ws in enumerate(conns):
                ws.send(f"client {i}")
            for i, ws in enumerate(conns):
                assert ws.recv(timeout=5) == f"client {i}"


# ------------------------------------------------------------------------------------
# websockets server, mgpy client
# ------------------------------------------------------------------------------------
class PeerServer(WebsocketsThread):
    """A websockets sync server in a thread: echoes, and records each request's headers."""

    def __init__(self, **kw: Any) -> None:
        self.requests: list[Any] = []
        self.closes: dict[str, tuple[int | None, str | None]] = {}
        self.pongs: list[bool] = []
        super().__init__(
            select_subprotocol=self.select,
            compression=None,
            max_size=8 * 1024 * 1024,
            close_timeout=2,
            **kw,
        )
        self.url = f"ws://127.0.0.1:{self.port}"

    @staticmethod
    def select(ws: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
        """Speak "chat" when offered; no subprotocol otherwise (websockets' default refuses)."""
        return Subprotocol("chat") if "chat" in offered else None

    def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.requests.append(ws.request.headers)
        try:
            for msg in ws:
                if msg == "close-me":
                    ws.close(4002, "done")
                elif msg == "ping-me":
                    self.pongs.append(ws.ping(b"from websockets").wait(5))
                    ws.send("pinged")
                elif msg == "big-me":
                    ws.send(b"\xab" * BIG)
                else:
                    ws.send(msg)
        except ConnectionClosed:
            pass
        self.closes[ws.request.path] = (ws.close_code, ws.close_reason)


@pytest.fixture(scope="module")
def peer() -> Iterator[PeerServer]:
    with PeerServer() as s:
        yield s


class Client:
    """connect_ws handler: sends ``script`` after the handshake, records the rest."""

    def __init__(self, *script: tuple[int, bytes | str]) -> None:
        self.script = script
        self.events: list[tuple[str, Any]] = []
        self.c: mgpy.Connection | None = None

    def __call__(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.POLL:
            return
        self.events.append((Ev(ev).name, ev_data))
        if ev == Ev.WS_HANDSHAKE_DONE and ev_data.resp_code == 101:
            self.c = c
            for op, data in self.script:
                c.send_websocket_frame(op, data)

    def data(self, name: str) -> list[Any]:
        return [d for n, d in self.events if n == name]

    def messages(self) -> list[tuple[int, bytes]]:
        return [(m.opcode, m.data) for m in self.data("WS_FRAME")]

    def closed(self) -> bool:
        return any(n == "CLOSE" for n, _ in self.events)


class TestConnectWsAgainstWebsockets:
    def test_echo_text_binary_and_fragments(self, mgr: mgpy.Manager, peer: PeerServer) -> None:
        cli = Client(
            (mgpy.WS_OP_TEXT, "hi ✓"),
            (mgpy.WS_OP_BINARY, b"\x00\xff"),
            (mgpy.WS_OP_TEXT | mgpy.WS_DONT_FIN, "a"),
            (mgpy.WS_OP_CONTINUE | mgpy.WS_DONT_FIN, "b"),
            (mgpy.WS_OP_CONTINUE, "c"),
        )
        mgr.connect_ws(peer.url + "/echo", cli)
        run_until(mgr, lambda: len(cli.messages()) == 3)
        assert cli.messages() == [(1, "hi ✓".encode()), (2, b"\x00\xff"), (1, b"abc")]

    def test_large_message_from_websockets(self, mgr: mgpy.Manager, peer: PeerServer) -> None:
        cli = Client((mgpy.WS_OP_TEXT, "big-me"))
        mgr.connect_ws(peer.url + "/", cli, limits=LIMITS)
        run_until(mgr, lambda: cli.messages(), timeout=30)
        assert cli.messages() == [(2, b"\xab" * BIG)]

    def test_subprotocol_and_extra_headers(self, mgr: mgpy.Manager, peer: PeerServer) -> None:
        cli = Client()
        n = len(peer.requests)
        mgr.connect_ws(peer.url + "/", cli, protocol=["v1", "chat"], headers={"X-Token": "t0k3n"})
        run_until(mgr, lambda: cli.data("WS_HANDSHAKE_DONE"))
        [resp] = cli.data("WS_HANDSHAKE_DONE")
        assert resp.resp_code == 101 and resp.header("Sec-WebSocket-Protocol") == "chat"
        wait_until(lambda: len(peer.requests) > n, 5.0, "the request at the peer")
        assert peer.requests[n]["X-Token"] == "t0k3n"

    def test_basic_auth_from_the_url(self, mgr: mgpy.Manager, peer: PeerServer) -> None:
        cli = Client((mgpy.WS_OP_TEXT, "authorised"))
        n = len(peer.requests)
        mgr.connect_ws(peer.url.replace("//", "//bob:hunter2@") + "/", cli)
        run_until(mgr, lambda: cli.messages())
        assert cli.messages() == [(1, b"authorised")]
        expected = "Basic " + base64.b64encode(b"bob:hunter2").decode()
        assert peer.requests[n]["Authorization"] == expected

    def test_server_ping_is_answered(self, mgr: mgpy.Manager, peer: PeerServer) -> None:
        cli = Client((mgpy.WS_OP_TEXT, "ping-me"))
        mgr.connect_ws(peer.url + "/", cli)
        run_until(mgr, lambda: cli.messages())
        assert cli.messages() == [(1, b"pinged")]
        assert peer.pongs[-1] is True
        assert (mgpy.WS_OP_PING, b"from websockets") in [
            (m.opcode, m.data) for m in cli.data("WS_CONTROL_FRAME")
        ]

    def test_client_close_handshake(self, mgr: mgpy.Manager, peer: PeerServer) -> None:
        cli = Client()
        mgr.connect_ws(peer.url + "/client-closes", cli)
        run_until(mgr, lambda: cli.c is not None)
        assert cli.c is not None
        cli.c.ws_close(1001, "leaving")
        run_until(mgr, cli.closed)
        wait_until(lambda: "/client-closes" in peer.closes, 5.0, "the close at the peer")
        assert peer.closes["/client-closes"] == (1001, "leaving")
        [echo] = cli.data("WS_CONTROL_FRAME")
        assert echo.opcode == mgpy.WS_OP_CLOSE and echo.data[:2] == struct.pack("!H", 1001)
        assert not cli.data("ERROR")

    def test_server_close_handshake(self, mgr: mgpy.Manager, peer: PeerServer) -> None:
        cli = Client((mgpy.WS_OP_TEXT, "close-me"))
        mgr.connect_ws(peer.url + "/server-closes", cli)
        run_until(mgr, cli.closed)
        [close] = cli.data("WS_CONTROL_FRAME")
        assert close.data == struct.pack("!H", 4002) + b"done"
        assert not cli.data("ERROR")
        wait_until(lambda: "/server-closes" in peer.closes, 5.0, "the close at the peer")
        assert peer.closes["/server-closes"][0] == 4002  # websockets got our echo: clean


def test_connect_ws_with_wrong_basic_credentials_gets_401(mgr: mgpy.Manager) -> None:
    with PeerServer(process_request=basic_auth(realm="ws", credentials=("bob", "right"))) as s:
        ok, bad = Client((mgpy.WS_OP_TEXT, "in")), Client()
        mgr.connect_ws(s.url.replace("//", "//bob:right@") + "/", ok)
        mgr.connect_ws(s.url.replace("//", "//bob:wrong@") + "/", bad)
        run_until(mgr, lambda: ok.messages() and bad.closed())
        assert ok.messages() == [(1, b"in")]
        [resp] = bad.data("WS_HANDSHAKE_DONE")
        assert resp.resp_code == 401
        assert bad.c is None
        assert ok.c is not None
        ok.c.ws_close()
        run_until(mgr, ok.closed)

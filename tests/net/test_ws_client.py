"""connect_ws over real sockets: URL forms, headers, subprotocols, auth, key checks, closing.

The peer is mgpy's own server (same Manager) where the behaviour is standard,
and a raw TCP server (a plain mgpy listener writing canned bytes) where the
client must refuse what a broken server sends.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

import pytest

import mgpy
from mgpy import Ev, F, Limits
from tests.conftest import run_until
from tests.net.test_ws_server import WsRecorder, accept_of, ws_server


class Client:
    """A connect_ws handler that records events and can send on HANDSHAKE_DONE."""

    def __init__(self, send: list[tuple[int, bytes | str]] | None = None) -> None:
        self.events: list[tuple[str, Any]] = []
        self.send = send or []
        self.c: mgpy.Connection | None = None

    def __call__(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.POLL:
            return
        self.events.append((Ev(ev).name, ev_data))
        if ev == Ev.WS_HANDSHAKE_DONE and ev_data.resp_code == 101:
            self.c = c
            for op, data in self.send:
                c.send_websocket_frame(op, data)

    def names(self) -> list[str]:
        return [n for n, _ in self.events]

    def data(self, name: str) -> list[Any]:
        return [d for n, d in self.events if n == name]

    def messages(self) -> list[tuple[int, bytes]]:
        return [(m.opcode, m.data) for m in self.data("WS_FRAME")]


def raw_server(mgr: mgpy.Manager, answer: Any, close: bool = False) -> tuple[int, list[bytes]]:
    """A TCP listener that answers the first request head with ``answer(key)`` bytes.

    Returns the port and a list holding the request head, then everything received after it.
    ``close``: close the connection once the answer is written.
    """
    seen: list[bytes] = []

    def h(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.RECV:
            buf = bytes(c.recv_mbuf)
            if not seen:
                if b"\r\n\r\n" not in buf:
                    return
                head, _, rest = buf.partition(b"\r\n\r\n")
                seen.extend([head, rest])
                key = ""
                for line in head.decode().split("\r\n"):
                    if line.lower().startswith("sec-websocket-key:"):
                        key = line.split(":", 1)[1].strip()
                c.send(answer(key))
                if close:
                    c.flags |= F.SEND_AND_CLOSE
            else:
                seen[1] += buf
            c.recv_mbuf.clear()

    lc = mgr.bind("127.0.0.1:0", h)
    return lc.local[1], seen


def good_101(key: str, extra: str = "") -> bytes:
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_of(key)}\r\n{extra}\r\n"
    ).encode()


class TestUrls:
    @pytest.mark.parametrize(
        "fmt", ["ws://127.0.0.1:{}/ws", "http://127.0.0.1:{}/ws", "127.0.0.1:{}/ws"]
    )
    def test_echo_over_every_url_form(self, mgr: mgpy.Manager, fmt: str) -> None:
        srv, port = ws_server(mgr)
        cli = Client([(mgpy.WS_OP_TEXT, "hello"), (mgpy.WS_OP_BINARY, b"\x00\xff")])
        c = mgr.connect_ws(fmt.format(port), cli)
        run_until(mgr, lambda: len(cli.messages()) == 2)
        assert cli.messages() == [(1, b"hello"), (2, b"\x00\xff")]
        [resp] = cli.data("WS_HANDSHAKE_DONE")
        assert resp.resp_code == 101
        assert resp.header("Sec-WebSocket-Accept") is not None
        assert c.flags & F.IS_WEBSOCKET
        assert cli.names()[0] == "CONNECT" and cli.events[0][1] == 0
        assert srv.data("WS_HANDSHAKE_DONE")[0].uri == "/ws"

    def test_query_string_reaches_the_server(self, mgr: mgpy.Manager) -> None:
        srv, port = ws_server(mgr)
        cli = Client()
        mgr.connect_ws(f"ws://127.0.0.1:{port}/runCase?case=3&agent=mgpy", cli)
        run_until(mgr, lambda: srv.conns)
        hm = srv.data("WS_HANDSHAKE_DONE")[0]
        assert (hm.uri, hm.query_string) == ("/runCase", "case=3&agent=mgpy")

    def test_connection_refused_gives_connect_error_and_close(self, mgr: mgpy.Manager) -> None:
        lc = mgr.bind("127.0.0.1:0", lambda c, ev, d: None)
        port = lc.local[1]
        lc.flags |= F.CLOSE_IMMEDIATELY
        run_until(mgr, lambda: lc.closed)
        cli = Client()
        mgr.connect_ws(f"ws://127.0.0.1:{port}/", cli)
        run_until(mgr, lambda: "CLOSE" in cli.names())
        assert cli.events[0][0] == "CONNECT" and cli.events[0][1] != 0
        assert "WS_HANDSHAKE_DONE" not in cli.names()

    def test_tcp_url_is_refused(self, mgr: mgpy.Manager) -> None:
        with pytest.raises(mgpy.Error):
            mgr.connect_ws("tcp://127.0.0.1:1/", Client())


class TestRequest:
    def test_extra_headers_and_subprotocol_offer(self, mgr: mgpy.Manager) -> None:
        srv, port = ws_server(mgr)
        srv.on_request = lambda c, hm: mgpy.ws_accept(c, protocol="v2.chat")
        cli = Client()
        mgr.connect_ws(
            f"ws://127.0.0.1:{port}/ws",
            cli,
            protocol=["v1.chat", "v2.chat"],
            headers={"X-Token": "abc", "Origin": "http://example.test"},
        )
        run_until(mgr, lambda: cli.data("WS_HANDSHAKE_DONE"))
        req = srv.data("WS_HANDSHAKE_REQUEST")[0]
        assert req.header("X-Token") == "abc" and req.header("Origin") == "http://example.test"
        assert req.header("Sec-WebSocket-Protocol") == "v1.chat, v2.chat"
        assert req.header("Sec-WebSocket-Version") == "13"
        assert req.header("Host") == f"127.0.0.1:{port}"
        assert cli.data("WS_HANDSHAKE_DONE")[0].header("Sec-WebSocket-Protocol") == "v2.chat"

    def test_protocol_as_comma_separated_string(self, mgr: mgpy.Manager) -> None:
        srv, port = ws_server(mgr)
        cli = Client()
        mgr.connect_ws(f"ws://127.0.0.1:{port}/ws", cli, protocol="a, b")
        run_until(mgr, lambda: cli.data("WS_HANDSHAKE_DONE"))
        assert srv.data("WS_HANDSHAKE_REQUEST")[0].header("Sec-WebSocket-Protocol") == "a, b"

    def test_headers_as_a_list_of_pairs(self, mgr: mgpy.Manager) -> None:
        srv, port = ws_server(mgr)
        cli = Client()
        mgr.connect_ws(f"ws://127.0.0.1:{port}/ws", cli, headers=[("X-A", "1"), ("X-A", "2")])
        run_until(mgr, lambda: cli.data("WS_HANDSHAKE_DONE"))
        assert srv.data("WS_HANDSHAKE_REQUEST")[0].header_all("X-A") == ["1", "2"]

    def test_user_and_password_in_the_url_send_basic_auth(self, mgr: mgpy.Manager) -> None:
        srv, port = ws_server(mgr)
        cli = Client()
        mgr.connect_ws(f"ws://alice:s%3Acret@127.0.0.1:{port}/ws", cli)
        run_until(mgr, lambda: cli.data("WS_HANDSHAKE_DONE"))
        req = srv.data("WS_HANDSHAKE_REQUEST")[0]
        assert req.header("Authorization") == "Basic " + base64.b64encode(b"alice:s:cret").decode()
        assert mgpy.get_http_basic_auth(req) == ("alice", "s:cret")

    def test_every_connection_gets_a_fresh_16_byte_key(self, mgr: mgpy.Manager) -> None:
        srv, port = ws_server(mgr)
        clients = [Client() for _ in range(5)]
        for cli in clients:
            mgr.connect_ws(f"ws://127.0.0.1:{port}/ws", cli)
        run_until(mgr, lambda: all(cli.data("WS_HANDSHAKE_DONE") for cli in clients))
        keys = [hm.header("Sec-WebSocket-Key") for hm in srv.data("WS_HANDSHAKE_REQUEST")]
        assert len(set(keys)) == 5
        assert all(len(base64.b64decode(k, validate=True)) == 16 for k in keys)

    def test_client_frames_are_masked_with_fresh_keys(self, mgr: mgpy.Manager) -> None:
        port, seen = raw_server(mgr, good_101)
        cli = Client([(mgpy.WS_OP_TEXT, "same"), (mgpy.WS_OP_TEXT, "same")])
        mgr.connect_ws(f"ws://127.0.0.1:{port}/", cli)
        run_until(mgr, lambda: len(seen) == 2 and len(seen[1]) == 20)
        f1, f2 = seen[1][:10], seen[1][10:]
        masks = []
        for f in (f1, f2):
            assert f[0] == 0x81 and f[1] == 0x80 | 4  # RFC 6455 5.3: client frames are masked
            mask = f[2:6]
            masks.append(mask)
            assert bytes(x ^ mask[i % 4] for i, x in enumerate(f[6:])) == b"same"
        assert masks[0] != masks[1]


class TestResponseChecks:
    def test_wrong_accept_fails_without_handshake_done(self, mgr: mgpy.Manager) -> None:
        port, _ = raw_server(mgr, lambda key: good_101(base64.b64encode(b"0" * 16).decode()))
        cli = Client()
        mgr.connect_ws(f"ws://127.0.0.1:{port}/", cli)
        run_until(mgr, lambda: "CLOSE" in cli.names())
        assert "WS_HANDSHAKE_DONE" not in cli.names()
        [err] = cli.data("ERROR")
        assert "Sec-WebSocket-Accept" in err

    def test_unoffered_subprotocol_fails(self, mgr: mgpy.Manager) -> None:
        port, _ = raw_server(mgr, lambda key: good_101(key, "Sec-WebSocket-Protocol: evil\r\n"))
        cli = Client()
        mgr.connect_ws(f"ws://127.0.0.1:{port}/", cli, protocol="chat")
        run_until(mgr, lambda: "CLOSE" in cli.names())
        assert "WS_HANDSHAKE_DONE" not in cli.names()
        assert "subprotocol" in cli.data("ERROR")[0]

    def test_extension_in_the_response_fails(self, mgr: mgpy.Manager) -> None:
        ext = "Sec-WebSocket-Extensions: permessage-deflate\r\n"
        port, _ = raw_server(mgr, lambda key: good_101(key, ext))
        cli = Client()
        mgr.connect_ws(f"ws://127.0.0.1:{port}/", cli)
        run_until(mgr, lambda: "CLOSE" in cli.names())
        assert "WS_HANDSHAKE_DONE" not in cli.names()

    def test_refusal_is_delivered_as_handshake_done_with_status(self, mgr: mgpy.Manager) -> None:
        srv, port = ws_server(mgr)
        srv.on_request = lambda c, hm: mgpy.http_send_error(c, 403)
        cli = Client()
        mgr.connect_ws(f"ws://127.0.0.1:{port}/ws", cli)
        run_until(mgr, lambda: "CLOSE" in cli.names())
        [resp] = cli.data("WS_HANDSHAKE_DONE")
        assert resp.resp_code == 403
        assert resp.body.startswith(b"403")  # the refusal's body is read and delivered
        assert not cli.c  # never became a WebSocket
        assert not cli.data("HTTP_REPLY") and not cli.data("HTTP_CHUNK")

    def test_refusal_with_a_close_delimited_body(self, mgr: mgpy.Manager) -> None:
        port, _ = raw_server(
            mgr,
            lambda key: b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\nno subprotocol",
            close=True,
        )
        cli = Client()
        mgr.connect_ws(f"ws://127.0.0.1:{port}/", cli)
        run_until(mgr, lambda: "CLOSE" in cli.names())
        [resp] = cli.data("WS_HANDSHAKE_DONE")
        assert (resp.resp_code, resp.body) == (400, b"no subprotocol")

    def test_server_frame_that_is_masked_fails_with_1002(self, mgr: mgpy.Manager) -> None:
        payload = bytes(x ^ y for x, y in zip(b"hi", b"ab", strict=True))
        masked = bytes((0x81, 0x82)) + b"abcd" + payload
        port, _ = raw_server(mgr, lambda key: good_101(key) + masked)
        cli = Client()
        mgr.connect_ws(f"ws://127.0.0.1:{port}/", cli)
        run_until(mgr, lambda: "CLOSE" in cli.names())
        assert cli.data("WS_HANDSHAKE_DONE")[0].resp_code == 101
        assert not cli.data("WS_FRAME")
        assert "(1002)" in cli.data("ERROR")[0]

    def test_frames_right_behind_the_101_are_delivered(self, mgr: mgpy.Manager) -> None:
        port, _ = raw_server(mgr, lambda key: good_101(key) + b"\x81\x05first\x82\x01\x02")
        cli = Client()
        mgr.connect_ws(f"ws://127.0.0.1:{port}/", cli)
        run_until(mgr, lambda: len(cli.messages()) == 2)
        assert cli.messages() == [(1, b"first"), (2, b"\x02")]


class TestClientClose:
    def test_client_close_handshake(self, mgr: mgpy.Manager) -> None:
        srv, port = ws_server(mgr)
        cli = Client()
        mgr.connect_ws(f"ws://127.0.0.1:{port}/ws", cli)
        run_until(mgr, lambda: cli.c is not None)
        assert cli.c is not None
        cli.c.ws_close(1000, "done")
        run_until(mgr, lambda: "CLOSE" in cli.names() and "CLOSE" in srv.names())
        [sclose] = srv.data("WS_CONTROL_FRAME")
        assert sclose.data == struct.pack("!H", 1000) + b"done"
        [creply] = cli.data("WS_CONTROL_FRAME")
        assert creply.opcode == mgpy.WS_OP_CLOSE and creply.data[:2] == struct.pack("!H", 1000)
        assert "ERROR" not in cli.names() and "ERROR" not in srv.names()

    def test_server_close_is_echoed_and_client_waits_for_tcp_close(self, mgr: mgpy.Manager) -> None:
        srv, port = ws_server(mgr)
        srv.on_done = lambda c, hm: c.ws_close(4000, "bye")
        cli = Client()
        mgr.connect_ws(f"ws://127.0.0.1:{port}/ws", cli)
        run_until(mgr, lambda: "CLOSE" in cli.names() and "CLOSE" in srv.names())
        [ctl] = cli.data("WS_CONTROL_FRAME")
        assert ctl.data == struct.pack("!H", 4000) + b"bye"
        # the server got the echo, so its close handshake completed without a timeout
        assert [m.data[:2] for m in srv.data("WS_CONTROL_FRAME")] == [struct.pack("!H", 4000)]
        assert "ERROR" not in cli.names() and "ERROR" not in srv.names()

    def test_client_gives_up_on_a_server_that_keeps_tcp_open(self, mgr: mgpy.Manager) -> None:
        port, _ = raw_server(mgr, lambda key: good_101(key) + b"\x88\x02\x03\xe8")
        cli = Client()
        mgr.connect_ws(f"ws://127.0.0.1:{port}/", cli, limits=Limits(ws_close_timeout=0.2))
        run_until(mgr, lambda: "CLOSE" in cli.names())
        assert [m.opcode for m in cli.data("WS_CONTROL_FRAME")] == [mgpy.WS_OP_CLOSE]
        assert "ERROR" not in cli.names()  # the handshake completed: not an error

    def test_large_messages_both_ways(self, mgr: mgpy.Manager) -> None:
        lim = Limits(ws_max_message=4 << 20)
        _srv, port = ws_server(mgr, lim)
        big = bytes(range(256)) * (3 << 12)  # 3 MiB
        cli = Client([(mgpy.WS_OP_BINARY, big)])
        mgr.connect_ws(f"ws://127.0.0.1:{port}/ws", cli, limits=lim)
        run_until(mgr, lambda: cli.messages(), timeout=20)
        assert cli.messages() == [(2, big)]

    def test_client_keepalive_pings_the_server(self, mgr: mgpy.Manager) -> None:
        srv, port = ws_server(mgr)
        cli = Client()
        mgr.connect_ws(
            f"ws://127.0.0.1:{port}/ws", cli, limits=Limits(ws_ping_interval=0.1, ws_pong_timeout=1)
        )
        run_until(mgr, lambda: len(cli.data("WS_CONTROL_FRAME")) >= 2)
        assert {m.opcode for m in cli.data("WS_CONTROL_FRAME")} == {mgpy.WS_OP_PONG}
        assert {m.opcode for m in srv.data("WS_CONTROL_FRAME")} == {mgpy.WS_OP_PING}
        assert "CLOSE" not in cli.names()


def test_recorder_is_reusable_for_client_side(mgr: mgpy.Manager) -> None:
    # WsRecorder echoes on either side: two mgpy endpoints bounce a message a few times
    _srv, port = ws_server(mgr)
    rec = WsRecorder()
    rec.on_done = lambda c, hm: c.send_websocket_frame(mgpy.WS_OP_TEXT, "ball")
    mgr.connect_ws(f"ws://127.0.0.1:{port}/ws", rec)
    run_until(mgr, lambda: len(rec.data("WS_FRAME")) >= 10)
    assert {m.data for m in rec.data("WS_FRAME")} == {b"ball"}

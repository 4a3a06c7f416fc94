"""WebSocket server handshake over real sockets: validation, rejection, subprotocols, routing.

A raw, non-blocking socket plays the client (``RawWs``), so every byte the
server writes can be checked; the manager is polled in the test thread until a
condition holds.  ``RawWs`` and ``WsRecorder`` are reused by the other
``test_ws_*`` modules.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from typing import Any

import pytest

import mgpy
from mgpy import Ev, F
from tests.conftest import run_until
from tests.net.socket_peer import SocketPeer
from tests.proto.ws_helpers import frame

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: the sample key of RFC 6455 1.3 and its accept value, computed by the RFC
RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
KEY_15 = base64.b64encode(b"x" * 15).decode()  # valid base64, wrong length
KEY_17 = base64.b64encode(b"x" * 17).decode()


def accept_of(key: str) -> str:
    """Sec-WebSocket-Accept computed independently of mgpy (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def upgrade_request(
    path: str = "/ws",
    key: str = RFC_KEY,
    version: str | None = "13",
    connection: str = "Upgrade",
    upgrade: str = "websocket",
    extra: str = "",
    method: str = "GET",
    proto: str = "HTTP/1.1",
) -> bytes:
    """An opening handshake request, field by field."""
    lines = [
        f"{method} {path} {proto}",
        "Host: 127.0.0.1",
        f"Upgrade: {upgrade}",
        f"Connection: {connection}",
        f"Sec-WebSocket-Key: {key}",
    ]
    if version is not None:
        lines.append(f"Sec-WebSocket-Version: {version}")
    head = "\r\n".join(lines) + "\r\n" + extra + "\r\n"
    return head.encode()


class RawWs(SocketPeer):
    """A raw-socket WebSocket client driven from the test thread while ``mgr`` polls."""

    recv_size = 1 << 20

    def __init__(self, mgr: mgpy.Manager, port: int, rcvbuf: int = 0) -> None:
        super().__init__(mgr, port, rcvbuf)
        self.inbuf = bytearray()
        self.out = bytearray()
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""

    # -- I/O ---------------------------------------------------------------------
    def pump(self) -> None:
        """Write what is pending, read what is there (unless reading is paused)."""
        while self.out:
            try:
                n = self.sock.send(self.out)
            except BlockingIOError:
                break
            except OSError:
                self.out.clear()
                break
            del self.out[:n]
        self.read()

    def on_data(self, data: bytes) -> None:
        self.inbuf += data

    def send(self, data: bytes) -> None:
        self.out += data
        self.pump()

    # -- HTTP ----------------------------------------------------------------------
    def handshake(self, request: bytes | None = None, timeout: float = 5.0) -> int:
        """Send an upgrade request and read the response head; return the status."""
        self.send(request if request is not None else upgrade_request())
        self.until(lambda: b"\r\n\r\n" in self.inbuf, timeout)
        head, _, rest = bytes(self.inbuf).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.inbuf[:] = rest
        if self.status != 101:
            n = int(self.headers.get("content-length", "0"))
            self.until(lambda: len(self.inbuf) >= n or self.eof, timeout)
            self.body = bytes(self.inbuf[:n])
            del self.inbuf[:n]
        return self.status

    # -- frames ----------------------------------------------------------------------
    def send_frame(self, b0: int, payload: bytes = b"", masked: bool = True, **kw: Any) -> None:
        self.send(frame(b0, payload, masked=masked, **kw))

    def parse_frame(self) -> tuple[int, bytes, bool] | None:
        """Take one server frame from inbuf: (b0, payload, masked) or None if incomplete."""
        b = self.inbuf
        if len(b) < 2:
            return None
        ln = b[1] & 0x7F
        masked = bool(b[1] & 0x80)
        pos = 2
        if ln == 126:
            if len(b) < 4:
                return None
            ln = struct.unpack("!H", b[2:4])[0]
            pos = 4
        elif ln == 127:
            if len(b) < 10:
                return None
            ln = struct.unpack("!Q", b[2:10])[0]
            pos = 10
        mask = b""
        if masked:
            if len(b) < pos + 4:
                return None
            mask = bytes(b[pos : pos + 4])
            pos += 4
        if len(b) < pos + ln:
            return None
        payload = bytes(b[pos : pos + ln])
        if masked:
            payload = bytes(x ^ mask[i % 4] for i, x in enumerate(payload))
        b0 = b[0]
        del b[: pos + ln]
        return b0, payload, masked

    def recv_frame(self, timeout: float = 5.0) -> tuple[int, bytes]:
        """Wait for the next server frame; return (first byte, payload)."""
        got: list[tuple[int, bytes, bool]] = []

        def ready() -> bool:
            f = self.parse_frame()
            if f is not None:
                got.append(f)
            return bool(got)

        self.until(ready, timeout)
        b0, payload, masked = got[0]
        assert not masked, "RFC 6455 5.1: a server MUST NOT mask frames"
        return b0, payload

    def recv_close(self, timeout: float = 5.0) -> tuple[int, bytes]:
        """Skip to the server's close frame; return (code, reason) (code 1005 if none)."""
        while True:
            b0, payload = self.recv_frame(timeout)
            if b0 & 0x0F == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if payload else 1005
                return code, payload[2:]

    def wait_eof(self, timeout: float = 5.0) -> None:
        self.until(lambda: self.eof, timeout)


class WsRecorder:
    """A server handler that records events and echoes data messages (same opcode)."""

    def __init__(self, echo: bool = True) -> None:
        self.events: list[tuple[str, Any]] = []
        self.echo = echo
        self.conns: list[mgpy.Connection] = []
        self.on_request: Any = None
        self.on_done: Any = None

    def __call__(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.POLL:
            return
        self.events.append((Ev(ev).name, ev_data))
        if ev == Ev.WS_HANDSHAKE_REQUEST and self.on_request is not None:
            self.on_request(c, ev_data)
        elif ev == Ev.WS_HANDSHAKE_DONE:
            self.conns.append(c)
            if self.on_done is not None:
                self.on_done(c, ev_data)
        elif ev == Ev.WS_FRAME and self.echo:
            c.send_websocket_frame(ev_data.opcode, ev_data.data)
        elif ev == Ev.HTTP_REQUEST:
            mgpy.http_reply(c, 200, "plain http\n")

    def names(self) -> list[str]:
        return [n for n, _ in self.events]

    def data(self, name: str) -> list[Any]:
        return [d for n, d in self.events if n == name]


def ws_server(mgr: mgpy.Manager, limits: mgpy.Limits | None = None) -> tuple[WsRecorder, int]:
    rec = WsRecorder()
    lc = mgr.bind("127.0.0.1:0", rec, limits=limits)
    lc.set_protocol_http_websocket()
    return rec, lc.local[1]


# ------------------------------------------------------------------------------------
class TestAccept:
    def test_upgrade_answers_101_with_the_rfc_accept_value(self, mgr: mgpy.Manager) -> None:
        rec, port = ws_server(mgr)
        cli = RawWs(mgr, port)
        assert cli.handshake() == 101
        assert cli.headers["sec-websocket-accept"] == RFC_ACCEPT
        assert cli.headers["upgrade"].lower() == "websocket"
        assert "upgrade" in cli.headers["connection"].lower()
        assert "sec-websocket-protocol" not in cli.headers
        run_until(mgr, lambda: "WS_HANDSHAKE_DONE" in rec.names())
        ws_events = [n for n in rec.names() if n.startswith("WS_")]
        assert ws_events == ["WS_HANDSHAKE_REQUEST", "WS_HANDSHAKE_DONE"]
        assert rec.names()[:2] == ["ACCEPT", "RECV"]
        req = rec.data("WS_HANDSHAKE_REQUEST")[0]
        assert req.uri == "/ws" and req.header("sec-websocket-key") == RFC_KEY
        assert rec.conns[0].flags & F.IS_WEBSOCKET
        cli.close()

    def test_accept_is_computed_from_each_key(self, mgr: mgpy.Manager) -> None:
        _rec, port = ws_server(mgr)
        key = base64.b64encode(bytes(range(16))).decode()
        cli = RawWs(mgr, port)
        assert cli.handshake(upgrade_request(key=key)) == 101
        assert cli.headers["sec-websocket-accept"] == accept_of(key)
        cli.close()

    @pytest.mark.parametrize(
        "connection, upgrade",
        [
            ("keep-alive, Upgrade", "websocket"),
            ("UPGRADE", "WebSocket"),
            ("upgrade,keep-alive", "WEBSOCKET"),
        ],
    )
    def test_connection_and_upgrade_tokens_are_case_insensitive_lists(
        self, mgr: mgpy.Manager, connection: str, upgrade: str
    ) -> None:
        _rec, port = ws_server(mgr)
        cli = RawWs(mgr, port)
        assert cli.handshake(upgrade_request(connection=connection, upgrade=upgrade)) == 101
        cli.send_frame(0x81, b"hi")
        assert cli.recv_frame() == (0x81, b"hi")
        cli.close()

    def test_frames_sent_with_the_request_are_delivered_after_handshake_done(
        self, mgr: mgpy.Manager
    ) -> None:
        rec, port = ws_server(mgr)
        cli = RawWs(mgr, port)
        cli.send(upgrade_request() + frame(0x81, b"early") + frame(0x82, b"\x00\x01"))
        assert cli.handshake(b"") == 101
        assert cli.recv_frame() == (0x81, b"early")
        assert cli.recv_frame() == (0x82, b"\x00\x01")
        names = [n for n in rec.names() if n.startswith("WS_")]
        assert names == ["WS_HANDSHAKE_REQUEST", "WS_HANDSHAKE_DONE", "WS_FRAME", "WS_FRAME"]
        cli.close()


class TestRefused:
    def _refused(self, mgr: mgpy.Manager, request: bytes) -> tuple[RawWs, WsRecorder]:
        rec, port = ws_server(mgr)
        cli = RawWs(mgr, port)
        cli.handshake(request)
        return cli, rec

    @pytest.mark.parametrize("version", ["8", "14", None])
    def test_wrong_or_missing_version_gets_426_naming_13(
        self, mgr: mgpy.Manager, version: str | None
    ) -> None:
        cli, rec = self._refused(mgr, upgrade_request(version=version))
        assert cli.status == 426
        assert cli.headers["sec-websocket-version"] == "13"
        assert "WS_HANDSHAKE_REQUEST" not in rec.names()
        cli.wait_eof()

    @pytest.mark.parametrize(
        "key",
        ["", "not base64!", KEY_15, KEY_17],
    )
    def test_key_that_is_not_16_bytes_of_base64_gets_400(self, mgr: mgpy.Manager, key: str) -> None:
        cli, rec = self._refused(mgr, upgrade_request(key=key))
        assert cli.status == 400
        assert "WS_HANDSHAKE_REQUEST" not in rec.names()
        cli.wait_eof()

    def test_subprotocol_that_is_not_a_token_gets_400(self, mgr: mgpy.Manager) -> None:
        req = upgrade_request(extra="Sec-WebSocket-Protocol: chat, bad name\r\n")
        cli, rec = self._refused(mgr, req)
        assert cli.status == 400
        assert "WS_HANDSHAKE_REQUEST" not in rec.names()
        cli.wait_eof()

    def test_post_upgrade_is_refused_with_405(self, mgr: mgpy.Manager) -> None:
        cli, rec = self._refused(mgr, upgrade_request(method="POST"))
        assert cli.status == 405
        assert "WS_HANDSHAKE_REQUEST" not in rec.names()

    @pytest.mark.parametrize(
        "request_bytes",
        [upgrade_request(proto="HTTP/1.0"), upgrade_request(connection="keep-alive")],
        ids=["http10", "no-connection-upgrade"],
    )
    def test_no_upgrade_without_http11_and_connection_upgrade(
        self, mgr: mgpy.Manager, request_bytes: bytes
    ) -> None:
        cli, rec = self._refused(mgr, request_bytes)
        assert cli.status == 200 and cli.body == b"plain http\n"
        assert not [n for n in rec.names() if n.startswith("WS_")]
        assert rec.names().count("HTTP_REQUEST") == 1

    def test_handler_rejects_with_403_and_the_connection_closes(self, mgr: mgpy.Manager) -> None:
        rec, port = ws_server(mgr)
        rec.on_request = lambda c, hm: mgpy.http_send_error(c, 403)
        cli = RawWs(mgr, port)
        assert cli.handshake() == 403
        assert cli.body.startswith(b"403")
        cli.wait_eof()
        run_until(mgr, lambda: "CLOSE" in rec.names())
        assert "WS_HANDSHAKE_DONE" not in rec.names()

    def test_handler_rejects_with_any_status_and_headers(self, mgr: mgpy.Manager) -> None:
        rec, port = ws_server(mgr)
        rec.on_request = lambda c, hm: mgpy.http_reply(
            c, 401, "who are you?", {"WWW-Authenticate": 'Basic realm="ws"'}
        )
        cli = RawWs(mgr, port)
        assert cli.handshake() == 401
        assert cli.headers["www-authenticate"] == 'Basic realm="ws"'
        assert cli.body == b"who are you?"
        cli.wait_eof()

    def test_handler_exception_answers_500_and_closes(
        self, mgr: mgpy.Manager, caplog: pytest.LogCaptureFixture
    ) -> None:
        rec, port = ws_server(mgr)

        def boom(c: mgpy.Connection, hm: mgpy.HttpMessage) -> None:
            raise RuntimeError("boom")

        rec.on_request = boom
        cli = RawWs(mgr, port)
        assert cli.handshake() == 500
        cli.wait_eof()
        assert "boom" in caplog.text


class TestSubprotocols:
    def test_handler_picks_one_offered_protocol_and_adds_headers(self, mgr: mgpy.Manager) -> None:
        rec, port = ws_server(mgr)
        offered: list[str] = []

        def pick(c: mgpy.Connection, hm: mgpy.HttpMessage) -> None:
            value = hm.header("sec-websocket-protocol") or ""
            offered.extend(p.strip() for p in value.split(","))
            mgpy.ws_accept(c, protocol="superchat", headers={"X-Server-Id": "7"})

        rec.on_request = pick
        cli = RawWs(mgr, port)
        req = upgrade_request(extra="Sec-WebSocket-Protocol: chat, superchat\r\n")
        assert cli.handshake(req) == 101
        assert offered == ["chat", "superchat"]
        assert cli.headers["sec-websocket-protocol"] == "superchat"
        assert cli.headers["x-server-id"] == "7"
        assert cli.headers["sec-websocket-accept"] == RFC_ACCEPT
        cli.close()

    def test_offered_but_not_chosen_means_no_protocol_header(self, mgr: mgpy.Manager) -> None:
        _rec, port = ws_server(mgr)
        cli = RawWs(mgr, port)
        assert cli.handshake(upgrade_request(extra="Sec-WebSocket-Protocol: chat\r\n")) == 101
        assert "sec-websocket-protocol" not in cli.headers
        cli.close()

    def test_choosing_a_protocol_that_was_not_offered_is_refused(
        self, mgr: mgpy.Manager, caplog: pytest.LogCaptureFixture
    ) -> None:
        rec, port = ws_server(mgr)
        rec.on_request = lambda c, hm: mgpy.ws_accept(c, protocol="mqtt")
        cli = RawWs(mgr, port)
        assert cli.handshake(upgrade_request(extra="Sec-WebSocket-Protocol: chat\r\n")) == 500
        assert "not offered" in caplog.text
        assert "WS_HANDSHAKE_DONE" not in rec.names()

    def test_ws_accept_outside_the_handshake_raises(self, mgr: mgpy.Manager) -> None:
        rec, port = ws_server(mgr)
        cli = RawWs(mgr, port)
        cli.handshake()
        run_until(mgr, lambda: rec.conns)
        with pytest.raises(mgpy.LocalProtocolError):
            mgpy.ws_accept(rec.conns[0], protocol="chat")
        cli.close()


class TestEndpoints:
    def test_endpoints_route_websockets_by_path(self, mgr: mgpy.Manager) -> None:
        default, chat, echo = WsRecorder(), WsRecorder(echo=False), WsRecorder()
        chat.on_done = lambda c, hm: c.send_websocket_frame(mgpy.WS_OP_TEXT, "welcome to chat")
        lc = mgr.bind("127.0.0.1:0", default)
        mgpy.register_http_endpoint(lc, "/chat", chat)
        mgpy.register_http_endpoint(lc, "/echo/*", echo)
        port = lc.local[1]
        a, b, d = RawWs(mgr, port), RawWs(mgr, port), RawWs(mgr, port)
        assert a.handshake(upgrade_request(path="/chat")) == 101
        assert b.handshake(upgrade_request(path="/echo/1")) == 101
        assert d.handshake(upgrade_request(path="/other")) == 101
        assert a.recv_frame() == (0x81, b"welcome to chat")
        b.send_frame(0x81, b"to echo")
        assert b.recv_frame() == (0x81, b"to echo")
        d.send_frame(0x81, b"to default")
        assert d.recv_frame() == (0x81, b"to default")
        assert [hm.uri for hm in chat.data("WS_HANDSHAKE_DONE")] == ["/chat"]
        assert [hm.uri for hm in echo.data("WS_HANDSHAKE_DONE")] == ["/echo/1"]
        assert [hm.uri for hm in default.data("WS_HANDSHAKE_DONE")] == ["/other"]
        assert [m.data for m in echo.data("WS_FRAME")] == [b"to echo"]
        assert not chat.data("WS_FRAME") and not echo.data("HTTP_REQUEST")
        for s in (a, b, d):
            s.close()
        # every later event of the connection goes to its endpoint handler, CLOSE included
        run_until(mgr, lambda: chat.names()[-1:] == ["CLOSE"] and echo.names()[-1:] == ["CLOSE"])


def test_many_handshakes_in_a_row_stay_fast(mgr: mgpy.Manager) -> None:
    _rec, port = ws_server(mgr)
    t0 = time.monotonic()
    for i in range(50):
        cli = RawWs(mgr, port)
        assert cli.handshake() == 101
        cli.send_frame(0x81, b"%d" % i)
        assert cli.recv_frame() == (0x81, b"%d" % i)
        cli.close()
    assert time.monotonic() - t0 < 5.0

"""permessage-deflate (RFC 7692) against real peers, both ways.

* the ``websockets`` library's client (compression on: its default offer, and offers
  with context takeover and narrow windows) against mgpy's server;
* mgpy's ``connect_ws`` (default compression) against a ``websockets`` server with its
  default compression, and with context takeover both ways;
* aiohttp's client (``compress=15``, its default) against mgpy's server.

Each test checks from both ends that compression was agreed (``mgpy.ws_compression``,
the peer's negotiated extension) and that it was used: a compressible message costs
a fraction of its size on the wire, counted by mgpy (bytes queued or received).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.sync.client import connect
from websockets.sync.server import ServerConnection

import mgpy
from mgpy import DeflateOptions, Ev, Limits
from tests.conftest import run_until
from tests.ws_servers import MgpyThread, WebsocketsThread

LIMITS = Limits(ws_max_message=8 * 1024 * 1024)
#: a dashboard push: compressible JSON (~5x)
JSON = json.dumps(
    [{"id": i, "sensor": "temperature", "value": 20 + i / 8, "ok": True} for i in range(40)]
)
BIG = (JSON * 2000).encode()[: 4 * 1024 * 1024]  # 4 MiB, compressible
NOISE = os.urandom(100_000)
DEFAULTS = DeflateOptions()


class MgpyServer(MgpyThread):
    """mgpy echoing at /ws in a background thread; records what compression each got."""

    def __init__(self, compression: DeflateOptions | None = DEFAULTS) -> None:
        self.agreed: list[mgpy.DeflateParams | None] = []
        self.offers: list[str | None] = []
        #: (message length, bytes its echo took on the wire)
        self.wire: list[tuple[int, int]] = []
        super().__init__(LIMITS, compression=compression)
        self.url = f"ws://127.0.0.1:{self.port}/ws"

    def handler(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.WS_HANDSHAKE_DONE:
            self.offers.append(ev_data.header("Sec-WebSocket-Extensions"))
            self.agreed.append(mgpy.ws_compression(c))
        elif ev == Ev.WS_FRAME:
            q0 = c.total_queued
            c.send_websocket_frame(ev_data.opcode, ev_data.data)
            self.wire.append((len(ev_data.data), c.total_queued - q0))


@pytest.fixture
def server() -> Iterator[MgpyServer]:
    with MgpyServer() as s:
        yield s


def pmd(ws: Any) -> PerMessageDeflate:
    """The permessage-deflate extension a websockets connection negotiated."""
    [ext] = ws.protocol.extensions
    assert isinstance(ext, PerMessageDeflate)
    return ext


# ------------------------------------------------------------------------------------
class TestWebsocketsClient:
    def test_default_compression_both_ways(self, server: MgpyServer) -> None:
        with connect(server.url, proxy=None, max_size=8 << 20, open_timeout=5) as ws:
            ext = pmd(ws)
            # mgpy's answer: no context takeover either way, a 4 KiB server window
            assert ext.remote_no_context_takeover and ext.local_no_context_takeover
            assert ext.remote_max_window_bits == 12
            for msg in (JSON, JSON.encode(), "short", BIG, NOISE, "ünïcödé " * 100):
                ws.send(msg)
                assert ws.recv(timeout=10) == msg
            ws.send([JSON[:100], JSON[100:2000], JSON[2000:]])  # fragmented, compressed
            assert ws.recv(timeout=5) == JSON
        assert server.offers == ["permessage-deflate; client_max_window_bits"]
        agreed = server.agreed[0]
        assert agreed is not None and agreed.client_max_window_bits == 12
        n, wire = server.wire[0]
        assert n == len(JSON) and wire < n // 4  # the echo went out compressed
        n, wire = server.wire[3]
        assert n == len(BIG) and wire < n // 20

    @pytest.mark.parametrize(
        "factory",
        [
            ClientPerMessageDeflateFactory(server_max_window_bits=9, client_max_window_bits=10),
            ClientPerMessageDeflateFactory(
                server_no_context_takeover=True, client_no_context_takeover=True
            ),
            ClientPerMessageDeflateFactory(client_max_window_bits=None),
        ],
    )
    def test_other_offers(self, server: MgpyServer, factory: Any) -> None:
        with connect(server.url, proxy=None, extensions=[factory], compression=None) as ws:
            pmd(ws)
            for _ in range(3):
                ws.send(JSON)
                assert ws.recv(timeout=5) == JSON
        assert server.agreed[0] is not None
        assert server.wire[0][1] < len(JSON) // 4

    def test_context_takeover_both_ways(self) -> None:
        with MgpyServer(DeflateOptions(False, False, None, None)) as srv:
            with connect(srv.url, proxy=None) as ws:
                ext = pmd(ws)
                assert not ext.remote_no_context_takeover
                assert not ext.local_no_context_takeover
                for i in range(20):
                    ws.send(f"{i} {JSON}")
                    assert ws.recv(timeout=5) == f"{i} {JSON}"
            sizes = [w for _, w in srv.wire]
            assert all(s < sizes[0] // 4 for s in sizes[1:])  # later echoes refer back

    def test_server_without_compression(self) -> None:
        with MgpyServer(None) as srv:
            with connect(srv.url, proxy=None) as ws:
                assert ws.protocol.extensions == []
                ws.send(JSON)
                assert ws.recv(timeout=5) == JSON
            assert srv.agreed == [None]
            assert srv.wire[0][1] == len(JSON) + 4


# ------------------------------------------------------------------------------------
class PeerServer(WebsocketsThread):
    """A websockets echo server (compression on) in a thread."""

    def __init__(self, **kw: Any) -> None:
        self.extensions: list[PerMessageDeflate | None] = []
        self.offers: list[str | None] = []
        super().__init__(max_size=8 << 20, close_timeout=2, **kw)
        self.url = f"ws://127.0.0.1:{self.port}/echo"

    def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.offers.append(ws.request.headers.get("Sec-WebSocket-Extensions"))
        exts = ws.protocol.extensions
        self.extensions.append(exts[0] if exts else None)  # type: ignore[arg-type]
        for msg in ws:
            ws.send(msg)


class Echo:
    """connect_ws handler: sends ``msgs`` one after the other, each after the last echo."""

    def __init__(self, msgs: list[bytes | str]) -> None:
        self.msgs = msgs
        self.got: list[bytes] = []
        self.received = 0
        self.agreed: Any = "unset"
        self.errors: list[str] = []

    def __call__(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.RECV:
            self.received += ev_data
        elif ev == Ev.ERROR:
            self.errors.append(ev_data)
        elif ev == Ev.WS_HANDSHAKE_DONE:
            self.agreed = mgpy.ws_compression(c)
            self._next(c)
        elif ev == Ev.WS_FRAME:
            self.got.append(ev_data.data)
            self._next(c)

    def _next(self, c: mgpy.Connection) -> None:
        if len(self.got) < len(self.msgs):
            m = self.msgs[len(self.got)]
            op = mgpy.WS_OP_TEXT if isinstance(m, str) else mgpy.WS_OP_BINARY
            c.send_websocket_frame(op, m)


def run_echo(url: str, msgs: list[bytes | str], compression: Any) -> Echo:
    with mgpy.Manager(limits=LIMITS) as mgr:
        e = Echo(msgs)
        mgr.connect_ws(url, e, compression=compression)
        run_until(mgr, lambda: len(e.got) == len(msgs) or e.errors, timeout=20)
    assert not e.errors
    assert e.got == [m.encode() if isinstance(m, str) else m for m in msgs]
    return e


class TestMgpyClientAgainstWebsockets:
    def test_default_compression(self) -> None:
        # websockets' default: windows of 12 bits, context takeover
        with PeerServer() as peer:
            e = run_echo(peer.url, [JSON] * 5 + [BIG], DeflateOptions())
        assert e.agreed is not None
        assert e.agreed.server_no_context_takeover and e.agreed.client_no_context_takeover
        assert e.agreed.client_max_window_bits == 12
        [ext] = peer.extensions
        assert ext is not None and ext.local_no_context_takeover  # websockets: server side
        assert peer.offers[0] is not None and peer.offers[0].startswith("permessage-deflate")
        # about 5 x 1.8 KiB + 4 MiB of messages came back in far fewer bytes
        assert e.received < len(BIG) // 20

    def test_context_takeover_both_ways(self) -> None:
        with PeerServer() as peer:
            msgs: list[bytes | str] = [f"{i} {JSON}" for i in range(30)] + [NOISE, b"x" * 200]
            e = run_echo(peer.url, msgs, DeflateOptions(False, False, None, None))
        assert e.agreed is not None and not e.agreed.server_no_context_takeover
        [ext] = peer.extensions
        assert ext is not None and not ext.local_no_context_takeover
        # thirty similar messages, each referring to the one before
        assert e.received < len(NOISE) + 30 * len(JSON) // 4

    def test_server_with_narrow_windows_and_no_takeover(self) -> None:
        factory = ServerPerMessageDeflateFactory(
            server_no_context_takeover=True,
            client_no_context_takeover=True,
            server_max_window_bits=9,
            client_max_window_bits=9,
        )
        with PeerServer(compression=None, extensions=[factory]) as peer:
            e = run_echo(peer.url, [JSON, BIG[:100_000]], DeflateOptions())
        assert e.agreed is not None
        assert (e.agreed.server_max_window_bits, e.agreed.client_max_window_bits) == (9, 9)

    def test_server_without_compression(self) -> None:
        with PeerServer(compression=None) as peer:
            e = run_echo(peer.url, [JSON], DeflateOptions())
        assert e.agreed is None and peer.extensions == [None]

    def test_compression_none_offers_nothing(self) -> None:
        with PeerServer() as peer:
            e = run_echo(peer.url, [JSON], None)
        assert e.agreed is None and peer.offers == [None]


# ------------------------------------------------------------------------------------
class TestAiohttpClient:
    def test_aiohttp_default_compress(self, server: MgpyServer) -> None:
        import aiohttp  # the test extra: a missing client is a failure, not a skip

        async def run() -> tuple[int, str, list[Any]]:
            out: list[Any] = []
            async with aiohttp.ClientSession() as s:
                async with s.ws_connect(server.url, compress=15, max_msg_size=8 << 20) as ws:
                    for msg in (JSON, JSON.encode(), BIG, NOISE, "short"):
                        if isinstance(msg, str):
                            await ws.send_str(msg)
                        else:
                            await ws.send_bytes(msg)
                        out.append((await asyncio.wait_for(ws.receive(), 10)).data)
                    ext = ws._response.headers.get("Sec-WebSocket-Extensions", "")
                    return ws.compress, ext, out

        compress, ext, out = asyncio.run(asyncio.wait_for(run(), 30))
        assert out == [JSON, JSON.encode(), BIG, NOISE, "short"]
        assert compress == 12  # aiohttp inflates with the window mgpy announced
        assert ext.startswith("permessage-deflate")
        assert server.agreed[0] is not None
        assert server.offers[0] is not None and "permessage-deflate" in server.offers[0]
        assert server.wire[0][1] < len(JSON) // 4 and server.wire[2][1] < len(BIG) // 20

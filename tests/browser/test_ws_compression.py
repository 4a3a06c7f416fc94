"""Headless Chromium and mgpy with permessage-deflate: Chromium offers it, mgpy agrees.

mgpy runs in a background thread and serves a page that opens a WebSocket back
to it, sends compressible text and binary (and a short message, under the
threshold), and checks every echo.  The server records, at WS_HANDSHAKE_DONE,
what Chromium offered and what ``mgpy.ws_compression(c)`` says was agreed, and
counts the bytes each message took on the wire in both directions.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import mgpy
from mgpy import Ev
from tests.browser.ws_page import PageServer, page_results

if TYPE_CHECKING:
    from playwright.sync_api import Browser

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>mgpy compression test</title>
<script>
const rows = [];
for (let i = 0; i < 200; i++) rows.push({id: i, sensor: "température", value: 20 + i / 8});
const json = JSON.stringify(rows);
const bin = new TextEncoder().encode(json.repeat(4));
window.results = {texts: [], binOk: null, errors: [], closeCode: null, sent: [json.length]};
const ws = new WebSocket(`ws://${location.host}/ws`);
ws.binaryType = "arraybuffer";
ws.onopen = () => { ws.send(json); ws.send(bin); ws.send("short"); ws.send("done"); };
ws.onmessage = (e) => {
  if (typeof e.data === "string") {
    window.results.texts.push(e.data === json ? "json" : e.data);
  } else {
    const a = new Uint8Array(e.data);
    window.results.binOk = a.length === bin.length && a.every((x, i) => x === bin[i]);
  }
};
ws.onerror = () => window.results.errors.push("error");
ws.onclose = (e) => { window.results.closeCode = e.code; };
</script>
"""


class ThreadedServer(PageServer):
    """mgpy (compression on, its default) echoing at /ws, polled in a background thread."""

    def __init__(self, root: Path) -> None:
        self.offers: list[str | None] = []
        self.agreed: list[mgpy.DeflateParams | None] = []
        #: (opcode, message length, bytes its echo took on the wire)
        self.messages: list[tuple[int, int, int]] = []
        #: bytes received on the WebSocket before "done" (reads may hold several messages)
        self.received = 0
        self._counting = False
        super().__init__(root, PAGE)

    def ws_handler(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.WS_HANDSHAKE_DONE:
            self.offers.append(ev_data.header("Sec-WebSocket-Extensions"))
            self.agreed.append(mgpy.ws_compression(c))
            self._counting = True
        elif ev == Ev.RECV and self._counting:
            self.received += ev_data
        elif ev == Ev.WS_FRAME:
            if ev_data.data == b"done":
                self._counting = False
                c.ws_close(1000)
                return
            q0 = c.total_queued
            c.send_websocket_frame(ev_data.opcode, ev_data.data)
            self.messages.append((ev_data.opcode, len(ev_data.data), c.total_queued - q0))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ThreadedServer]:
    with ThreadedServer(tmp_path) as s:
        yield s


@pytest.mark.browser
def test_chromium_negotiates_and_exchanges_compressed_messages(
    browser: Browser, server: ThreadedServer
) -> None:
    r = page_results(browser, server.url)
    assert r["errors"] == [] and r["closeCode"] == 1000
    assert r["texts"] == ["json", "short"] and r["binOk"] is True
    # what Chromium offered, and what mgpy agreed at WS_HANDSHAKE_DONE
    assert server.offers == ["permessage-deflate; client_max_window_bits"]
    [agreed] = server.agreed
    assert agreed is not None
    assert agreed.server_no_context_takeover and agreed.client_no_context_takeover
    assert (agreed.server_max_window_bits, agreed.client_max_window_bits) == (12, 12)
    (op1, n1, out1), (op2, n2, out2), (op3, n3, out3) = server.messages
    assert (op1, op2, op3) == (mgpy.WS_OP_TEXT, mgpy.WS_OP_BINARY, mgpy.WS_OP_TEXT)
    # Chromium compressed what it sent (the last read may also hold its close frame),
    # and mgpy compressed the echoes
    assert server.received < (n1 + n2 + n3) // 5
    assert out1 < n1 // 4 and out2 < n2 // 10
    assert n3 == 5 and out3 == 7  # under the threshold: sent as it is

"""A real browser against mgpy's WebSocket server: headless Chromium driven by Playwright.

mgpy runs in a background thread (its own Manager, polled there) and serves a
small page written into ``tmp_path``; the page opens a WebSocket back to the
server it came from, sends text, binary and a 1 MiB message, and records the
echoes, the negotiated subprotocol and the close code the server sends.
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
<title>mgpy ws test</title>
<script>
window.results = {texts: [], binaries: [], protocol: null, closeCode: null, errors: []};
const ws = new WebSocket(`ws://${location.host}/ws`, ["json", "chat"]);
ws.binaryType = "arraybuffer";
ws.onopen = () => {
  window.results.protocol = ws.protocol;
  ws.send("hello from chromium ✓");
  ws.send(new Uint8Array([0, 1, 2, 253, 254, 255]));
  const big = new Uint8Array(1 << 20);
  for (let i = 0; i < big.length; i++) big[i] = i & 255;
  ws.send(big);
  ws.send("close me");
};
ws.onmessage = (e) => {
  if (typeof e.data === "string") {
    window.results.texts.push(e.data);
  } else {
    const a = new Uint8Array(e.data);
    let sum = 0;
    for (let i = 0; i < a.length; i++) sum = (sum + a[i] * (i % 7 + 1)) % 1000003;
    window.results.binaries.push({len: a.length, head: Array.from(a.slice(0, 6)), sum: sum});
  }
};
ws.onerror = () => window.results.errors.push("error");
ws.onclose = (e) => { window.results.closeCode = e.code; window.results.closeReason = e.reason; };
</script>
"""


def checksum(data: bytes) -> int:
    """The page's checksum of a binary message, computed in Python."""
    s = 0
    for i, b in enumerate(data):
        s = (s + b * (i % 7 + 1)) % 1000003
    return s


class ThreadedServer(PageServer):
    """mgpy serving PAGE from ``root`` with an echo at /ws, polled in a background thread."""

    def __init__(self, root: Path) -> None:
        self.frames: list[tuple[int, int]] = []
        self.closes: list[bytes] = []
        super().__init__(root, PAGE)

    def ws_handler(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.WS_HANDSHAKE_REQUEST:
            offered = (ev_data.header("Sec-WebSocket-Protocol") or "").replace(" ", "").split(",")
            mgpy.ws_accept(c, protocol="chat" if "chat" in offered else None)
        elif ev == Ev.WS_FRAME:
            self.frames.append((ev_data.opcode, len(ev_data.data)))
            if ev_data.data == b"close me":
                c.ws_close(4000, "bye browser")
            else:
                c.send_websocket_frame(ev_data.opcode, ev_data.data)
        elif ev == Ev.WS_CONTROL_FRAME and ev_data.opcode == mgpy.WS_OP_CLOSE:
            self.closes.append(ev_data.data)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ThreadedServer]:
    with ThreadedServer(tmp_path) as s:
        yield s


@pytest.mark.browser
def test_chromium_websocket_echo_text_binary_and_close(
    browser: Browser, server: ThreadedServer
) -> None:
    r = page_results(browser, server.url)
    assert r["errors"] == []
    assert r["protocol"] == "chat"
    assert r["texts"] == ["hello from chromium ✓"]
    big = bytes(i & 255 for i in range(1 << 20))
    small = bytes([0, 1, 2, 253, 254, 255])
    assert r["binaries"] == [
        {"len": 6, "head": list(small), "sum": checksum(small)},
        {"len": 1 << 20, "head": [0, 1, 2, 3, 4, 5], "sum": checksum(big)},
    ]
    # our close (4000) reached the page, and Chromium answered it: a clean close handshake
    assert (r["closeCode"], r["closeReason"]) == (4000, "bye browser")
    assert server.closes and server.closes[0][:2] == (4000).to_bytes(2, "big")
    hello = len("hello from chromium ✓".encode())
    assert server.frames == [(1, hello), (2, 6), (2, 1 << 20), (1, 8)]

"""Manager.close(): every connection gets CLOSE; open WebSockets hear 1001 "going away"."""

from __future__ import annotations

import threading
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

import mgpy
from mgpy import Ev
from tests.conftest import run_until


def test_close_tells_websocket_peers_going_away() -> None:
    m = mgpy.Manager()
    up: list[int] = []

    def h(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.WS_HANDSHAKE_DONE:
            up.append(1)

    lc = m.bind("127.0.0.1:0", h)
    lc.set_protocol_http_websocket()
    codes: list[int | None] = []

    def client() -> None:
        with connect(f"ws://127.0.0.1:{lc.local[1]}/", open_timeout=5) as ws:
            try:
                ws.recv(timeout=10)
            except ConnectionClosed as e:
                codes.append(e.rcvd.code if e.rcvd else None)

    t = threading.Thread(target=client)
    t.start()
    run_until(m, lambda: up)
    m.close()
    t.join(10)
    assert codes == [1001]

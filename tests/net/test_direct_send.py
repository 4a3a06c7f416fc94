"""Sends to a connection other than the one being handled are written straight through.

They must keep every byte and the order of messages, also when the kernel takes only part
of a write (the rest is queued) -- checked here with big pushes to a slow reader.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from typing import Any

from websockets.sync.client import connect

import mgpy
from mgpy import Ev, F
from tests.conftest import run_until


def test_pushes_to_other_connections_arrive_whole_and_in_order() -> None:
    big = os.urandom(3 * 1024 * 1024)
    m = mgpy.Manager()
    ready: list[mgpy.Connection] = []
    sends: list[int] = []

    def h(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.WS_HANDSHAKE_DONE:
            ready.append(c)
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)  # force partial writes
        elif ev == Ev.SEND and c.flags & F.IS_WEBSOCKET:
            sends.append(ev_data)
        elif ev == Ev.WS_FRAME and ev_data.data == b"go":
            for other in m.connections:
                if other is not c and other.flags & F.IS_WEBSOCKET:
                    for i in range(50):  # small frames, then a big one, then small again
                        other.send_websocket_frame(mgpy.WS_OP_TEXT, f"msg {i}")
                    other.send_websocket_frame(mgpy.WS_OP_BINARY, big)
                    other.send_websocket_frame(mgpy.WS_OP_TEXT, "after")

    partial: list[int] = []
    real_sendv = mgpy.Connection.sendv

    def spy(c: mgpy.Connection, head: bytes, body: bytes) -> int:
        before = c.send_mbuf.len
        n = real_sendv(c, head, body)
        if c.send_mbuf.len > before:
            partial.append(c.send_mbuf.len - before)
        return n

    mgpy.Connection.sendv = spy  # type: ignore[method-assign]
    lc = m.bind("127.0.0.1:0", h, limits=mgpy.Limits(ws_send_queue=64 << 20))
    lc.set_protocol_http_websocket()
    url = f"ws://127.0.0.1:{lc.local[1]}/"
    got: list[Any] = []

    def receiver() -> None:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)  # small: partial writes
        s.connect(("127.0.0.1", lc.local[1]))
        # compression=None: this test is about the uncompressed big-frame path (sendv)
        with connect(url, sock=s, open_timeout=5, max_size=8 << 20, compression=None) as ws:
            for _ in range(52):
                got.append(ws.recv(timeout=20))

    def trigger() -> None:
        with connect(url, open_timeout=5) as ws:
            ws.send("go")
            done.wait(30)

    done = threading.Event()
    t = threading.Thread(target=receiver)
    t.start()
    run_until(m, lambda: len(ready) == 1)
    t2 = threading.Thread(target=trigger)
    t2.start()
    run_until(m, lambda: len(got) == 52 or not t.is_alive(), timeout=30)
    done.set()
    run_until(m, lambda: not t.is_alive() and not t2.is_alive(), timeout=10)
    m.close()
    mgpy.Connection.sendv = real_sendv  # type: ignore[method-assign]
    assert got[:50] == [f"msg {i}" for i in range(50)]
    assert isinstance(got[50], bytes)
    assert hashlib.sha256(got[50]).digest() == hashlib.sha256(big).digest()
    assert got[51] == "after"
    assert sum(sends) >= len(big)  # SEND events account for what was written
    assert partial, "the big push was only partly taken by the kernel at first"

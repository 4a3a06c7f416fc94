"""The raw-socket peer the net tests step from their own thread between polls.

``SocketPeer`` owns a non-blocking socket connected to 127.0.0.1:``port``; ``read()``
takes what the kernel holds (unless reading is paused) and hands it to ``on_data``,
and ``until`` polls the Manager until a condition holds, pumping the socket before
each check.  ``RawWs`` (WebSocket), ``SseClient`` (EventSource) and ``BioPeer`` (TLS
over memory BIOs) are built on it.
"""

from __future__ import annotations

import socket
from typing import Any

import mgpy
from tests.conftest import run_until


class SocketPeer:
    """A non-blocking client socket on 127.0.0.1:``port``, driven while ``mgr`` polls."""

    #: the most one recv() takes
    recv_size = 65536

    def __init__(self, mgr: mgpy.Manager, port: int, rcvbuf: int = 0) -> None:
        self.mgr = mgr
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect(("127.0.0.1", port))
        self.sock.setblocking(False)
        self.eof = False
        self.reading = True

    def close(self) -> None:
        self.sock.close()

    def read(self) -> None:
        """Read all the socket holds into ``on_data`` (unless reading is paused)."""
        while self.reading and not self.eof:
            try:
                data = self.sock.recv(self.recv_size)
            except BlockingIOError:
                break
            except OSError:
                self.eof = True
                break
            if not data:
                self.on_eof()
                self.eof = True
                break
            self.on_data(data)

    def on_data(self, data: bytes) -> None:
        """What was read."""
        raise NotImplementedError

    def on_eof(self) -> None:
        """The peer's FIN arrived (not called for a socket error)."""

    def pump(self) -> None:
        """Move bytes; subclasses write what is pending and parse what came."""
        self.read()

    def until(self, cond: Any, timeout: float = 5.0) -> None:
        """Poll the Manager until ``cond()`` holds, pumping before each check."""

        def check() -> object:
            self.pump()
            return cond()

        run_until(self.mgr, check, timeout)

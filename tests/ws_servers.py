"""WebSocket servers run in a background thread, for tests whose client blocks the test thread.

* ``MgpyThread``: mgpy's HTTP + WebSocket server on 127.0.0.1 (port 0), its own Manager
  polled in a thread; a subclass defines ``handler`` and sets what it records *before*
  calling ``super().__init__``, which binds ``handler`` and starts polling.
* ``WebsocketsThread``: a ``websockets`` sync server on 127.0.0.1 (port 0), its
  ``serve_forever`` in a thread; a subclass defines ``handler``.

Both stop on ``stop()`` or at the end of a ``with`` block.
"""

from __future__ import annotations

import threading
from typing import Any, TypeVar

from websockets.sync.server import Server as WsServer
from websockets.sync.server import ServerConnection, serve

import mgpy

_S = TypeVar("_S", bound="_Stoppable")


class _Stoppable:
    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class MgpyThread(_Stoppable):
    """An mgpy Manager listening on 127.0.0.1:``port``, polled in a background thread."""

    def __init__(self, limits: mgpy.Limits, **bind: Any) -> None:
        self.mgr = mgpy.Manager(limits=limits)
        lc = self.mgr.bind("127.0.0.1:0", self.handler, **bind)
        lc.set_protocol_http_websocket()
        self.port: int = lc.local[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mgpy-server", daemon=True)
        self._thread.start()

    def handler(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            self.mgr.poll(20)
        self.mgr.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


class WebsocketsThread(_Stoppable):
    """A ``websockets`` sync server on 127.0.0.1:``port``; ``serve`` options in ``kw``."""

    def __init__(self, **kw: Any) -> None:
        self.server: WsServer = serve(self.handler, "127.0.0.1", 0, **kw)
        self.port: int = self.server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def handler(self, ws: ServerConnection) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.server.shutdown()
        self._thread.join(10)

"""Accepting connections: the Manager's listening half, and what it does when it runs dry.

``Manager`` inherits these methods.  A readable listener accepts up to ``_ACCEPT_BATCH``
connections; each inherits the listener's handler, protocol, ``user_data`` and
``limits`` and gets ACCEPT (TLS: after its handshake).

Out of descriptors (EMFILE, ENFILE), the listener first makes room the way nginx does
(``ngx_drain_connections``): it closes the longest-idle *reclaimable* connections --
those whose protocol says, through ``c.proto_data.reclaimable(c)``, that closing them
now loses nothing (an idle keep-alive connection between requests) -- and accepts again
at once.  Idle means the oldest ``c.last_read``.  With nothing to reclaim (or on
ENOBUFS/ENOMEM) the pending connections stay in the backlog and the listener rests
``_EMFILE_PAUSE`` between retries instead of spinning; one warning per episode.

A listener with no protocol whose accepted connection fills its receive buffer with
bytes no handler consumes (reading then pauses: the client waits forever) gets one
warning, the first time: an HTTP client talking to a raw listener is the usual cause.
"""

from __future__ import annotations

import errno
import logging
import socket
import sys
from typing import TYPE_CHECKING, Any

from ._consts import _CLOSING, _LISTENING, _R, EV_ACCEPT
from .conn import Connection
from .timers import TimerHandle
from .tls import start_server_tls

if TYPE_CHECKING:
    from ..events import Ev

__all__ = ["Acceptor"]

log = logging.getLogger("mgpy")

_intern = sys.intern

#: seconds a listener rests after accept() fails for lack of descriptors (and nothing
#: could be reclaimed)
_EMFILE_PAUSE = 0.1
#: connections accepted per readiness event of one listener
_ACCEPT_BATCH = 64
#: reclaimable connections closed at most per accept() failure (nginx's
#: ngx_drain_connections closes max(min(32, reusable / 8), 1))
_RECLAIM_MAX = 32
_OUT_OF_FDS = (errno.EMFILE, errno.ENFILE)
_STARVED = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class Acceptor:
    """Accepting on TCP listeners (a base class of ``Manager``)."""

    if TYPE_CHECKING:  # provided by Manager
        connection_class: type[Connection]
        accepted: int
        _conns: dict[Connection, None]

        def _set_mask(self, c: Connection, mask: int) -> None: ...
        def _call(self, c: Connection, ev: Ev, data: Any) -> None: ...
        def _after(self, c: Connection) -> None: ...
        def _close(self, c: Connection) -> None: ...
        def call_later(self, delay: float, fn: Any, *args: Any) -> TimerHandle: ...

    def _accept(self, lc: Connection) -> None:
        for _ in range(_ACCEPT_BATCH):
            if lc._flags & _CLOSING:
                return  # an ACCEPT handler closed the listener (or the manager)
            try:
                sock, addr = lc.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in _OUT_OF_FDS and self._reclaim(lc, e):
                    continue  # descriptors were freed: accept the waiting client now
                if e.errno in _STARVED:
                    # the pending connection stays in the backlog: rest, retry on a timer
                    self._starved(lc, e, f"pausing the listener (retrying every {_EMFILE_PAUSE}s)")
                    self._set_mask(lc, 0)
                    self.call_later(_EMFILE_PAUSE, self._resume_listener, lc)
                elif e.errno not in (errno.ECONNABORTED, errno.EPROTO):
                    log.warning("accept: %s", e)
                return
            if lc._x is not None and lc._x.pop("starved", None):
                log.warning("accept: descriptors available again; listener resumed")
            sock.setblocking(False)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            c = self.connection_class(self, sock, lc._handler, lc.limits)  # type: ignore[arg-type]
            c._proto = lc._proto
            c._h = lc._h
            c.user_data = lc.user_data
            c.listener = lc
            c.peer = (_intern(addr[0]), *addr[1:]) if type(addr) is tuple else addr
            self._conns[c] = None
            self.accepted += 1
            self._set_mask(c, _R)
            if lc._tls is not None:
                start_server_tls(c, lc)  # fires ACCEPT itself
                continue
            self._call(c, EV_ACCEPT, addr)
            self._after(c)

    def _starved(self, lc: Connection, e: OSError, what: str) -> None:
        x = lc._x_get()
        if "starved" not in x:
            x["starved"] = True  # warn once per episode, not on every retry
            log.warning("accept: %s; %s", e.strerror, what)

    def _reclaim(self, lc: Connection, e: OSError) -> int:
        """Out of descriptors: close the longest-idle reclaimable connections; how many."""
        idle = []
        for c in self._conns:
            if c._flags & (_LISTENING | _CLOSING) or c._closed:
                continue
            ask = getattr(c.proto_data, "reclaimable", None)
            if ask is not None and ask(c):
                idle.append(c)
        if not idle:
            return 0
        n = max(min(_RECLAIM_MAX, len(idle) // 8), 1)
        idle.sort(key=_last_read)
        x = lc._x_get()
        if "reclaimed" not in x:  # a server living at its limit reclaims on every accept
            x["reclaimed"] = True
            log.warning(
                "accept: %s; closing the longest-idle reclaimable connections to make room "
                "(logged once per listener; raise the descriptor limit: ulimit -n)",
                e.strerror,
            )
        else:
            log.debug("accept: %s; closing %d idle reclaimable connections", e.strerror, n)
        for c in idle[:n]:
            self._close(c)
        return n

    def _resume_listener(self, lc: Connection) -> None:
        if not lc._closed:
            self._set_mask(lc, _R)

    def _unconsumed(self, c: Connection) -> None:
        """``c``'s receive buffer is full and it has no protocol: warn once per listener."""
        lc = c.listener
        if lc is None or lc._closed:
            return
        x = lc._x_get()
        if "unconsumed" in x:
            return
        x["unconsumed"] = True
        log.warning(
            "listener %s: a connection filled its receive buffer (Limits.max_recv_buffer, "
            "%d bytes) and nothing consumes it, so reading from it is paused and its peer "
            "waits. Unless that is deliberate backpressure: the listener has no protocol "
            "(call set_protocol_http_websocket(), or set proto_handler), and the handler "
            "must remove() from c.recv_mbuf what it has read",
            lc.local,
            c.recv_mbuf.max_size,
        )


def _last_read(c: Connection) -> float:
    return c._rtime

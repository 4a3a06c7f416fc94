"""Outbound connections (TCP, UDP, TLS) and UDP listeners: the Manager's dialling half.

``Manager`` inherits these methods.  ``connect`` returns at once: numeric
addresses start connecting on the next poll round, host names are resolved on
the resolver's worker threads first, and the connection's CONNECT event always
follows -- status 0, or an errno-like code (refused, timed out, DNS failure) and
then CLOSE.  Several resolved addresses are tried in turn.  A UDP listener hands
each datagram to a child connection per peer (ACCEPT for a new peer, then RECV);
at most ``Limits.max_udp_peers`` children live at once per listener: a datagram from
one more peer closes the child that has been silent longest (it gets CLOSE).
"""

from __future__ import annotations

import concurrent.futures
import errno
import logging
import socket
from typing import TYPE_CHECKING, Any, cast

from ..events import Ev
from ..limits import Limits
from ._consts import (
    _CLOSE_IMMEDIATELY,
    _CLOSING,
    _CONNECTING,
    _R,
    _RESOLVING,
    _UDP,
    _W,
    EV_ACCEPT,
    EV_CONNECT,
    EV_RECV,
)
from .addr import Addr, Resolver, parse_addr
from .conn import Connection, Handler

if TYPE_CHECKING:
    from .manager import Manager

__all__ = ["Dialer"]

log = logging.getLogger("mgpy")


#: heap entry kind of a connect deadline (Manager._run_timers)
_K_CONNECT = 3
#: datagrams read per readiness event of one UDP listener
_UDP_BATCH = 64
#: child connections (peers) one UDP listener keeps; the least recently heard is evicted


class Dialer:
    """Outbound connections and UDP listeners (a base class of ``Manager``)."""

    if TYPE_CHECKING:  # provided by Manager
        limits: Limits
        bytes_in: int
        bytes_out: int
        _conns: dict[Connection, None]
        _dirty: list[Connection]
        _soon: list[tuple[Any, tuple[Any, ...]]]
        _mono: float
        _resolver: Resolver

        def _check_open(self) -> None: ...
        def _push(self, when: float, kind: int, c: Any, arg: Any) -> None: ...
        def _post(self, fn: Any, *args: Any) -> None: ...
        def _set_mask(self, c: Connection, mask: int) -> None: ...
        def _call(self, c: Connection, ev: Ev, data: Any) -> None: ...
        def _after(self, c: Connection) -> None: ...
        def _close(self, c: Connection) -> None: ...
        def _fail(self, c: Connection, why: str) -> None: ...

    def connect(
        self,
        addr: str,
        handler: Handler,
        *,
        limits: Limits | None = None,
        user_data: Any = None,
        tls: Any = None,
    ) -> Connection:
        """Open an outbound connection to ``addr`` (``"tcp://host:port"``, ``"udp://..."``).

        Returns at once; CONNECT is always delivered later with status 0 on
        success or a non-zero errno-like code (refused, timed out, DNS failure),
        and after a failure CLOSE follows.  Host names resolve on a worker thread.
        """
        self._check_open()
        a = parse_addr(addr, "tcp", need_host=True)
        return self._connect_addr(a, handler, limits, user_data, tls)

    def connect_http(
        self,
        url: str,
        handler: Handler,
        method: str | None = None,
        headers: Any = None,
        body: bytes | str | None = None,
        **opts: Any,
    ) -> Connection:
        """Send an HTTP request to ``url``; the handler gets HTTP_CHUNK* and HTTP_REPLY.

        ``method`` defaults to GET (POST when a ``body`` is given); ``user:pass@``
        in the URL sends Basic credentials (and answers a Digest challenge once).
        """
        from .client import connect_http

        self._check_open()
        return connect_http(cast("Manager", self), url, handler, method, headers, body, **opts)

    def connect_ws(
        self,
        url: str,
        handler: Handler,
        protocol: str | list[str] | None = None,
        headers: Any = None,
        **opts: Any,
    ) -> Connection:
        """Open a WebSocket to ``url``; the handler gets WS_HANDSHAKE_DONE, then WS_FRAME..."""
        from .client import connect_ws

        self._check_open()
        return connect_ws(cast("Manager", self), url, handler, protocol, headers, **opts)

    def _connect_addr(
        self, a: Addr, handler: Handler, limits: Limits | None, user_data: Any, tls: Any
    ) -> Connection:
        lim = limits if limits is not None else self.limits
        c = Connection(cast("Manager", self), None, handler, lim)
        c._flags = _CONNECTING | (_UDP if a.udp else 0)
        c.user_data = user_data
        x = c._x_get()
        x["addr"] = a
        if tls is not None or a.tls:
            from .tls import prepare_client_tls

            x["tls"] = prepare_client_tls(tls, a.udp)  # bad CA/cert files raise here
        self._conns[c] = None
        if lim.connect_timeout:
            self._push(self._mono + lim.connect_timeout, _K_CONNECT, c, None)
            x["cdl"] = True  # a connect deadline is queued (Manager._close counts it stale)
        fam = a.numeric_family()
        kind = socket.SOCK_DGRAM if a.udp else socket.SOCK_STREAM
        if fam is not None:
            sa = (a.host, a.port) if fam == socket.AF_INET else (a.host, a.port, 0, 0)
            self._soon.append((self._start_connect, (c, [(fam, kind, 0, "", sa)])))
        else:
            c._flags |= _RESOLVING
            fut: concurrent.futures.Future[object] = concurrent.futures.Future()
            x["resolving"] = fut  # cancelled if c closes first: the resolver skips it
            fut.add_done_callback(lambda f: self._post(self._resolved, c, f))
            self._resolver.resolve(a.host, a.port, a.udp, fut)
        return c

    def _resolved(self, c: Connection, fut: concurrent.futures.Future[object]) -> None:
        if c._closed or fut.cancelled():
            return
        c._x_get().pop("resolving", None)
        c._flags &= ~_RESOLVING
        exc = fut.exception()
        if exc is not None:
            code = getattr(exc, "errno", None) or errno.EHOSTUNREACH
            host = c._x_get()["addr"].host
            self._connect_failed(c, int(code), f"cannot resolve {host!r}: {exc}")
            return
        infos = fut.result()
        assert isinstance(infos, list)
        self._start_connect(c, infos)

    def _start_connect(self, c: Connection, infos: list[Any]) -> None:
        if c._closed:
            return
        last_err = errno.ECONNREFUSED
        while infos:
            fam, kind, proto, _, sa = infos.pop(0)
            try:
                sock = socket.socket(fam, kind, proto)  # EMFILE: CONNECT(EMFILE), not a crash
            except OSError as e:
                last_err = e.errno or errno.EMFILE
                continue
            sock.setblocking(False)
            try:
                err = sock.connect_ex(sa)
            except OSError as e:
                err = e.errno or errno.EINVAL
            if err in (0, errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK):
                c.sock = sock
                c.peer = sa
                c._x_get()["infos"] = infos
                if kind == socket.SOCK_DGRAM:
                    self._connected(c)
                else:
                    self._set_mask(c, _W)
                return
            sock.close()
            last_err = err
        self._connect_failed(c, last_err, f"connect: {errno.errorcode.get(last_err, last_err)}")

    def _on_connect_ready(self, c: Connection) -> None:
        sock = c.sock
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._set_mask(c, 0)
            sock.close()
            c.sock = None
            infos = c._x_get().get("infos") or []
            if infos:
                self._start_connect(c, infos)
            else:
                self._connect_failed(c, err, f"connect: {errno.errorcode.get(err, err)}")
            return
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # reset already: the first read reports it
        self._connected(c)

    def _connected(self, c: Connection) -> None:
        x = c._x_get()
        x.pop("infos", None)
        if "tls" in x:
            from .tls import start_client_tls

            self._set_mask(c, _R)
            start_client_tls(c, x["tls"])  # fires CONNECT itself after the handshake
            return
        c._flags &= ~_CONNECTING
        self._set_mask(c, _R | (_W if c.send_mbuf._buf else 0))
        self._call(c, EV_CONNECT, 0)
        self._after(c)

    def _connect_failed(self, c: Connection, code: int, why: str) -> None:
        if c._closed:
            return
        c._flags &= ~(_CONNECTING | _RESOLVING)
        self._call(c, EV_CONNECT, code or errno.ECONNREFUSED)
        c._error = why
        self._close(c)

    # -- UDP ------------------------------------------------------------------------------
    def _udp_read(self, lc: Connection) -> None:
        """A UDP listener got datagrams: route each to the child connection of its sender."""
        x = lc._x_get()
        children: dict[Any, Connection] = x.setdefault("children", {})
        for _ in range(_UDP_BATCH):
            if lc._flags & _CLOSING:
                return  # a handler closed the listener (or the manager)
            try:
                data, addr = lc.sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                log.warning("recvfrom: %s", e)
                return
            if not data:
                continue  # an empty datagram carries nothing to deliver
            self.bytes_in += len(data)
            c = children.get(addr)
            if c is not None and len(children) > 1:
                del children[addr]  # most recently heard last: eviction takes the first
                children[addr] = c
            if c is None or c._closed:
                if len(children) >= lc.limits.max_udp_peers:
                    old = next(iter(children.values()))
                    log.debug(
                        "%r: more than %d UDP peers, closing %r", lc, lc.limits.max_udp_peers, old
                    )
                    self._close(old)  # removes itself from children
                c = Connection(cast("Manager", self), lc.sock, lc._handler, lc.limits)
                c._proto = lc._proto
                c._h = lc._h
                c._flags = _UDP
                c.user_data = lc.user_data
                c.listener = lc
                c.peer = addr
                c._x_get()["udp_child"] = True
                children[addr] = c
                self._conns[c] = None
                self._call(c, EV_ACCEPT, addr)
                if c._flags & _CLOSE_IMMEDIATELY:
                    self._after(c)
                    continue
            if not c.recv_mbuf.append(data):
                log.warning("%r: recv_mbuf full, datagram dropped", c)
                continue
            self._call(c, EV_RECV, len(data))
            self._after(c)

    def _udp_send(self, c: Connection, data: bytes | bytearray | memoryview) -> int:
        try:
            if c._x is not None and c._x.get("udp_child"):
                n = c.sock.sendto(data, c.peer)
            elif c.sock is None:
                return 0
            else:
                n = c.sock.send(data)
        except OSError as e:
            log.warning("%r: send: %s", c, e)
            return 0
        assert isinstance(n, int)
        self.bytes_out += n
        c._sent += n  # SEND follows after the current event: a SEND handler may send again
        self._dirty.append(c)
        return n

    def _udp_conn_read(self, c: Connection, room: int) -> None:
        """Read one datagram on a connected UDP socket; drop it if it does not fit."""
        try:
            data = c.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:  # e.g. ECONNREFUSED: ICMP port unreachable from the peer
            self._fail(c, f"recv: {e.strerror or e}")
            return
        if not data:
            return
        self.bytes_in += len(data)
        if len(data) > room:
            log.warning("%r: recv_mbuf full, datagram dropped", c)
            return
        c.recv_mbuf.append(data)
        self._call(c, EV_RECV, len(data))
        self._after(c)

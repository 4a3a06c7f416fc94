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

from ..errors import Error
from ..events import Ev
from ..limits import Limits
from ._consts import (
    _CLOSE_IMMEDIATELY,
    _CLOSING,
    _CONNECTING,
    _HANDSHAKE_DONE,
    _R,
    _RESOLVING,
    _SHUT_NONE,
    _SSL,
    _UDP,
    _W,
    EV_ACCEPT,
    EV_CONNECT,
    EV_RECV,
)
from .addr import Addr, Resolver, parse_addr
from .conn import Connection, Handler
from .tls import prepare_client_tls, start_client_tls

if TYPE_CHECKING:
    from .manager import Manager

__all__ = ["Dialer"]

log = logging.getLogger("mgpy")


#: datagrams read per readiness event of one UDP listener
_UDP_BATCH = 64


class Dialer:
    """Outbound connections and UDP listeners (a base class of ``Manager``)."""

    if TYPE_CHECKING:  # provided by Manager
        connection_class: type[Connection]
        limits: Limits
        bytes_in: int
        bytes_out: int
        _conns: dict[Connection, None]
        _dirty: list[Connection]
        _soon: list[tuple[Any, tuple[Any, ...]]]
        monotonic: float
        _resolver: Resolver

        def _check_open(self) -> None: ...
        def _post(self, fn: Any, *args: Any) -> None: ...
        def _set_mask(self, c: Connection, mask: int) -> None: ...
        def _call(self, c: Connection, ev: Ev, data: Any) -> None: ...
        def _after(self, c: Connection) -> None: ...
        def _close(self, c: Connection) -> None: ...
        def _fail(self, c: Connection, why: str) -> None: ...

    def connect(
        self,
        addr: str | Addr,
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
        a = addr if isinstance(addr, Addr) else parse_addr(addr, "tcp", need_host=True)
        return self._connect_addr(a, handler, limits, user_data, tls)

    def _connect_addr(
        self, a: Addr, handler: Handler, limits: Limits | None, user_data: Any, tls: Any
    ) -> Connection:
        lim = limits if limits is not None else self.limits
        c = self.connection_class(cast("Manager", self), None, handler, lim)
        c._flags = _CONNECTING | (_UDP if a.udp else 0)
        c.user_data = user_data
        x = c._x_get()
        x["addr"] = a
        if tls is not None or a.tls:
            x["tls"] = prepare_client_tls(tls, a.udp)  # bad CA/cert files raise here
        self._conns[c] = None
        if lim.connect_timeout:
            x["cdl"] = c.call_later(lim.connect_timeout, self._connect_timed_out, c)
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

    def _connect_timed_out(self, c: Connection) -> None:
        if c._flags & (_CONNECTING | _RESOLVING):
            if c.sock is not None:
                self._set_mask(c, 0)
                c.sock.close()
                c.sock = None
            self._connect_failed(c, errno.ETIMEDOUT, "connect timed out")

    def _redial(self, c: Connection) -> None:
        """``c.redial()``: close the socket and connect to the same peer again."""
        sock = c.sock
        if sock is None or c._closed or c.peer is None or c.listener is not None:
            raise Error("redial() needs a connected outbound connection")
        family = sock.family
        self._set_mask(c, 0)
        try:
            sock.close()
        except OSError:
            pass
        c.sock = None
        if c._tls is not None:
            c._tls.release()
            c._tls = None
            c._flags &= ~_SSL
        c.recv_mbuf.clear()
        c.send_mbuf.clear()
        c._flags = (c._flags & ~(_CLOSING | _HANDSHAKE_DONE)) | _CONNECTING
        c._shut = _SHUT_NONE
        if c._x is not None:
            c._x.pop("eof", None)
        lim = c.limits
        if lim.connect_timeout:
            c._x_get()["cdl"] = c.call_later(lim.connect_timeout, self._connect_timed_out, c)
        self._soon.append((self._start_connect, (c, [(family, socket.SOCK_STREAM, 0, "", c.peer)])))

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
            self._set_mask(c, _R)
            start_client_tls(c, x["tls"])  # fires CONNECT itself after the handshake
            return
        c._flags &= ~_CONNECTING
        self._connect_done(c)
        self._set_mask(c, _R | (_W if c.send_mbuf.buf else 0))
        self._call(c, EV_CONNECT, 0)
        self._after(c)

    def _connect_done(self, c: Connection) -> None:
        """Connected (after TLS, if any): the connect deadline no longer applies."""
        x = c._x
        h = x.pop("cdl", None) if x is not None else None
        if h is not None:
            h.cancel()

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
                c = self.connection_class(cast("Manager", self), lc.sock, lc._handler, lc.limits)
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

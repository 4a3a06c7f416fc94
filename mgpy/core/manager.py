"""Manager: the single-threaded poll loop that owns every connection.

Theory of operation.  ``poll(timeout_ms)`` does one round:

1. flush connections that were written to outside an event (so a ``send``
   between polls never waits for ``select``);
2. ``select`` on every socket (``selectors.DefaultSelector``: epoll on Linux,
   no 1024-fd limit), sleeping at most until the nearest timer;
3. for each ready socket: accept (listeners), ``recv`` once into ``recv_mbuf``
   and fire RECV, or write ``send_mbuf`` when the kernel has room;
4. run work handed over by other threads (``broadcast``, DNS results) and
   deferred work (CONNECT results);
5. fire due timers (TIMER) and internal deadlines (protocol timeouts);
6. fire POLL on every connection, then flush and close what needs it.

``poll`` is not re-entrant: calling it from a handler raises ``mgpy.Error``.
``Manager.close()`` may be called from a handler: every connection gets CLOSE
at once, nothing more is delivered, and the next ``poll`` raises.

After every event delivered to a connection the manager writes what the
handler queued (``_after``): a socket is registered for EVENT_WRITE only while
the kernel refuses data, and for EVENT_READ only while ``recv_mbuf`` has room
(backpressure: a full buffer pauses reading instead of growing).  CLOSE is the
last event a connection sees; a handler that raises closes only its own
connection (logged with ``logging.getLogger("mgpy")``).
"""

from __future__ import annotations

import collections
import errno
import itertools
import logging
import selectors
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import Error
from ..events import Ev
from ..limits import Limits
from ._consts import (
    _CLOSE_IMMEDIATELY,
    _CLOSING,
    _CONNECTING,
    _LISTENING,
    _R,
    _RESOLVING,
    _SEND_AND_CLOSE,
    _SHUT_PENDING,
    _SSL,
    _SSL_READY,
    _UDP,
    _W,
    EV_CLOSE,
    EV_CONNECT,
    EV_ERROR,
    EV_POLL,
    EV_RECV,
    EV_SEND,
)
from .accept import Acceptor
from .addr import Resolver, bind_error, parse_addr
from .conn import Connection, Handler
from .dial import Dialer
from .memtrim import TRIM_MIN
from .schedule import Scheduler
from .timers import TimerHandle
from .tls import setup_server_tls
from .writer import Writer

__all__ = ["Connection", "Manager"]

log = logging.getLogger("mgpy")


#: largest datagram: a UDP read into less room than this could truncate one
_DGRAM_MAX = 65536
#: poll(timeout_ms) at or above this waits until the next timer or I/O (``inf`` works)
_FOREVER_MS = 1e12


class Manager(Dialer, Acceptor, Scheduler, Writer):
    """Owns connections and runs the event loop, one ``poll`` at a time.

    Example::

        def handler(c, ev, ev_data):
            if ev == mgpy.Ev.RECV:
                c.send(bytes(c.recv_mbuf))     # echo
                c.recv_mbuf.clear()

        with mgpy.Manager() as mgr:
            mgr.bind("tcp://127.0.0.1:1234", handler)
            while True:
                mgr.poll(1000)
    """

    #: the class of the connections this manager creates (the facade's adds the
    #: mongoose-style protocol methods)
    connection_class: type[Connection] = Connection

    def __init__(self, user_data: Any = None, limits: Limits | None = None) -> None:
        self.user_data = user_data
        self.limits = limits if limits is not None else Limits()
        self._sel = selectors.DefaultSelector()
        self._conns: dict[Connection, None] = {}
        self._dirty: list[Connection] = []
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._seq = itertools.count()
        self._posted: collections.deque[tuple[Callable[..., None], tuple[Any, ...]]] = (
            collections.deque()
        )
        self._soon: list[tuple[Callable[..., None], tuple[Any, ...]]] = []
        self._resolver = Resolver()
        self._rsock, self._wsock = socket.socketpair()
        self._rsock.setblocking(False)
        self._wsock.setblocking(False)
        self._sel.register(self._rsock, _R, None)
        self._closed = False
        self._stopping = False
        self._polling = False
        #: heap entries known to be stale (closed connections, superseded deadlines)
        self._dead = 0
        self._scratch = bytearray(self.limits.recv_size)
        self._scratch_view = memoryview(self._scratch)
        #: the connection whose event is being delivered (its own sends are batched)
        self._cur: Connection | None = None
        #: the monotonic clock of the current poll round (protocol deadlines count from it)
        self.monotonic = time.monotonic()
        #: traffic counters (bytes read from / written to sockets) for dashboards
        self.bytes_in = 0
        self.bytes_out = 0
        #: number of connections accepted so far
        self.accepted = 0
        #: counters kept by protocols, by name (e.g. "http.requests", "ws.messages")
        self.counters: dict[str, int] = {}
        #: per-manager state of protocols, by protocol name (secrets, hubs, caches)
        self.proto_state: dict[str, Any] = {}
        self._trim_h: TimerHandle | None = None  # a heap trim is scheduled (memtrim)
        self._trim_next = 0.0  # the monotonic time from which the next trim may run

    # -- context manager / lifetime ---------------------------------------------
    def __enter__(self) -> Manager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connections(self) -> list[Connection]:
        """A snapshot list of live connections (listeners included)."""
        return list(self._conns)

    def __iter__(self) -> Iterator[Connection]:
        return iter(list(self._conns))

    def close(self) -> None:
        """Close every connection (each gets CLOSE) and release the manager's resources.

        May be called from a handler: nothing is delivered after it, and the next
        ``poll`` raises ``mgpy.Error``.  A CLOSE handler that connects again while
        the manager closes gets ``mgpy.Error``.
        """
        if self._closed:
            return
        self._stopping = True  # e.g. open WebSockets get a 1001 close frame
        for c in list(self._conns):
            self._close(c)
        self._closed = True  # connect()/bind() raise from here on
        for c in list(self._conns):  # made by CLOSE handlers of the first pass
            self._close(c)
        self._heap.clear()
        self._posted.clear()
        self._soon.clear()
        self._dirty.clear()
        self._resolver.close()
        try:
            self._sel.unregister(self._rsock)
        except (KeyError, ValueError):
            pass
        self._sel.close()
        self._rsock.close()
        self._wsock.close()

    # -- listening --------------------------------------------------------------
    def bind(
        self,
        addr: str | int,
        handler: Handler,
        *,
        limits: Limits | None = None,
        user_data: Any = None,
        tls: Any = None,
        backlog: int = 1024,
        reuse_port: bool = False,
    ) -> Connection:
        """Listen on ``addr``: ``8000``, ``"8000"``, ``"127.0.0.1:8000"``, ``"[::1]:8000"``, ``"udp://:53"``.

        A bare port (``8000``, ``"8000"``, ``":8000"``) listens on **every interface**
        (0.0.0.0): reachable from the network.  ``"127.0.0.1:8000"`` is local only.
        Accepted connections inherit ``handler``, the listener's protocol handler,
        ``user_data`` and ``limits``.  Raises ``mgpy.Error`` naming the address and
        the reason (e.g. "address already in use") when the socket cannot be bound.
        """
        self._check_open()
        if isinstance(addr, bool) or not isinstance(addr, (str, int)):
            raise TypeError(
                f"bind() address must be a str like '127.0.0.1:8000' or an int port, "
                f"got {type(addr).__name__}"
            )
        a = parse_addr(str(addr) if isinstance(addr, int) else addr, "tcp")
        lim = limits if limits is not None else self.limits
        kind = socket.SOCK_DGRAM if a.udp else socket.SOCK_STREAM
        fam = a.numeric_family()
        sa: Any
        if fam is None:
            try:
                infos = socket.getaddrinfo(a.host, a.port, 0, kind, 0, socket.AI_PASSIVE)
            except socket.gaierror as e:
                raise Error(f"cannot bind {addr}: cannot resolve {a.host!r}: {e.strerror}") from e
            fam, sa = infos[0][0], infos[0][4]
        else:
            sa = (a.host or "0.0.0.0", a.port)
        sock = socket.socket(fam, kind)
        try:
            if not a.udp:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port and hasattr(socket, "SO_REUSEPORT"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(sa)
            if not a.udp:
                sock.listen(backlog)
            sock.setblocking(False)
        except OSError as e:
            sock.close()
            raise bind_error(addr, e) from e
        c = self.connection_class(self, sock, handler, lim)
        c._flags = _LISTENING | (_UDP if a.udp else 0)
        c.user_data = user_data
        c.peer = None
        if tls is not None or a.tls:
            try:
                setup_server_tls(c, tls)
            except Error as e:
                sock.close()
                raise Error(f"cannot bind {addr}: {e}") from e
        self._conns[c] = None
        self._set_mask(c, _R)
        return c

    # -- connecting -------------------------------------------------------------
    # -- cross-thread entry points ------------------------------------------------
    def broadcast(self, fn: Handler, data: Any = None) -> None:
        """Run ``fn(c, Ev.POLL, data)`` on the loop thread for every connection.

        Safe to call from any thread, from several at once; it wakes the loop.
        """
        self._post(self._run_broadcast, fn, data)

    def wakeup(self) -> None:
        """Make a ``poll`` that is waiting in ``select`` return now (any thread)."""
        try:
            self._wsock.send(b"\0")
        except OSError:
            pass

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        self._posted.append((fn, args))
        self.wakeup()

    def _run_broadcast(self, fn: Handler, data: Any) -> None:
        for c in list(self._conns):
            if c._closed:
                continue
            if (c._flags & _SSL_READY) == _SSL and c.listener is not None:
                continue  # a TLS handshake before ACCEPT: invisible, like for POLL
            self._cur = c  # fn's sends to c are batched into one write
            try:
                fn(c, EV_POLL, data)
            except Exception:
                log.exception("broadcast function raised on %r; closing it", c)
                c._error = "broadcast function raised"
                c._flags |= _CLOSE_IMMEDIATELY
            self._after(c)

    # -- timers -------------------------------------------------------------------
    # -- the loop -------------------------------------------------------------------
    def poll(self, timeout_ms: float = 1000) -> int:
        """Wait up to ``timeout_ms`` for I/O, deliver every due event; return I/O events handled.

        Not re-entrant: called from an event handler it raises ``mgpy.Error``.
        """
        self._check_open()
        if timeout_ms != timeout_ms or isinstance(timeout_ms, bool):  # NaN, or a bool
            raise ValueError(f"poll() timeout must be a number of milliseconds, got {timeout_ms!r}")
        if self._polling:
            raise Error(
                "Manager.poll() re-entered: it was called from an event handler (or a second "
                "thread); return from the handler and let the running poll() continue"
            )
        self._polling = True
        try:
            return self._poll(timeout_ms)
        finally:
            self._polling = False

    def _poll(self, timeout_ms: float) -> int:
        dirty = self._dirty
        if dirty:
            self._flush_dirty()
        timeout: float | None
        if self._soon or self._posted or dirty:
            timeout = 0.0
        else:
            timeout = timeout_ms / 1000.0 if timeout_ms < _FOREVER_MS else None
            if self._heap:
                nxt = max(0.0, self._heap[0][0] - time.monotonic())
                timeout = nxt if timeout is None or nxt < timeout else timeout
            if timeout is not None and timeout < 0.0:
                timeout = 0.0
        ready = self._sel.select(timeout)
        self.monotonic = mono = time.monotonic()
        for key, mask in ready:
            c = key.data
            if c is None:
                self._drain_wakeup()
                continue
            if mask & _R and not c._closed:
                if c._flags & _LISTENING:
                    if c._flags & _UDP:
                        self._udp_read(c)
                    else:
                        self._accept(c)
                    continue
                c._rtime = mono  # idle since (the longest idle are reclaimed first)
                if c._tls is not None:
                    c._tls.on_readable()
                else:
                    self._read(c)
            if mask & _W and not c._closed:
                if c._flags & _CONNECTING and c._tls is None:
                    self._on_connect_ready(c)
                elif c._tls is not None:
                    c._tls.on_writable()
                else:
                    if c.send_mbuf.buf:
                        self._flush(c)
                    elif c._mask & _W:
                        self._set_mask(c, c._mask & ~_W)  # a pump waited for room
                    self._after(c)
        posted = self._posted
        n = len(posted)  # only what was posted before: a re-posting broadcast cannot hold the loop
        while n and posted:
            n -= 1
            fn, args = posted.popleft()
            fn(*args)
        if self._soon:
            soon, self._soon = self._soon, []
            for fn, args in soon:
                fn(*args)
        if self._heap and self._heap[0][0] <= mono:
            self._run_timers(mono)
        now = time.time()
        after = self._after
        for c in list(self._conns):
            if not c._closed:
                self._cur = c
                try:
                    c._h(c, EV_POLL, now)
                except Exception:
                    self._handler_raised(c, EV_POLL)
                # only connections with work: queued data, a close, a pump, paused reading
                if (
                    c.send_mbuf.buf
                    or c._flags & _CLOSING
                    or c._pump is not None
                    or not c._mask & _R
                    or c._sent
                ):
                    after(c)
        self._cur = None
        if dirty:
            self._flush_dirty()
        return len(ready)

    def run(self, timeout_ms: float = 1000) -> None:
        """Poll until ``close()`` is called (e.g. from a handler) or Ctrl-C."""
        while not self._closed:
            self.poll(timeout_ms)

    def _flush_dirty(self) -> None:
        dirty = self._dirty
        after = self._after
        while dirty:
            batch = dirty[:]
            dirty.clear()
            for c in batch:
                if c.send_mbuf.buf or c._flags & _CLOSING or c._pump is not None or c._sent:
                    after(c)

    def _drain_wakeup(self) -> None:
        try:
            while self._rsock.recv(4096):
                pass
        except OSError:
            pass

    def _check_open(self) -> None:
        if self._closed:
            raise Error("the manager is closed")

    # -- delivering events -------------------------------------------------------------
    def _call(self, c: Connection, ev: Ev, data: Any) -> None:
        if c._closed:
            return  # CLOSE was the last event
        self._cur = c
        try:
            c._h(c, ev, data)
        except Exception:
            self._handler_raised(c, ev)

    def _handler_raised(self, c: Connection, ev: Any) -> None:
        if c._flags & _LISTENING:
            # a listener is the server itself: closing it would stop every future client
            what = Ev(ev).name if ev is not None else "timer or deferred call"
            log.exception("handler raised on listener %r (%s); it stays open", c, what)
            return
        what = Ev(ev).name if ev is not None else "timer or deferred call"
        log.exception("handler raised on %r (%s); closing the connection", c, what)
        if c._error is None:
            c._error = "handler raised an exception"
        c._flags |= _CLOSE_IMMEDIATELY

    def _after(self, c: Connection) -> None:
        """Write what the handler queued, then close or resume reading as flags say."""
        if c._closed:
            return
        if c._flags & _CLOSE_IMMEDIATELY:
            self._close(c)
            return
        if c._sent:
            n, c._sent = c._sent, 0
            self._call(c, EV_SEND, n)
        if c.send_mbuf.buf and not c._mask & _W and c.sock is not None:
            if c._tls is not None:
                c._tls.flush()
            elif not c._flags & _CONNECTING:
                self._flush(c)
        if c._pump is not None and not c.send_mbuf.buf and not c._mask & _W:
            x = c._x
            if x is None or "held" not in x:  # a pump that used its budget waits its turn
                self._run_pump(c)
        if c._shut == _SHUT_PENDING and not c.send_mbuf.buf and c._pump is None:
            self._shutdown_write(c)
        f = c._flags
        if f & _CLOSING:
            if not c.send_mbuf.buf and c._pump is None:
                if f & _CLOSE_IMMEDIATELY or c._tls is None or c._tls.closed_ok():
                    self._close(c)
                return
        if (
            not c._mask & _R
            and not f & (_CONNECTING | _RESOLVING | _LISTENING)  # a listener resumes on a timer
            and c.sock is not None
        ):
            x = c._x
            if x is not None and ("eof" in x or "udp_child" in x):
                return  # the peer finished sending; a UDP child shares its listener's socket
            mb = c.recv_mbuf
            if mb.max_size is None or len(mb.buf) < mb.max_size:
                self._set_mask(c, c._mask | _R)
                if c._tls is not None:
                    c._tls.resume()  # plaintext already inside the SSL object: epoll won't tell
            elif c._proto is None:
                self._unconsumed(c)  # full, and no protocol reads it: tell the developer

    # -- reading ----------------------------------------------------------------------
    def _read(self, c: Connection) -> None:
        mb = c.recv_mbuf
        buf = mb.buf
        mx = mb.max_size
        want = c.limits.recv_size
        if mx is not None:
            room = mx - len(buf)
            if room <= 0:
                self._set_mask(c, c._mask & ~_R)  # backpressure: pause until consumed
                return
            if room < want:
                want = room
        if want < _DGRAM_MAX and c._flags & _UDP:
            self._udp_conn_read(c, want)  # whole datagrams only, never a truncated one
            return
        scratch = self._scratch
        if want > len(scratch):
            scratch = self._grow_scratch(want)
        try:
            # one shared scratch buffer: big reads without a big allocation per recv()
            n = c.sock.recv_into(scratch, want)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            if e.errno == errno.ECONNRESET and c._flags & _SEND_AND_CLOSE and not c.send_mbuf.buf:
                c._flags |= _CLOSE_IMMEDIATELY  # we were closing anyway: not worth an ERROR
            else:
                self._fail(c, f"recv: {e.strerror or e}")
            return
        if not n:
            if not c._flags & _UDP:  # an empty datagram is no end of stream
                self._on_eof(c)
            return
        self.bytes_in += n
        self._cur = c
        data = self._scratch_view[:n]
        try:
            buf += data  # fits: we asked for at most the room left
            if len(buf) > mb.size:
                mb.reserve(len(buf))
        except BufferError:  # a memoryview of recv_mbuf is alive: move the data
            mb.append(data)
        data.release()
        try:
            c._h(c, EV_RECV, n)
        except Exception:
            self._handler_raised(c, EV_RECV)
        if mx is not None and c._proto is None and len(mb.buf) >= mx:
            self._unconsumed(c)  # full, and no protocol reads it: tell the developer
        self._after(c)

    def _grow_scratch(self, size: int) -> bytearray:
        self._scratch_view.release()
        self._scratch = bytearray(size)
        self._scratch_view = memoryview(self._scratch)
        return self._scratch

    def _on_eof(self, c: Connection) -> None:
        """The peer closed its sending side: send what is queued, then close.

        A protocol may keep the connection open to finish an answer (a half-closed
        HTTP client still reads the response): ``c.proto_data.hold_on_eof(c)``
        returning True means the protocol closes the connection itself.
        """
        self._set_mask(c, c._mask & ~_R)
        x = c._x_get()
        x["eof"] = True
        hold = getattr(c.proto_data, "hold_on_eof", None)
        if hold is None or not hold(c):
            c._flags |= _SEND_AND_CLOSE
        self._after(c)

    # -- writing ----------------------------------------------------------------------------
    def _set_mask(self, c: Connection, mask: int) -> None:
        old = c._mask
        if mask == old or c.sock is None:
            return
        c._mask = mask
        if mask & _W and not old & _W:  # waiting for the peer to take our data
            c._wprog = self.monotonic
            t = c.limits.send_timeout
            if t:
                h = c._send_h
                if h is None:
                    h = c._send_h = TimerHandle(self, c, self._send_timed_out, (c,))
                if not h.when:
                    h.arm_at(self.monotonic + t)
        try:
            if not old:
                self._sel.register(c.sock, mask, c)
            elif not mask:
                self._sel.unregister(c.sock)
            else:
                self._sel.modify(c.sock, mask, c)
        except (OSError, ValueError, KeyError) as e:
            c._mask = 0
            self._fail(c, f"selector: {e}")

    # -- closing ----------------------------------------------------------------------------
    def _fail(self, c: Connection, why: str) -> None:
        """Close ``c`` at once because of an error (ERROR then CLOSE are delivered)."""
        if c._error is None:
            c._error = why
        c._flags |= _CLOSE_IMMEDIATELY

    def _close(self, c: Connection) -> None:
        if c._closed:
            return
        c._closed = True
        f = c._flags
        c._flags = f | _CLOSE_IMMEDIATELY  # protocol loops (frames, requests) stop delivering
        if c._mask and c.sock is not None:
            try:
                self._sel.unregister(c.sock)
            except (KeyError, ValueError, OSError):
                pass
            c._mask = 0
        x = c._x
        c._release_timers()  # the heap keeps nothing of a closed connection
        if x is not None:
            for child in list(x.get("children", {}).values()):
                self._close(child)
            fut = x.pop("resolving", None)
            if fut is not None:
                fut.cancel()  # the resolver skips it if it has not started
        if f & (_CONNECTING | _RESOLVING) and not f & _LISTENING:
            # CONNECT is always delivered for an outbound connection, even one closed
            # (by the application or Manager.close) before it was established
            try:
                c._h(c, EV_CONNECT, errno.ECANCELED)
            except Exception:
                log.exception("handler raised on CONNECT for %r", c)
        if c._error is not None and not c._flags & _LISTENING:
            try:
                c._h(c, EV_ERROR, c._error)
            except Exception:
                log.exception("handler raised on ERROR for %r", c)
        last = self._stopping and c.sock is not None and not f & (_LISTENING | _UDP)
        c._last_word = last
        try:
            c._h(c, EV_CLOSE, None)
        except Exception:
            log.exception("handler raised on CLOSE for %r", c)
        if last:
            c._last_word = False
            if c.send_mbuf.buf and not f & (_CONNECTING | _RESOLVING):
                self._last_word(c)
        pump = c._pump
        if pump is not None:  # a body producer may own resources (a sendfile pump's fd)
            c._pump = None
            release = getattr(pump, "close", None)
            if release is not None:
                try:
                    release()
                except Exception:
                    log.exception("releasing the body producer of %r failed", c)
        self._conns.pop(c, None)
        if c._tls is not None:
            c._tls.release()
        # the buffers go now, not when the last reference to ``c`` does (an application's
        # list, a reference cycle): a slow consumer closed with a full queue frees it at once
        if c.send_mbuf.size >= TRIM_MIN or c.recv_mbuf.size >= TRIM_MIN:
            self._trim_soon()
        c.send_mbuf.free()
        c.recv_mbuf.free()
        sock = c.sock
        if sock is not None and not (x is not None and x.get("udp_child")):
            try:
                sock.close()
            except OSError:
                pass
        if x is not None and x.get("udp_child") and c.listener is not None:
            ch = (c.listener._x or {}).get("children", {})
            if ch.get(c.peer) is c:
                del ch[c.peer]

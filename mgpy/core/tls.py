"""TLS for listeners and outbound connections: ``https://``, ``wss://``, ``tls=TlsOpts(...)``.

Strategy.  The manager keeps owning the raw socket and the poll loop; TLS is a
filter between the socket and the connection's buffers, built from
``ssl.SSLContext.wrap_bio`` and two ``ssl.MemoryBIO`` objects (no SSLSocket)::

    sock.recv -> incoming BIO -> SSLObject.read  -> recv_mbuf (plaintext) -> RECV
    send_mbuf -> SSLObject.write -> outgoing BIO -> staged ciphertext -> sock.send

States of a connection's ``_Tls``: HANDSHAKE -> OPEN, or HANDSHAKE -> FAILED
(a server that only flushes its plaintext 400 before closing).

- Nothing blocks and nothing spins.  ``SSLWantReadError`` means "wait for
  EVENT_READ"; memory BIOs never want to write, ciphertext the kernel refuses
  is staged and waits for EVENT_WRITE, which is registered only while some is
  staged.  Plaintext is encrypted one ``_WRITE_CHUNK`` at a time and only
  while the previous chunk left completely, so a slow reader holds at most one
  chunk of ciphertext beyond ``send_mbuf`` (``Limits.max_send_buffer`` still
  bounds the rest).  SEND reports plaintext bytes handed to TLS.
- Receive backpressure.  One socket read can carry many records: they are
  decrypted only while ``recv_mbuf`` has room.  When it is full, reading
  pauses (EVENT_READ off) and the rest stays inside the SSL object; the
  manager's ``_after`` calls ``resume()`` when it re-enables reading, which
  delivers those bytes (epoll would not signal them again).  The socket is not
  read while a full record already waits in the incoming BIO, so it never
  holds more than a record plus one read.
- Server.  ACCEPT fires only after the handshake, which must complete within
  ``Limits.tls_handshake_timeout`` counted from accept (absolute: a client
  dribbling bytes cannot hold its slot).  Until then the connection is
  invisible to the application: no POLL, ERROR or CLOSE.  A failed handshake
  closes at once; when the first bytes were an HTTP request line, a plaintext
  400 is written first (like nginx).  ALPN selects ``http/1.1``.
- Client.  The server's chain and name are verified by default (RFC 9110
  4.3.4); ``verify=False`` is the explicit opt-out.  CONNECT(0) fires after
  the handshake, which must complete within both ``Limits.connect_timeout``
  (DNS + TCP + TLS) and ``Limits.tls_handshake_timeout``.  A failure gives
  CONNECT with a non-zero status -- ``errno.EPROTO`` (verification failed,
  alert, not TLS), ``errno.ECONNRESET`` (peer closed mid-handshake),
  ``errno.ETIMEDOUT`` -- then ERROR saying why, then CLOSE.  With TLS 1.3 a
  server that rejects the client's certificate does so after the client's
  handshake completed: the client then sees CONNECT(0), ERROR and CLOSE.
- Close.  A graceful close (SEND_AND_CLOSE) sends close_notify after the
  queued data; the peer's close_notify is not awaited (RFC 8446 6.1).  A peer's
  close_notify or a bare TCP FIN is end-of-stream, like a plain FIN.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import logging
import os
import re
import ssl
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import Error
from ._consts import (
    _CLOSE_IMMEDIATELY,
    _CONNECTING,
    _HANDSHAKE_DONE,
    _R,
    _SEND_AND_CLOSE,
    _SSL,
    _UDP,
    _W,
    EV_ACCEPT,
    EV_CONNECT,
    EV_RECV,
    EV_SEND,
    EV_WRITABLE,
)
from .conn import _quiet

if TYPE_CHECKING:
    from .conn import Connection
    from .timers import TimerHandle

__all__ = ["TlsInfo", "TlsOpts", "tls_info"]

log = logging.getLogger("mgpy")


_HANDSHAKE = 0
_OPEN = 1
_FAILED = 2

#: plaintext bytes per SSLObject.write: four full records (RFC 8446 5.1: 2^14 each)
_WRITE_CHUNK = 64 * 1024
#: plaintext bytes asked of one SSLObject.read (one record holds at most 2^14)
_READ_CHUNK = 16 * 1024
#: largest TLS record on the wire (2^14 + 256 expansion + 5 header, RFC 8446 5.2)
_RECORD_MAX = (1 << 14) + 256 + 5

#: an HTTP request line's start: a method token then a space (RFC 9112 3)
_HTTP_START = re.compile(rb"[A-Z]{3,12}(?: |\Z)")
_PLAIN_BODY = b"400 Bad Request: the plain HTTP request was sent to an HTTPS port\r\n"
_PLAIN_HTTP_400 = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_PLAIN_BODY), _PLAIN_BODY)
)


@dataclasses.dataclass(frozen=True)
class TlsOpts:
    """TLS settings for ``bind(..., tls=)`` and ``connect*(..., tls=)``.

    Server: ``cert`` (PEM chain) and ``key`` are required; ``ca`` verifies
    client certificates (requested when given, demanded with
    ``require_client_cert``).  Client: the server's chain and host name are
    verified against ``ca`` (else the system store) unless ``verify=False``;
    ``server_name`` overrides the name sent in SNI and verified (default: the
    URL's host); ``cert``/``key`` present a client certificate.  ``context``
    is a ready ``ssl.SSLContext`` used as is (the other fields but
    ``server_name`` are then ignored).

    Example::

        mgr.bind("https://0.0.0.0:8443", handler, tls=mgpy.TlsOpts(cert="c.pem", key="k.pem"))
        mgr.connect_http("https://localhost:8443/", handler, tls=mgpy.TlsOpts(ca="ca.pem"))
    """

    cert: str | None = None
    key: str | None = None
    ca: str | None = None
    verify: bool = True
    server_name: str | None = None
    require_client_cert: bool = False
    #: ALPN protocols offered (client) or accepted (server), RFC 7301; () disables ALPN
    alpn: Sequence[str] = ("http/1.1",)
    #: OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are OpenSSL's defaults)
    ciphers: str | None = None
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    #: passphrase of an encrypted ``key``
    password: str | None = None
    context: ssl.SSLContext | None = None

    def __post_init__(self) -> None:
        if isinstance(self.alpn, str):
            raise TypeError("TlsOpts.alpn is a list of protocol names, e.g. ['http/1.1']")
        object.__setattr__(self, "alpn", tuple(self.alpn))


@dataclasses.dataclass(frozen=True)
class TlsInfo:
    """What a TLS connection negotiated (``tls_info(c)``)."""

    version: str  #: e.g. "TLSv1.3"
    cipher: str  #: e.g. "TLS_AES_256_GCM_SHA384"
    alpn: str | None  #: the ALPN protocol selected, e.g. "http/1.1"
    #: the peer's certificate as ``ssl.SSLObject.getpeercert()`` gives it (verified peers only)
    peer_cert: dict[str, Any] | None


def tls_info(c: Connection) -> TlsInfo | None:
    """Return what ``c`` negotiated, or None for plain connections and unfinished handshakes."""
    t = c._tls
    if not isinstance(t, _Tls) or t._state != _OPEN or t._obj is None:
        return None
    obj = t._obj
    ci = obj.cipher()
    return TlsInfo(
        version=obj.version() or "",
        cipher=ci[0] if ci else "",
        alpn=obj.selected_alpn_protocol(),
        peer_cert=obj.getpeercert() or None,
    )


# --------------------------------------------------------------------------------
# contexts
# --------------------------------------------------------------------------------
def _check_file(what: str, path: str) -> None:
    if not os.path.exists(path):
        raise Error(f"TLS {what} {path!r} does not exist")
    if not os.access(path, os.R_OK):
        raise Error(f"TLS {what} {path!r} is not readable")


def _ssl_why(e: BaseException) -> str:
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {e.verify_message}"
    if isinstance(e, ssl.SSLError) and e.reason:
        return str(e.reason).lower().replace("_", " ")
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e)


def _common(ctx: ssl.SSLContext, opts: TlsOpts) -> None:
    try:
        ctx.minimum_version = opts.min_version
        if opts.ciphers:
            ctx.set_ciphers(opts.ciphers)
        if opts.alpn:
            ctx.set_alpn_protocols(list(opts.alpn))
    except (ssl.SSLError, ValueError) as e:
        raise Error(f"bad TLS option: {_ssl_why(e)}") from e
    if opts.cert:
        key = opts.key or opts.cert
        _check_file("certificate", opts.cert)
        _check_file("key", key)
        try:
            ctx.load_cert_chain(opts.cert, key, opts.password)
        except (ssl.SSLError, OSError) as e:
            raise Error(
                f"cannot load TLS certificate {opts.cert!r} with key {key!r}: {_ssl_why(e)}"
            ) from e
    if opts.ca:
        _check_file("CA file", opts.ca)
        try:
            if os.path.isdir(opts.ca):
                ctx.load_verify_locations(capath=opts.ca)
            else:
                ctx.load_verify_locations(cafile=opts.ca)
        except (ssl.SSLError, OSError) as e:
            raise Error(f"cannot load TLS CA file {opts.ca!r}: {_ssl_why(e)}") from e


def server_context(opts: TlsOpts) -> ssl.SSLContext:
    """Build the server-side SSLContext for ``opts``; raise ``mgpy.Error`` on bad files."""
    if opts.context is not None:
        return opts.context
    if not opts.cert:
        raise Error("a TLS listener needs a certificate: tls=mgpy.TlsOpts(cert=..., key=...)")
    if opts.require_client_cert and not opts.ca:
        raise Error("TlsOpts.require_client_cert needs ca= (the CA that signs client certificates)")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _common(ctx, opts)
    if opts.ca:
        ctx.verify_mode = ssl.CERT_REQUIRED if opts.require_client_cert else ssl.CERT_OPTIONAL
    return ctx


@functools.lru_cache(maxsize=32)
def client_context(opts: TlsOpts) -> ssl.SSLContext:
    """Build (once per distinct ``opts``) the client-side SSLContext; raise ``mgpy.Error``."""
    if opts.context is not None:
        return opts.context
    # RFC 9110 4.3.4: an https client MUST verify the server's identity (chain and name)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED + check_hostname
    if opts.verify:
        if not opts.ca:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    _common(ctx, opts)
    return ctx


# --------------------------------------------------------------------------------
# entry points called by the manager
# --------------------------------------------------------------------------------
def setup_server_tls(lc: Connection, opts: TlsOpts | None) -> None:
    """Make listener ``lc`` accept TLS; raise ``mgpy.Error`` for missing or bad cert/key."""
    if opts is None:
        raise Error("https:// and wss:// listeners need tls=mgpy.TlsOpts(cert=..., key=...)")
    if not isinstance(opts, TlsOpts):
        raise Error(f"tls= expects a mgpy.TlsOpts, got {type(opts).__name__}")
    if lc._flags & _UDP:
        raise Error("TLS over UDP (DTLS) is not supported")
    lc._tls = _ListenerTls(server_context(opts))
    lc._flags |= _SSL


def prepare_client_tls(opts: TlsOpts | None, udp: bool) -> TlsOpts:
    """Check a client's TLS options before connecting (bad CA/cert files raise ``mgpy.Error``)."""
    if opts is None:
        opts = TlsOpts()
    elif not isinstance(opts, TlsOpts):
        raise Error(f"tls= expects a mgpy.TlsOpts, got {type(opts).__name__}")
    if udp:
        raise Error("TLS over UDP (DTLS) is not supported")
    client_context(opts)
    return opts


def start_server_tls(c: Connection, lc: Connection) -> None:
    """A TLS listener accepted ``c``: start the handshake; ACCEPT fires when it completes."""
    lt = lc._tls
    assert isinstance(lt, _ListenerTls)
    t = c._tls = _Tls(c, lt.ctx, True)
    c._flags |= _SSL
    c._h = _quiet  # invisible to the application until ACCEPT
    _arm_deadline(c, t)


def start_client_tls(c: Connection, opts: TlsOpts | None) -> None:
    """TCP is up on outbound ``c``: start the handshake; CONNECT fires when it completes."""
    mgr = c.mgr
    x = c._x_get()
    host = x["addr"].host
    try:
        o = prepare_client_tls(opts, False)
        name = o.server_name or host
        # RFC 6066 3: no SNI for IP literals (the ssl module omits it and checks the IP SAN)
        t = _Tls(c, client_context(o), False, name)
    except (Error, ssl.SSLError, ValueError) as e:
        mgr._connect_failed(c, errno.EPROTO, f"TLS setup for {host} failed: {e}")
        return
    c._tls = t
    c._flags |= _SSL
    _arm_deadline(c, t)
    t._handshake()


def _arm_deadline(c: Connection, t: _Tls) -> None:
    limit = c.limits.tls_handshake_timeout
    if limit:
        t._deadline = c.call_later(limit, _handshake_expired, c)


def _handshake_expired(c: Connection) -> None:
    t = c._tls
    if isinstance(t, _Tls) and t._state == _HANDSHAKE:
        t._handshake_failed("timed out (Limits.tls_handshake_timeout)", errno.ETIMEDOUT)


class _ListenerTls:
    """``_tls`` of a listening connection: holds the server context."""

    __slots__ = ("ctx",)

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self.ctx = ctx

    def on_readable(self) -> None:
        pass

    def on_writable(self) -> None:
        pass

    def flush(self) -> None:
        pass

    def resume(self) -> None:
        pass

    def closed_ok(self) -> bool:
        return True

    def release(self) -> None:
        pass


class _Tls:
    """The TLS layer of one connection (``c._tls``); see the module comment."""

    __slots__ = (
        "_deadline",
        "_head",
        "_in",
        "_notified",
        "_obj",
        "_out",
        "_outbio",
        "_resume_queued",
        "_state",
        "c",
        "server",
    )

    def __init__(
        self, c: Connection, ctx: ssl.SSLContext, server: bool, name: str | None = None
    ) -> None:
        self.c = c
        self.server = server
        self._in = ssl.MemoryBIO()
        self._outbio = ssl.MemoryBIO()
        self._obj: ssl.SSLObject | None = ctx.wrap_bio(
            self._in, self._outbio, server_side=server, server_hostname=name
        )
        self._out = bytearray()  # ciphertext the kernel has not taken yet
        self._state = _HANDSHAKE
        self._head = b""  # first bytes from a client (plain-HTTP detection)
        self._notified = False  # close_notify queued
        self._resume_queued = False
        self._deadline: TimerHandle | None = None  # the handshake must complete by then

    # -- manager hooks -------------------------------------------------------------
    def on_readable(self) -> None:
        """The socket is readable: feed the SSL object, then handshake or deliver plaintext."""
        c = self.c
        if self._obj is None or c._closed:
            return
        state = self._state
        if state == _OPEN:
            mb = c.recv_mbuf
            mx = mb.max_size
            if mx is not None and len(mb.buf) >= mx:
                c.mgr._set_mask(c, c._mask & ~_R)  # backpressure: resume() restarts
                return
            if self._in.pending >= _RECORD_MAX:
                self._deliver()  # a whole record is already waiting: no more socket reads
                return
        elif state == _FAILED:
            c.mgr._set_mask(c, c._mask & ~_R)
            return
        if not self._recv():
            if c._flags & _CLOSE_IMMEDIATELY:
                c.mgr._after(c)
            return
        if self._state == _HANDSHAKE:
            self._handshake()
        else:
            self._deliver()

    def on_writable(self) -> None:
        """The socket has room: send staged ciphertext, then encrypt more of ``send_mbuf``."""
        c = self.c
        if self._obj is None or c._closed:
            return
        if self._state == _OPEN:
            self.flush()
        else:
            self._send_out()
            self._update_w()
        c.mgr._after(c)

    def flush(self) -> None:
        """Encrypt ``send_mbuf`` and write it, one chunk at a time while the socket takes it."""
        c = self.c
        obj = self._obj
        if obj is None or c._closed:
            return
        if self._state != _OPEN or (self._out and not self._send_out()):
            self._update_w()
            return
        mb = c.send_mbuf
        moved = 0
        while mb.buf and not c._flags & _CLOSE_IMMEDIATELY:
            buf = mb.buf
            try:
                n = obj.write(buf if len(buf) <= _WRITE_CHUNK else buf[:_WRITE_CHUNK])
            except ssl.SSLError as e:
                c.mgr._fail(c, f"TLS: {_ssl_why(e)}")
                return
            mb.remove(n)
            moved += n
            if not self._send_out():
                break  # the kernel is full: the rest waits for EVENT_WRITE
        self._update_w()
        mgr = c.mgr
        if moved:
            mgr._call(c, EV_SEND, moved)
        if c._above_high and len(mb.buf) <= c.limits.send_low_water:
            c._above_high = False
            mgr._call(c, EV_WRITABLE, len(mb.buf))

    def resume(self) -> None:
        """Reading was re-enabled: deliver what already waits inside the SSL object."""
        obj = self._obj
        if (
            obj is not None
            and self._state == _OPEN
            and not self._resume_queued
            and (obj.pending() or self._in.pending or self._in.eof)
        ):
            self._resume_queued = True
            self.c.mgr._soon.append((self._resumed, ()))

    def closed_ok(self) -> bool:
        """May the socket close now?  Queues close_notify once; True when all ciphertext left."""
        obj = self._obj
        if obj is None:
            return True
        if self._state == _OPEN and not self._notified:
            self._notified = True
            c = self.c
            try:
                obj.unwrap()  # writes close_notify; raises: the peer's has not arrived
            except ssl.SSLError:
                pass  # RFC 8446 6.1: the initiator need not wait for the peer's close_notify
            c.mgr._set_mask(c, c._mask & ~_R)
            self._send_out(quiet=True)  # a peer that already reset is no error at this point
            self._update_w()
        return not self._out

    def shutdown_ok(self) -> bool:
        """``c.shutdown_write()``: queue close_notify once; True when all ciphertext left."""
        obj = self._obj
        if obj is None or self._state != _OPEN:
            return True
        if not self._notified:
            self._notified = True
            try:
                obj.unwrap()  # writes close_notify; raises while the peer's has not arrived
            except ssl.SSLError:
                pass
            self._send_out(quiet=True)
            self._update_w()
        return not self._out

    def last_word(self) -> None:
        """During ``Manager.close()``: encrypt what is queued and write it once, no blocking."""
        obj = self._obj
        c = self.c
        if obj is None or self._state != _OPEN or self._notified:
            return
        try:
            obj.write(c.send_mbuf.buf)
        except ssl.SSLError:
            return
        c.send_mbuf.clear()
        self._send_out(quiet=True)

    def release(self) -> None:
        """The connection closed: drop the SSL object and staged data."""
        self._obj = None
        self._out = bytearray()
        if self._deadline is not None:
            self._deadline = None

    # -- internals ---------------------------------------------------------------
    def _recv(self) -> bool:
        """Read the socket into the incoming BIO; False when nothing arrived or on error."""
        c = self.c
        try:
            # at most 64 KiB: a bigger recv() buffer is a fresh mmap per call in glibc
            data = c.sock.recv(min(c.limits.recv_size, 65536))
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as e:
            if self._state == _HANDSHAKE:
                self._handshake_failed(e.strerror or str(e), errno.ECONNRESET)
            else:
                c.mgr._fail(c, f"recv: {e.strerror or e}")
            return False
        if not data:
            self._in.write_eof()
            c.mgr._set_mask(c, c._mask & ~_R)
            return True
        c.mgr.bytes_in += len(data)
        if self.server and self._state == _HANDSHAKE and len(self._head) < 16:
            self._head += data[: 16 - len(self._head)]
        self._in.write(data)
        return True

    def _send_out(self, quiet: bool = False) -> bool:
        """Write staged ciphertext; True when none is left.

        A send error fails an open connection; during a handshake (or with ``quiet``)
        the ciphertext is dropped instead: the next read reports the reset.
        """
        out = self._out
        ob = self._outbio
        data: bytes | bytearray
        if ob.pending:
            if out:
                out += ob.read()
                data = out
            else:
                data = ob.read()  # the usual case: straight from the BIO, no staging copy
        elif out:
            data = out
        else:
            return True
        c = self.c
        try:
            n = c.sock.send(data)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError as e:
            out.clear()
            if quiet or self._state != _OPEN:
                return True
            c.mgr._fail(c, f"send: {e.strerror or e}")
            return False
        c.mgr.bytes_out += n
        if n:
            c._wprog = c.mgr.monotonic
        if data is out:
            if n >= len(out):
                out.clear()
                return True
            del out[:n]
            return False
        if n >= len(data):
            return True
        out += memoryview(data)[n:]
        return False

    def _update_w(self) -> None:
        """EVENT_WRITE on exactly while ciphertext (or plaintext, when open) waits."""
        c = self.c
        if c._closed:
            return
        want = bool(self._out) or (self._state == _OPEN and bool(c.send_mbuf.buf))
        m = c._mask
        if want:
            if not m & _W:
                c.mgr._set_mask(c, m | _W)
        elif m & _W:
            c.mgr._set_mask(c, m & ~_W)

    def _handshake(self) -> None:
        c = self.c
        obj = self._obj
        assert obj is not None
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            self._send_out()
            self._update_w()
            if self._in.eof:
                self._handshake_failed("the peer closed the connection", errno.ECONNRESET)
            return
        except ssl.SSLEOFError:
            self._handshake_failed("the peer closed the connection", errno.ECONNRESET)
            return
        except ssl.SSLError as e:
            self._send_out()  # the alert we owe the peer, best effort
            self._handshake_failed(_ssl_why(e), errno.EPROTO)
            return
        self._state = _OPEN
        self._head = b""
        c._flags |= _HANDSHAKE_DONE
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        mgr = c.mgr
        if self.server:
            c._h = c._proto if c._proto is not None else c._handler
            mgr._call(c, EV_ACCEPT, c.peer)
        else:
            c._flags &= ~_CONNECTING
            mgr._connect_done(c)
            mgr._call(c, EV_CONNECT, 0)
        if c._closed:
            return
        if c._flags & _CLOSE_IMMEDIATELY:
            mgr._after(c)
            return
        self._deliver()  # application data that came with the last handshake flight

    def _handshake_failed(self, why: str, code: int) -> None:
        c = self.c
        mgr = c.mgr
        if not self.server:
            if why.startswith("wrong version number"):
                why += " (is the server speaking TLS on that port?)"
            host = c._x_get()["addr"].host
            mgr._connect_failed(c, code, f"TLS handshake with {host} failed: {why}")
            return
        log.debug("%r: TLS handshake failed: %s", c, why)
        c._error = f"TLS handshake failed: {why}"
        if _HTTP_START.match(self._head):
            # like nginx: answer a plain HTTP request on a TLS port in plaintext, then close
            self._state = _FAILED
            self._out = bytearray(_PLAIN_HTTP_400)
            c._flags |= _SEND_AND_CLOSE
            mgr._set_mask(c, c._mask & ~_R)
            self._send_out()
            self._update_w()
        else:
            c._flags |= _CLOSE_IMMEDIATELY
        mgr._after(c)

    def _deliver(self) -> None:
        """Decrypt into ``recv_mbuf`` while it has room, fire RECV, then let the manager write."""
        c = self.c
        obj = self._obj
        assert obj is not None
        inb = self._in
        mb = c.recv_mbuf
        mx = mb.max_size
        read = obj.read
        n = 0
        eof = False
        err = None
        while obj.pending() or inb.pending or inb.eof:
            room = _READ_CHUNK if mx is None else min(_READ_CHUNK, mx - len(mb.buf))
            if room <= 0:
                c.mgr._set_mask(c, c._mask & ~_R)  # backpressure: the rest waits in the SSL object
                break
            try:
                data = read(room)
            except ssl.SSLWantReadError:
                break
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                eof = True
                break
            except ssl.SSLError as e:
                err = _ssl_why(e)
                break
            if not data:  # the peer's close_notify
                eof = True
                break
            mb.append(data)
            n += len(data)
        if self._outbio.pending:  # e.g. a KeyUpdate answer
            self._send_out()
            self._update_w()
        mgr = c.mgr
        if n:
            mgr._call(c, EV_RECV, n)
        if err is not None:
            mgr._fail(c, f"TLS: {err}")
        elif eof and not c._closed:
            mgr._on_eof(c)
            return
        mgr._after(c)

    def _resumed(self) -> None:
        self._resume_queued = False
        c = self.c
        if self._obj is not None and not c._closed and self._state == _OPEN:
            self._deliver()

"""Address strings and non-blocking name resolution.

Accepted forms (DESIGN.md): ``"8000"``, ``":8000"``, ``"127.0.0.1:8000"``,
``"[::1]:8000"``, ``"host:port"``, and the same behind a scheme:
``tcp://``, ``udp://``, ``http://``, ``ws://`` (TCP), ``https://``, ``wss://``
(TCP + TLS).  URLs may carry ``user:pass@`` and a path, which the HTTP layer
uses.  Host names are resolved on a small worker pool so ``getaddrinfo``
never blocks the poll loop; numeric addresses are used directly.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import errno
import ipaddress
import socket
import urllib.parse

from ..errors import Error

__all__ = ["Addr", "Resolver", "bind_error", "parse_addr"]


def bind_error(addr: str | int, e: OSError) -> Error:
    """The ``mgpy.Error`` for a failed bind of ``addr``, saying why in plain words."""
    why = e.strerror or str(e)
    if e.errno == errno.EADDRINUSE:
        why = "address already in use (another program is listening on that port)"
    return Error(f"cannot bind {addr}: {why}")


_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}
_SCHEMES = ("tcp", "udp", "http", "ws", "https", "wss")


@dataclasses.dataclass(frozen=True)
class Addr:
    """A parsed address: where to bind or connect, and what the URL said."""

    scheme: str  # tcp, udp, http, ws, https, wss
    host: str  # "" means any address (bind) ; no brackets around IPv6
    port: int
    path: str = "/"  # path + query for http/ws URLs
    user: str | None = None
    password: str | None = None

    @property
    def udp(self) -> bool:
        return self.scheme == "udp"

    @property
    def tls(self) -> bool:
        return self.scheme in ("https", "wss")

    @property
    def hostport(self) -> str:
        """host[:port] as it goes into a Host header (port omitted when default)."""
        h = f"[{self.host}]" if ":" in self.host else self.host
        if _DEFAULT_PORTS.get(self.scheme) == self.port:
            return h
        return f"{h}:{self.port}"

    def numeric_family(self) -> int | None:
        """AF_INET/AF_INET6 when host is a literal IP address (or empty), else None."""
        if not self.host:
            return socket.AF_INET
        try:
            ip = ipaddress.ip_address(self.host)
        except ValueError:
            return None
        return socket.AF_INET6 if ip.version == 6 else socket.AF_INET

    def __str__(self) -> str:
        h = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{h}:{self.port}"


def parse_addr(spec: str, default_scheme: str = "tcp", need_host: bool = False) -> Addr:
    """Parse an address or URL string; raise ``mgpy.Error`` with a clear message."""
    s = spec.strip()
    scheme = default_scheme
    if "://" in s:
        scheme, s = s.split("://", 1)
        scheme = scheme.lower()
        if scheme not in _SCHEMES:
            raise Error(f"unsupported scheme {scheme!r} in address {spec!r}")
    path = "/"
    for sep in ("/", "?"):
        i = s.find(sep)
        if i >= 0:
            path = s[i:] if sep == "/" else "/" + s[i:]
            s = s[:i]
            break
    user = password = None
    if "@" in s:
        cred, s = s.rsplit("@", 1)
        u, _, pw = cred.partition(":")
        user = urllib.parse.unquote(u)
        password = urllib.parse.unquote(pw)
    host, port_s = s, ""
    if s.startswith("["):
        end = s.find("]")
        if end < 0:
            raise Error(f"bad IPv6 address in {spec!r}: missing ']'")
        host, rest = s[1:end], s[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise Error(f"bad address {spec!r}")
            port_s = rest[1:]
    elif s.count(":") == 1:
        host, port_s = s.split(":")
    elif s.isdigit():
        host, port_s = "", s
    elif ":" in s:
        raise Error(f"bad address {spec!r}: put IPv6 addresses in brackets, e.g. [::1]:8000")
    if port_s:
        # ASCII digits only: str.isdigit() accepts "²" (int() then fails) and "٣" (= 3)
        if not (port_s.isascii() and port_s.isdigit()) or not 0 <= int(port_s) <= 65535:
            raise Error(f"bad port {port_s!r} in address {spec!r}")
        port = int(port_s)
    elif scheme in _DEFAULT_PORTS:
        port = _DEFAULT_PORTS[scheme]
    else:
        raise Error(f"no port in address {spec!r}")
    if need_host and not host:
        raise Error(f"no host in address {spec!r}")
    return Addr(scheme, host, port, path, user, password)


class Resolver:
    """Runs ``getaddrinfo`` on worker threads; results are handed to ``post``."""

    def __init__(self, workers: int = 4) -> None:
        self._workers = workers
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    def resolve(
        self, host: str, port: int, udp: bool, done: concurrent.futures.Future[object]
    ) -> None:
        """Resolve in the background; ``done`` receives a sockaddr list or an exception."""
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                self._workers, thread_name_prefix="mgpy-resolver"
            )
        kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM

        def work() -> None:
            if not done.set_running_or_notify_cancel():
                return  # the connection closed while this waited in the queue
            try:
                res = socket.getaddrinfo(host, port, 0, kind)
            except BaseException as e:
                done.set_exception(e)
            else:
                done.set_result(res)

        self._pool.submit(work)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

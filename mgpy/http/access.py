"""The access log: one line per request on the ``mgpy.access`` logger (INFO).

Off by default for library users (``enable_access_log(mgr)`` turns it on for a
manager); the ``mgpy`` command turns it on unless ``--no-access-log``.  A line::

    127.0.0.1:51514 "GET /index.html HTTP/1.1" 200 1532B 0.4ms

peer, request line (method, path without the query string, version), status, bytes of
the response as queued, and the time from the request head to the response's last
byte queued.  WebSocket upgrades log their 101, then one line when the WebSocket
closes (``WebSocket /ws closed after 12.3s``).  Requests refused before a request line
was read (a malformed head) log ``-`` as the method.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..core import Manager

__all__ = ["ACCESS_LOG", "access_log_enabled", "enable_access_log", "log_exchange", "log_ws"]

#: the logger access lines go to
ACCESS_LOG = logging.getLogger("mgpy.access")
_KEY = "http.access_log"  # Manager.proto_state key


def enable_access_log(mgr: Manager, on: bool = True) -> None:
    """Log every request of ``mgr``'s HTTP connections accepted from now on (``mgpy.access``).

    Example::

        logging.basicConfig(level=logging.INFO)
        mgpy.enable_access_log(mgr)
    """
    mgr.proto_state[_KEY] = bool(on)


def access_log_enabled(mgr: Manager) -> bool:
    """True if ``mgr`` logs its requests."""
    return bool(mgr.proto_state.get(_KEY))


def _peer(peer: Any) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = peer[0]
        return f"[{host}]:{peer[1]}" if ":" in str(host) else f"{host}:{peer[1]}"
    return str(peer)


def log_exchange(
    peer: Any, method: str, uri: str, proto: str, status: int, nbytes: int, seconds: float
) -> None:
    """Write one access line."""
    ACCESS_LOG.info(
        '%s "%s %s %s" %d %dB %.1fms',
        _peer(peer),
        method or "-",
        uri or "-",
        proto,
        status,
        nbytes,
        seconds * 1000.0,
    )


def log_ws(peer: Any, uri: str, event: str, seconds: float | None = None) -> None:
    """Write one WebSocket line (closed, with how long it was open)."""
    if seconds is None:
        ACCESS_LOG.info("%s WebSocket %s %s", _peer(peer), uri, event)
    else:
        ACCESS_LOG.info("%s WebSocket %s %s after %.1fs", _peer(peer), uri, event, seconds)

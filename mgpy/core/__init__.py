"""The I/O core: the poll loop, connections, timers, dialling, UDP, addresses and TLS.

It is the only layer that touches sockets and the clock, and it knows no protocol:
HTTP, WebSocket and any protocol of yours plug in through the public interface of
``Connection`` and ``Manager`` documented in docs/protocols.md.
"""

from __future__ import annotations

from .addr import Addr, bind_error, parse_addr
from .conn import Connection, Data, Handler, Pump
from .manager import Manager
from .timers import TimerHandle, check_delay
from .tls import TlsInfo, TlsOpts, tls_info

__all__ = [
    "Addr",
    "Connection",
    "Data",
    "Handler",
    "Manager",
    "Pump",
    "TimerHandle",
    "TlsInfo",
    "TlsOpts",
    "bind_error",
    "check_delay",
    "parse_addr",
    "tls_info",
]

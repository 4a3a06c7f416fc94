"""TLS for listeners and outbound connections (placeholder, being written)."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import Error

__all__ = ["TlsOpts"]


@dataclasses.dataclass(frozen=True)
class TlsOpts:
    """TLS settings for bind()/connect*()."""

    cert: str | None = None
    key: str | None = None
    ca: str | None = None


def setup_server_tls(lc: Any, opts: Any) -> None:
    raise Error("TLS is not implemented yet")


def start_server_tls(c: Any, lc: Any) -> None:
    raise Error("TLS is not implemented yet")


def start_client_tls(c: Any, opts: Any) -> None:
    raise Error("TLS is not implemented yet")

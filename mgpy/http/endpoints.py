"""Endpoints: routing a request to a handler by glob pattern, and the endpoint's auth check.

``register_http_endpoint(listener, pattern, handler, auth_file=..., auth_domain=...)``
(in ``server``) adds an ``Endpoint`` to the listener's ``HttpListener``.  For every
request (and every upgrade or multipart request) the server calls ``dispatch_handler``
once: it picks the
longest match and, when that endpoint is protected, checks the Digest credentials and
answers 401 itself.  This is the only place routing and endpoint auth happen.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..events import HttpMessage
from ..proto.httputil import glob_match
from .auth import NONCE_MAX_AGE, HtDigest, require_digest
from .exchange import HttpListener, HttpState
from .static.fs import protect

if TYPE_CHECKING:
    from ..core import Connection, Handler

__all__ = ["Endpoint", "add_endpoint", "dispatch_handler", "route"]


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """A registered endpoint: pattern, handler and its Digest protection (if any)."""

    pattern: str
    handler: Handler
    order: int
    auth_file: HtDigest | None = None
    auth_domain: str = "mgpy"
    auth_max_age: float = NONCE_MAX_AGE


def add_endpoint(
    listener: HttpListener,
    pattern: str,
    handler: Handler,
    auth_file: HtDigest | None,
    auth_domain: str | None,
    auth_max_age: float,
) -> None:
    """Register an endpoint on an HTTP listener's state (``register_http_endpoint``)."""
    if isinstance(auth_file, (str, os.PathLike)):
        protect(auth_file)  # a credentials file is never served as a static file
    listener.endpoints.append(
        Endpoint(
            pattern,
            handler,
            len(listener.endpoints),
            auth_file,
            auth_domain or "mgpy",
            float(auth_max_age),
        )
    )


def route(st: HttpState, c: Connection, uri: str) -> Handler:
    """The handler for ``uri``: the longest matching endpoint's, else the connection's."""
    ep = _match(st.endpoints, uri)
    return ep.handler if ep is not None else c.handler


def _match(eps: list[Any] | None, uri: str) -> Endpoint | None:
    if not eps:
        return None
    best: tuple[int, int, int] | None = None
    found: Endpoint | None = None
    for ep in eps:
        n = glob_match(ep.pattern, uri)
        if n < 0:
            continue
        key = (n, len(ep.pattern), -ep.order)
        if best is None or key > best:
            best, found = key, ep
    return found


def dispatch_handler(
    c: Connection,
    st: HttpState,
    hm: HttpMessage,
    enter: Callable[[Connection, HttpState, Handler], None],
) -> Handler | None:
    """Route ``hm``, let ``enter(c, st, handler)`` set up the exchange, then check the
    endpoint's Digest credentials.  Returns the handler, or None when a 401 was answered
    (the endpoint's answer: the exchange is then complete or closing).

    The one routing + auth step: plain requests, multipart requests and upgrades all
    go through it.
    """
    ep = _match(st.endpoints, hm.uri) if st.endpoints else None
    h = ep.handler if ep is not None else c.handler
    enter(c, st, h)
    if (
        ep is not None
        and ep.auth_file is not None
        and not require_digest(c, hm, ep.auth_file, ep.auth_domain, ep.auth_max_age)
    ):
        return None
    return h

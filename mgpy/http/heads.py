"""Response-head text: status lines, the Date header, application headers (validated, cached).

Pure helpers with no connection state; ``exchange.response_head`` puts them together
with the framing and ``Connection`` header the exchange's state calls for.  Headers
given by the application are validated here: a CR, LF or other control character in
a name or value raises ``LocalProtocolError``, so response splitting is impossible.
``Content-Length``, ``Transfer-Encoding``, ``Connection`` and ``Date`` are managed by
mgpy and dropped from the application's headers (a ``Connection: close`` it passes is
honoured).
"""

from __future__ import annotations

import email.utils
import time
from time import time as _time
from typing import Any

from ..events import Headers
from ..proto.http1 import check_header, status_line

__all__ = [
    "http_date",
    "keepalive_head",
    "normalize_headers",
    "response_head",
    "status_text",
    "user_headers",
]

_MANAGED = frozenset(("content-length", "transfer-encoding", "connection", "date"))

_date_cache: list[Any] = [0, ""]
_status_cache: dict[int, str] = {}
#: rendered application headers, keyed by their (name, value) pairs: a handler that
#: answers with the same headers every time pays for validation once
_uh_cache: dict[Any, tuple[str, bool]] = {}
_UH_CACHE_MAX = 512


def http_date() -> str:
    """The current time as an IMF-fixdate (cached per second)."""
    now = int(time.time())
    if now != _date_cache[0]:
        _date_cache[0] = now
        _date_cache[1] = email.utils.formatdate(now, usegmt=True)
    return _date_cache[1]  # type: ignore[no-any-return]


def status_text(code: int) -> str:
    """``HTTP/1.1 <code> <reason>\\r\\n`` as text (the proto serializer's status line, cached)."""
    s = _status_cache.get(code)
    if s is None:
        s = _status_cache[code] = status_line(code).decode("latin-1")
    return s


def response_head(code: int, fields: str) -> str:
    """``status line + Date + fields + CRLF``: the one place a response head is assembled.

    ``fields`` are complete ``Name: value\r\n`` lines (framing, application headers,
    ``Connection``), already validated.
    """
    s = _status_cache.get(code) or status_text(code)
    date = _date_cache[1] if int(_time()) == _date_cache[0] else http_date()
    return f"{s}Date: {date}\r\n{fields}\r\n"


def keepalive_head(code: int, length: int, headers: Headers) -> tuple[str, str, bool]:
    """The head of a keep-alive HTTP/1.1 response with ``Content-Length: length``.

    Returns ``(head, application header text, asked_to_close)``: the common answer in one
    call (``respond.http_reply``'s fast path); the caller uses the other two when its
    state calls for another head.
    """
    if headers:
        try:  # user_headers' cache, looked up here without another call
            key: Any = tuple(headers.items()) if isinstance(headers, dict) else tuple(headers)
            hit = _uh_cache.get(key)
        except TypeError:
            hit = None
        extra, close = hit if hit is not None else user_headers(headers)
    else:
        extra, close = "", False
    s = _status_cache.get(code) or status_text(code)
    date = _date_cache[1] if int(_time()) == _date_cache[0] else http_date()
    return f"{s}Date: {date}\r\nContent-Length: {length}\r\n{extra}\r\n", extra, close


def normalize_headers(headers: Headers) -> list[tuple[str, str]]:
    """Return ``headers`` (dict, list of pairs or None) as a list of (name, value) pairs."""
    if not headers:
        return []
    if isinstance(headers, dict):
        return [(str(k), str(v)) for k, v in headers.items()]
    return [(str(k), str(v)) for k, v in headers]


def user_headers(headers: Headers) -> tuple[str, bool]:
    """Validate and render the application's headers; return (text, asked_to_close)."""
    if not headers:
        return "", False
    try:
        key: Any = tuple(headers.items()) if isinstance(headers, dict) else tuple(headers)
        hit = _uh_cache.get(key)
    except TypeError:  # unhashable values: render every time
        key = hit = None
    if hit is not None:
        return hit
    r = _render_headers(headers)
    if key is not None:
        if len(_uh_cache) >= _UH_CACHE_MAX:
            _uh_cache.clear()
        _uh_cache[key] = r
    return r


def _render_headers(headers: Headers) -> tuple[str, bool]:
    out = []
    close = False
    items = headers.items() if isinstance(headers, dict) else (headers or ())
    for k, v in items:
        k = str(k)
        v = str(v)
        check_header(k, v)  # names are tokens, values hold no CR/LF/CTL: no splitting
        lk = k.lower()
        if lk in _MANAGED:
            if lk == "connection" and "close" in v.lower():
                close = True
            continue
        out.append(f"{k}: {v}\r\n")
    return "".join(out), close

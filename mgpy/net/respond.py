"""Response helpers: http_reply, send_head, chunks, errors, redirects.

Every helper writes through ``c.send`` and tells the HTTP state how long the
response is, so the protocol handler knows when it is complete (pipelining,
keep-alive).  Headers given by the application are validated: a CR, LF or
other control character in a name or value raises ``LocalProtocolError``
(response splitting is impossible).  ``Date`` is added to every response;
``Content-Length``/``Transfer-Encoding``/``Connection`` are managed here, so
the application does not pass them (a ``Connection: close`` it passes is
honoured).
"""

from __future__ import annotations

import email.utils
import html
import re
import time
from time import time as _time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..errors import LocalProtocolError
from ..events import Headers
from ..proto.http1 import check_header, encode_chunk, reason_phrase, status_line
from . import http as _http
from ._consts import (
    _SEND_AND_CLOSE,
)
from .http import _WAIT
from .http import HttpState as _HttpState

if TYPE_CHECKING:
    from .conn import Connection

__all__ = [
    "http_date",
    "http_reply",
    "http_send_error",
    "http_send_redirect",
    "normalize_headers",
    "send_head",
    "send_http_chunk",
]


#: statuses after which the connection cannot be trusted to continue (framing unknown)
_CLOSING_CODES = frozenset((400, 408, 413, 414, 431, 501, 505))

# CR, LF, NUL, other CTLs, DEL, and anything latin-1 cannot carry (RFC 9110 5.5)
_MANAGED = frozenset(("content-length", "transfer-encoding", "connection", "date"))
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")

_date_cache: list[Any] = [0, ""]
_status_cache: dict[int, str] = {}


def http_date() -> str:
    """The current time as an IMF-fixdate (cached per second)."""
    now = int(time.time())
    if now != _date_cache[0]:
        _date_cache[0] = now
        _date_cache[1] = email.utils.formatdate(now, usegmt=True)
    return _date_cache[1]  # type: ignore[no-any-return]


def _status(code: int) -> str:
    """``HTTP/1.1 <code> <reason>\r\n`` as text (the proto serializer's status line, cached)."""
    s = _status_cache.get(code)
    if s is None:
        s = _status_cache[code] = status_line(code).decode("latin-1")
    return s


def _check_unanswered(st: _HttpState) -> None:
    """Refuse a second response to one request: the client would take it for the next answer."""
    if st.answered or (st.phase == _WAIT and st.resp_started):
        raise LocalProtocolError("this request has already been answered")
    if st.phase == _http._WS:
        raise LocalProtocolError("the connection speaks WebSocket now")


def normalize_headers(headers: Headers) -> list[tuple[str, str]]:
    """Return ``headers`` (dict, list of pairs or None) as a list of (name, value) pairs."""
    if not headers:
        return []
    if isinstance(headers, dict):
        return [(str(k), str(v)) for k, v in headers.items()]
    return [(str(k), str(v)) for k, v in headers]


#: rendered application headers, keyed by their (name, value) pairs: a handler that
#: answers with the same headers every time pays for validation once
_uh_cache: dict[Any, tuple[str, bool]] = {}
_UH_CACHE_MAX = 512


def _user_headers(headers: Headers) -> tuple[str, bool]:
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


def _conn_header(st: _http.HttpState | None, close: bool) -> str:
    if st is None or close or not st.keep_alive:
        return "Connection: close\r\n"
    if st.http10:
        return "Connection: keep-alive\r\n"
    return ""


def http_reply(c: Connection, code: int, body: bytes | str = b"", headers: Headers = None) -> None:
    """Send a complete response with ``Content-Length`` framing.

    Example::

        mgpy.http_reply(c, 200, '{"ok": true}', headers={"Content-Type": "application/json"})
    """
    if isinstance(body, str):
        body = body.encode()
    st = c.proto_data
    if not headers:
        extra, close = "", False
    else:
        try:  # _user_headers' cache inlined
            hit = _uh_cache.get(
                tuple(headers.items()) if isinstance(headers, dict) else tuple(headers)
            )
        except TypeError:
            hit = None
        extra, close = hit if hit is not None else _user_headers(headers)
    if (
        st.__class__ is _HttpState
        and st.phase == _WAIT
        and not st.resp_started
        and st.keep_alive
        and not close
        and not st.resp_close
        and not st.http10
        and 200 <= code
        and code != 204
        and code != 304
        and st.method != "HEAD"
    ):
        # the common case: a keep-alive HTTP/1.1 answer with a body
        s_ = _status_cache.get(code) or _status(code)
        date = _date_cache[1] if int(_time()) == _date_cache[0] else http_date()
        head = f"{s_}Date: {date}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
        c.send(head.encode("latin-1") + body)
        st.resp_started = True
        st.resp_end = c._nq
        _http.response_done(c)
        return
    if st.__class__ is not _http.HttpState:
        st = None
    elif 100 <= code < 200 and code != 101:
        _interim(c, st, code, extra)  # 1xx: informational, the final answer follows
        return
    else:
        _check_unanswered(st)
    no_body = code < 200 or code == 204 or code == 304
    if no_body:
        length = ""
        body = b""
    else:
        length = f"Content-Length: {len(body)}\r\n"
    if st is not None:
        close = close or st.resp_close or st.phase != _http._WAIT
        if st.method == "HEAD":
            body = b""
    head = f"{_status(code)}Date: {http_date()}\r\n{length}{extra}{_conn_header(st, close)}\r\n"
    c.send(head.encode("latin-1") + body if body else head.encode("latin-1"))
    if st is not None:
        _finish(c, st, close)


def _interim(c: Connection, st: _HttpState, code: int, extra: str) -> None:
    """Send a 1xx head (RFC 9110 15.2); it neither starts nor ends the response."""
    _check_unanswered(st)
    if not st.http10:  # RFC 9110 15.2: a server MUST NOT send a 1xx to an HTTP/1.0 client
        st.nq0 += c.send(f"{_status(code)}{extra}\r\n".encode("latin-1"))


def _finish(c: Connection, st: _http.HttpState, close: bool) -> None:
    st.resp_started = True
    st.resp_end = c._nq
    if close:
        st.resp_close = True
    if st.phase == _http._WAIT:
        _http.response_done(c)
    elif st.phase in (_http._BODY, _http._IDLE):
        # answered before the request was fully read: the rest of it cannot be trusted
        st.answered = True
        _http.linger_close(c, st)


def send_head(c: Connection, code: int, length: int = -1, headers: Headers = None) -> None:
    """Send a response head; the body follows with ``c.send`` (or chunks).

    ``length`` >= 0 sends ``Content-Length: length``; -1 starts a chunked
    response (HTTP/1.1 clients; end it with ``send_http_chunk(c, b"")``) or a
    close-delimited one for HTTP/1.0 clients.
    """
    st = c.proto_data
    extra, close = _user_headers(headers)
    if st.__class__ is not _http.HttpState:
        st = None
    elif 100 <= code < 200 and code != 101:
        _interim(c, st, code, extra)
        return
    else:
        _check_unanswered(st)
    no_body = code < 200 or code == 204 or code == 304
    chunked = False
    if no_body:
        framing = ""
        length = 0
    elif length >= 0:
        framing = f"Content-Length: {length}\r\n"
    elif st is None or not st.http10:
        framing = "Transfer-Encoding: chunked\r\n"
        chunked = True
    else:
        framing = ""
        close = True
    if st is not None:
        close = close or st.resp_close or st.phase != _http._WAIT
    head = f"{_status(code)}Date: {http_date()}\r\n{framing}{extra}{_conn_header(st, close)}\r\n"
    c.send(head.encode("latin-1"))
    if st is None:
        return
    st.resp_started = True
    st.resp_chunked = chunked
    st.resp_nobody = st.method == "HEAD" or no_body
    if close:
        st.resp_close = True
    if st.resp_nobody:
        # complete, but checked once the handler returns: a body it sends anyway
        # (mongoose style send_head + send on HEAD) is then dropped, not sent
        st.resp_end = c._nq
        st.resp_chunked = False
    elif length >= 0:
        st.resp_end = c._nq + length
    else:
        st.resp_end = -1  # ends with the last chunk / at close
    if st.phase == _http._WAIT and not st.resp_nobody:
        _http.check_done(c, st)


def send_http_chunk(c: Connection, data: bytes | bytearray | memoryview | str) -> None:
    """Send one chunk of a chunked response; an empty ``data`` ends the response."""
    if isinstance(data, str):
        data = data.encode()
    elif not isinstance(data, bytes):
        data = bytes(data)
    st = c.proto_data
    if st.__class__ is _http.HttpState and st.answered:
        raise LocalProtocolError("the response has ended (its last chunk was sent)")
    if st.__class__ is _http.HttpState and st.resp_nobody and not st.client:
        return  # RFC 9110 9.3.2, 15.3.5, 15.4.5: HEAD, 204 and 304 responses have no body
    if st.__class__ is _http.HttpState and not st.resp_chunked and st.resp_started:
        # close-delimited (HTTP/1.0 client): raw data, end = close
        if data:
            c.send(data)
        else:
            c._flags |= _SEND_AND_CLOSE
        return
    c.send(encode_chunk(data))
    if not data and st.__class__ is _http.HttpState and st.resp_chunked:
        st.resp_end = c._nq
        st.resp_chunked = False
        if st.phase == _http._WAIT:
            _http.response_done(c)


def http_send_error(c: Connection, code: int, reason: str | None = None) -> None:
    """Send an error response with a short text body.

    The connection is kept alive for errors that leave the request stream in a
    known state (404, 403, 405 ...) and closed for 400, 408, 413, 414, 431, 501, 505.
    """
    phrase = reason if reason is not None else reason_phrase(code) or "Error"
    body = f"{code} {phrase}\n".encode()
    headers: list[tuple[str, str]] = [("Content-Type", "text/plain; charset=utf-8")]
    if code == 426:
        headers.append(("Sec-WebSocket-Version", "13"))
    if code == 405:
        headers.append(("Allow", "GET, HEAD"))
    if code in _CLOSING_CODES:
        headers.append(("Connection", "close"))
    http_reply(c, code, body, headers)


def http_send_redirect(c: Connection, code: int, location: str, headers: Headers = None) -> None:
    """Send a redirect (301, 302, 303, 307, 308) to ``location`` with a small HTML body.

    Non-ASCII characters (a user's file name, say) are percent-encoded as UTF-8, as
    RFC 3987 3.1 maps an IRI to a URI; CR, LF and other controls raise
    ``LocalProtocolError`` like in any header.
    """
    if code not in (301, 302, 303, 307, 308):
        raise LocalProtocolError(f"{code} is not a redirect status")
    location = _NON_ASCII.sub(
        lambda m: quote(m.group(), safe="", errors="surrogateescape"), location
    )
    hs = normalize_headers(headers)
    hs.append(("Location", location))
    hs.append(("Content-Type", "text/html; charset=utf-8"))
    loc = html.escape(location, quote=True)
    body = f'<html><body>Moved to <a href="{loc}">{loc}</a></body></html>\n'
    http_reply(c, code, body, hs)

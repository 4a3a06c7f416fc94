"""Response helpers: http_reply, send_head, chunks, errors, redirects.

Every helper writes through ``c.send`` and tells the exchange (``exchange``) how long
the response is, so the protocol handler knows when it is complete (pipelining,
keep-alive).  Heads are built by ``exchange.head_for`` (one builder); application
headers are validated by ``heads.user_headers`` (CR/LF/CTL raise
``LocalProtocolError``).  ``Date`` is added to every response; ``Content-Length``,
``Transfer-Encoding`` and ``Connection`` are managed here (a ``Connection: close``
the application passes is honoured).
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING
from urllib.parse import quote

from ..errors import LocalProtocolError
from ..events import Headers
from ..proto.http1 import encode_chunk
from .exchange import (
    CLOSING_CODES,
    UPGRADE_REQUIRED,
    WAIT,
    HttpState,
    check_done,
    check_unanswered,
    error_body,
    finish,
    head_for,
    interim,
    reply,
    response_done,
)
from .heads import keepalive_head, normalize_headers, user_headers

if TYPE_CHECKING:
    from ..core import Connection

__all__ = [
    "http_reply",
    "http_send_error",
    "http_send_redirect",
    "send_head",
    "send_http_chunk",
]

_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def http_reply(c: Connection, code: int, body: bytes | str = b"", headers: Headers = None) -> None:
    """Send a complete response with ``Content-Length`` framing.

    Example::

        mgpy.http_reply(c, 200, '{"ok": true}', headers={"Content-Type": "application/json"})
    """
    if isinstance(body, str):
        body = body.encode()
    st = c.proto_data
    head, extra, close = keepalive_head(code, len(body), headers)
    if (
        st.__class__ is HttpState
        and st.phase == WAIT
        and not st.resp_started
        and st.keep_alive
        and not close
        and not st.resp_close
        and not st.http10
        and 200 <= code
        and code != 204
        and code != 304
        and code != UPGRADE_REQUIRED
        and st.method != "HEAD"
    ):
        # the common case: a keep-alive HTTP/1.1 answer with a body
        c.send(head.encode("latin-1") + body)
        st.status = code
        st.resp_started = True
        st.resp_end = c.total_queued
        response_done(c, st)
        return
    reply(c, st if st.__class__ is HttpState else None, code, body, extra, close)


def send_head(c: Connection, code: int, length: int = -1, headers: Headers = None) -> None:
    """Send a response head; the body follows with ``c.send`` (or chunks).

    ``length`` >= 0 sends ``Content-Length: length``; -1 starts a chunked
    response (HTTP/1.1 clients; end it with ``send_http_chunk(c, b"")``) or a
    close-delimited one for HTTP/1.0 clients.  Anything else (a float, a bool, a
    number below -1) raises ``LocalProtocolError``: the head would promise a body
    length the bytes cannot match.
    """
    if length.__class__ is not int or length < -1:
        raise LocalProtocolError(f"send_head length must be an int >= -1, got {length!r}")
    st = c.proto_data
    extra, close = user_headers(headers)
    if st.__class__ is not HttpState:
        st = None
    elif 100 <= code < 200 and code != 101:
        interim(c, st, code, extra)
        return
    else:
        check_unanswered(st)
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
        close = close or st.resp_close or st.phase != WAIT
    c.send(head_for(st, code, framing + extra, close).encode("latin-1"))
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
        st.resp_end = c.total_queued
        st.resp_chunked = False
    elif length >= 0:
        st.resp_end = c.total_queued + length
    else:
        st.resp_end = -1  # ends with the last chunk / at close
    if st.phase == WAIT and not st.resp_nobody:
        check_done(c, st)


def send_http_chunk(c: Connection, data: bytes | bytearray | memoryview | str) -> None:
    """Send one chunk of a chunked response; an empty ``data`` ends the response.

    Raises ``LocalProtocolError`` before any head was sent on an HTTP connection
    (the chunk would reach the client as a malformed response) and after the last
    chunk.
    """
    if isinstance(data, str):
        data = data.encode()
    elif not isinstance(data, bytes):
        data = bytes(data)
    st = c.proto_data
    if st.__class__ is HttpState:
        if st.answered:
            raise LocalProtocolError("the response has ended (its last chunk was sent)")
        if not st.resp_started and not st.client:
            raise LocalProtocolError("send_http_chunk() before send_head(c, code)")
        if st.resp_nobody and not st.client:
            return  # RFC 9110 9.3.2, 15.3.5, 15.4.5: HEAD, 204 and 304 responses have no body
        if not st.resp_chunked and st.resp_started:
            # close-delimited (HTTP/1.0 client): raw data, end = close
            if data:
                c.send(data)
            else:
                c.close()
            return
    c.send(encode_chunk(data))
    if not data and st.__class__ is HttpState and st.resp_chunked:
        st.resp_end = c.total_queued
        st.resp_chunked = False
        if st.phase == WAIT:
            response_done(c, st)


def http_send_error(
    c: Connection, code: int, reason: str | None = None, headers: Headers = None
) -> None:
    """Send an error response with a short text body.

    The connection is kept alive for errors that leave the request stream in a
    known state (404, 403, 405 ...) and closed for 400, 408, 413, 414, 431, 501, 505.
    ``headers`` are added; a 405 without an ``Allow`` header gets ``Allow: GET, HEAD``
    (say what the resource allows: ``headers={"Allow": "GET, POST"}``).  A 426 says
    ``Upgrade: websocket`` (unless ``headers`` name another protocol),
    ``Connection: upgrade`` and ``Sec-WebSocket-Version: 13``: the answer to a plain GET
    on a WebSocket-only path.

    Example::

        mgpy.http_send_error(c, 405, headers={"Allow": "POST"})
    """
    hs = normalize_headers(headers)
    names = {k.lower() for k, _ in hs}
    if "content-type" not in names:
        hs.append(("Content-Type", "text/plain; charset=utf-8"))
    if code == UPGRADE_REQUIRED:
        if "upgrade" not in names:
            hs.append(("Upgrade", "websocket"))  # RFC 9110 15.5.22: a 426 MUST send Upgrade
        if "sec-websocket-version" not in names:
            hs.append(("Sec-WebSocket-Version", "13"))
    if code == 405 and "allow" not in names:
        hs.append(("Allow", "GET, HEAD"))
    if code in CLOSING_CODES:
        hs.append(("Connection", "close"))
    http_reply(c, code, error_body(code, reason), hs)


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


def reply_fields(c: Connection, code: int, fields: str, body: bytes) -> None:
    """``http_reply`` for header text validated in advance (static files' hot path).

    ``fields`` is ``"Name: value\\r\\n"`` lines without Date, Content-Length or
    Connection.  HEAD gets the same Content-Length and no body.
    """
    st = c.proto_data
    if st.__class__ is not HttpState:
        st = None
    close = False
    if st is not None:
        check_unanswered(st)
        close = st.resp_close or st.phase != WAIT
    head = head_for(st, code, f"Content-Length: {len(body)}\r\n{fields}", close)
    if st is not None and st.method == "HEAD":
        c.send(head.encode("latin-1"))
    else:
        c.send(head.encode("latin-1") + body)
    if st is not None:
        finish(c, st, close)

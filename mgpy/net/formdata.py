"""Streaming multipart/form-data glue: the HTTP_PART_* events.

A request with ``Content-Type: multipart/form-data`` is not buffered: its
(de-chunked) body goes through ``mgpy.proto.multipart.MultipartParser`` and the
handler sees::

    HTTP_MULTIPART_REQUEST (HttpMessage, headers only)
    per part: HTTP_PART_BEGIN, HTTP_PART_DATA*, HTTP_PART_END (status 0)
    HTTP_MULTIPART_REQUEST_END (status 0)

then answers as for any request.  If the connection drops or the body is
malformed, the open part gets HTTP_PART_END with status -1 and
HTTP_MULTIPART_REQUEST_END follows with status -1 (a malformed body is also
answered 400 and the connection closes).

Flow control: in HTTP_PART_DATA the handler may set ``part.num_data_consumed``
lower than ``len(part.data)``; the rest is delivered again on later polls and
reading from the socket stays paused until it is all consumed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..errors import ProtocolError, RemoteProtocolError
from ..events import Ev, F, HttpMessage, MultipartPart
from ..proto import multipart as _mp
from . import http as _http

if TYPE_CHECKING:
    from .conn import Connection

__all__ = ["MpState"]

log = logging.getLogger("mgpy")

EV_MULTIPART_REQUEST = Ev.HTTP_MULTIPART_REQUEST
EV_PART_BEGIN = Ev.HTTP_PART_BEGIN
EV_PART_DATA = Ev.HTTP_PART_DATA
EV_PART_END = Ev.HTTP_PART_END
EV_MULTIPART_REQUEST_END = Ev.HTTP_MULTIPART_REQUEST_END

_CLOSING = int(F.SEND_AND_CLOSE | F.CLOSE_IMMEDIATELY)


class MpState:
    """Per-request multipart state (internal), in ``HttpState.mp``."""

    __slots__ = ("parser", "buf", "part", "pending", "body_done", "ended", "hm")

    def __init__(self, parser: _mp.MultipartParser, hm: HttpMessage) -> None:
        self.parser = parser
        self.buf = bytearray()
        self.part: MultipartPart | None = None
        self.pending = b""  # data the handler has not consumed yet
        self.body_done = False  # the HTTP body ended (END seen)
        self.ended = False  # MULTIPART_REQUEST_END delivered
        self.hm = hm


def mp_start(c: Connection, st: _http.HttpState, hm: HttpMessage, ctype: str) -> bool:
    """A multipart request head arrived: set up the parser and fire HTTP_MULTIPART_REQUEST."""
    try:
        boundary = _mp.boundary_from_content_type(ctype)
        parser = _mp.MultipartParser(boundary, c.limits)
    except ProtocolError as e:
        _http._protocol_error(c, st, RemoteProtocolError(str(e), 400))
        return False
    st.mp = MpState(parser, hm)
    st.h = _http._route(st, c, hm.uri)
    st.nq0 = c._nq
    if hm.expect_continue:
        c.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        hm.expect_continue = False
    if st.endpoints:
        opts = _http._endpoint_opts(st, st.h)
        if opts and opts.get("auth_file"):
            st.phase = _http._WAIT
            if not _http._auth.endpoint_auth_ok(c, hm, opts):
                st.mp = None
                return False
            st.phase = _http._BODY
    st.h(c, EV_MULTIPART_REQUEST, hm)
    return True


def mp_data(c: Connection, st: _http.HttpState, data: bytes) -> None:
    """Body bytes of a multipart request arrived."""
    mp = st.mp
    mp.buf += data
    _run(c, st, mp)


def mp_end(c: Connection, st: _http.HttpState) -> None:
    """The HTTP body ended."""
    mp = st.mp
    mp.body_done = True
    st.hm = None
    st.body = None
    _run(c, st, mp)


def mp_poll(c: Connection, st: _http.HttpState) -> None:
    """On POLL: re-deliver data the handler did not consume, then resume parsing."""
    mp = st.mp
    if mp is None or not mp.pending or c._closed:
        return
    _redeliver(c, st, mp)
    if not mp.pending and st.mp is mp:
        _run(c, st, mp)
        if not mp.pending and st.phase == _http._BODY and c.recv_mbuf._buf:
            _http._server_recv(c, st)


def mp_paused(st: _http.HttpState) -> bool:
    """True while the handler has unconsumed part data (reading stays paused)."""
    mp = st.mp
    return mp is not None and bool(mp.pending)


def _redeliver(c: Connection, st: _http.HttpState, mp: MpState) -> None:
    part = mp.part
    data = mp.pending
    if part is None:
        mp.pending = b""
        return
    part.data = data
    part.num_data_consumed = len(data)
    st.h(c, EV_PART_DATA, part)
    used = max(0, min(part.num_data_consumed, len(data)))
    mp.pending = data[used:]


def _run(c: Connection, st: _http.HttpState, mp: MpState) -> None:
    if mp.pending:
        return
    parser = mp.parser
    buf = mp.buf
    h = st.h
    while not c._flags & _CLOSING:
        try:
            ev, n = parser.next_event(buf, mp.body_done)
        except ProtocolError as e:
            _http._protocol_error(c, st, RemoteProtocolError(f"multipart: {e}", 400))
            return
        if n:
            del buf[:n]
        if ev is _mp.NEED_DATA:
            return
        cls = ev.__class__
        if cls is bytes:
            part = mp.part
            assert part is not None
            part.data = ev  # type: ignore[assignment]
            part.num_data_consumed = len(ev)  # type: ignore[arg-type]
            h(c, EV_PART_DATA, part)
            used = part.num_data_consumed
            if used < len(ev):  # type: ignore[arg-type]
                mp.pending = ev[max(0, used) :]  # type: ignore[index]
                return
        elif cls is _mp.PartBegin:
            mp.part = MultipartPart(ev.name, ev.filename, b"", 0, ev.headers)  # type: ignore[union-attr]
            h(c, EV_PART_BEGIN, mp.part)
        elif cls is _mp.PartEnd:
            part = mp.part
            if part is not None:
                part.data = b""
                part.status = 0
                h(c, EV_PART_END, part)
                mp.part = None
        elif cls is _mp.MultipartEnd:
            if mp.body_done:
                _finish(c, st, mp, 0)
                return


def _finish(c: Connection, st: _http.HttpState, mp: MpState, status: int) -> None:
    """Deliver MULTIPART_REQUEST_END; with status 0 the request now awaits its response."""
    if mp.ended:
        return
    mp.ended = True
    st.mp = None
    end = MultipartPart(None, None, b"", status)
    if status == 0:
        st.phase = _http._WAIT
        nq0 = st.nq0
        try:
            st.h(c, EV_MULTIPART_REQUEST_END, end)
        except Exception:
            _http._app_error(c, st, "HTTP_MULTIPART_REQUEST_END")
            return
        if st.phase == _http._WAIT:
            if not st.resp_started and c._nq != nq0:
                _http.response_done(c)
            else:
                _http.check_done(c, st)
    else:
        st.h(c, EV_MULTIPART_REQUEST_END, end)


def mp_abort(c: Connection, st: _http.HttpState) -> None:
    """The request ended badly (connection dropped, malformed body): status -1 events."""
    mp = st.mp
    if mp is None or mp.ended:
        st.mp = None
        return
    part = mp.part
    mp.part = None
    mp.pending = b""
    h: Any = st.h
    if part is not None:
        part.data = b""
        part.status = -1
        try:
            h(c, EV_PART_END, part)
        except Exception:
            log.exception("handler raised on HTTP_PART_END for %r", c)
    mp.ended = True
    st.mp = None
    try:
        h(c, EV_MULTIPART_REQUEST_END, MultipartPart(None, None, b"", -1))
    except Exception:
        log.exception("handler raised on HTTP_MULTIPART_REQUEST_END for %r", c)


def file_upload_handler(name_fn: Any, max_file_size: int | None = None) -> Any:
    """Placeholder: being written."""

    def handler(c: Connection, ev: Any, ev_data: Any) -> None:
        if ev == EV_MULTIPART_REQUEST_END and ev_data.status == 0:
            from .respond import http_reply

            http_reply(c, 501, '{"ok":false,"error":"not implemented yet"}')

    return handler

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

The server decides the head first (``exchange``: routing, the endpoint's auth,
HTTP_HEADERS); HTTP_MULTIPART_REQUEST comes after them.  An application that
answers before the body has been read (a 404 at HTTP_MULTIPART_REQUEST, a 413 for
a quota) ends the request: it gets the status -1 events at once, and the rest of
the body is read and discarded before the connection closes
(``exchange.linger_close``), so the client sees the answer instead of a reset.
``Expect: 100-continue`` is answered (``exchange.read_body``) only once
HTTP_MULTIPART_REQUEST let the request go on.

Flow control: in HTTP_PART_DATA the handler may set ``part.num_data_consumed``
lower than ``len(part.data)``; the rest is delivered again and reading from
the socket stays paused until it is all consumed.  A handler that consumed
some gets the rest in the next poll round; one that consumed nothing gets it
again on each POLL (it is waiting for something: no busy loop).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..errors import ProtocolError, RemoteProtocolError
from ..events import Ev, F, HttpMessage, MultipartPart
from ..proto import multipart as _mp
from .exchange import (
    BODY,
    DEAD,
    WAIT,
    HttpState,
    app_error,
    await_response,
    check_done,
    head_answered,
    linger_close,
    parse_more,
    protocol_error,
)

if TYPE_CHECKING:
    from ..core import Connection

__all__ = ["MpState", "mp_parser", "mp_start"]

log = logging.getLogger("mgpy")

EV_HTTP_MULTIPART_REQUEST = Ev.HTTP_MULTIPART_REQUEST
EV_HTTP_PART_BEGIN = Ev.HTTP_PART_BEGIN
EV_HTTP_PART_DATA = Ev.HTTP_PART_DATA
EV_HTTP_PART_END = Ev.HTTP_PART_END
EV_HTTP_MULTIPART_REQUEST_END = Ev.HTTP_MULTIPART_REQUEST_END


class MpState:
    """Per-request multipart state (internal), in ``HttpState.mp``."""

    __slots__ = ("body_done", "buf", "ended", "hm", "parser", "part", "pending", "soon")

    def __init__(self, parser: _mp.MultipartParser, hm: HttpMessage) -> None:
        self.parser = parser
        self.buf = bytearray()
        self.part: MultipartPart | None = None
        self.pending = b""  # data the handler has not consumed yet
        self.body_done = False  # the HTTP body ended (END seen)
        self.ended = False  # MULTIPART_REQUEST_END delivered
        self.hm = hm
        self.soon = False  # a redelivery is scheduled for the next poll round

    # the calls the protocol handler and the exchange make (st.mp.<name>)
    def data(self, c: Connection, st: HttpState, data: bytes) -> None:
        """Body bytes of the multipart request arrived."""
        self.buf += data
        _run(c, st, self)

    def end(self, c: Connection, st: HttpState) -> None:
        """The HTTP body ended."""
        self.body_done = True
        st.hm = None
        st.body = None
        _run(c, st, self)

    def poll(self, c: Connection, st: HttpState) -> None:
        """On POLL/SEND: re-deliver data the handler did not consume, then resume parsing."""
        _poll(c, st, self)

    def abort(self, c: Connection, st: HttpState) -> None:
        """The request ended badly (connection dropped, malformed body): status -1 events."""
        mp_abort(c, st)


def mp_parser(c: Connection, st: HttpState, ctype: str) -> _mp.MultipartParser | None:
    """The parser of a multipart request's body, or None after answering 400 (bad boundary)."""
    try:
        return _mp.MultipartParser(_mp.boundary_from_content_type(ctype), c.limits)
    except ProtocolError as e:
        protocol_error(c, st, RemoteProtocolError(str(e), 400))
        return None


def mp_start(c: Connection, st: HttpState, hm: HttpMessage, parser: _mp.MultipartParser) -> bool:
    """Fire HTTP_MULTIPART_REQUEST (the request is routed, authenticated, past HTTP_HEADERS).

    Returns False when the request ended there (the handler answered or raised).
    """
    mp = st.mp = MpState(parser, hm)
    st.nq0 = c.total_queued
    if not _emit(c, st, mp, EV_HTTP_MULTIPART_REQUEST, hm):
        return False
    if head_answered(c, st):  # a raw answer, or a head whose body comes later
        mp_abort(c, st)
        return False
    return True


def _poll(c: Connection, st: HttpState, mp: MpState) -> None:
    if st.mp is not mp or not mp.pending or c.closed or st.in_recv:
        return
    if not _redeliver(c, st, mp) or mp.pending:
        return
    _run(c, st, mp)
    if st.mp is mp and not mp.pending and st.phase == BODY:
        parse_more(c, st)


def _emit(c: Connection, st: HttpState, mp: MpState, ev: Ev, data: Any) -> bool:
    """Deliver one event; return False if the request stopped (answered early, closing)."""
    try:
        st.h(c, ev, data)
    except Exception:
        app_error(c, st, ev.name)  # 500 and close
        mp_abort(c, st)
        return False
    if st.mp is mp and st.phase == BODY and not c.is_closing:
        return True
    _stopped(c, st)
    return False


def _stopped(c: Connection, st: HttpState) -> None:
    """The application answered before the body was read: abort the parts, discard the rest."""
    if (
        st.phase != DEAD
        or not st.resp_started
        or c.flags & F.CLOSE_IMMEDIATELY
        or c.error_reason is not None
    ):
        return  # still reading, closing anyway, or a protocol error (already handled)
    mp_abort(c, st)
    if not st.linger and not c.peer_eof:
        c.flags &= ~F.SEND_AND_CLOSE  # not a plain close: drain the unread body first
        linger_close(c, st)


def _redeliver(c: Connection, st: HttpState, mp: MpState) -> bool:
    part = mp.part
    data = mp.pending
    if part is None:
        mp.pending = b""
        return True
    part.data = data
    part.num_data_consumed = len(data)
    mp.pending = b""
    if not _emit(c, st, mp, EV_HTTP_PART_DATA, part):
        return False
    used = max(0, min(part.num_data_consumed, len(data)))
    mp.pending = data[used:]
    if used and mp.pending:
        _schedule(c, mp)
    return True


def _schedule(c: Connection, mp: MpState) -> None:
    """The handler made progress but left data: redeliver in the next poll round, not a
    POLL interval later.  A handler that consumed nothing waits for POLL (no busy loop)."""
    if not mp.soon:
        mp.soon = True
        c.call_soon(_soon, c, mp)


def _soon(c: Connection, mp: MpState) -> None:
    mp.soon = False
    st = c.proto_data
    if isinstance(st, HttpState) and st.mp is mp:
        _poll(c, st, mp)


def _run(c: Connection, st: HttpState, mp: MpState) -> None:
    """Parse what is buffered and deliver the events, until NEED_DATA or a pause."""
    if mp.pending:
        return
    parser = mp.parser
    buf = mp.buf
    while True:
        try:
            ev, n = parser.next_event(buf, mp.body_done)
        except ProtocolError as e:
            protocol_error(c, st, RemoteProtocolError(f"multipart: {e}", 400))
            return
        if n:
            del buf[:n]
        if ev is _mp.NEED_DATA:
            if mp.body_done and parser.done:
                _finish(c, st, mp, 0)  # the close delimiter came before the body's end
            return
        cls = ev.__class__
        if cls is bytes:
            part = mp.part
            assert part is not None
            data: bytes = ev  # type: ignore[assignment]
            part.data = data
            part.num_data_consumed = len(data)
            if not _emit(c, st, mp, EV_HTTP_PART_DATA, part):
                return
            used = part.num_data_consumed
            if used < len(data):
                mp.pending = data[max(0, used) :]
                if used > 0:
                    _schedule(c, mp)
                return
        elif cls is _mp.PartBegin:
            pb: _mp.PartBegin = ev  # type: ignore[assignment]
            mp.part = MultipartPart(pb.name, pb.filename, b"", 0, pb.headers)
            if not _emit(c, st, mp, EV_HTTP_PART_BEGIN, mp.part):
                return
        elif cls is _mp.PartEnd:
            part = mp.part
            if part is not None:
                part.data = b""
                part.status = 0
                mp.part = None
                if not _emit(c, st, mp, EV_HTTP_PART_END, part):
                    return
        elif cls is _mp.MultipartEnd and mp.body_done:
            _finish(c, st, mp, 0)
            return


def _finish(c: Connection, st: HttpState, mp: MpState, status: int) -> None:
    """Deliver MULTIPART_REQUEST_END; with status 0 the request now awaits its response."""
    if mp.ended:
        return
    mp.ended = True
    st.mp = None
    end = MultipartPart(None, None, b"", status)
    if status == 0:
        await_response(c, st, st.h)
        try:
            st.h(c, EV_HTTP_MULTIPART_REQUEST_END, end)
        except Exception:
            app_error(c, st, "HTTP_MULTIPART_REQUEST_END")
            return
        if st.phase == WAIT:
            check_done(c, st)
    else:
        st.h(c, EV_HTTP_MULTIPART_REQUEST_END, end)


def mp_abort(c: Connection, st: HttpState) -> None:
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
            h(c, EV_HTTP_PART_END, part)
        except Exception:
            log.exception("handler raised on HTTP_PART_END for %r", c)
    mp.ended = True
    st.mp = None
    try:
        h(c, EV_HTTP_MULTIPART_REQUEST_END, MultipartPart(None, None, b"", -1))
    except Exception:
        log.exception("handler raised on HTTP_MULTIPART_REQUEST_END for %r", c)

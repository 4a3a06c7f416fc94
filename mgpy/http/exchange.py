"""The HTTP exchange state machine: everything that moves a connection's HTTP state lives here.

Like h11's ``_state.py``: every phase change, every reset between requests, the
decision to keep a connection alive or close it, the response-head builder and the
timeouts are written once, in this module; the protocol handler (``server``), the
response helpers (``respond``), multipart, static files, the client and the WebSocket
upgrade call these functions instead of touching the state themselves.

Per connection (``c.proto_data``, an ``HttpState``), server side::

    IDLE --head, no body----------> WAIT --response complete--> IDLE (keep-alive)
    IDLE --head with a body-------> BODY --body complete------> WAIT
                                    BODY --answered from the head--> DEAD (body unread)
    IDLE --Upgrade (registered)---> WAIT --101 sent-----------> UPGRADED (another protocol
                                                                 owns the connection now)
    any  --protocol error / 408 / handler exception / Connection: close--> DEAD

Refusing on the head.  A request with a body is decided at its head first
(``begin_body``): routing and the endpoint's auth (401), ``HTTP_HEADERS`` (the
application may answer anything: 404, 405 ...), ``HTTP_MULTIPART_REQUEST``, and a
declared Content-Length above ``Limits.max_body`` for a handler that buffers (413).
An answer given then ends the request (``head_answered``): the body is not read, the
connection closes once the answer is written (lingering).  Only when all of them let
the request go on is the body read, and only then does a client that sent
``Expect: 100-continue`` get its ``100 Continue`` (``read_body``, RFC 9110 10.1.1):
never a 100 before a final status the head already decided.

A response is tracked by byte count: ``resp_end`` is the ``c.total_queued`` value at
which it is complete (-1: unknown yet, e.g. chunked until the last chunk), so the next
pipelined request is parsed only once the current response is complete, and a second
response to one request raises ``LocalProtocolError`` (``answered``).  A handler that
writes a raw response with ``c.send`` is taken to have answered when it returns.

Errors answer with the status the core names and close with a lingering close
(RFC 9112 9.6): our write side is shut down once the answer is written, and input is
drained until the client closes (at most ``_LINGER_TIMEOUT`` idle, ``_LINGER_TIME`` in
all).  Timeouts (``Limits``): ``header_timeout`` from the first byte of a head
(slowloris), ``keepalive_timeout`` while idle, ``body_timeout`` between body reads;
one ``TimerHandle`` per connection carries whichever applies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import Error, LocalProtocolError, ProtocolError
from ..events import F, HttpMessage
from ..proto.http1 import HttpReader, reason_phrase
from .access import access_log_enabled, log_exchange
from .heads import response_head, status_text

if TYPE_CHECKING:
    from ..core import Connection, Handler, TimerHandle

__all__ = [
    "BODY",
    "DEAD",
    "IDLE",
    "UPGRADED",
    "UPGRADE_REQUIRED",
    "WAIT",
    "HttpListener",
    "HttpState",
    "app_error",
    "arm_header",
    "arm_idle",
    "arm_timer",
    "await_response",
    "begin_body",
    "begin_request",
    "check_done",
    "check_unanswered",
    "finish",
    "head_answered",
    "head_for",
    "install_parser",
    "linger_close",
    "may_answer",
    "parse_more",
    "protocol_error",
    "read_body",
    "reply",
    "require_state",
    "response_done",
    "send_error",
    "take_handler",
    "upgrade_accepted",
    "upgrade_refused",
]

log = logging.getLogger("mgpy")

# phases of a connection's exchange
IDLE = 0  # waiting for a request head (keep-alive idle if nothing is buffered)
BODY = 1  # receiving a request body
WAIT = 2  # request dispatched, response not complete yet
DEAD = 4  # closing (error answered, or the last response); input is ignored
UPGRADED = 5  # switched to another protocol (WebSocket): HTTP is done with it

#: RFC 9112 9.6 lingering close after an error answer (nginx lingering_timeout 5 s,
#: lingering_time 30 s): longest silence, and longest total time, spent draining
_LINGER_TIMEOUT = 5.0
_LINGER_TIME = 30.0

#: 426 Upgrade Required: its head names the protocol to upgrade to (RFC 9110 15.5.22)
UPGRADE_REQUIRED = 426

#: statuses after which the connection cannot be trusted to continue (framing unknown)
CLOSING_CODES = frozenset((400, 408, 413, 414, 431, 501, 505))

_REQUESTS = "http.requests"  # Manager.counters key


class HttpState:
    """Per-connection HTTP state, stored in ``c.proto_data``."""

    __slots__ = (
        "answered",
        "body",
        "client",
        "client_x",
        "endpoints",
        "h",
        "hdr_armed",
        "hm",
        "http10",
        "in_recv",
        "keep_alive",
        "linger",
        "log",
        "mark",
        "method",
        "mp",
        "nq0",
        "phase",
        "reader",
        "resp_chunked",
        "resp_close",
        "resp_end",
        "resp_nobody",
        "resp_started",
        "status",
        "t0",
        "timer",
        "upgrade",
        "uri",
    )

    def __init__(self, c: Connection, client: bool) -> None:
        self.client = client
        self.reader: HttpReader | None = HttpReader("client" if client else "server", c.limits)
        #: the handler of the current request (an endpoint's, else the connection's)
        self.h: Handler = c.handler
        self.phase = IDLE
        self.hm: HttpMessage | None = None
        self.body: bytearray | None = None
        self.mark = 0
        self.method = "GET"
        self.keep_alive = True
        self.http10 = False
        self.nq0 = 0
        self.resp_end = -1
        self.resp_chunked = False
        self.resp_started = False
        self.resp_close = False
        self.resp_nobody = False  # the response may carry no body (HEAD, 1xx, 204, 304)
        #: the current request's response is complete: another one would be a stray
        #: response (the client would take it for the answer to its next request)
        self.answered = False
        self.in_recv = False
        self.hdr_armed = False
        lst = c.listener
        eps = None
        if lst is not None and isinstance(lst.proto_data, HttpListener):
            eps = lst.proto_data.endpoints or None
        self.endpoints: list[Any] | None = eps
        self.mp: Any = None  # multipart state while a form is streaming
        self.client_x: Any = None  # client side: the request to send, auth retry state
        self.upgrade: Any = None  # the upgrading protocol's pending state (WebSocket key...)
        self.linger = 0.0  # lingering close: the monotonic time it ends (0: not lingering)
        self.timer: TimerHandle | None = None  # the one protocol deadline of this connection
        #: access log (``access.enable_access_log``): request start, path and status
        self.log = access_log_enabled(c.mgr)
        self.t0 = 0.0
        self.uri = ""
        self.status = 0

    def hold_on_eof(self, c: Connection) -> bool:
        """The client half-closed: keep ``c`` open if an answer is still pending.

        A client may shut its sending side right after its request and still read
        the response; an answer given later (a timer, another connection) must reach
        it.  The connection then closes once that response is complete.
        """
        if self.client or self.phase != WAIT:
            return False
        self.keep_alive = False
        return True

    def reclaimable(self, c: Connection) -> bool:
        """Idle between requests, nothing buffered: may be closed to make room.

        Asked by the core only when accept() is out of descriptors (docs/protocols.md):
        the longest-idle keep-alive connections go first, as nginx drains them.
        """
        return self.phase == IDLE and not self.client and not c.recv_mbuf.buf


class HttpListener:
    """``proto_data`` of an HTTP listener: its registered endpoints."""

    __slots__ = ("endpoints",)

    def __init__(self) -> None:
        self.endpoints: list[Any] = []


def log_done(c: Connection, st: HttpState) -> None:
    """Write the access line of the exchange that just ended (``st.log`` is set)."""
    proto = "HTTP/1.0" if st.http10 else "HTTP/1.1"
    seconds = c.mgr.monotonic - st.t0 if st.t0 else 0.0
    nbytes = max(0, c.total_queued - st.nq0)
    log_exchange(c.peer, st.method if st.uri else "", st.uri, proto, st.status, nbytes, seconds)
    st.uri = ""


def require_state(c: Connection) -> HttpState:
    """Return ``c``'s HttpState or raise LocalProtocolError if it does not speak HTTP."""
    st = c.proto_data
    if not isinstance(st, HttpState):
        raise LocalProtocolError(
            "connection does not speak HTTP: call set_protocol_http_websocket()"
        )
    return st


_parse: Callable[[Connection, HttpState], None] | None = None


def install_parser(fn: Callable[[Connection, HttpState], None]) -> None:
    """The server module plugs in its request parser (called to resume pipelined input)."""
    global _parse
    _parse = fn


# --------------------------------------------------------------------------------
# a request's life
# --------------------------------------------------------------------------------
def begin_request(c: Connection, st: HttpState, hm: HttpMessage) -> None:
    """A request head arrived: reset the per-request state (the one reset there is)."""
    counters = c.mgr.counters
    counters[_REQUESTS] = counters.get(_REQUESTS, 0) + 1
    st.hdr_armed = False
    st.method = hm.method
    st.keep_alive = hm.keep_alive
    st.http10 = hm.proto == "HTTP/1.0"
    st.resp_started = False
    st.answered = False
    if st.log:
        st.t0 = c.mgr.monotonic
        st.uri = hm.uri
        st.status = 0


def begin_body(c: Connection, st: HttpState, hm: HttpMessage) -> None:
    """The head of a request with a body arrived: decide it on the head, then read it."""
    st.phase = BODY
    st.hm = hm
    st.body = bytearray()
    st.mark = 0
    st.nq0 = c.total_queued  # a raw c.send from a head-time event is an answer
    t = c.limits.body_timeout
    if t:
        arm_timer(c, st, t)


def take_handler(c: Connection, st: HttpState, h: Handler) -> None:
    """The request (still in BODY) goes to handler ``h`` (``endpoints.dispatch_handler``)."""
    st.h = h


def head_answered(c: Connection, st: HttpState) -> bool:
    """After a head-time event: True if the request ended there (answered, or failing).

    A complete answer has already moved the exchange on (``finish``: the body is not
    read, the connection closes after lingering); so has an error.  A raw ``c.send``
    counts as a complete answer, as in WAIT.  A head sent without its whole body yet
    (``send_head`` then data later) makes the exchange wait for the rest of that
    response, the request's body unread, and close after it.
    """
    if st.phase != BODY or c.is_closing:
        return True
    if st.resp_started:
        st.phase = WAIT
        st.keep_alive = False
        st.hm = st.body = None
        check_done(c, st)
        return True
    if c.total_queued != st.nq0:
        st.answered = True
        if st.log:
            log_done(c, st)
        linger_close(c, st)
        return True
    return False


def read_body(c: Connection, st: HttpState) -> None:
    """Every head-time decision let the request go on: its body is read now.

    RFC 9110 10.1.1: a client that sent ``Expect: 100-continue`` waits for 100
    (Continue) or a final status; the 100 is sent here, once, and only for a body the
    server will read -- a request answered from its head never gets one first.
    """
    hm = st.hm
    if hm is not None and hm.expect_continue and st.phase == BODY and not c.is_closing:
        interim(c, st, 100, "")


def start_request(c: Connection, st: HttpState, hm: HttpMessage) -> Handler:
    """A bodiless request for the connection's own handler: ``begin_request`` then
    ``await_response`` in one call (the hot path); returns the handler."""
    counters = c.mgr.counters
    counters[_REQUESTS] = counters.get(_REQUESTS, 0) + 1
    h = st.h = c.handler
    st.hdr_armed = st.answered = False
    st.method = hm.method
    st.keep_alive = hm.keep_alive
    st.http10 = hm.proto == "HTTP/1.0"
    if st.log:
        st.t0 = c.mgr.monotonic
        st.uri = hm.uri
        st.status = 0
    st.phase = WAIT
    st.resp_end = -1
    st.resp_started = st.resp_chunked = st.resp_close = st.resp_nobody = False
    st.hm = None
    st.nq0 = c.total_queued
    return h


def await_response(c: Connection, st: HttpState, h: Handler) -> None:
    """The request goes to handler ``h`` now; its response is what comes next."""
    st.h = h
    st.phase = WAIT
    st.resp_end = -1
    st.resp_started = st.resp_chunked = st.resp_close = st.resp_nobody = False
    st.hm = None
    st.nq0 = c.total_queued


def check_done(c: Connection, st: HttpState) -> None:
    """Finish the current response if its last byte has been queued.

    A response started with the helpers ends when its Content-Length worth of
    body was queued (or its last chunk); a handler that wrote a raw response
    with ``c.send`` is taken to have answered in full.
    """
    if st.resp_started:
        end = st.resp_end
        nq = c.total_queued
        if 0 <= end <= nq:
            if end != nq:
                _overrun(c, st, nq - end)
            response_done(c, st)
    elif c.total_queued != st.nq0:
        response_done(c, st)


def _overrun(c: Connection, st: HttpState, n: int) -> None:
    """The handler sent ``n`` bytes past the end of its response: drop them, or close.

    A body after a HEAD head (send_head + c.send, mongoose style), or a Content-Length
    counted in characters for a UTF-8 body, would otherwise reach a keep-alive client
    as the start of the next response (response splitting with the body's bytes).
    The excess is removed while it is still queued; if some already left, the
    connection closes after this response.
    """
    cut = c.unsend(n)
    if cut < n:
        st.resp_close = True
        log.warning("%r: %d bytes were sent past the end of the response; closing", c, n)
    elif st.resp_nobody:
        log.debug("%r: body of a HEAD/204/304 response dropped", c)
    else:
        log.warning("%r: %d bytes past the response's Content-Length dropped", c, n)


def response_done(c: Connection, st: HttpState) -> None:
    """The response to the current request is complete: close or read the next request."""
    if st.phase != WAIT:
        return
    st.answered = True
    if st.log:
        log_done(c, st)
    if not st.keep_alive or st.resp_close:
        if c.recv_mbuf.buf:
            linger_close(c, st)  # the client sent more (pipelined) than will be answered
        else:
            c.close()
            st.phase = DEAD
        return
    st.phase = IDLE
    st.resp_started = False
    st.hdr_armed = False
    t = c.limits.keepalive_timeout
    if t:
        tm = st.timer  # arm_timer inlined: this runs once per request
        if tm is None:
            st.timer = c.call_later(t, _expired, c, st)
        else:
            try:
                tm.reschedule(t)
            except Error:  # cancelled: a fresh handle
                st.timer = c.call_later(t, _expired, c, st)
    elif st.timer is not None:
        st.timer.cancel()
        st.timer = None
    if c.recv_mbuf.buf and not st.in_recv:
        c.call_soon(_resume, c, st)


def _resume(c: Connection, st: HttpState) -> None:
    if c.proto_data is st and st.phase == IDLE:
        parse_more(c, st)


def parse_more(c: Connection, st: HttpState) -> None:
    """Parse what is buffered now (after a pause: pipelining, unconsumed part data)."""
    if _parse is not None:
        _parse(c, st)


def finish(c: Connection, st: HttpState, close: bool) -> None:
    """A whole response (head and body) has been queued: complete the exchange."""
    st.resp_started = True
    st.resp_end = c.total_queued
    if close:
        st.resp_close = True
    if st.phase == WAIT:
        response_done(c, st)
    elif st.phase in (BODY, IDLE):
        # answered before the request was fully read: the rest of it cannot be trusted
        st.answered = True
        if st.log:
            log_done(c, st)
        linger_close(c, st)


def may_answer(c: Connection) -> bool:
    """True while nothing has been sent in answer to ``c``'s current request."""
    st = c.proto_data
    if not isinstance(st, HttpState) or st.resp_started or c.closed:
        return False
    if st.phase == BODY:
        return True
    return st.phase == WAIT and c.total_queued == st.nq0


def upgrade_refused(c: Connection, st: HttpState) -> None:
    """The handler answered an upgrade request instead of accepting it: finish, then close."""
    check_done(c, st)
    if st.phase == WAIT:
        st.phase = DEAD
        c.close()


def upgrade_accepted(c: Connection, st: HttpState) -> TimerHandle | None:
    """The 101 head is queued: HTTP is done with this connection; another protocol owns it.

    Returns the connection's deadline handle for the next protocol to ``retarget`` (no
    new handle, no new heap entry per upgraded connection), or None.
    """
    st.phase = UPGRADED
    st.resp_started = True
    st.answered = True
    if st.log:
        st.status = 101
        log_done(c, st)
    st.upgrade = None
    st.reader = None
    st.hm = None
    return hand_over_timer(st)


def hand_over_timer(st: HttpState) -> TimerHandle | None:
    """Give up the deadline handle (for the protocol taking the connection over)."""
    t, st.timer = st.timer, None
    if t is not None and t.cancelled:
        return None
    return t


def check_unanswered(st: HttpState) -> None:
    """Refuse a second response to one request: the client would take it for the next answer."""
    if st.answered or (st.phase == WAIT and st.resp_started):
        raise LocalProtocolError("this request has already been answered")
    if st.phase == UPGRADED:
        raise LocalProtocolError("the connection speaks another protocol now")


# --------------------------------------------------------------------------------
# responses
# --------------------------------------------------------------------------------
def head_for(st: HttpState | None, code: int, fields: str, close: bool) -> str:
    """The response head for ``st``: adds the ``Connection`` header its state calls for."""
    if st is not None:
        st.status = code
    if st is None or close or not st.keep_alive:
        conn = "Connection: close\r\n"
    elif st.http10:
        conn = "Connection: keep-alive\r\n"
    else:
        conn = ""
    if code == UPGRADE_REQUIRED:
        # RFC 9110 7.8: a sender of Upgrade MUST also send the "upgrade" connection option
        conn = conn[:-2] + ", upgrade\r\n" if conn else "Connection: upgrade\r\n"
    return response_head(code, fields + conn if conn else fields)


def reply(
    c: Connection, st: HttpState | None, code: int, body: bytes, extra: str, close: bool
) -> None:
    """Queue a complete response with Content-Length framing and complete the exchange.

    ``extra`` is validated header text.  1xx heads are interim (RFC 9110 15.2);
    HEAD, 204 and 304 responses carry no body.
    """
    if st is not None:
        if 100 <= code < 200 and code != 101:
            interim(c, st, code, extra)
            return
        check_unanswered(st)
    no_body = code < 200 or code == 204 or code == 304
    if no_body:
        framing = ""
        body = b""
    else:
        framing = f"Content-Length: {len(body)}\r\n"
    if st is not None:
        close = close or st.resp_close or st.phase != WAIT
        if st.method == "HEAD":
            body = b""
    head = head_for(st, code, framing + extra, close).encode("latin-1")
    c.send(head + body if body else head)
    if st is not None:
        finish(c, st, close)


def interim(c: Connection, st: HttpState, code: int, extra: str) -> None:
    """Send a 1xx head (RFC 9110 15.2); it neither starts nor ends the response."""
    check_unanswered(st)
    if not st.http10:  # RFC 9110 15.2: a server MUST NOT send a 1xx to an HTTP/1.0 client
        st.nq0 += c.send(f"{status_text(code)}{extra}\r\n".encode("latin-1"))


def error_body(code: int, reason: str | None) -> bytes:
    """The short text body of an error response."""
    phrase = reason if reason is not None else reason_phrase(code) or "Error"
    return f"{code} {phrase}\n".encode()


def send_error(c: Connection, st: HttpState | None, code: int, extra: str = "") -> None:
    """Answer ``code`` with a short text body; closes for the statuses that require it."""
    fields = "Content-Type: text/plain; charset=utf-8\r\n" + extra
    if code == UPGRADE_REQUIRED:
        lower = extra.lower()
        if "upgrade:" not in lower:
            fields += "Upgrade: websocket\r\n"  # RFC 9110 15.5.22: a 426 MUST send Upgrade
        if "sec-websocket-version" not in lower:
            fields += "Sec-WebSocket-Version: 13\r\n"
    reply(c, st, code, error_body(code, None), fields, code in CLOSING_CODES)


# --------------------------------------------------------------------------------
# failures
# --------------------------------------------------------------------------------
def app_error(c: Connection, st: HttpState, what: str) -> None:
    """The handler raised on ``what``: answer 500 if nothing was sent yet, then close."""
    log.exception("handler raised on %s for %r; answering 500 and closing", what, c)
    if c.error_reason is None:
        c.error_reason = "handler raised an exception"
    if (st.phase == WAIT and not st.resp_started and c.total_queued == st.nq0) or (
        st.phase == BODY and not st.resp_started
    ):
        st.resp_close = True  # the 500 says Connection: close
        try:
            send_error(c, st, 500)
        except Exception:
            pass
    elif st.answered and not c.flags & F.CLOSE_IMMEDIATELY:
        linger_close(c, st)  # the answer is complete: deliver it, then close
    else:
        c.abort()  # a response is cut short: drop it
    if not st.linger and not c.is_closing:
        c.close()
    st.phase = DEAD


def protocol_error(c: Connection, st: HttpState, e: ProtocolError) -> None:
    """The peer broke HTTP: answer with the status the core named, then close."""
    st.phase = DEAD
    c.error_reason = f"bad request: {e}"
    log.debug("%r: %s", c, c.error_reason)
    if st.mp is not None:
        st.mp.abort(c, st)
    if not st.resp_started and not st.client:
        c.recv_mbuf.clear()
        st.answered = False  # the error answers the request that broke the protocol
        send_error(c, st, e.status if 400 <= e.status < 600 else 400)
        if st.log:
            log_done(c, st)
    linger_close(c, st)


def linger_close(c: Connection, st: HttpState) -> None:
    """Close once the queued response is written, draining what the client still sends.

    RFC 9112 9.6: a server closing while the client may still be sending
    SHOULD half-close and keep reading for a while, or the reset its close
    provokes can destroy the response before the client reads it.
    """
    st.phase = DEAD
    if c.is_tls or st.client or st.linger:
        c.close()
        return
    st.linger = c.mgr.monotonic + _LINGER_TIME
    c.recv_mbuf.clear()
    arm_timer(c, st, _LINGER_TIMEOUT)
    c.shutdown_write()  # FIN once the answer is written: the client reads it, then EOF


def linger_recv(c: Connection, st: HttpState) -> None:
    """Discard what arrives while lingering; the client's EOF (or the deadline) closes."""
    c.recv_mbuf.clear()
    at = c.mgr.monotonic + _LINGER_TIMEOUT
    if st.timer is not None:
        st.timer.arm_at(at if at < st.linger else st.linger)


# --------------------------------------------------------------------------------
# timeouts
# --------------------------------------------------------------------------------
def arm_timer(c: Connection, st: HttpState, delay: float) -> None:
    """(Re)arm the connection's protocol deadline ``delay`` seconds from now."""
    t = st.timer
    if t is not None:
        try:
            t.reschedule(delay)
            return
        except Error:  # cancelled (the connection closed, or a cancel elsewhere)
            pass
    st.timer = c.call_later(delay, _expired, c, st)


def arm_idle(c: Connection, st: HttpState, first: bool = False) -> None:
    """Wait for the next request: header_timeout for a new connection, else keepalive."""
    lim = c.limits
    t = lim.header_timeout if first else lim.keepalive_timeout
    if t:
        arm_timer(c, st, t)
    elif st.timer is not None:
        st.timer.cancel()
        st.timer = None


def arm_header(c: Connection, st: HttpState) -> None:
    """First bytes of a request head arrived: the head must complete within header_timeout."""
    st.hdr_armed = True
    t = c.limits.header_timeout
    if t:
        arm_timer(c, st, t)


def _expired(c: Connection, st: HttpState) -> None:
    if c.proto_data is not st:
        return
    if st.phase == WAIT or st.phase == UPGRADED:
        return  # an answer is pending: no deadline applies (an old one fired late)
    if st.client:
        c.error("no response from the server within Limits.body_timeout")
        return
    if st.linger:
        c.abort()  # done draining
        return
    if st.phase == BODY or (st.phase == IDLE and c.recv_mbuf.buf):
        c.error_reason = "request timed out"
        st.phase = DEAD
        st.answered = False
        send_error(c, st, 408)
        if st.log:
            log_done(c, st)
        linger_close(c, st)
        return
    c.abort()  # idle keep-alive connection

"""Server-Sent Events streams on the HTTP server (WHATWG HTML 9.2), with keepalive and
bounded memory.

Theory of operation
-------------------
An event stream is an HTTP response that never ends by itself: ``sse_start(c, hm)``
answers the request with a 200 head (``text/event-stream``, chunked for HTTP/1.1,
close-delimited for HTTP/1.0), remembers the client's ``Last-Event-ID`` and arms a
keepalive.  The HTTP exchange stays in its "response in progress" phase, so HTTP keeps
every guarantee it gives a slow response (no request timeout meanwhile, pipelined
requests wait, the access log line is written when the stream ends).

The stream's state, ``SseStream``, lives in a per-manager registry
(``mgr.proto_state["pubsub.sse"]``), because ``c.proto_data`` belongs to HTTP.  To hear
the connection's CLOSE, ``sse_start`` puts ``SseStream.on_event`` in front of the HTTP
protocol handler (``c.proto_handler``): it forwards every event, and on CLOSE drops
the stream from the registry and cancels its keepalive.  The client's EOF ends the
stream at the next poll: an EventSource never half-closes, it goes away (HTTP alone
would keep a half-closed client's connection for the response it is owed).
``sse_end`` sends the last chunk and hands the connection back to HTTP (keep-alive
goes on).

Sending: ``sse_send`` formats one event (``mgpy.proto.sse.format_event``: multi-line
data split into one ``data:`` line per line) and writes it as one chunk.  The hub
(``mgpy.pubsub.topics``) formats an event once and gives the same bytes to every
stream with ``sse_push``.

Keepalive: every ``keepalive`` seconds (15 s, the spec's authoring advice) a stream on
which nothing was written meanwhile gets a comment line, so proxies and NAT tables keep
the connection and a dead peer is noticed by the kernel.

Slow readers: the same policy as WebSocket (``Limits.ws_send_queue``,
``Limits.ws_slow_policy``).  An event that would push a non-empty send queue past
``ws_send_queue`` is dropped ("drop", counted in ``stream.dropped``) or ends the stream
("close": what is queued is written, then the connection closes with an ERROR).  A
closed EventSource reconnects by itself and, with ``Last-Event-ID``, catches up from the
hub's replay buffer.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..errors import LocalProtocolError
from ..events import Ev, Headers, HttpMessage
from ..http.exchange import HttpState
from ..http.heads import normalize_headers
from ..http.respond import send_head, send_http_chunk
from ..proto.http1_write import encode_chunk
from ..proto.sse import KEEPALIVE_INTERVAL, format_comment, format_event, last_event_id
from ..proto.sse import response_headers as _sse_headers

if TYPE_CHECKING:
    from ..core import Connection, Handler, TimerHandle

__all__ = [
    "HUB_KEY",
    "KEEPALIVE_INTERVAL",
    "SseStream",
    "sse_comment",
    "sse_end",
    "sse_push",
    "sse_send",
    "sse_start",
    "sse_stream",
]

log = logging.getLogger("mgpy")

_KEY = "pubsub.sse"  # Manager.proto_state key: {Connection: SseStream}
#: the Hub's Manager.proto_state key (here, as topics.py imports this module)
HUB_KEY = "pubsub.hub"
_CLOSE = Ev.CLOSE
_POLL = Ev.POLL
_KEEPALIVE = format_comment()  # ":\n": the smallest comment a client ignores


class SseStream:
    """One open event stream: found with ``sse_stream(c)``.

    ``last_event_id`` is the ``Last-Event-ID`` the client sent (None on a first
    connection); ``dropped`` counts events discarded under the "drop" slow-consumer
    policy; ``sent`` counts events written.
    """

    __slots__ = ("chunked", "dropped", "ended", "inner", "keepalive", "last_event_id", "mark",
                 "sent", "timer")  # fmt: skip

    def __init__(self, inner: Handler | None, chunked: bool, last_id: str | None) -> None:
        #: the protocol handler this stream sits in front of (HTTP's)
        self.inner = inner
        #: the body is chunked (HTTP/1.1); False: close-delimited (HTTP/1.0)
        self.chunked = chunked
        self.last_event_id = last_id
        self.keepalive = 0.0
        self.timer: TimerHandle | None = None
        self.mark = 0  # c.total_queued at the last keepalive check
        self.dropped = 0
        self.sent = 0
        self.ended = False

    def on_event(self, c: Connection, ev: Any, ev_data: Any) -> None:
        """The protocol handler in front of HTTP's while the stream is open."""
        inner = self.inner
        if inner is not None:
            inner(c, ev, ev_data)
        else:
            c.handler(c, ev, ev_data)
        if ev == _CLOSE:
            self._forget(c)
        elif ev == _POLL and c.peer_eof and not c.is_closing:
            c.close()  # the client went away (HTTP would hold a half-closed one open)

    def _forget(self, c: Connection) -> None:
        self.ended = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        streams = c.mgr.proto_state.get(_KEY)
        if streams is not None and streams.get(c) is self:
            del streams[c]


def _registry(c: Connection) -> dict[Connection, SseStream]:
    reg: dict[Connection, SseStream] | None = c.mgr.proto_state.get(_KEY)
    if reg is None:
        reg = c.mgr.proto_state[_KEY] = {}
    return reg


def sse_stream(c: Connection) -> SseStream | None:
    """The open event stream of ``c``, or None (not a stream, ended, or closed)."""
    reg: dict[Connection, SseStream] | None = c.mgr.proto_state.get(_KEY)
    return None if reg is None else reg.get(c)


def sse_start(
    c: Connection,
    hm: HttpMessage | None = None,
    *,
    retry: int | None = None,
    keepalive: float = KEEPALIVE_INTERVAL,
    headers: Headers = None,
) -> SseStream | None:
    """Answer the current request with an event stream; return the stream (None for HEAD).

    Call it from the HTTP_REQUEST handler (or later, while the request is unanswered).
    ``hm`` is the request: its ``Last-Event-ID`` is kept in ``stream.last_event_id``
    (topics replay what the client missed from it).  ``retry`` (ms) tells the client how
    long to wait before reconnecting; ``keepalive`` is the seconds between comments on
    an idle stream (0: none); ``headers`` are added to the 200 head (e.g. CORS).

    Example::

        if ev == mgpy.Ev.HTTP_REQUEST and hm.uri == "/events":
            mgpy.pubsub.sse_start(c, hm, retry=2000)
            mgpy.pubsub.subscribe(c, "news")

    Raises:
        LocalProtocolError: the request was already answered, or ``c`` is not a server
            HTTP connection.
    """
    st = c.proto_data
    if st.__class__ is not HttpState or st.client:
        raise LocalProtocolError("sse_start() needs a request on an HTTP server connection")
    if keepalive < 0 or keepalive != keepalive:
        raise LocalProtocolError("sse_start() keepalive must be >= 0 seconds")
    hs = _sse_headers() + normalize_headers(headers)
    send_head(c, 200, -1, hs)
    if st.resp_nobody:  # HEAD: the head was the whole answer
        return None
    stream = SseStream(c.proto_handler, st.resp_chunked, None)
    if hm is not None:
        stream.last_event_id = last_event_id(hm.headers)
    _registry(c)[c] = stream
    c.proto_handler = stream.on_event
    if retry is not None:
        _write(c, stream, format_event(retry=retry))
    if keepalive:
        stream.keepalive = keepalive
        stream.mark = c.total_queued
        stream.timer = c.call_later(keepalive, _keepalive, c, stream)
    return stream


def _keepalive(c: Connection, stream: SseStream) -> None:
    """Send a comment if nothing was written for a whole interval; re-arm."""
    if stream.ended or c.is_closing:
        return
    if c.total_queued == stream.mark:
        _write(c, stream, _KEEPALIVE)
    stream.mark = c.total_queued
    if stream.timer is not None:
        stream.timer.reschedule(stream.keepalive)


def _write(c: Connection, stream: SseStream, data: bytes) -> None:
    c.send(encode_chunk(data) if stream.chunked else data)


def _open(c: Connection) -> SseStream:
    stream = sse_stream(c)
    if stream is None or stream.ended:
        raise LocalProtocolError("not an open event stream (call sse_start first)")
    return stream


def sse_push(c: Connection, stream: SseStream, wire: bytes) -> bool:
    """Queue ``wire`` (an event already framed for this stream) under the slow-reader policy.

    Returns whether it was queued.  Used by ``sse_send`` and by the hub, which frames one
    event once for every stream (``encode_chunk`` for chunked streams).
    """
    if stream.ended or c.is_closing:
        return False
    queued = len(c.send_mbuf.buf)
    lim = c.limits
    cap = lim.ws_send_queue
    if queued and cap and queued + len(wire) > cap:
        if lim.ws_slow_policy == "drop":
            stream.dropped += 1
            return False
        c.error_reason = "SSE slow consumer: send queue over Limits.ws_send_queue"
        log.warning("%r: %s; ending the stream", c, c.error_reason)
        stream.ended = True
        c.close()
        return False
    c.send(wire)
    stream.sent += 1
    return True


def sse_send(
    c: Connection,
    data: str | bytes | None,
    *,
    event: str | None = None,
    id: str | int | None = None,  # the spec's field name
    retry: int | None = None,
) -> bool:
    """Send one event on the stream of ``c``; return False if the slow-reader policy refused it.

    ``data`` may hold several lines (each becomes a ``data:`` line; the client joins them
    with LF).  ``event`` names the event type (``addEventListener(event, ...)`` in a
    browser), ``id`` becomes the client's last event ID, ``retry`` its reconnection delay
    in ms.

    Example::

        mgpy.pubsub.sse_send(c, json.dumps(sample), event="stats", id=n)

    Raises:
        LocalProtocolError: ``c`` has no open stream, or a field the spec cannot carry
            (CR/LF in ``event`` or ``id``, data that is not UTF-8).
    """
    stream = _open(c)
    payload = format_event(data, event=event, id=id, retry=retry)
    return sse_push(c, stream, encode_chunk(payload) if stream.chunked else payload)


def sse_comment(c: Connection, text: str = "") -> bool:
    """Send a comment (clients ignore it); False if the slow-reader policy refused it."""
    stream = _open(c)
    payload = format_comment(text)
    return sse_push(c, stream, encode_chunk(payload) if stream.chunked else payload)


def sse_end(c: Connection) -> None:
    """End the stream: the last chunk goes out and the connection serves HTTP again
    (an HTTP/1.0 stream, close-delimited, closes).  Topics it was subscribed to stop
    sending to it."""
    stream = sse_stream(c)
    if stream is None:
        return
    stream._forget(c)
    hub = c.mgr.proto_state.get(HUB_KEY)
    if hub is not None:
        hub.unsubscribe(c)  # the connection goes back to HTTP: no more events for it
    if c.proto_handler == stream.on_event:
        c.proto_handler = stream.inner
    if not c.is_closing:
        send_http_chunk(c, b"")

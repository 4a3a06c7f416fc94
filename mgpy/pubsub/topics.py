"""Topics: subscribe WebSocket and SSE connections to named topics, publish to a topic
(uWebSockets' ``subscribe``/``publish``), optionally across processes through Redis.

Theory of operation
-------------------
A ``Hub`` belongs to one Manager (``mgr.proto_state["pubsub.hub"]``; ``get_hub(mgr)``
makes a local one on first use).  A topic is a name; its subscribers are open
WebSockets (after WS_HANDSHAKE_DONE) and event streams (after ``sse_start``).  The hub
keeps, per topic, the WebSockets and the streams apart, and, per subscribed connection,
a ``_Member``: its topics and the protocol handler it was subscribed over.

Unsubscribing on close: ``subscribe`` puts the member's ``on_event`` in front of the
connection's protocol handler (``c.proto_handler``, the public protocol interface); it
forwards every event and, on CLOSE, removes the connection from all its topics.  The
last ``unsubscribe`` hands the connection back to its protocol handler.

Delivery of one message: WebSockets get it through ``ws_broadcast`` (each distinct frame
built once, the slow-consumer policy of ``Limits.ws_send_queue``/``ws_slow_policy``);
streams get one ``format_event`` (framed once as a chunk) under the same policy
(``sse.sse_push``).  Binary messages go to WebSockets only: an event stream is text.

Event ids: every replayable message has an integer id that grows across all the topics
of the hub, so an SSE client's ``Last-Event-ID`` says what it has seen everywhere.
Without Redis the hub counts (starting from the clock in microseconds, so the ids of a
restarted process are above those of the previous one); with Redis the id comes from one
``INCR`` in Redis, in the same script that publishes, so every process sees the same
ids in the same order.  ``publish(..., local=True)`` on a bridged hub, and publishes
made while Redis is unreachable, carry no id and are not replayable.

Replay: the hub keeps the last ``replay`` events of each topic (``ReplayStore``).  An
event stream that subscribes gets the events after its ``Last-Event-ID`` first (merged
in id order when it subscribes to several topics in one call); a WebSocket may ask with
``since=``.

Across processes: with ``redis="redis://..."`` a publish goes to Redis (``RedisBridge``)
and comes back, with its id, to every hub subscribed to the channel prefix, this one
included; local subscribers are served on the way back.  Delivery is at most once:
while Redis is unreachable a publish is delivered to local subscribers only, and counted
(``mgr.counters["pubsub.not_crossed"]``) and logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..errors import Error, LocalProtocolError
from ..events import WS_OP_BINARY, WS_OP_TEXT, Ev
from ..proto.http1_write import encode_chunk
from ..proto.sse import format_event
from ..proto.ws import OPEN as _OPEN
from ..ws import ws_broadcast
from ..ws.protocol import WsState
from ..ws.send import send_websocket_frame
from .replay import Published, ReplayStore
from .sse import HUB_KEY, SseStream, sse_push, sse_stream

if TYPE_CHECKING:
    from ..core import Connection, Handler, Manager
    from .redis import RedisBridge

__all__ = ["Hub", "get_hub", "publish", "subscribe", "unsubscribe"]

log = logging.getLogger("mgpy")

_KEY = HUB_KEY  # Manager.proto_state key
_CLOSE = Ev.CLOSE
#: the longest topic name (a Redis channel name is the prefix plus the topic)
MAX_TOPIC = 1024
#: counters in Manager.counters
_PUBLISHED = "pubsub.published"
_DELIVERED = "pubsub.delivered"
#: payload bytes handed to WebSockets (compare with "ws.broadcast_wire": compression)
_WS_RAW = "pubsub.ws_raw_bytes"


class _Topic:
    """The subscribers of one topic: WebSockets and event streams, in subscription order."""

    __slots__ = ("sse", "ws")

    def __init__(self) -> None:
        self.ws: dict[Connection, None] = {}
        self.sse: dict[Connection, SseStream] = {}


class _Member:
    """A subscribed connection: its topics, and the protocol handler it sits in front of."""

    __slots__ = ("hub", "inner", "stream", "topics")

    def __init__(self, hub: Hub, inner: Handler | None, stream: SseStream | None) -> None:
        self.hub = hub
        self.inner = inner
        self.stream = stream
        self.topics: set[str] = set()

    def on_event(self, c: Connection, ev: Any, ev_data: Any) -> None:
        inner = self.inner
        if inner is not None:
            inner(c, ev, ev_data)
        else:
            c.handler(c, ev, ev_data)
        if ev == _CLOSE:
            self.hub._drop(c, self)


class Hub:
    """Topics on a Manager: ``subscribe`` connections, ``publish`` messages.

    ``redis`` (``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` for TLS)
    bridges the hub to every other hub on the same Redis and channel ``prefix``;
    ``redis_tls`` are the ``TlsOpts`` for ``rediss://`` (default: verify with the
    system's CAs).  ``replay`` events per topic (at most ``replay_bytes`` of payload) are
    kept for reconnecting clients, for at most ``max_topics`` topics.  ``hiredis=True``
    parses Redis replies with hiredis when it is installed (trusted servers only, see
    ``mgpy.proto.resp``).

    Example::

        hub = mgpy.pubsub.Hub(mgr, redis="redis://127.0.0.1:6379/0")
        ...
        elif ev == Ev.WS_HANDSHAKE_DONE:
            hub.subscribe(c, "chat")
        elif ev == Ev.WS_FRAME:
            hub.publish("chat", ev_data.data)

    Raises:
        Error: the manager has a hub already, or the Redis URL is not one.
    """

    def __init__(
        self,
        mgr: Manager,
        redis: str | None = None,
        *,
        prefix: str = "mgpy:",
        replay: int = 100,
        replay_bytes: int = 1 << 20,
        max_topics: int = 1024,
        redis_tls: Any = None,
        hiredis: bool = False,
    ) -> None:
        if mgr.proto_state.get(_KEY) is not None:
            raise Error("this Manager has a pubsub Hub already (mgpy.pubsub.get_hub(mgr))")
        self.mgr = mgr
        self.prefix = prefix
        self.topics: dict[str, _Topic] = {}
        self.members: dict[Connection, _Member] = {}
        self.replay = ReplayStore(replay, max_topics, replay_bytes)
        self.last_id = 0  # the newest id delivered (ids from Redis) or issued (local)
        self._next = int(time.time() * 1e6)
        self.bridge: RedisBridge | None = None
        for key in (_PUBLISHED, _DELIVERED, _WS_RAW, "pubsub.not_crossed"):
            mgr.counters.setdefault(key, 0)
        mgr.proto_state[_KEY] = self
        if redis is not None:
            from .redis import RedisBridge  # the bridge only when asked for

            try:
                self.bridge = RedisBridge(
                    mgr, redis, prefix, self.deliver, tls=redis_tls, hiredis=hiredis
                )
            except BaseException:
                del mgr.proto_state[_KEY]
                raise

    # -- subscribing ---------------------------------------------------------------
    def subscribe(
        self, c: Connection, topics: str | Iterable[str], since: int | None = None
    ) -> int:
        """Subscribe ``c`` (an open WebSocket or event stream) to one topic or several.

        An event stream first gets what it missed since its ``Last-Event-ID`` (or
        ``since``), in id order across the topics of this call; a WebSocket only when
        ``since`` is given (its messages in order, as frames).  Returns how many
        messages were replayed.  Subscribing twice to a topic changes nothing.

        Raises:
            LocalProtocolError: ``c`` is neither an open WebSocket nor an open event
                stream, or a topic is not a non-empty str of at most 1024 characters.
        """
        names = [topics] if isinstance(topics, str) else list(topics)
        for t in names:
            _check_topic(t)
        stream = sse_stream(c)
        if stream is None and not _is_open_ws(c):
            raise LocalProtocolError(
                "subscribe() takes an open WebSocket (after WS_HANDSHAKE_DONE) or an event "
                "stream (after sse_start)"
            )
        m = self.members.get(c)
        if m is None:
            m = self.members[c] = _Member(self, c.proto_handler, stream)
            c.proto_handler = m.on_event
        fresh = [t for t in names if t not in m.topics]
        for t in fresh:
            topic = self.topics.get(t)
            if topic is None:
                topic = self.topics[t] = _Topic()
            if stream is not None:
                topic.sse[c] = stream
            else:
                topic.ws[c] = None
            m.topics.add(t)
        if since is None and stream is not None and stream.last_event_id is not None:
            text = stream.last_event_id
            since = int(text) if text.isascii() and text.isdigit() else None
        if since is None or not fresh:
            return 0
        return self._replay(c, stream, fresh, since)

    def _replay(
        self, c: Connection, stream: SseStream | None, topics: list[str], since: int
    ) -> int:
        n = 0
        for it in self.replay.after(topics, since):
            if stream is not None:
                if it.op == WS_OP_TEXT:
                    wire = format_event(it.data, event=it.event, id=it.id)
                    n += sse_push(c, stream, encode_chunk(wire) if stream.chunked else wire)
            else:
                send_websocket_frame(c, it.op, it.data)
                n += 1
        return n

    def unsubscribe(self, c: Connection, topics: str | Iterable[str] | None = None) -> None:
        """Unsubscribe ``c`` from ``topics`` (all its topics when None)."""
        m = self.members.get(c)
        if m is None:
            return
        if topics is None:
            names = list(m.topics)
        else:
            names = [topics] if isinstance(topics, str) else list(topics)
        for t in names:
            if t in m.topics:
                m.topics.discard(t)
                self._leave(c, t)
        if not m.topics:
            del self.members[c]
            if c.proto_handler == m.on_event:
                c.proto_handler = m.inner
            else:  # something sits in front of us now: stay, as a pass-through
                m.topics = set()

    def _leave(self, c: Connection, t: str) -> None:
        topic = self.topics.get(t)
        if topic is None:
            return
        topic.ws.pop(c, None)
        topic.sse.pop(c, None)
        if not topic.ws and not topic.sse:
            del self.topics[t]

    def _drop(self, c: Connection, m: _Member) -> None:
        """``c`` closed: it leaves every topic."""
        for t in m.topics:
            self._leave(c, t)
        m.topics = set()
        if self.members.get(c) is m:
            del self.members[c]

    def subscriptions(self, c: Connection) -> frozenset[str]:
        """The topics ``c`` is subscribed to."""
        m = self.members.get(c)
        return frozenset(m.topics) if m is not None else frozenset()

    def subscribers(self, topic: str) -> int:
        """How many connections of this process are subscribed to ``topic``."""
        t = self.topics.get(topic)
        return 0 if t is None else len(t.ws) + len(t.sse)

    # -- publishing ----------------------------------------------------------------
    def publish(
        self,
        topic: str,
        data: str | bytes,
        *,
        op: int = WS_OP_TEXT,
        event: str | None = None,
        local: bool = False,
    ) -> None:
        """Send ``data`` to every subscriber of ``topic`` (in every bridged process).

        ``op`` is ``WS_OP_TEXT`` (UTF-8; also sent to event streams) or ``WS_OP_BINARY``
        (WebSockets only).  ``event`` is the SSE event type (WebSockets ignore it).
        ``local=True`` serves this process only, without an id (e.g. per-process stats).
        With Redis, local subscribers get the message when it comes back from Redis; if
        Redis is unreachable they get it at once, and it is counted as not crossed.

        Raises:
            LocalProtocolError: a bad topic or op, text that is not UTF-8, or an event
                name with CR or LF.
        """
        _check_topic(topic)
        if isinstance(data, str):
            data = data.encode("utf-8")
        elif not isinstance(data, bytes):
            data = bytes(data)
        if op == WS_OP_TEXT:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                raise LocalProtocolError("a text message must be UTF-8") from None
        elif op != WS_OP_BINARY:
            raise LocalProtocolError(f"publish() sends text or binary messages, not {op:#x}")
        if event is not None and ("\r" in event or "\n" in event):
            raise LocalProtocolError("an SSE event name must not contain CR or LF")
        self.mgr.counters[_PUBLISHED] += 1
        bridge = self.bridge
        if bridge is not None and not local:
            if bridge.publish(topic, data, op, event):
                return  # delivered here too when Redis echoes it, with its id
            self.deliver(Published(topic, data, op, event, None))
            return
        ident = None
        if bridge is None:
            self._next = ident = max(self._next + 1, self.last_id + 1)
        self.deliver(Published(topic, data, op, event, ident))

    def deliver(self, item: Published) -> int:
        """Hand a message to this process' subscribers (and keep it for replay); return
        how many connections got it.  The bridge calls it for every message from Redis."""
        ident = item.id
        if ident is not None:
            if ident <= self.last_id:  # Redis lost its counter: old ids mean nothing now
                log.warning("pubsub: event ids restarted (%d after %d)", ident, self.last_id)
                self.replay.clear()
            self.last_id = ident
            self.replay.add(item)
        t = self.topics.get(item.topic)
        if t is None:
            return 0
        counters = self.mgr.counters
        n = 0
        if t.ws:
            n = ws_broadcast(t.ws, item.op, item.data)
            counters[_WS_RAW] += n * len(item.data)
        if t.sse and item.op == WS_OP_TEXT:
            n += self._to_streams(t, item)
        counters[_DELIVERED] += n
        return n

    def _to_streams(self, t: _Topic, item: Published) -> int:
        try:
            payload = format_event(item.data, event=item.event, id=item.id)
        except LocalProtocolError as e:
            log.warning("pubsub: %r cannot go to event streams: %s", item.topic, e)
            return 0
        chunk = b""
        n = 0
        for c, stream in t.sse.items():
            if stream.chunked:
                if not chunk:
                    chunk = encode_chunk(payload)
                n += sse_push(c, stream, chunk)
            else:
                n += sse_push(c, stream, payload)
        return n

    # -- state -----------------------------------------------------------------------
    @property
    def redis_up(self) -> bool | None:
        """True/False: the Redis link is up/down; None: the hub has no Redis."""
        return None if self.bridge is None else self.bridge.up

    def stats(self) -> dict[str, Any]:
        """Counters for a dashboard: topics, subscribers, messages, the Redis link."""
        cnt = self.mgr.counters
        out: dict[str, Any] = {
            "topics": len(self.topics),
            "subscribers": len(self.members),
            "published": cnt[_PUBLISHED],
            "delivered": cnt[_DELIVERED],
            "not_crossed": cnt["pubsub.not_crossed"],
            "replay_gaps": self.replay.gaps,
            "last_id": self.last_id,
        }
        if self.bridge is not None:
            out["redis"] = self.bridge.state()
        return out

    def close(self) -> None:
        """Stop the Redis link and forget the hub (subscribers keep their connections)."""
        if self.bridge is not None:
            self.bridge.close()
        for c in list(self.members):
            self.unsubscribe(c)
        if self.mgr.proto_state.get(_KEY) is self:
            del self.mgr.proto_state[_KEY]


def _check_topic(t: object) -> None:
    if not isinstance(t, str) or not 0 < len(t) <= MAX_TOPIC:
        raise LocalProtocolError(f"a topic is a non-empty str of at most {MAX_TOPIC} characters")


def _is_open_ws(c: Connection) -> bool:
    st = c.proto_data
    return st.__class__ is WsState and st.ws.state == _OPEN and not c.is_closing


def get_hub(mgr: Manager) -> Hub:
    """The hub of ``mgr``: the one created with ``Hub(mgr, ...)``, or a new local one."""
    hub: Hub | None = mgr.proto_state.get(_KEY)
    return hub if hub is not None else Hub(mgr)


def subscribe(c: Connection, topics: str | Iterable[str], since: int | None = None) -> int:
    """``get_hub(c.mgr).subscribe(c, topics, since)``: subscribe a WebSocket or stream."""
    return get_hub(c.mgr).subscribe(c, topics, since)


def unsubscribe(c: Connection, topics: str | Iterable[str] | None = None) -> None:
    """``get_hub(c.mgr).unsubscribe(c, topics)``; None: every topic."""
    hub: Hub | None = c.mgr.proto_state.get(_KEY)
    if hub is not None:
        hub.unsubscribe(c, topics)


def publish(
    mgr: Manager,
    topic: str,
    data: str | bytes,
    *,
    op: int = WS_OP_TEXT,
    event: str | None = None,
    local: bool = False,
) -> None:
    """``get_hub(mgr).publish(topic, data, ...)``: send to every subscriber of ``topic``."""
    get_hub(mgr).publish(topic, data, op=op, event=event, local=local)

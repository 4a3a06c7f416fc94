"""The hub's Redis bridge: one RESP3 connection on the Manager's loop, publishing and
receiving a channel prefix, re-connecting with backoff.

Theory of operation
-------------------
The link is an ordinary outbound Connection with a protocol handler in front
(``_resp_proto``): received bytes go through the sans-IO reader
(``mgpy.proto.resp``, or hiredis' when asked for), replies are matched in order with
the callbacks of the commands sent (a FIFO, so commands are pipelined freely) and
push events (Pub/Sub) go to the bridge.  Nothing blocks and no thread is involved.

On connect, one pipelined write: ``HELLO 3`` (RESP3, with ``AUTH`` from the URL) so
that one connection can both subscribe and publish, ``SELECT db``, ``SCRIPT LOAD`` of
the publish script, ``SET <prefix>seq <now in µs> NX`` (ids keep growing even when a
Redis without persistence restarts) and ``PSUBSCRIBE <prefix>*``.  The link is *up*
when the subscription is confirmed.

Publishing: ``EVALSHA`` of a script that ``INCR``s ``<prefix>seq`` and ``PUBLISH``es
``mgpy1 <id> <op> <origin> <event>\\n<data>`` on ``<prefix><topic>``, atomically: ids
follow the order in which Redis delivers.  Every hub on the prefix, this one included,
receives the message and hands it to its local subscribers.  An incoming message that
lacks the header (``redis-cli PUBLISH mgpy:chat hi``) is delivered as it is, without id.

Failures (at most once): while the link is not up, ``publish`` returns False and the
hub delivers locally only.  A publish sent but neither confirmed by Redis nor seen
coming back when the link drops is delivered locally then.  Both are counted in
``mgr.counters["pubsub.not_crossed"]`` and logged once per outage.  The link
re-connects after ``min_delay`` .. ``max_delay`` seconds (doubling, +-20 % jitter), and
a silent Redis is detected by a PING every ``ping_interval`` seconds (and a handshake not
answered within that time).
"""

from __future__ import annotations

import hashlib
import logging
import random
import secrets
import time
import urllib.parse
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core import TlsOpts
from ..errors import Error, ProtocolError
from ..events import WS_OP_BINARY, WS_OP_TEXT, Ev
from ..proto.envelope import MAGIC, envelope_tail, parse_envelope
from ..proto.resp import NEED_DATA, PubSubMessage, RespError, RespPush, Subscription
from ..proto.resp_hiredis import new_reader
from ..proto.resp_write import pack_command, pack_pipeline
from .replay import Published

if TYPE_CHECKING:
    from ..core import Connection, Manager
    from ..proto.resp import RespReader
    from ..proto.resp_hiredis import HiredisReader

__all__ = ["RedisBridge", "RedisUrl", "parse_redis_url"]

log = logging.getLogger("mgpy")

_RECV = Ev.RECV
_CONNECT = Ev.CONNECT
_CLOSE = Ev.CLOSE
_ERROR = Ev.ERROR
_NOT_CROSSED = "pubsub.not_crossed"
#: KEYS[1] the id counter; ARGV[1] the channel, ARGV[2] the message after its id.  Lua
#: numbers are doubles: ids stay exact below 2**53 (microseconds until the year 2255)
_SCRIPT = (
    "local id = redis.call('INCR', KEYS[1]) "
    f"redis.call('PUBLISH', ARGV[1], '{MAGIC.decode()} ' .. string.format('%.0f', id) "
    ".. ARGV[2]) "
    "return id"
)
_SHA = hashlib.sha1(_SCRIPT.encode()).hexdigest()
_GLOB = str.maketrans({ch: "\\" + ch for ch in "*?[]\\"})

Callback = Callable[[Any], None]


@dataclass(frozen=True)
class RedisUrl:
    """A parsed ``redis://`` / ``rediss://`` URL; ``str()`` hides the password."""

    host: str
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False

    def __str__(self) -> str:
        auth = "***@" if self.password is not None else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'rediss' if self.tls else 'redis'}://{auth}{host}:{self.port}/{self.db}"


def parse_redis_url(url: str) -> RedisUrl:
    """Parse ``redis://[[user]:password@]host[:port][/db]`` (``rediss://``: TLS).

    Raises:
        Error: another scheme, no host, a bad port or database number.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port or 6379
    except ValueError as e:
        raise Error(f"bad Redis URL {url!r}: {e}") from None
    if parts.scheme not in ("redis", "rediss"):
        raise Error(f"bad Redis URL {url!r}: expected redis:// or rediss://")
    if not parts.hostname:
        raise Error(f"bad Redis URL {url!r}: no host")
    path = parts.path.strip("/")
    if path and not (path.isascii() and path.isdigit()):
        raise Error(f"bad Redis URL {url!r}: the path is the database number")
    user = urllib.parse.unquote(parts.username) if parts.username else None
    password = urllib.parse.unquote(parts.password) if parts.password is not None else None
    return RedisUrl(parts.hostname, port, int(path or 0), user, password, parts.scheme == "rediss")


class _Link:
    """``proto_data`` of the Redis connection: the reader and the reply callbacks."""

    __slots__ = ("on_push", "ping_out", "reader", "replies")

    def __init__(self, reader: RespReader | HiredisReader, on_push: Callable[[object], None]):
        self.reader = reader
        self.replies: deque[tuple[Callback, Any]] = deque()
        self.on_push = on_push
        self.ping_out = False

    def command(self, c: Connection, cb: Callback, *args: Any) -> None:
        """Send one command; ``cb(reply)`` gets its reply (a RespError on failure)."""
        c.send(pack_command(*args))
        self.replies.append((cb, None))


def _resp_proto(c: Connection, ev: Any, ev_data: Any) -> None:
    """Protocol handler of the Redis link: RESP replies to callbacks, pushes to the bridge."""
    if ev != _RECV:
        c.handler(c, ev, ev_data)
        return
    link: _Link = c.proto_data
    mb = c.recv_mbuf
    link.reader.feed(mb.view())
    mb.clear()
    reader = link.reader
    replies = link.replies
    while not c.is_closing:
        try:
            item = reader.next_event()
        except ProtocolError as e:
            c.error(f"Redis: {e}")
            return
        if item is NEED_DATA:
            break
        cls = item.__class__
        if cls is PubSubMessage or cls is Subscription or cls is RespPush:
            link.on_push(item)
        elif replies:
            cb, arg = replies.popleft()
            if arg is None:
                cb(item)
            else:
                cb((arg, item))
        else:
            c.error("Redis sent a reply to no command")
            return


class RedisBridge:
    """Publish to and receive from Redis for a hub (see the module notes)."""

    def __init__(
        self,
        mgr: Manager,
        url: str,
        prefix: str,
        deliver: Callable[[Published], object],
        *,
        tls: TlsOpts | None = None,
        hiredis: bool = False,
        min_delay: float = 0.1,
        max_delay: float = 5.0,
        ping_interval: float = 10.0,
        max_pending: int = 10000,
    ) -> None:
        self.mgr = mgr
        self.url = parse_redis_url(url)
        self.deliver = deliver
        self.prefix = prefix.encode()
        self.seq_key = prefix + "seq"
        self.tls = tls if tls is not None else TlsOpts(alpn=()) if self.url.tls else None
        self.hiredis = hiredis
        self.min_delay = min_delay
        self.max_delay = max_delay
        self.ping_interval = ping_interval
        self.max_pending = max_pending
        self.node = secrets.token_hex(4).encode()  # tells our own messages apart
        self.seq = 0
        #: publishes sent and not yet confirmed: delivered locally if the link drops
        self.pending: OrderedDict[int, Published] = OrderedDict()
        self.conn: Connection | None = None
        self.up = False
        self.stopped = False
        self.failures = 0
        self.connects = 0
        self.reason = ""
        self.down_since = time.monotonic()
        self.lost_in_outage = 0  # messages not crossed during the current outage
        self._retry: Any = None
        self._dial()

    # -- the link ------------------------------------------------------------------
    def _dial(self) -> None:
        self._retry = None
        if self.stopped or self.mgr.stopping:
            return
        u = self.url
        host = f"[{u.host}]" if ":" in u.host else u.host
        c = self.mgr.connect(f"tcp://{host}:{u.port}", self._handler, tls=self.tls)
        c.proto_handler = _resp_proto
        c.proto_data = _Link(new_reader(accelerated=self.hiredis), self._push)
        self.conn = c

    def _handler(self, c: Connection, ev: Any, ev_data: Any) -> None:
        if c is not self.conn:
            return
        if ev == _CONNECT:
            if ev_data == 0:
                self._handshake(c, c.proto_data)
            else:
                self.reason = f"cannot connect (error {ev_data})"
        elif ev == _ERROR:
            self.reason = str(ev_data)
        elif ev == _CLOSE:
            self._lost(c)

    def _handshake(self, c: Connection, link: _Link) -> None:
        u = self.url
        hello: list[Any] = ["HELLO", "3"]
        if u.password is not None:
            hello += ["AUTH", u.username or "default", u.password]
        hello += ["SETNAME", b"mgpy-" + self.node]
        cmds: list[tuple[Any, ...]] = [tuple(hello)]
        cbs: list[Callback] = [self._hello_reply]
        if u.db:
            cmds.append(("SELECT", u.db))
            cbs.append(self._check_reply)
        cmds.append(("SCRIPT", "LOAD", _SCRIPT))
        cbs.append(self._check_reply)
        cmds.append(("SET", self.seq_key, int(time.time() * 1e6), "NX"))
        cbs.append(self._check_reply)
        cmds.append(("PSUBSCRIBE", self.prefix.decode().translate(_GLOB) + "*"))
        c.send(pack_pipeline(cmds))
        link.replies.extend((cb, None) for cb in cbs)  # PSUBSCRIBE answers with a push
        c.call_later(self.ping_interval or 10.0, self._handshake_timeout, c)

    def _handshake_timeout(self, c: Connection) -> None:
        if c is self.conn and not self.up:
            c.error(f"Redis did not answer the handshake within {self.ping_interval or 10:g} s")

    def _hello_reply(self, reply: Any) -> None:
        if isinstance(reply, RespError):
            why = reply.message
            if reply.code == "NOPROTO" or "HELLO" in why.upper():
                why += " (the hub needs Redis 6 or later: RESP3)"
            self._refused(why)

    def _check_reply(self, reply: Any) -> None:
        if isinstance(reply, RespError):
            self._refused(reply.message)

    def _refused(self, why: str) -> None:
        c = self.conn
        if c is not None and not c.is_closing:
            log.error("pubsub: Redis at %s refused the hub: %s", self.url, why)
            c.error(f"Redis refused: {why}")

    def _push(self, item: object) -> None:
        if isinstance(item, PubSubMessage):
            self._message(item)
        elif isinstance(item, Subscription) and item.kind == "psubscribe":
            self._linked()

    def _linked(self) -> None:
        c = self.conn
        if c is None:
            return
        self.up = True
        self.connects += 1
        if self.connects > 1 or self.failures:
            log.warning(
                "pubsub: Redis link to %s up again after %.1f s; %d messages reached this "
                "process only meanwhile",
                self.url,
                time.monotonic() - self.down_since,
                self.lost_in_outage,
            )
        else:
            log.info("pubsub: linked to Redis at %s (channels %s*)", self.url, self.prefix.decode())
        self.failures = 0
        self.lost_in_outage = 0
        if self.ping_interval:
            c.call_later(self.ping_interval, self._ping, c)

    def _ping(self, c: Connection) -> None:
        link: _Link = c.proto_data
        if link.ping_out:
            c.error(f"Redis did not answer PING within {self.ping_interval:g} s")
            return
        link.ping_out = True
        link.command(c, self._pong, "PING")
        c.call_later(self.ping_interval, self._ping, c)

    def _pong(self, reply: Any) -> None:
        c = self.conn
        if c is not None:
            c.proto_data.ping_out = False

    def _fail_pending(self) -> None:
        """The link is gone: what it did not confirm is delivered here, in order."""
        pending = list(self.pending.values())
        self.pending.clear()
        for item in pending:
            self._not_crossed()
            self.deliver(item)

    def _lost(self, c: Connection) -> None:
        """The link closed: deliver what it still held locally, then re-dial (backoff)."""
        self.conn = None
        was_up = self.up
        self.up = False
        self._fail_pending()
        if self.stopped or self.mgr.stopping:
            return
        self.failures += 1
        delay = min(self.max_delay, self.min_delay * 2 ** min(self.failures - 1, 30))
        delay *= random.uniform(0.8, 1.2)
        why = self.reason or c.error_reason or "closed by the server"
        self.reason = ""
        if was_up:
            self.down_since = time.monotonic()
            log.warning(
                "pubsub: Redis link to %s lost (%s); reconnecting, messages reach this "
                "process only meanwhile",
                self.url,
                why,
            )
        elif self.failures == 1:
            log.warning("pubsub: cannot reach Redis at %s (%s); retrying", self.url, why)
        else:
            log.debug("pubsub: Redis at %s: %s; next try in %.2f s", self.url, why, delay)
        self._retry = self.mgr.call_later(delay, self._dial)

    # -- messages ------------------------------------------------------------------
    def publish(self, topic: str, data: bytes, op: int, event: str | None) -> bool:
        """Send a message through Redis; False when the link is not up (deliver locally)."""
        c = self.conn
        if not self.up or c is None or c.is_closing:
            self._fail_pending()  # they go first: the order of one publisher holds
            self._not_crossed()
            return False
        if len(self.pending) >= self.max_pending:
            self._not_crossed()
            return False
        self.seq = seq = self.seq + 1
        tail = envelope_tail(op, self.node, seq, event, data)
        c.send(pack_command("EVALSHA", _SHA, 1, self.seq_key, self.prefix + topic.encode(), tail))
        c.proto_data.replies.append((self._published, seq))
        self.pending[seq] = Published(topic, data, op, event, None)
        return True

    def _published(self, arg: tuple[int, Any]) -> None:
        seq, reply = arg
        item = self.pending.pop(seq, None)
        if not isinstance(reply, RespError):
            return  # it crossed (and comes back as a message)
        log.warning("pubsub: Redis refused a publish: %s", reply.message)
        if reply.code == "NOSCRIPT" and self.conn is not None:
            self.conn.proto_data.command(self.conn, self._check_reply, "SCRIPT", "LOAD", _SCRIPT)
        if item is not None:
            self._not_crossed()
            self.deliver(item)

    def _message(self, msg: PubSubMessage) -> None:
        ch = msg.channel
        if not ch.startswith(self.prefix):
            return
        topic = ch[len(self.prefix) :].decode("utf-8", "replace")
        data = msg.data
        env = parse_envelope(data)
        if env is None:  # published by someone else: delivered as it is
            try:
                data.decode("utf-8")
                op = WS_OP_TEXT
            except UnicodeDecodeError:
                op = WS_OP_BINARY
            item = Published(topic, data, op, None, None)
        else:
            item = Published(topic, env.data, env.op, env.event, env.ident)
            if env.node == self.node and env.seq is not None:
                self.pending.pop(env.seq, None)
        if topic:
            self.deliver(item)

    def _not_crossed(self) -> None:
        counters = self.mgr.counters
        counters[_NOT_CROSSED] = counters.get(_NOT_CROSSED, 0) + 1
        if not self.lost_in_outage:
            log.warning(
                "pubsub: Redis at %s is unreachable: messages reach this process only "
                "(counted in pubsub.not_crossed)",
                self.url,
            )
        self.lost_in_outage += 1

    # -- state -----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """The link for a dashboard: URL (no password), up, connects, pending."""
        return {
            "url": str(self.url),
            "up": self.up,
            "connects": self.connects,
            "pending": len(self.pending),
        }

    def close(self) -> None:
        """Stop: no more re-dialling; the link closes."""
        self.stopped = True
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        c = self.conn
        if c is not None:
            c.close()

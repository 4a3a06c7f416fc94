"""Sans-IO RESP (REdis Serialization Protocol): a RESP2/RESP3 reply reader and a command encoder.

Theory of operation
-------------------
The reader is feed/next_event style, like ``hiredis.Reader`` (so the optional
accelerator fits behind the same interface): ``feed(data)`` queues a copy of received
bytes (O(1)), ``next_event()`` returns one event or ``NEED_DATA``.  An event is

* a reply *value*, errors included: an error reply is a ``RespError`` value, never
  raised, so one failed command does not lose the pipelined replies after it;
* or a typed out-of-band event: ``PubSubMessage`` (message, pmessage, smessage),
  ``Subscription`` ((un)subscribe confirmations) or ``RespPush`` (any other RESP3 push,
  e.g. ``invalidate``).  RESP3 pushes (``>``) are always typed.  RESP2 has no push
  type, a subscribed connection gets plain arrays: they are typed only while
  ``reader.pubsub`` is true.  The caller sets it when it sends (P|S)SUBSCRIBE on a
  RESP2 connection; the reader clears it when the confirmations say no subscription
  is left (Redis then leaves the Pub/Sub state).

Values, as hiredis and redis-py map them: ``+`` simple, ``$`` blob and ``=`` verbatim
strings -> ``bytes`` (the verbatim ``txt:`` prefix dropped); ``-`` and ``!`` errors ->
``RespError``; ``:`` numbers and ``(`` big numbers -> ``int``; ``,`` -> ``float``; ``#``
-> ``bool``; ``_``, ``$-1``, ``*-1`` -> None; ``*`` arrays and ``~`` sets -> ``list``
(set items may be unhashable); ``%`` maps -> ``dict`` (unhashable keys become tuples).
A ``|`` attribute is no value: ``reader.attributes`` holds the one that preceded the last
top-level event (attributes inside aggregates are dropped).  Streamed strings (``$?``,
``;n`` parts) and aggregates (``*?``, ``~?``, ``%?`` ... ``.``) become plain values.

Aggregates under construction live on an explicit stack of frames: no recursion (depth
is a counted limit, not a RecursionError), and each element is parsed once, when its
line and payload are complete; a blob of ``_BIG_BLOB`` bytes or more is collected
straight from ``feed`` (two copies for 512 MiB, not one per read).  Bounded by
``RespLimits``: header lines, blob lengths, items per aggregate, nesting and the bytes
of one reply; excess raises ``LimitExceeded`` whatever the chunking.  Anything else
the RESP3 spec rules out (unknown type byte, non-canonical or out-of-range numbers,
CR/LF in a simple string, a blob not followed by CRLF, a push inside an aggregate)
raises ``RemoteProtocolError``.  After either, every call raises the same error.

The encoder packs commands as arrays of blob strings (the only type a client sends):
``pack_command(*args)`` and ``pack_pipeline(commands)`` (one ``bytes`` to write);
arguments are bytes-like, ``str`` (UTF-8), ``int`` or ``float``.

``new_reader(accelerated=True)`` returns a ``HiredisReader`` when hiredis is importable
and ``MGPY_NO_EXTENSIONS`` is unset (4-8x faster on small replies, bench/micro_resp.py).
It is opt-in because hiredis cannot keep this module's contract on hostile input: it
pre-allocates declared aggregate sizes and has no element, depth or reply limit (only
``max_bulk`` is enforced, on the bytes it buffers), skips the CRLF check after a blob,
accepts doubles like ``.5``, returns big numbers as ``bytes``, refuses blob errors and
streamed types and mis-frames attributes inside aggregates.  Use it only with a Redis
server you trust.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from ..errors import Error, LimitExceeded, RemoteProtocolError
from ._sentinel import NEED_DATA, Sentinel
from .resp_write import pack_command, pack_pipeline

__all__ = [
    "NEED_DATA",
    "PubSubMessage",
    "ReaderBase",
    "RespError",
    "RespLimits",
    "RespPush",
    "RespReader",
    "Subscription",
    "pack_command",
    "pack_pipeline",
]

RespValue: TypeAlias = Any  # bytes | int | float | bool | None | RespError | list | dict

# -- limits ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RespLimits:
    """Bounds on what one reader accepts; excess raises ``LimitExceeded``."""

    #: a blob string's length; Redis' own proto-max-bulk-len default
    max_bulk: int = 512 * 1024 * 1024
    #: items in one aggregate (a map counts keys and values); hiredis allows 2**32 - 1, but
    #: this reader never pre-allocates, and KEYS over 16 M keys still fits
    max_elements: int = 1 << 24
    #: nesting of aggregates; Redis' deepest reply (COMMAND DOCS) nests 7, hiredis < 1.0 capped 7
    max_depth: int = 32
    #: a header or one-line value (+ - : , ( ...); Redis' PROTO_INLINE_MAX_SIZE
    max_line: int = 64 * 1024
    #: all the bytes of one top-level reply
    max_reply: int = 1024 * 1024 * 1024


# -- type bytes (RESP3 spec, "RESP3 types") -------------------------------------------
_BLOB: Final = ord("$")
_SIMPLE: Final = ord("+")
_ERROR: Final = ord("-")
_NUMBER: Final = ord(":")
_ARRAY: Final = ord("*")
_NULL: Final = ord("_")
_DOUBLE: Final = ord(",")
_BOOLEAN: Final = ord("#")
_BLOB_ERROR: Final = ord("!")
_VERBATIM: Final = ord("=")
_BIG_NUMBER: Final = ord("(")
_MAP: Final = ord("%")
_SET: Final = ord("~")
_ATTRIBUTE: Final = ord("|")
_PUSH: Final = ord(">")
_CHUNK: Final = ord(";")  # a part of a streamed string
_END: Final = ord(".")  # the end of a streamed aggregate

_CRLF: Final = b"\r\n"
_STREAMED: Final = b"?"
_NULL_LENGTH: Final = b"-1"
_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1
#: verbatim strings start with a 3-byte format and a colon: "txt:" / "mkd:"
_VERBATIM_PREFIX: Final = 4
#: blobs at least this long are collected from feed() chunk by chunk
_BIG_BLOB: Final = 64 * 1024

# RESP3 spec, "Double": digits, optional fraction, optional exponent; inf, -inf, nan.
# Redis before 7.2 may send libc spellings of NaN ("-nan", "NAN", "nan(...)").
_DOUBLE_RE: Final = re.compile(rb"[-+]?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|[-+]?inf")
_NAN_RE: Final = re.compile(rb"[-+]?nan(?:\([0-9A-Za-z_]*\))?", re.IGNORECASE)

_AGGREGATES: Final = frozenset((_ARRAY, _SET, _MAP, _ATTRIBUTE, _PUSH))
_PAIRED: Final = frozenset((_MAP, _ATTRIBUTE))
_BLOBS: Final = frozenset((_BLOB, _VERBATIM, _BLOB_ERROR, _CHUNK))
_STREAMABLE: Final = frozenset((_ARRAY, _SET, _MAP))

_NOTHING: Final = Sentinel("_NOTHING")
#: canonical decimal lines of small lengths and numbers, parsed once: b"42" -> 42
_SMALL_INTS: Final = {b"%d" % i: i for i in range(1024)}


# -- values and events ----------------------------------------------------------------


class RespError(Error):
    """An error reply (``-ERR ...`` or a RESP3 blob error): a value, not raised by the reader.

    ``code`` is the first word (``"ERR"``, ``"WRONGTYPE"``, ``"NOPROTO"`` ...), ``message``
    the whole text.  Raise it yourself where a failed command should be an exception.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def code(self) -> str:
        """The error code: the first word of the message."""
        return self.message.split(" ", 1)[0]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RespError) and other.message == self.message

    def __hash__(self) -> int:
        return hash(self.message)

    def __repr__(self) -> str:
        return f"RespError({self.message!r})"


@dataclass(slots=True)
class PubSubMessage:
    """A published message: ``message``, ``pmessage`` (``pattern`` set) or ``smessage``."""

    channel: bytes
    data: bytes
    pattern: bytes | None = None
    sharded: bool = False


@dataclass(slots=True)
class Subscription:
    """A (un)subscribe confirmation: ``kind`` is e.g. ``"subscribe"`` or ``"punsubscribe"``.

    ``count`` is the number of subscriptions the connection has left (shard channels are
    counted apart); ``channel`` is None for an UNSUBSCRIBE without subscriptions.
    """

    kind: str
    channel: bytes | None
    count: int


@dataclass(slots=True)
class RespPush:
    """A RESP3 push that is not a Pub/Sub event, e.g. ``invalidate`` (client tracking)."""

    kind: str
    data: list[RespValue]


#: (un)subscribe confirmations; the shard ones count shard channels apart
_SUBSCRIPTION_KINDS: Final = frozenset(
    (b"subscribe", b"psubscribe", b"unsubscribe", b"punsubscribe", b"ssubscribe", b"sunsubscribe")
)
_SHARD_KINDS: Final = frozenset((b"ssubscribe", b"sunsubscribe"))


def _hashable(value: RespValue) -> RespValue:
    """Return ``value`` usable as a dict key: lists become tuples, maps tuples of pairs."""
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple((_hashable(k), _hashable(v)) for k, v in value.items())
    return value


def _make_map(items: list[RespValue]) -> dict[RespValue, RespValue]:
    """Build a dict from ``[k1, v1, k2, v2 ...]`` (RESP3 spec, "Map type")."""
    try:
        return dict(zip(items[0::2], items[1::2], strict=True))
    except TypeError:  # an aggregate used as a key (Lua scripts and modules can)
        return {_hashable(k): v for k, v in zip(items[0::2], items[1::2], strict=True)}


class ReaderBase:
    """What both readers share: limits, the Pub/Sub state and event typing."""

    __slots__ = (
        "_counts",
        "_failed",
        "attributes",
        "limits",
        "pubsub",
    )

    def __init__(self, limits: RespLimits | None = None) -> None:
        self.limits = limits if limits is not None else RespLimits()
        #: RESP2 only: type top-level arrays as Pub/Sub events (set it when subscribing)
        self.pubsub = False
        #: the attribute map (RESP3 ``|``) that preceded the last top-level event, or None
        self.attributes: dict[RespValue, RespValue] | None = None
        self._counts = [0, 0]  # subscriptions left: [channels + patterns, shard channels]
        self._failed: RemoteProtocolError | None = None

    def _typed(self, items: list[RespValue], push: bool) -> object:
        """Type a push (``push``) or a RESP2 array read in Pub/Sub mode.

        RESP3 spec, "Push type": the first element is always a string naming the kind.
        A RESP2 array that is not shaped like a Pub/Sub event stays a plain reply (the
        PING reply in Pub/Sub mode is ``["pong", ""]``).
        """
        kind = items[0] if items else None
        if type(kind) is not bytes:
            if push:
                raise RemoteProtocolError("RESP push without a string kind")
            return items
        n = len(items)
        if kind == b"message" or kind == b"smessage":
            if n == 3 and type(items[1]) is bytes and type(items[2]) is bytes:
                return PubSubMessage(items[1], items[2], None, kind == b"smessage")
        elif kind == b"pmessage":
            if n == 4 and all(type(x) is bytes for x in items[1:]):
                return PubSubMessage(items[2], items[3], items[1])
        elif kind in _SUBSCRIPTION_KINDS:
            channel, count = items[1:] if n == 3 else (b"", None)
            if type(count) is int and (channel is None or type(channel) is bytes):
                return self._subscription(kind, channel, count)
        if push:
            return RespPush(kind.decode("latin-1"), items[1:])
        return items

    def _subscription(self, kind: bytes, channel: bytes | None, count: int) -> Subscription:
        """Track how many subscriptions are left; leave Pub/Sub mode when none is."""
        self._counts[kind in _SHARD_KINDS] = count
        if kind.endswith(b"unsubscribe") and not any(self._counts):
            self.pubsub = False
        return Subscription(kind.decode("ascii"), channel, count)


class _Frame:
    """An aggregate under construction: ``left`` items still to come, -1 when streamed."""

    __slots__ = ("items", "kind", "left", "size")

    def __init__(self, kind: int, left: int) -> None:
        self.kind = kind
        self.left = left
        self.items: list[RespValue] = []
        self.size = 0  # bytes of a streamed string so far


class RespReader(ReaderBase):
    """Incremental RESP2/RESP3 reply reader (pure Python).

    Example::

        reader = RespReader()
        sock.sendall(pack_pipeline([("SET", "k", 1), ("INCR", "k"), ("GET", "k")]))
        replies = []
        while len(replies) < 3:
            reader.feed(sock.recv(65536))
            while (ev := reader.next_event()) is not NEED_DATA:
                replies.append(ev)          # [b"OK", 2, b"2"]
    """

    __slots__ = (
        "_base",
        "_blob_kind",
        "_blob_left",
        "_blob_parts",
        "_buf",
        "_inbox",
        "_inbox_size",
        "_pending_attrs",
        "_pos",
        "_reply_start",
        "_stack",
        "_want",
    )

    def __init__(self, limits: RespLimits | None = None) -> None:
        super().__init__(limits)
        self._buf = b""
        self._pos = 0
        self._base = 0  # stream offset of _buf[0]
        self._inbox: list[bytes] = []
        self._inbox_size = 0
        self._want = 0  # bytes from _pos that the incomplete element needs at least
        self._stack: list[_Frame] = []
        self._pending_attrs: dict[RespValue, RespValue] | None = None
        self._reply_start = -1  # stream offset where the aggregate being parsed began
        # a big blob being collected straight from feed()
        self._blob_parts: list[bytes] | None = None
        self._blob_left = 0
        self._blob_kind = 0

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes (copied; the caller may reuse its buffer)."""
        if data:
            self._inbox.append(bytes(data))
            self._inbox_size += len(data)

    def next_event(self) -> object:
        """Return the next reply value or typed event, or ``NEED_DATA``.

        Raises:
            LimitExceeded: a configured limit was passed.
            RemoteProtocolError: the bytes are not RESP; the reader is dead afterwards.
        """
        if self._failed is not None:
            raise self._failed
        try:
            if self._inbox:
                # a blob trickling in is not re-joined and re-parsed on every read
                if len(self._buf) - self._pos + self._inbox_size < self._want:
                    return NEED_DATA
                self._absorb()
            return self._parse()
        except RemoteProtocolError as exc:
            self._failed = exc
            raise

    def _absorb(self) -> None:
        """Move fed chunks into the collected blob, then into the parse buffer."""
        inbox = self._inbox
        self._inbox = []
        self._inbox_size = 0
        self._want = 0
        if self._blob_left:
            parts = self._blob_parts
            assert parts is not None
            self._base += len(self._buf)  # everything before the blob's missing part is parsed
            self._buf = b""
            self._pos = 0
            while inbox and self._blob_left:
                chunk = inbox.pop(0)
                take = min(len(chunk), self._blob_left)
                parts.append(chunk if take == len(chunk) else chunk[:take])
                self._blob_left -= take
                self._base += take
                if take < len(chunk):
                    inbox.insert(0, chunk[take:])
            if not inbox:
                self._check_reply_size(0)
                return
        rest = self._buf[self._pos :]
        self._base += self._pos
        self._buf = b"".join([rest, *inbox]) if rest else b"".join(inbox)
        self._pos = 0

    def _check_reply_size(self, buffered: int) -> None:
        """Refuse a reply whose bytes so far (parsed and ``buffered``) pass ``max_reply``."""
        if self._base + self._pos + buffered - self._reply_start > self.limits.max_reply:
            raise LimitExceeded("RESP reply larger than max_reply")

    def _need_data(self, pos: int) -> Sentinel:
        self._pos = pos
        if self._stack or self._blob_parts is not None:
            self._check_reply_size(len(self._buf) - pos)
        return NEED_DATA

    def _line_int(self, line: bytes, what: str) -> int:
        """Parse a canonical decimal integer (no sign but '-', no leading zero, no space)."""
        try:
            value = int(line)
        except ValueError:
            raise RemoteProtocolError(f"RESP: bad {what} {line[:40]!r}") from None
        if b"%d" % value != line:
            raise RemoteProtocolError(f"RESP: bad {what} {line[:40]!r}")
        return value

    def _parse(self) -> object:
        buf = self._buf
        pos = self._pos
        n = len(buf)
        stack = self._stack
        value: RespValue = _NOTHING
        kind = 0
        if self._blob_parts is not None:
            if self._blob_left or n - pos < len(_CRLF):
                return self._need_data(pos)
            if not buf.startswith(_CRLF, pos):
                raise RemoteProtocolError("RESP: blob string not followed by CRLF")
            pos += 2
            kind = self._blob_kind
            value = self._blob_value(kind, b"".join(self._blob_parts))
            self._blob_parts = None
        find = buf.find
        small = _SMALL_INTS
        limits = self.limits
        line_room = limits.max_line + 3  # type byte, line, CRLF
        max_bulk = min(limits.max_bulk, limits.max_reply)
        max_elements = limits.max_elements
        while True:
            if value is _NOTHING:
                if pos >= n:
                    return self._need_data(pos)
                e = find(_CRLF, pos, pos + line_room)
                if e < 0:
                    if n >= pos + line_room:
                        raise LimitExceeded("RESP header line longer than max_line")
                    return self._need_data(pos)
                kind = buf[pos]
                line = buf[pos + 1 : e]
                # fast paths: blob strings, arrays, pushes and numbers with small lengths
                if kind == _BLOB and line in small:
                    length = small[line]
                    if length > max_bulk:
                        raise LimitExceeded("RESP blob string longer than max_bulk")
                    end = e + 2 + length
                    if end + 2 > n:
                        self._want = end + 2 - pos
                        return self._need_data(pos)
                    if not buf.startswith(_CRLF, end):
                        raise RemoteProtocolError("RESP: blob string not followed by CRLF")
                    value = buf[e + 2 : end]
                    pos = end + 2
                elif (kind == _ARRAY or kind == _PUSH) and line in small:
                    count = small[line]
                    if count > max_elements:
                        raise LimitExceeded("RESP aggregate longer than max_elements")
                    if count and (kind == _ARRAY or not stack):
                        self._push_frame(stack, kind, count, pos)
                        pos = e + 2
                        continue
                    value = self._aggregate(stack, kind, line, pos)
                    pos = e + 2
                    if value is _NOTHING:
                        continue
                elif kind == _NUMBER and line in small:
                    value = small[line]
                    pos = e + 2
                elif kind == _SIMPLE and b"\r" not in line and b"\n" not in line:
                    value = line
                    pos = e + 2
                elif kind in _BLOBS:
                    value = self._blob(stack, kind, line, pos, e)
                    if value is NEED_DATA:
                        return value
                    pos = self._pos
                    if value is _NOTHING:  # "$?" opened a streamed string
                        continue
                elif kind in _AGGREGATES:
                    value = self._aggregate(stack, kind, line, pos)
                    pos = e + 2
                    if value is _NOTHING:
                        continue
                else:
                    value = self._simple(kind, line)
                    pos = e + 2
                    if value is _NOTHING:  # "." ends a streamed aggregate
                        fr = stack.pop()
                        kind = fr.kind
                        if kind == _MAP and len(fr.items) % 2:
                            raise RemoteProtocolError("RESP: streamed map with an odd count")
                        value = _make_map(fr.items) if kind == _MAP else fr.items
            if stack:
                fr = stack[-1]
                left = fr.left
                if left > 1:  # the common case: an aggregate that is not complete yet
                    fr.items.append(value)
                    fr.left = left - 1
                    value = _NOTHING
                    continue
                value, kind = self._deliver(stack, value, kind)
                if value is _NOTHING or stack:
                    value = _NOTHING
                    continue
            self._pos = pos
            if self._reply_start >= 0:  # an aggregate or a collected blob: check its size
                self._check_reply_size(0)
                self._reply_start = -1
            if kind == _PUSH or self.pubsub or self._pending_attrs or self.attributes:
                return self._top(value, kind)
            return value

    def _blob(self, stack: list[_Frame], kind: int, line: bytes, pos: int, e: int) -> object:
        """Read a blob-like element whose header ends at ``e``; sets ``_pos`` past it.

        Returns the value, ``_NOTHING`` for the start of a streamed string, or
        ``NEED_DATA`` (with ``_pos`` set) when its payload has not all arrived.
        """
        buf = self._buf
        start = e + 2
        self._pos = start
        if kind != _CHUNK and stack and stack[-1].left < 0 and stack[-1].kind == _BLOB:
            raise RemoteProtocolError("RESP: streamed string part is not ';'")
        if kind == _BLOB:
            if line == _STREAMED:  # RESP3 "Streamed strings"
                self._push_frame(stack, _BLOB, -1, pos)
                return _NOTHING
            if line == _NULL_LENGTH:  # RESP2 null bulk string
                return None
        length = self._blob_length(stack, kind, line)
        if length < 0:  # ";0": the streamed string is complete
            return b"".join(stack.pop().items)
        end = start + length
        if end + 2 > len(buf):
            if length < _BIG_BLOB:
                self._want = end + 2 - pos
                return self._need_data(pos)
            return self._need_data(self._collect(stack, kind, pos, start, end))
        if not buf.startswith(_CRLF, end):
            raise RemoteProtocolError("RESP: blob string not followed by CRLF")
        self._pos = end + 2
        return self._blob_value(kind, buf[start:end])

    def _aggregate(self, stack: list[_Frame], kind: int, line: bytes, pos: int) -> RespValue:
        """Open an aggregate at ``pos``; ``_NOTHING`` if a frame (or attribute) is now open."""
        if line == _STREAMED and kind in _STREAMABLE:  # RESP3 "Streamed aggregated data types"
            self._push_frame(stack, kind, -1, pos)
            return _NOTHING
        if kind == _ARRAY and line == _NULL_LENGTH:  # RESP2 null array
            return None
        count = self._aggregate_length(stack, kind, line)
        if count:
            self._push_frame(stack, kind, count, pos)
            return _NOTHING
        if kind == _ATTRIBUTE:
            return _NOTHING
        return {} if kind == _MAP else []

    def _blob_length(self, stack: list[_Frame], kind: int, line: bytes) -> int:
        """Check a blob header; -1 for the ``;0`` that ends a streamed string."""
        length = self._line_int(line, "length")
        if length < 0:
            raise RemoteProtocolError("RESP: negative blob length")
        if length > min(self.limits.max_bulk, self.limits.max_reply):
            raise LimitExceeded("RESP blob string longer than max_bulk")
        if kind == _CHUNK:
            if not stack or stack[-1].kind != _BLOB:
                raise RemoteProtocolError("RESP: ';' outside a streamed string")
            fr = stack[-1]
            fr.size += length
            if fr.size > self.limits.max_bulk:
                raise LimitExceeded("RESP streamed string longer than max_bulk")
            if length == 0:
                return -1
        return length

    def _aggregate_length(self, stack: list[_Frame], kind: int, line: bytes) -> int:
        """Check an aggregate header; return its item count (a map's pairs count twice)."""
        count = self._line_int(line, "aggregate length")
        if count < 0:
            raise RemoteProtocolError("RESP: negative aggregate length")
        if kind in _PAIRED:
            count *= 2
        if count > self.limits.max_elements:
            raise LimitExceeded("RESP aggregate longer than max_elements")
        if kind == _PUSH:
            # RESP3 "Push type": always at the top level, the first element names the kind
            if stack:
                raise RemoteProtocolError("RESP: push inside an aggregate")
            if not count:
                raise RemoteProtocolError("RESP push without a string kind")
        return count

    def _deliver(self, stack: list[_Frame], value: RespValue, kind: int) -> tuple[RespValue, int]:
        """Add ``value`` to the open aggregate; return the aggregates it completes.

        Returns ``(value, kind)`` of the outermost aggregate completed when the stack
        emptied, else ``(_NOTHING, 0)``.
        """
        while stack:
            fr = stack[-1]
            items = fr.items
            if fr.left < 0:
                if fr.kind == _BLOB and kind != _CHUNK:
                    raise RemoteProtocolError("RESP: streamed string part is not ';'")
                if len(items) >= self.limits.max_elements:
                    raise LimitExceeded("RESP aggregate longer than max_elements")
                items.append(value)
                return _NOTHING, 0
            items.append(value)
            fr.left -= 1
            if fr.left:
                return _NOTHING, 0
            stack.pop()
            kind = fr.kind
            if kind == _ATTRIBUTE:  # RESP3 "Attribute type": not part of the reply
                if not stack:
                    self._pending_attrs = _make_map(items)
                return _NOTHING, 0
            value = _make_map(items) if kind == _MAP else items
            if not stack:
                return value, kind
        return value, kind

    def _push_frame(self, stack: list[_Frame], kind: int, left: int, pos: int) -> None:
        if len(stack) >= self.limits.max_depth:
            raise LimitExceeded("RESP aggregates nested deeper than max_depth")
        if not stack:
            self._reply_start = self._base + pos
        stack.append(_Frame(kind, left))

    def _collect(self, stack: list[_Frame], kind: int, pos: int, start: int, end: int) -> int:
        """Start collecting a big blob whose payload has not all arrived; return the new pos."""
        if not stack:
            self._reply_start = self._base + pos
        stop = min(len(self._buf), end)
        self._blob_parts = [self._buf[start:stop]]
        self._blob_left = end - stop
        self._blob_kind = kind
        return stop

    def _blob_value(self, kind: int, data: bytes) -> RespValue:
        if kind == _BLOB or kind == _CHUNK:
            return data
        if kind == _BLOB_ERROR:
            return RespError(data.decode("utf-8", "replace"))
        # RESP3 "Verbatim string": a 3-byte format and ':' before the text
        if len(data) < _VERBATIM_PREFIX or data[_VERBATIM_PREFIX - 1 : _VERBATIM_PREFIX] != b":":
            raise RemoteProtocolError("RESP: verbatim string without its format")
        return data[_VERBATIM_PREFIX:]

    def _simple(self, kind: int, line: bytes) -> RespValue:
        """Parse a one-line type; ``_NOTHING`` for ``.`` (caller pops the streamed aggregate)."""
        if kind == _NUMBER:
            value = self._line_int(line, "number")
            if not _INT64_MIN <= value <= _INT64_MAX:
                raise RemoteProtocolError("RESP: number outside the signed 64-bit range")
            return value
        if kind == _SIMPLE or kind == _ERROR:
            # RESP3 "Simple string": cannot contain CR nor LF
            if b"\r" in line or b"\n" in line:
                raise RemoteProtocolError("RESP: CR or LF inside a simple string")
            return line if kind == _SIMPLE else RespError(line.decode("utf-8", "replace"))
        if kind == _NULL:
            if line:
                raise RemoteProtocolError("RESP: bad null")
            return None
        if kind == _DOUBLE:
            if _DOUBLE_RE.fullmatch(line):
                return float(line)
            if _NAN_RE.fullmatch(line):
                return float("nan")
            raise RemoteProtocolError(f"RESP: bad double {line[:40]!r}")
        if kind == _BOOLEAN:
            if line == b"t" or line == b"f":
                return line == b"t"
            raise RemoteProtocolError("RESP: bad boolean")
        if kind == _BIG_NUMBER:
            return self._line_int(line, "big number")
        if kind == _END:
            stack = self._stack
            if line or not stack or stack[-1].left >= 0 or stack[-1].kind == _BLOB:
                raise RemoteProtocolError("RESP: '.' outside a streamed aggregate")
            return _NOTHING
        raise RemoteProtocolError(f"RESP: unknown type byte {bytes((kind,))!r}")

    def _top(self, value: RespValue, kind: int) -> object:
        """Turn a complete top-level value into the event returned."""
        self.attributes = self._pending_attrs
        self._pending_attrs = None
        if kind == _PUSH:
            return self._typed(value, True)
        if self.pubsub and kind == _ARRAY and value:
            return self._typed(value, False)
        return value

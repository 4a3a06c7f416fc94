"""Sans-IO Server-Sent Events: an event serializer, the stream headers, an event-stream parser
and a bounded replay buffer (WHATWG HTML, section 9.2 "Server-sent events").

Theory of operation
-------------------
Server side: ``format_event(data, event=, id=, retry=)`` returns the bytes of one event,
ready to send as one HTTP chunk; ``format_comment(text)`` a comment line (keepalive:
the spec's authoring notes suggest one every 15 s, ``KEEPALIVE_INTERVAL``, so proxies
keep the connection).  Multi-line data is split on CRLF, LF and CR into one ``data:``
line each, which a client joins back with LF (9.2.6).  Fields a client would
misread are refused with ``LocalProtocolError``: CR or LF in ``event`` or ``id`` (they
would end the line), NUL in ``id`` (clients ignore such an id, 9.2.6), a negative
``retry``.  ``response_headers()`` are the headers a stream needs (the body is
streamed until the connection closes: chunked, never a Content-Length), and
``last_event_id(headers)`` reads a reconnecting client's ``Last-Event-ID`` (9.2.4).

Client side (and tests): ``SseParser`` implements 9.2.5/9.2.6 exactly, incrementally:
``feed(data)`` then ``next_event()`` -> ``SseEvent`` or ``NEED_DATA``.  Bytes are
decoded as UTF-8 with replacement, one leading BOM is dropped, lines end at CRLF, LF
or CR (a CR at the end of a read ends the line at once; an LF right after it is then
skipped), ``:`` lines are comments, a line without a colon is a field with an empty
value, one space after the colon is removed, unknown fields are ignored, ``retry``
counts only when all ASCII digits, an ``id`` with NUL is ignored, and a blank line
dispatches the event (none when no data was given; the last event ID persists across
events).  Memory is bounded: a pending line plus the data of the event being built
may not pass ``max_event`` characters (``LimitExceeded``).  ``eof()`` discards a
partial event, as the spec requires when the stream ends.

``ReplayBuffer`` keeps the last ``capacity`` events with increasing integer ids, so
a client reconnecting with ``Last-Event-ID`` gets what it missed: ``since(last_id)``
returns the events after ``last_id`` or None when the id is too old (events after it
were evicted) or unknown (never issued here, e.g. by a previous process).
"""

from __future__ import annotations

import bisect
import codecs
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from ..errors import LimitExceeded, LocalProtocolError
from ._sentinel import NEED_DATA

__all__ = [
    "DEFAULT_MAX_EVENT",
    "KEEPALIVE_INTERVAL",
    "LAST_EVENT_ID",
    "MIME_TYPE",
    "NEED_DATA",
    "ReplayBuffer",
    "SseEvent",
    "SseParser",
    "format_comment",
    "format_event",
    "last_event_id",
    "response_headers",
]

#: the stream's media type (9.2.5: always UTF-8, so no charset parameter is needed)
MIME_TYPE: Final = "text/event-stream"
#: the request header a reconnecting EventSource sends (9.2.4)
LAST_EVENT_ID: Final = "Last-Event-ID"
#: seconds between keepalive comments (9.2.7 authoring notes: "every 15 seconds or so")
KEEPALIVE_INTERVAL: Final = 15.0
#: characters of one event being parsed (its data plus a pending line); mgpy's ws_max_message
DEFAULT_MAX_EVENT: Final = 1024 * 1024

_DEFAULT_TYPE: Final = "message"  # 9.2.6: the type of an event without an "event" field
_NUL: Final = "\x00"
_CR: Final = "\r"
_LF: Final = "\n"


# -- serializer ------------------------------------------------------------------------


def _lines(text: str) -> list[str]:
    """Split on CRLF, LF and CR, the three line ends of 9.2.5 (str.splitlines knows more)."""
    if _CR in text:
        text = text.replace("\r\n", _LF).replace(_CR, _LF)
    return text.split(_LF)


def _single_line(name: str, value: str) -> str:
    if _CR in value or _LF in value:
        raise LocalProtocolError(f"SSE {name} must not contain CR or LF")
    return value


def format_event(
    data: str | bytes | None = None,
    *,
    event: str | None = None,
    id: str | int | None = None,  # the field's name in the spec
    retry: int | None = None,
) -> bytes:
    """Return one event as bytes: ``format_event("a\\nb", event="chat", id=7)``.

    ``data`` (str, or UTF-8 bytes) becomes one ``data:`` line per line, so the client's
    ``event.data`` is ``data`` with every line end turned into LF; None sends no data (a
    client then dispatches nothing, but still takes ``id`` and ``retry``).  ``id=""``
    clears the client's last event ID.  ``retry`` is the reconnection time in ms.

    Raises:
        LocalProtocolError: CR/LF in ``event`` or ``id``, NUL in ``id``, a negative or
            non-integer ``retry``, ``data`` bytes that are not UTF-8.
    """
    out: list[str] = []
    if id is not None:
        ident = _single_line("id", str(id))
        if _NUL in ident:  # 9.2.6: a client ignores an id containing NUL
            raise LocalProtocolError("SSE id must not contain NUL")
        out.append(f"id: {ident}" if ident else "id:")
    if event is not None:
        out.append(f"event: {_single_line('event', event)}")
    if retry is not None:
        # 9.2.6: only ASCII digits set the reconnection time
        if type(retry) is not int or retry < 0:
            raise LocalProtocolError("SSE retry must be a non-negative int (milliseconds)")
        out.append(f"retry: {retry}")
    if data is not None:
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError:
                raise LocalProtocolError("SSE data must be UTF-8") from None
        out += [f"data: {line}" if line else "data:" for line in _lines(data)]
    out.append("\n")  # the blank line that dispatches the event
    return "\n".join(out).encode("utf-8")


def format_comment(text: str = "") -> bytes:
    """Return comment lines (``: text``), e.g. a keepalive; clients ignore them (9.2.6)."""
    return "".join(f": {line}\n" if line else ":\n" for line in _lines(text)).encode("utf-8")


def response_headers() -> list[tuple[str, str]]:
    """The headers to answer an event-stream request with (add them to a 200 head).

    No Content-Length: the stream lasts until a side closes, so HTTP/1.1 sends it
    chunked.  ``Cache-Control: no-store`` keeps caches out; ``X-Accel-Buffering: no``
    stops nginx from holding events back in its proxy buffer.
    """
    return [
        ("Content-Type", MIME_TYPE),
        ("Cache-Control", "no-store"),
        ("X-Accel-Buffering", "no"),
    ]


def last_event_id(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> str | None:
    """Return the ``Last-Event-ID`` a reconnecting client sent, or None (absent or empty).

    9.2.4: the value is the last event ID string encoded as UTF-8; heads decoded as
    latin-1 (mgpy's HTTP parser) are re-decoded as UTF-8.  An id that is not valid UTF-8
    was never sent by this module, so it reads as None.  With several such headers the
    first counts.
    """
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    wanted = LAST_EVENT_ID.lower()
    for name, value in pairs:
        if name.lower() != wanted:
            continue
        if not value:
            return None
        try:
            return value.encode("latin-1").decode("utf-8")
        except UnicodeEncodeError:  # already decoded beyond latin-1: take it as it is
            return value
        except UnicodeDecodeError:
            return None
    return None


# -- parser ----------------------------------------------------------------------------


@dataclass(slots=True)
class SseEvent:
    """A dispatched event: ``type`` ("message" unless an ``event`` field said otherwise),
    ``data`` (lines joined with LF) and ``id``, the last event ID string at dispatch."""

    data: str
    type: str = _DEFAULT_TYPE
    id: str = ""


class SseParser:
    """Incremental event-stream parser (WHATWG HTML 9.2.5 and 9.2.6).

    Example::

        parser = SseParser()
        parser.feed(b"retry: 500\\nid: 1\\ndata: hi\\n\\n")
        parser.next_event()     # SseEvent(data="hi", type="message", id="1")
        parser.retry            # 500: reconnect after 500 ms
        parser.last_event_id    # "1": send it as Last-Event-ID when reconnecting
    """

    __slots__ = (
        "_after_cr",
        "_data",
        "_decoder",
        "_events",
        "_line",
        "_line_size",
        "_size",
        "_type",
        "last_event_id",
        "max_event",
        "retry",
    )

    def __init__(self, max_event: int = DEFAULT_MAX_EVENT) -> None:
        self.max_event = max_event
        #: the event source's last event ID string: persists across events (9.2.6)
        self.last_event_id = ""
        #: the reconnection time in ms set by the last valid ``retry`` field, or None
        self.retry: int | None = None
        # "UTF-8 decode" drops one leading BOM and replaces invalid bytes (9.2.5)
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        self._line: list[str] = []  # the pieces of a line whose end has not arrived
        self._line_size = 0
        self._after_cr = False  # the last line ended with CR: an LF next is part of it
        self._data: list[str] = []  # the data buffer, one entry per data line
        self._type = ""  # the event type buffer
        self._size = 0  # characters in _data
        self._events: deque[SseEvent] = deque()

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Parse received bytes; events wait in ``next_event()``.

        Raises:
            LimitExceeded: a line or an event passed ``max_event`` characters.
        """
        text = self._decoder.decode(bytes(data))
        if not text:
            return
        if self._after_cr:
            self._after_cr = False
            if text[0] == _LF:
                text = text[1:]
        if _CR in text:
            self._after_cr = text[-1] == _CR
            text = text.replace("\r\n", _LF).replace(_CR, _LF)
        lines = text.split(_LF)
        last = lines.pop()
        if lines and self._line:
            self._line.append(lines[0])
            lines[0] = "".join(self._line)
            self._line = []
            self._line_size = 0
        for line in lines:
            self._process(line)
        if last:  # pieces are joined once the line ends: a trickled line costs O(n)
            self._line.append(last)
            self._line_size += len(last)
        self._check_size(self._line_size)

    def next_event(self) -> SseEvent | object:
        """Return the next dispatched ``SseEvent``, or ``NEED_DATA``."""
        if self._events:
            return self._events.popleft()
        return NEED_DATA

    def eof(self) -> None:
        """The stream ended: drop the partial line and event (9.2.6), keep id and retry."""
        self._decoder.reset()
        self._line = []
        self._line_size = 0
        self._after_cr = False
        self._data = []
        self._type = ""
        self._size = 0

    def _check_size(self, pending: int) -> None:
        if self._size + pending > self.max_event:
            raise LimitExceeded("SSE event larger than max_event")

    def _process(self, line: str) -> None:
        """Process one line (9.2.6 "Interpreting an event stream")."""
        if not line:
            self._dispatch()
            return
        colon = line.find(":")
        if colon == 0:  # a comment
            return
        if colon < 0:  # a field name alone: the value is the empty string
            field, value = line, ""
        else:
            field, value = line[:colon], line[colon + 1 :]
            if value[:1] == " ":
                value = value[1:]
        if field == "data":
            self._data.append(value)
            self._size += len(value) + 1
            self._check_size(0)
        elif field == "event":
            self._type = value
        elif field == "id":
            if _NUL not in value:
                self.last_event_id = value
        elif field == "retry":
            if value and value.isascii() and value.isdigit():
                self.retry = int(value)
        # any other field is ignored

    def _dispatch(self) -> None:
        """9.2.6 "dispatch the event": nothing without data; the type buffer resets."""
        if self._data:
            self._events.append(
                SseEvent("\n".join(self._data), self._type or _DEFAULT_TYPE, self.last_event_id)
            )
        self._data = []
        self._type = ""
        self._size = 0


# -- replay buffer ---------------------------------------------------------------------

T = TypeVar("T")


class ReplayBuffer(Generic[T]):
    """The last ``capacity`` events of a stream, by increasing integer id.

    Example::

        replay = ReplayBuffer[bytes](capacity=100)
        replay.append(41, format_event("x", id=41))
        missed = replay.since(last_event_id(hm.headers))   # None: too old or unknown
    """

    __slots__ = ("_evicted", "_ids", "_items", "_start", "capacity")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._ids: list[int] = []
        self._items: list[T] = []
        self._start = 0  # entries before it are evicted (compacted in bulk)
        self._evicted: int | None = None  # the newest evicted id

    def __len__(self) -> int:
        return len(self._ids) - self._start

    @property
    def last_id(self) -> int | None:
        """The newest id, or None when nothing was appended."""
        return self._ids[-1] if len(self) else self._evicted

    def append(self, event_id: int, item: T) -> None:
        """Keep ``item`` under ``event_id``, evicting the oldest beyond ``capacity``.

        Raises:
            LocalProtocolError: ``event_id`` is not greater than the last one.
        """
        last = self.last_id
        if type(event_id) is not int or (last is not None and event_id <= last):
            raise LocalProtocolError("replay ids must be increasing integers")
        self._ids.append(event_id)
        self._items.append(item)
        if len(self) > self.capacity:
            self._evicted = self._ids[self._start]
            self._start += 1
            if self._start >= self.capacity:  # amortised O(1): compact once per capacity
                del self._ids[: self._start]
                del self._items[: self._start]
                self._start = 0

    def since(self, last_id: int | str | None) -> list[T] | None:
        """Return the items after ``last_id`` (oldest first), or None if they are not all here.

        ``last_id`` is the id the client saw last (an int, or the ``Last-Event-ID`` string);
        None (a first connection) returns ``[]``.  None is returned for an id that is not
        decimal, newer than the newest, older than an evicted event, or never issued.
        """
        if last_id is None:
            return []
        if isinstance(last_id, str):
            if not (last_id.isascii() and last_id.isdigit()):
                return None
            last_id = int(last_id)
        if last_id == self._evicted:
            return self._items[self._start :]
        i = bisect.bisect_left(self._ids, last_id, self._start)
        if i == len(self._ids) or self._ids[i] != last_id:
            return None  # unknown, too old, or from the future
        return self._items[i + 1 :]

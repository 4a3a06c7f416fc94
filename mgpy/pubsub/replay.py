"""The hub's replay buffers: the last events of each topic, by event id.

Event ids are integers that grow across *all* topics of a hub (one counter: Redis INCR
when the hub is bridged, a process counter otherwise), so one ``Last-Event-ID`` places
a client in every topic of its stream at once: "give me what came after id N" is a
question each topic's buffer can answer.  ``TopicLog.after(n)`` returns the events with
an id above ``n``; it says whether some of them were evicted already (a gap the client
cannot recover: it gets what is left).

``ReplayStore`` bounds memory three ways: ``capacity`` events and ``max_bytes`` bytes of
payload per topic, and ``max_topics`` topics with a buffer (the least recently published
topic loses its buffer first).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import NamedTuple

__all__ = ["Published", "ReplayStore", "TopicLog"]


class Published(NamedTuple):
    """An event as the hub delivers it: ``id`` is None for events that are not replayable."""

    topic: str
    data: bytes
    op: int
    event: str | None
    id: int | None


class TopicLog:
    """The last replayable events of one topic: at most ``capacity`` events and
    ``max_bytes`` bytes of payload (an event larger than that is not kept)."""

    __slots__ = ("capacity", "evicted", "items", "max_bytes", "size")

    def __init__(self, capacity: int, max_bytes: int) -> None:
        self.items: deque[Published] = deque()
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.size = 0  # payload bytes kept
        #: the newest id that fell out of the buffer (0: none did)
        self.evicted = 0

    def add(self, item: Published) -> None:
        assert item.id is not None
        if len(item.data) > self.max_bytes:
            self.evicted = item.id  # not kept: a replay across it says so
            return
        items = self.items
        items.append(item)
        self.size += len(item.data)
        while len(items) > self.capacity or self.size > self.max_bytes:
            old = items.popleft()
            self.size -= len(old.data)
            assert old.id is not None
            self.evicted = old.id

    def after(self, last_id: int) -> tuple[list[Published], bool]:
        """Events with an id above ``last_id`` (oldest first), and whether some were lost."""
        items = self.items
        if not items or items[-1].id is None or items[-1].id <= last_id:
            return [], self.evicted > last_id
        out = [it for it in items if it.id is not None and it.id > last_id]
        return out, self.evicted > last_id


class ReplayStore:
    """Replay buffers for up to ``max_topics`` topics, ``capacity`` events and
    ``max_bytes`` bytes each."""

    __slots__ = ("capacity", "gaps", "logs", "max_bytes", "max_topics")

    def __init__(self, capacity: int, max_topics: int, max_bytes: int = 1 << 20) -> None:
        if capacity < 0 or max_topics < 1 or max_bytes < 0:
            raise ValueError("replay capacity, max_bytes must be >= 0 and max_topics >= 1")
        self.capacity = capacity
        self.max_topics = max_topics
        self.max_bytes = max_bytes
        self.logs: OrderedDict[str, TopicLog] = OrderedDict()
        #: replays that could not give everything (events evicted, or a topic forgotten)
        self.gaps = 0

    def add(self, item: Published) -> None:
        """Keep a replayable event (``item.id`` set)."""
        if not self.capacity or item.id is None:
            return
        logs = self.logs
        log = logs.get(item.topic)
        if log is None:
            log = logs[item.topic] = TopicLog(self.capacity, self.max_bytes)
            if len(logs) > self.max_topics:
                logs.popitem(last=False)
        else:
            logs.move_to_end(item.topic)
        log.add(item)

    def after(self, topics: list[str], last_id: int) -> list[Published]:
        """The events after ``last_id`` in ``topics``, merged in id order."""
        out: list[Published] = []
        for t in topics:
            log = self.logs.get(t)
            if log is None:
                continue
            items, gap = log.after(last_id)
            self.gaps += gap
            out += items
        if len(topics) > 1:
            out.sort(key=lambda it: it.id or 0)
        return out

    def clear(self) -> None:
        """Forget every buffer (the id counter restarted: old ids mean nothing now)."""
        self.logs.clear()

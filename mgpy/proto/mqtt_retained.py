"""Retained messages (MQTT 5.0 3.3.1.3): the last retained message per topic, and the
ones a new subscription's filter matches.

Strategy: a dict topic -> (message, expiry) for ``get``/``set`` and a trie of topic
levels for ``match(filter)``, which walks exact levels directly, every child for ``+``
and the whole subtree for ``#`` (``a/#`` includes ``a``); root-level wildcards skip
``$`` topics [MQTT-4.7.2-1].  Storing an empty payload deletes the topic's message and
stores nothing [MQTT-3.3.1-6] [MQTT-3.3.1-7]; the store is agnostic of the message type,
so the caller passes ``None`` for "delete".  Expiry (the 5.0 Message Expiry Interval)
is checked against the ``now`` the caller passes: no clock is read here.  Shared
subscriptions get no retained messages ("When a new Non-shared Subscription is made",
3.3.1.3), so ``match`` returns nothing for ``$share/`` filters.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from .mqtt_topics import DOLLAR, HASH, PLUS, SEP, parse_shared

__all__ = ["RetainedStore"]

M = TypeVar("M")


class _Node:
    __slots__ = ("children", "parent", "topic", "word")

    def __init__(self, parent: _Node | None, word: str) -> None:
        self.parent = parent
        self.word = word
        self.children: dict[str, _Node] = {}
        self.topic: str | None = None  # set where a retained message ends


class RetainedStore(Generic[M]):
    """Topic -> last retained message, with filter matching for new subscriptions.

    Example::

        store: RetainedStore[bytes] = RetainedStore()
        store.set("sensors/kitchen/temp", b"21.5")
        store.match("sensors/+/temp")        # [("sensors/kitchen/temp", b"21.5")]
        store.set("sensors/kitchen/temp", None)   # an empty retained PUBLISH: delete
    """

    __slots__ = ("_messages", "_root")

    def __init__(self) -> None:
        self._messages: dict[str, tuple[M, float | None]] = {}
        self._root = _Node(None, "")

    def __len__(self) -> int:
        return len(self._messages)

    def __contains__(self, topic: object) -> bool:
        return topic in self._messages

    def set(self, topic: str, message: M | None, expires_at: float | None = None) -> None:
        """Store ``message`` as ``topic``'s retained message, replacing any [MQTT-3.3.1-5];
        ``None`` deletes it [MQTT-3.3.1-6].  ``expires_at``: when it lapses (caller's clock)."""
        if message is None:
            self._delete(topic)
            return
        if topic not in self._messages:
            node = self._root
            for word in topic.split(SEP):
                child = node.children.get(word)
                if child is None:
                    child = node.children[word] = _Node(node, word)
                node = child
            node.topic = topic
        self._messages[topic] = (message, expires_at)

    def _delete(self, topic: str) -> None:
        if self._messages.pop(topic, None) is None:
            return
        node: _Node = self._root
        for word in topic.split(SEP):
            node = node.children[word]
        node.topic = None
        while node.parent is not None and not node.children and node.topic is None:
            del node.parent.children[node.word]
            node = node.parent

    def get(self, topic: str, now: float | None = None) -> M | None:
        """Return ``topic``'s retained message, or None (also once expired at ``now``)."""
        hit = self._messages.get(topic)
        if hit is None:
            return None
        if now is not None and hit[1] is not None and hit[1] <= now:
            self._delete(topic)
            return None
        return hit[0]

    def match(self, topic_filter: str, now: float | None = None) -> list[tuple[str, M]]:
        """Return ``(topic, message)`` for every retained message ``topic_filter`` matches.

        ``topic_filter`` must be valid; expired messages (at ``now``) are dropped.
        """
        if parse_shared(topic_filter) is not None:
            return []
        if PLUS not in topic_filter and HASH not in topic_filter:
            msg = self.get(topic_filter, now)
            return [] if msg is None else [(topic_filter, msg)]
        found: list[str] = []
        frontier = [self._root]
        for i, word in enumerate(topic_filter.split(SEP)):
            nxt: list[_Node] = []
            if word == HASH:
                for node in frontier:
                    if node.topic is not None and node is not self._root:
                        found.append(node.topic)  # "a/#" matches "a"
                    self._subtree(node, i == 0, found)
                frontier = []
                break
            for node in frontier:
                if word == PLUS:
                    for w, child in node.children.items():
                        if i or not w.startswith(DOLLAR):  # [MQTT-4.7.2-1]
                            nxt.append(child)
                else:
                    exact = node.children.get(word)
                    if exact is not None:
                        nxt.append(exact)
            frontier = nxt
        found.extend(n.topic for n in frontier if n.topic is not None)
        out: list[tuple[str, M]] = []
        for topic in found:
            msg = self.get(topic, now)
            if msg is not None:
                out.append((topic, msg))
        return out

    @staticmethod
    def _subtree(node: _Node, at_root: bool, found: list[str]) -> None:
        """Append every topic below ``node`` (not ``node`` itself) to ``found``."""
        stack = [
            child
            for w, child in node.children.items()
            if not (at_root and w.startswith(DOLLAR))  # [MQTT-4.7.2-1]
        ]
        while stack:
            n = stack.pop()
            if n.topic is not None:
                found.append(n.topic)
            stack.extend(n.children.values())

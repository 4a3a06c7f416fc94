"""MQTT topic names, topic filters and the subscription index (MQTT 5.0 4.7, 4.8).

Strategy: validation returns a reason (``str``) or None, so the codec can raise the
remote error (0x90 Topic Name invalid / 0x8F Topic Filter invalid) and the encoder the
local one from the same rules: at least one character [MQTT-4.7.3-1], no U+0000
[MQTT-4.7.3-2], at most ``max_length`` bytes (65,535 at most [MQTT-4.7.3-3]) and
``max_levels`` levels (mosquitto's hierarchy limit), no wildcard in a name
[MQTT-4.7.0-1], ``#`` alone and last [MQTT-4.7.1-1], ``+`` alone in its level
[MQTT-4.7.1-2], and for ``$share/{ShareName}/{filter}`` a non-empty ShareName without
``/ + #`` followed by a non-empty filter [MQTT-4.8.2-1] [MQTT-4.8.2-2].  Names and
filters are compared as given, never normalised [MQTT-4.7.3-4].

``SubscriptionIndex`` is a trie keyed by topic level.  ``match(topic)`` walks it once
per level with a frontier of nodes (exact child, ``+`` child; a ``#`` child matches the
rest, and ``a/#`` also matches ``a``), skipping root wildcards for ``$`` topics
[MQTT-4.7.2-1], then merges the subscribers of the matched nodes: one entry per
subscriber with the maximum QoS of its overlapping subscriptions [MQTT-3.3.4-2] and all
their Subscription Identifiers [MQTT-3.3.4-4].  Results are cached per topic until the
next change, so a topic published over and over costs one dict lookup; the returned
mapping is a snapshot the caller may iterate while the index changes.  Shared
subscriptions are grouped per ShareName at their filter's node; each message goes to
one member of each group, in turn.  ``no_local`` subscriptions never receive their own
subscriber's messages [MQTT-3.8.3-3].
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Iterator, Mapping
from typing import Final, Generic, TypeVar

from .mqtt_codes import DEFAULT_MAX_TOPIC_LENGTH, DEFAULT_MAX_TOPIC_LEVELS

__all__ = [
    "SHARE_PREFIX",
    "SubOptions",
    "SubscriptionIndex",
    "is_valid_topic_filter",
    "is_valid_topic_name",
    "parse_shared",
    "topic_filter_problem",
    "topic_matches",
    "topic_name_problem",
]

SHARE_PREFIX: Final = "$share/"
SEP: Final = "/"
PLUS: Final = "+"
HASH: Final = "#"
DOLLAR: Final = "$"
#: match results cached per index (topics seen recently); emptied when full
_MATCH_CACHE: Final = 4096
#: subscriber entries held by merged (multi-filter) cached results; emptied past it
_MATCH_CACHE_ENTRIES: Final = 1 << 18

S = TypeVar("S", bound=Hashable)


def _nbytes(s: str) -> int:
    """UTF-8 length of ``s`` (the str length for ASCII, without encoding it)."""
    return len(s) if s.isascii() else len(s.encode("utf-8", "surrogatepass"))


def topic_name_problem(
    topic: str,
    max_length: int = DEFAULT_MAX_TOPIC_LENGTH,
    max_levels: int = DEFAULT_MAX_TOPIC_LEVELS,
    nbytes: int | None = None,
) -> str | None:
    """Return why ``topic`` is not a valid Topic Name, or None.  ``nbytes``: its UTF-8 length."""
    if not topic:
        return "empty topic name"  # [MQTT-4.7.3-1]
    if PLUS in topic or HASH in topic:
        return "wildcard in a topic name"  # [MQTT-3.3.2-2] [MQTT-4.7.0-1]
    if "\x00" in topic:
        return "U+0000 in a topic name"  # [MQTT-4.7.3-2]
    if (nbytes if nbytes is not None else _nbytes(topic)) > max_length:
        return f"topic name longer than {max_length} bytes"  # [MQTT-4.7.3-3]
    if topic.count(SEP) >= max_levels:
        return f"topic name deeper than {max_levels} levels"
    return None


def parse_shared(topic_filter: str) -> tuple[str, str] | None:
    """Split ``$share/{ShareName}/{filter}`` into ``(ShareName, filter)``; None if not shared.

    The result is not validated: see ``topic_filter_problem``.
    """
    if not topic_filter.startswith(SHARE_PREFIX):
        return None
    name, sep, rest = topic_filter[len(SHARE_PREFIX) :].partition(SEP)
    return name, (rest if sep else "")


def topic_filter_problem(
    topic_filter: str,
    max_length: int = DEFAULT_MAX_TOPIC_LENGTH,
    max_levels: int = DEFAULT_MAX_TOPIC_LEVELS,
    nbytes: int | None = None,
) -> str | None:
    """Return why ``topic_filter`` is not a valid Topic Filter, or None."""
    if not topic_filter:
        return "empty topic filter"  # [MQTT-4.7.3-1]
    if "\x00" in topic_filter:
        return "U+0000 in a topic filter"  # [MQTT-4.7.3-2]
    if (nbytes if nbytes is not None else _nbytes(topic_filter)) > max_length:
        return f"topic filter longer than {max_length} bytes"  # [MQTT-4.7.3-3]
    shared = parse_shared(topic_filter)
    if shared is not None:
        name, topic_filter = shared
        # [MQTT-4.8.2-1] a ShareName of at least one character; [MQTT-4.8.2-2] without
        # "/", "+" or "#", followed by "/" and a Topic Filter
        if not name or PLUS in name or HASH in name:
            return "invalid ShareName in a shared subscription"
        if not topic_filter:
            return "no topic filter after the ShareName"
    if topic_filter.count(SEP) >= max_levels:
        return f"topic filter deeper than {max_levels} levels"
    if PLUS not in topic_filter and HASH not in topic_filter:
        return None
    levels = topic_filter.split(SEP)
    last = len(levels) - 1
    for i, level in enumerate(levels):
        if HASH in level and (level != HASH or i != last):
            return "'#' not alone as the last level"  # [MQTT-4.7.1-1]
        if PLUS in level and level != PLUS:
            return "'+' not alone in its level"  # [MQTT-4.7.1-2]
    return None


def is_valid_topic_name(topic: str, max_length: int = DEFAULT_MAX_TOPIC_LENGTH) -> bool:
    """True if ``topic`` may be published to."""
    return topic_name_problem(topic, max_length) is None


def is_valid_topic_filter(topic_filter: str, max_length: int = DEFAULT_MAX_TOPIC_LENGTH) -> bool:
    """True if ``topic_filter`` may be subscribed to."""
    return topic_filter_problem(topic_filter, max_length) is None


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Return True if a valid, non-shared ``topic_filter`` matches the Topic Name ``topic``.

    The reference definition (4.7), one level at a time; ``SubscriptionIndex`` gives the
    same answers for many filters at once.
    """
    if topic.startswith(DOLLAR) and topic_filter[:1] in (PLUS, HASH):
        return False  # [MQTT-4.7.2-1]
    f = topic_filter.split(SEP)
    t = topic.split(SEP)
    for i, level in enumerate(f):
        if level == HASH:
            return True  # matches the parent level too: "a/#" matches "a"
        if i >= len(t):
            return False
        if level != PLUS and level != t[i]:
            return False
    return len(f) == len(t)


# -- the subscription index -------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class SubOptions:
    """One subscription's options (MQTT 5.0 3.8.3.1), or the merge of a subscriber's
    overlapping subscriptions in a match result (max QoS, all identifiers)."""

    qos: int = 0
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0
    subscription_ids: tuple[int, ...] = ()


def _merge(a: SubOptions, b: SubOptions) -> SubOptions:
    """Combine two matching subscriptions of one subscriber ([MQTT-3.3.4-2], [MQTT-3.3.4-4])."""
    return SubOptions(
        a.qos if a.qos >= b.qos else b.qos,
        a.no_local and b.no_local,
        a.retain_as_published or b.retain_as_published,
        a.retain_handling,
        a.subscription_ids + b.subscription_ids,
    )


class _Group:
    """The members of one shared subscription ($share/name/filter), served in turn."""

    __slots__ = ("members", "order", "turn")

    def __init__(self) -> None:
        self.members: dict[Hashable, SubOptions] = {}
        self.order: list[Hashable] = []
        self.turn = 0

    def pick(self) -> tuple[Hashable, SubOptions]:
        i = self.turn % len(self.order)
        self.turn = i + 1
        s = self.order[i]
        return s, self.members[s]


class _Node:
    __slots__ = ("children", "groups", "parent", "snap", "subs", "word")

    def __init__(self, parent: _Node | None, word: str) -> None:
        self.parent = parent
        self.word = word
        self.children: dict[str, _Node] = {}
        self.subs: dict[Hashable, SubOptions] = {}
        self.groups: dict[str, _Group] | None = None
        #: a copy of ``subs`` handed out by match(), shared by every topic that matches
        #: this node alone; dropped when ``subs`` changes
        self.snap: dict[Hashable, SubOptions] | None = None

    def empty(self) -> bool:
        return not self.children and not self.subs and not self.groups


_EMPTY: Final[Mapping[Hashable, SubOptions]] = {}


class SubscriptionIndex(Generic[S]):
    """Topic filters -> subscribers, matched against topic names.

    Filters must be valid (``topic_filter_problem``); subscribers are any hashable
    values (a session, a client id).  Example::

        idx: SubscriptionIndex[str] = SubscriptionIndex()
        idx.subscribe("sensors/+/temp", "dash", SubOptions(qos=1))
        idx.match("sensors/kitchen/temp")      # {"dash": SubOptions(qos=1, ...)}
    """

    __slots__ = ("_cache", "_cache_entries", "_count", "_root")

    def __init__(self) -> None:
        self._root = _Node(None, "")
        self._count = 0
        #: topic -> (merged non-shared subscribers, matched nodes, shared groups)
        self._cache: dict[str, tuple[Mapping[Hashable, SubOptions], list[_Node], list[_Group]]]
        self._cache = {}
        self._cache_entries = 0

    def __len__(self) -> int:
        """Number of subscriptions (filter, subscriber) held."""
        return self._count

    def _node(self, path: str, create: bool) -> _Node | None:
        node = self._root
        for word in path.split(SEP):
            child = node.children.get(word)
            if child is None:
                if not create:
                    return None
                child = node.children[word] = _Node(node, word)
            node = child
        return node

    def subscribe(self, topic_filter: str, subscriber: S, options: SubOptions) -> bool:
        """Add or replace ``subscriber``'s subscription to ``topic_filter``.

        Returns True if it is new, False if an existing one was replaced [MQTT-3.8.4-3].
        """
        self._clear_cache()
        shared = parse_shared(topic_filter)
        node = self._node(shared[1] if shared else topic_filter, True)
        assert node is not None
        if shared is None:
            new = subscriber not in node.subs
            node.subs[subscriber] = options
            node.snap = None
        else:
            if node.groups is None:
                node.groups = {}
            group = node.groups.get(shared[0])
            if group is None:
                group = node.groups[shared[0]] = _Group()
            new = subscriber not in group.members
            if new:
                group.order.append(subscriber)
            group.members[subscriber] = options
        self._count += new
        return new

    def unsubscribe(self, topic_filter: str, subscriber: S) -> bool:
        """Remove one subscription; return False if there was none [MQTT-3.10.4-1]."""
        shared = parse_shared(topic_filter)
        node = self._node(shared[1] if shared else topic_filter, False)
        if node is None:
            return False
        if shared is None:
            if node.subs.pop(subscriber, None) is None:
                return False
            node.snap = None
        else:
            group = node.groups.get(shared[0]) if node.groups else None
            if group is None or group.members.pop(subscriber, None) is None:
                return False
            group.order.remove(subscriber)
            if not group.members:
                del node.groups[shared[0]]  # type: ignore[union-attr]
        self._clear_cache()
        self._count -= 1
        while node.parent is not None and node.empty():  # prune the emptied branch
            del node.parent.children[node.word]
            node = node.parent
        return True

    def _clear_cache(self) -> None:
        self._cache.clear()
        self._cache_entries = 0

    def _walk(self, topic: str) -> list[_Node]:
        """The nodes whose filter matches ``topic`` (4.7.1, [MQTT-4.7.2-1])."""
        hits: list[_Node] = []
        frontier = [self._root]
        dollar = topic.startswith(DOLLAR)
        for i, word in enumerate(topic.split(SEP)):
            nxt: list[_Node] = []
            wild = i or not dollar
            for node in frontier:
                ch = node.children
                if not ch:
                    continue
                c = ch.get(word)
                if c is not None:
                    nxt.append(c)
                if wild:
                    c = ch.get(PLUS)
                    if c is not None:
                        nxt.append(c)
                    c = ch.get(HASH)
                    if c is not None:
                        hits.append(c)
            frontier = nxt
            if not frontier:
                return hits
        for node in frontier:
            hits.append(node)
            c = node.children.get(HASH)  # "a/#" also matches "a"
            if c is not None:
                hits.append(c)
        return hits

    def _lookup(
        self, topic: str
    ) -> tuple[Mapping[Hashable, SubOptions], list[_Node], list[_Group]]:
        hit = self._cache.get(topic)
        if hit is not None:
            return hit
        nodes = [n for n in self._walk(topic) if n.subs or n.groups]
        groups = [g for n in nodes if n.groups for g in n.groups.values()]
        with_subs = [n for n in nodes if n.subs]
        merged: Mapping[Hashable, SubOptions]
        if not with_subs:
            merged = _EMPTY
        elif len(with_subs) == 1:
            node = with_subs[0]
            if node.snap is None:
                node.snap = dict(node.subs)  # a snapshot: the node may change later
            merged = node.snap
        else:
            out: dict[Hashable, SubOptions] = {}
            for n in with_subs:
                for s, o in n.subs.items():
                    prev = out.get(s)
                    out[s] = o if prev is None else _merge(prev, o)
            merged = out
            self._cache_entries += len(out)
        if len(self._cache) >= _MATCH_CACHE or self._cache_entries > _MATCH_CACHE_ENTRIES:
            self._clear_cache()
            self._cache_entries = len(merged) if len(with_subs) > 1 else 0
        hit = self._cache[topic] = (merged, with_subs, groups)
        return hit

    def match(self, topic: str, publisher: S | None = None) -> Mapping[S, SubOptions]:
        """Return subscriber -> merged options for a message published to ``topic``.

        ``publisher`` (the publishing client's subscriber value) is left out where its
        only matching subscriptions are ``no_local`` [MQTT-3.8.3-3].  The mapping is
        read-only and stays valid (unchanged) after later index changes.
        """
        merged, nodes, groups = self._lookup(topic)
        if publisher is not None and publisher in merged:
            own = [n.subs[publisher] for n in nodes if publisher in n.subs]
            keep = [o for o in own if not o.no_local]
            if len(keep) != len(own):
                out = dict(merged)
                if keep:
                    opt = keep[0]
                    for o in keep[1:]:
                        opt = _merge(opt, o)
                    out[publisher] = opt
                else:
                    del out[publisher]
                merged = out
        if groups:
            out = dict(merged)
            for g in groups:
                s, o = g.pick()
                prev = out.get(s)
                out[s] = o if prev is None else _merge(prev, o)
            merged = out
        return merged  # type: ignore[return-value]

    def subscribers(self, topic_filter: str) -> Iterator[tuple[S, SubOptions]]:
        """Yield the (subscriber, options) pairs subscribed to exactly ``topic_filter``."""
        shared = parse_shared(topic_filter)
        node = self._node(shared[1] if shared else topic_filter, False)
        if node is None:
            return
        if shared is None:
            yield from list(node.subs.items())  # type: ignore[misc]
        elif node.groups and shared[0] in node.groups:
            yield from list(node.groups[shared[0]].members.items())  # type: ignore[misc]

"""Topic names, topic filters, the subscription index and the retained store (MQTT 5.0
4.7, 4.8, 3.3.1.3): the spec's examples, the ``$`` rule, shared subscriptions, overlapping
subscriptions, and the index checked against the one-filter reference on random data."""

from __future__ import annotations

import random

import pytest

from mgpy.proto.mqtt import (
    RetainedStore,
    SubOptions,
    SubscriptionIndex,
    is_valid_topic_filter,
    is_valid_topic_name,
    parse_shared,
    topic_filter_problem,
    topic_matches,
    topic_name_problem,
)

# -- validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["a", "/", "a/b", "/finance", "sport/tennis/player1", "$SYS/uptime", "a//b", " ", "\u00e9"],
)
def test_valid_topic_names(name: str) -> None:
    assert is_valid_topic_name(name)


@pytest.mark.parametrize("name", ["", "a/+", "+", "#", "a/#", "a+b", "a\x00"])
def test_invalid_topic_names(name: str) -> None:
    """[MQTT-4.7.3-1] [MQTT-4.7.0-1] [MQTT-4.7.3-2]."""
    assert not is_valid_topic_name(name)


@pytest.mark.parametrize(
    "f",
    [
        "#",
        "+",
        "+/+",
        "/+",
        "sport/#",
        "sport/tennis/#",
        "sport/+/player1",
        "+/tennis/#",
        "$share/g/a/#",
        "$share/group-1/+",
        "$SYS/#",
        "a//b",
    ],
)
def test_valid_topic_filters(f: str) -> None:
    assert is_valid_topic_filter(f)


@pytest.mark.parametrize(
    "f",
    [
        "",
        "sport/tennis#",
        "sport/tennis/#/ranking",
        "sport+",
        "a/+b",
        "##",
        "$share/",
        "$share/g",
        "$share/g/",
        "$share//a",
        "$share/g#/a",
        "$share/+/a",
        "a\x00",
    ],
)
def test_invalid_topic_filters(f: str) -> None:
    """[MQTT-4.7.1-1] [MQTT-4.7.1-2] [MQTT-4.8.2-1] [MQTT-4.8.2-2]."""
    assert not is_valid_topic_filter(f)


def test_length_and_depth_limits_count_bytes_and_levels() -> None:
    assert topic_name_problem("\u00e9" * 5, max_length=10) is None
    assert topic_name_problem("\u00e9" * 6, max_length=10) is not None
    assert topic_name_problem("a/" * 200 + "a") is None  # 201 levels: mosquitto's limit
    assert topic_name_problem("a/" * 201 + "a") is not None
    assert topic_filter_problem("+/" * 201 + "#") is not None
    assert topic_name_problem("a" * 65_535) is None
    assert topic_name_problem("a" * 65_536) is not None  # [MQTT-4.7.3-3]


def test_parse_shared() -> None:
    assert parse_shared("$share/g/a/b") == ("g", "a/b")
    assert parse_shared("$share/g") == ("g", "")
    assert parse_shared("$SHARE/g/a") is None
    assert parse_shared("a/b") is None


# -- matching: the reference and the spec's examples ---------------------------------------

SPEC_CASES = [
    # 4.7.1.2: "sport/tennis/player1/#"
    ("sport/tennis/player1/#", "sport/tennis/player1", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
    ("sport/#", "sport", True),
    ("#", "sport/tennis", True),
    # 4.7.1.3: "+"
    ("sport/tennis/+", "sport/tennis/player1", True),
    ("sport/tennis/+", "sport/tennis/player2", True),
    ("sport/tennis/+", "sport/tennis/player1/ranking", False),
    ("sport/+", "sport", False),
    ("sport/+", "sport/", True),
    ("+/+", "/finance", True),
    ("/+", "/finance", True),
    ("+", "/finance", False),
    ("+/tennis/#", "sport/tennis", True),
    # 4.7.2: $ topics
    ("#", "$SYS/uptime", False),
    ("+/monitor/Clients", "$SYS/monitor/Clients", False),
    ("$SYS/#", "$SYS/monitor/Clients", True),
    ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
    ("+", "$", False),
    ("a/+", "a/$b", True),
    # case and exact levels, no normalisation [MQTT-4.7.3-4]
    ("ACCOUNTS", "Accounts", False),
    ("a//b", "a/b", False),
    ("a/+/b", "a//b", True),
    ("a/b", "a/b/", False),
]


@pytest.mark.parametrize(("f", "topic", "want"), SPEC_CASES)
def test_reference_matcher_on_the_spec_examples(f: str, topic: str, want: bool) -> None:
    assert topic_matches(f, topic) is want


@pytest.mark.parametrize(("f", "topic", "want"), SPEC_CASES)
def test_index_on_the_spec_examples(f: str, topic: str, want: bool) -> None:
    idx: SubscriptionIndex[str] = SubscriptionIndex()
    idx.subscribe(f, "s", SubOptions(1))
    assert ("s" in idx.match(topic)) is want


def random_level(rnd: random.Random, wild: bool) -> str:
    words = ["a", "b", "c", "", "$x", "$SYS"]
    if wild and rnd.random() < 0.3:
        return "+"
    return rnd.choice(words)


def random_filter(rnd: random.Random) -> str:
    n = rnd.randrange(1, 5)
    levels = [random_level(rnd, True) for _ in range(n)]
    if rnd.random() < 0.3:
        levels.append("#")
    return "/".join(levels)


def random_topic(rnd: random.Random) -> str:
    return "/".join(random_level(rnd, False) for _ in range(rnd.randrange(1, 6)))


def test_index_agrees_with_the_reference_on_random_filters_and_topics() -> None:
    rnd = random.Random(1883)
    idx: SubscriptionIndex[int] = SubscriptionIndex()
    filters: dict[int, list[str]] = {}
    for s in range(60):
        filters[s] = list({random_filter(rnd) for _ in range(rnd.randrange(1, 4))})
        for f in filters[s]:
            idx.subscribe(f, s, SubOptions(rnd.randrange(3), subscription_ids=(s,)))
    # drop some, so pruning and the cache are exercised too
    for s in range(0, 60, 7):
        for f in filters.pop(s):
            assert idx.unsubscribe(f, s)
    assert len(idx) == sum(len(v) for v in filters.values())
    for _ in range(2000):
        topic = random_topic(rnd)
        got = idx.match(topic)
        want = {s for s, fs in filters.items() if any(topic_matches(f, topic) for f in fs)}
        assert set(got) == want, topic
        for s in want:
            n = sum(topic_matches(f, topic) for f in filters[s])
            assert got[s].subscription_ids == (s,) * n  # one id per matching subscription


# -- the index ------------------------------------------------------------------------------


class TestSubscriptionIndex:
    def test_overlapping_subscriptions_merge_to_max_qos_and_all_ids(self) -> None:
        """[MQTT-3.3.4-2] [MQTT-3.3.4-4]."""
        idx: SubscriptionIndex[str] = SubscriptionIndex()
        idx.subscribe("a/+", "c", SubOptions(0, subscription_ids=(1,)))
        idx.subscribe("a/#", "c", SubOptions(2, retain_as_published=True, subscription_ids=(2,)))
        idx.subscribe("a/b", "c", SubOptions(1))
        got = idx.match("a/b")["c"]
        assert got.qos == 2 and got.retain_as_published
        assert sorted(got.subscription_ids) == [1, 2]

    def test_resubscribing_replaces_the_options(self) -> None:
        """[MQTT-3.8.4-3]."""
        idx: SubscriptionIndex[str] = SubscriptionIndex()
        assert idx.subscribe("a", "c", SubOptions(0))
        assert idx.match("a")["c"].qos == 0
        assert not idx.subscribe("a", "c", SubOptions(2))
        assert idx.match("a")["c"].qos == 2
        assert len(idx) == 1

    def test_unsubscribe_is_exact_and_prunes(self) -> None:
        """[MQTT-3.10.4-1]: compared character by character."""
        idx: SubscriptionIndex[str] = SubscriptionIndex()
        idx.subscribe("a/+/c", "x", SubOptions())
        assert not idx.unsubscribe("a/b/c", "x")
        assert not idx.unsubscribe("a/+/c", "y")
        assert idx.unsubscribe("a/+/c", "x")
        assert not idx.unsubscribe("a/+/c", "x")
        assert len(idx) == 0 and idx.match("a/b/c") == {}
        assert not idx._root.children  # the branch is gone

    def test_no_local_skips_only_the_publisher(self) -> None:
        """[MQTT-3.8.3-3]."""
        idx: SubscriptionIndex[str] = SubscriptionIndex()
        idx.subscribe("chat/#", "alice", SubOptions(1, no_local=True))
        idx.subscribe("chat/#", "bob", SubOptions(1, no_local=True))
        assert set(idx.match("chat/room", publisher="alice")) == {"bob"}
        assert set(idx.match("chat/room")) == {"alice", "bob"}

    def test_no_local_keeps_the_publishers_other_subscriptions(self) -> None:
        idx: SubscriptionIndex[str] = SubscriptionIndex()
        idx.subscribe("chat/#", "alice", SubOptions(2, no_local=True, subscription_ids=(1,)))
        idx.subscribe("chat/+", "alice", SubOptions(0, subscription_ids=(2,)))
        got = idx.match("chat/room", publisher="alice")["alice"]
        assert got.qos == 0 and got.subscription_ids == (2,)

    def test_shared_subscription_delivers_to_one_member_in_turn(self) -> None:
        idx: SubscriptionIndex[str] = SubscriptionIndex()
        for w in ("w1", "w2", "w3"):
            idx.subscribe("$share/workers/jobs/+", w, SubOptions(1))
        idx.subscribe("$share/audit/jobs/#", "auditor", SubOptions(0))
        idx.subscribe("jobs/+", "monitor", SubOptions(0))
        seen = []
        for _ in range(6):
            got = idx.match("jobs/1")
            assert "monitor" in got and "auditor" in got
            workers = [s for s in got if s.startswith("w")]
            assert len(workers) == 1
            seen.append(workers[0])
        assert seen == ["w1", "w2", "w3"] * 2
        assert idx.unsubscribe("$share/workers/jobs/+", "w2")
        assert {s for _ in range(4) for s in idx.match("jobs/1") if s.startswith("w")} == {
            "w1",
            "w3",
        }
        assert {s for s, _ in idx.subscribers("$share/workers/jobs/+")} == {"w1", "w3"}

    def test_shared_subscription_follows_the_dollar_rule(self) -> None:
        idx: SubscriptionIndex[str] = SubscriptionIndex()
        idx.subscribe("$share/g/#", "w", SubOptions())
        assert idx.match("$SYS/x") == {}
        assert "w" in idx.match("x")

    def test_match_results_are_snapshots(self) -> None:
        """A fan-out loop may unsubscribe (a slow consumer closed) while iterating."""
        idx: SubscriptionIndex[int] = SubscriptionIndex()
        for i in range(10):
            idx.subscribe("t", i, SubOptions())
        got = idx.match("t")
        for s in got:
            idx.unsubscribe("t", s)
        assert len(got) == 10 and idx.match("t") == {}

    def test_cache_follows_changes(self) -> None:
        idx: SubscriptionIndex[str] = SubscriptionIndex()
        assert idx.match("a/b") == {}
        idx.subscribe("a/#", "x", SubOptions())
        assert set(idx.match("a/b")) == {"x"}
        idx.subscribe("+/b", "y", SubOptions())
        assert set(idx.match("a/b")) == {"x", "y"}
        idx.unsubscribe("a/#", "x")
        assert set(idx.match("a/b")) == {"y"}

    def test_many_subscribers_on_one_filter(self) -> None:
        idx: SubscriptionIndex[int] = SubscriptionIndex()
        for i in range(10_000):
            idx.subscribe("sensors/+/temp", i, SubOptions(i % 3))
        got = idx.match("sensors/kitchen/temp")
        assert len(got) == 10_000 and got[5].qos == 2
        assert idx.match("sensors/kitchen/temp") is got  # cached: no work per publish


# -- retained messages ----------------------------------------------------------------------


class TestRetainedStore:
    def store(self) -> RetainedStore[str]:
        s: RetainedStore[str] = RetainedStore()
        for t in ["a", "a/b", "a/b/c", "a/c", "b", "/x", "$SYS/up", "$SYS/a/b"]:
            s.set(t, f"m:{t}")
        return s

    @pytest.mark.parametrize(
        ("f", "want"),
        [
            ("a", ["a"]),
            ("a/b", ["a/b"]),
            ("nothing", []),
            ("a/+", ["a/b", "a/c"]),
            ("a/#", ["a", "a/b", "a/b/c", "a/c"]),
            ("+/b", ["a/b"]),
            ("+", ["a", "b"]),
            ("#", ["/x", "a", "a/b", "a/b/c", "a/c", "b"]),
            ("+/+", ["/x", "a/b", "a/c"]),
            ("$SYS/#", ["$SYS/a/b", "$SYS/up"]),
            ("$SYS/+", ["$SYS/up"]),
            ("$share/g/a", []),
        ],
    )
    def test_match_new_subscription(self, f: str, want: list[str]) -> None:
        """3.3.1.3; [MQTT-4.7.2-1] for $ topics; none for shared subscriptions."""
        got = sorted(self.store().match(f))
        assert got == [(t, f"m:{t}") for t in want]

    def test_match_agrees_with_the_reference(self) -> None:
        rnd = random.Random(5)
        s: RetainedStore[str] = RetainedStore()
        topics = {random_topic(rnd) for _ in range(300)}
        for t in topics:
            s.set(t, t)
        for _ in range(500):
            f = random_filter(rnd)
            assert sorted(t for t, _ in s.match(f)) == sorted(
                t for t in topics if topic_matches(f, t)
            ), f

    def test_replace_and_delete(self) -> None:
        """[MQTT-3.3.1-5] replace; [MQTT-3.3.1-6] an empty payload deletes."""
        s = self.store()
        s.set("a/b", "new")
        assert s.get("a/b") == "new"
        s.set("a/b", None)
        assert s.get("a/b") is None and "a/b" not in s
        assert sorted(t for t, _ in s.match("a/#")) == ["a", "a/b/c", "a/c"]
        s.set("nope", None)  # deleting nothing is fine
        for t in ["a", "a/b/c", "a/c", "b", "/x", "$SYS/up", "$SYS/a/b"]:
            s.set(t, None)
        assert len(s) == 0 and not s._root.children

    def test_expiry_uses_the_callers_clock(self) -> None:
        s: RetainedStore[str] = RetainedStore()
        s.set("t", "v", expires_at=100.0)
        s.set("u", "w")
        assert s.get("t", now=99.0) == "v"
        assert sorted(s.match("+", now=99.5)) == [("t", "v"), ("u", "w")]
        assert s.match("+", now=100.0) == [("u", "w")]
        assert "t" not in s

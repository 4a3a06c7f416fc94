"""Fragment floods (issue 13): a message's fragments are counted and cost one growing buffer.

RFC 6455 5.4 puts no bound on the number of fragments of a message; ``max_fragments``
(``Limits.ws_max_fragments``) does, empty data frames included, and closes with 1009.
"""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from mgpy.errors import LimitExceeded, RemoteProtocolError
from mgpy.limits import Limits
from mgpy.proto.ws import CLOSED, WsProtocol
from tests.proto.ws_helpers import MASK, drive, incoming, receive

SIDES = ["server", "client"]
MiB = 1 << 20
ROOT = Path(__file__).resolve().parents[2]


def fragmented(side: str, pieces: list[bytes], op: int = 0x2) -> bytes:
    """One message split into ``pieces`` as the peer of ``side`` sends it."""
    frames = [incoming(side, op if i == 0 else 0x0, p) for i, p in enumerate(pieces[:-1])]
    frames.append(incoming(side, 0x80 | (op if len(pieces) == 1 else 0x0), pieces[-1]))
    return b"".join(frames)


def one_byte_flood(count: int) -> bytes:
    """A masked binary message of ``count`` 1-byte fragments, built without a loop per frame."""
    masked = bytes((ord("x") ^ MASK[0],))
    first = bytes((0x02, 0x81)) + MASK + masked
    middle = bytes((0x00, 0x81)) + MASK + masked
    last = bytes((0x80, 0x81)) + MASK + masked
    return first + middle * (count - 2) + last


def feed_like_the_glue(
    p: WsProtocol, data: bytes, chunk: int = 256 * 1024
) -> tuple[list[tuple[int, bytes]], Exception | None]:
    """Feed ``data`` in recv-sized chunks; return (events, error)."""
    return drive(p, (data[i : i + chunk] for i in range(0, len(data), chunk)))


class TestFragmentCount:
    @pytest.mark.parametrize("side", SIDES)
    def test_receives_exactly_max_fragments(self, side: str) -> None:
        r = receive(side, fragmented(side, [b"a", b"b", b"c", b"d"]), max_fragments=4)
        assert r.error is None
        assert r.events == [(0x82, b"abcd")]

    @pytest.mark.parametrize("side", SIDES)
    def test_receives_one_fragment_over_the_limit(self, side: str) -> None:
        r = receive(side, fragmented(side, [b"a", b"b", b"c", b"d", b"e"]), max_fragments=4)
        assert r.events == []
        assert r.error_key == (LimitExceeded, 1009)
        assert r.out[:1] == b"\x88" and r.state == CLOSED

    @pytest.mark.parametrize("side", SIDES)
    def test_empty_fragments_count(self, side: str) -> None:
        r = receive(side, fragmented(side, [b"go"] + [b""] * 10), max_fragments=10)
        assert r.events == []
        assert r.error_key == (LimitExceeded, 1009)

    @pytest.mark.parametrize("side", SIDES)
    def test_control_frames_between_fragments_do_not_count(self, side: str) -> None:
        data = (
            incoming(side, 0x01, b"a")
            + incoming(side, 0x89, b"1")
            + incoming(side, 0x89, b"2")
            + incoming(side, 0x80, b"b")
        )
        r = receive(side, data, max_fragments=2)
        assert r.error is None
        assert r.events == [(0x89, b"1"), (0x89, b"2"), (0x81, b"ab")]

    @pytest.mark.parametrize("side", SIDES)
    def test_the_count_starts_again_with_each_message(self, side: str) -> None:
        three = fragmented(side, [b"a", b"b", b"c"])
        r = receive(side, three * 4, max_fragments=3)
        assert r.error is None
        assert r.events == [(0x82, b"abc")] * 4

    def test_server_without_defrag_counts_fragments_too(self) -> None:
        r = receive(
            "server", fragmented("server", [b"a", b"b", b"c"]), defrag=False, max_fragments=2
        )
        assert r.events == [(0x02, b"a"), (0x00, b"b")]
        assert r.error_key == (LimitExceeded, 1009)

    def test_default_is_the_limits_default(self) -> None:
        assert WsProtocol("server").max_fragments == Limits().ws_max_fragments == 4096

    def test_max_fragments_below_one_is_refused(self) -> None:
        with pytest.raises(ValueError):
            WsProtocol("server", max_fragments=0)

    def test_server_fails_at_the_header_of_the_fragment_after_the_limit(self) -> None:
        """Frame 4097 is refused from its first two bytes; its payload is never read."""
        p = WsProtocol("server")
        data = one_byte_flood(10_000)
        frame = 7  # 2-byte header, 4-byte mask, 1-byte payload
        events, exc = drive(p, [data[: 4096 * frame]])
        assert events == [] and exc is None
        with pytest.raises(LimitExceeded) as info:
            p.next_event(data[4096 * frame : 4096 * frame + 2])
        assert info.value.ws_code == 1009


class TestFloodMemory:
    """A million 1-byte fragments (6.7 MiB on the wire) cost one buffer, not a million objects."""

    N = 1_000_000

    def test_server_reassembles_a_million_fragments_in_bounded_memory(self) -> None:
        """Peak RSS of a fresh process (tracemalloc would take a minute over a million frames)."""
        code = f"""
import resource
from mgpy.proto.ws import WsProtocol
from tests.proto.test_ws_fragments import feed_like_the_glue, one_byte_flood
data = one_byte_flood({self.N})
p = WsProtocol("server", max_message={2 * MiB}, max_fragments={self.N})
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
events, exc = feed_like_the_glue(p, data)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
assert exc is None and events == [(0x82, b"x" * {self.N})], exc
print((after - before) * 1024)
"""
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, timeout=120, cwd=ROOT, text=True
        )
        assert proc.returncode == 0, proc.stderr
        # the message (1 MB), its final copy and a recv chunk; one object per fragment
        # would be ~60 MB
        assert int(proc.stdout) < 8 * MiB, proc.stdout

    def test_server_fails_a_million_fragment_flood_at_the_default_limit(self) -> None:
        data = one_byte_flood(self.N)
        p = WsProtocol("server", max_message=2 * MiB)
        tracemalloc.start()
        try:
            events, exc = feed_like_the_glue(p, data)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert events == []
        assert isinstance(exc, LimitExceeded) and exc.ws_code == 1009
        assert p.data_to_send() == b"\x88\x02\x03\xf1"
        assert peak < 1 * MiB, peak

    def test_server_empty_fragment_flood_fails_at_the_limit(self) -> None:
        empty = bytes((0x00, 0x80)) + MASK
        data = bytes((0x02, 0x80)) + MASK + empty * 100_000
        events, exc = feed_like_the_glue(WsProtocol("server"), data)
        assert events == []
        assert isinstance(exc, RemoteProtocolError) and exc.ws_code == 1009

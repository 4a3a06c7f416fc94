"""Bounded memory under abuse, measured as the server's RSS (``python -m mgpy``, /proc).

Issue 13's three ways to run up the CLI's memory, replayed over real sockets against the
real command in its own process:

* 40 clients reading a 9.4 MB text file with ``Accept-Encoding: br`` at 10 KiB/s (was
  +520 MiB: every connection had its own compressor, running ahead, and a copy of its
  output) must add less than 32 MiB;
* rounds of 50 ``/ws/push`` clients that never read, closed with 1008 when their send queue
  fills: RSS returns to within 32 MiB of the start after each round (was +200 MiB a
  round, kept for a minute);
* a million 1-byte WebSocket fragments (and empty ones) on 10 connections: the peak stays
  within 32 MiB (was +583 MiB).
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from pathlib import Path

import brotli  # type: ignore[import-untyped]
import pytest

from tests.net.rss_helpers import (
    CliServer,
    PeakRss,
    dechunk,
    http_get_head,
    read_head,
    wait_for,
    ws_connect,
    ws_frame,
    ws_frames,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

#: what each abuse pattern may add to the server's RSS (issue 13's targets)
BUDGET_MIB = 32
#: what every brotli slow reader reads before the attack moves on: 4 s at 10 KiB/s
SLOW_READ = 40 * 1024


def _text(size: int) -> bytes:
    """Deterministic compressible text (random words: ~2.7:1 at brotli quality 5)."""
    rnd = random.Random(13)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rnd.choices(letters, k=rnd.randint(2, 9))) for _ in range(5000)]
    out = " ".join(rnd.choices(words, k=size // 5)).encode()
    while len(out) < size:
        out += out[: size - len(out)]
    return out[:size]


class _SlowReaders:
    """Sockets read at ``rate`` bytes/s each by one thread, until ``stop()``."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.socks: list[socket.socket] = []
        self.got: dict[socket.socket, bytearray] = {}
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def add(self, s: socket.socket) -> None:
        s.setblocking(False)
        with self.lock:
            self.socks.append(s)
            self.got[s] = bytearray()

    def _run(self) -> None:
        tick = 0.1
        per_tick = int(self.rate * tick)
        while not self._stop.wait(tick):
            with self.lock:
                socks = list(self.socks)
            for s in socks:
                try:
                    data = s.recv(per_tick)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    continue
                self.got[s] += data

    def least(self) -> int:
        """The fewest bytes any of the sockets has received so far."""
        with self.lock:
            return min((len(got) for got in self.got.values()), default=0)

    def stop(self) -> None:
        self._stop.set()
        self._t.join()


def _read_rest(s: socket.socket, got: bytearray, length: int | None) -> bytes:
    """Read the rest of a response body fast (blocking); return head + body bytes."""
    s.setblocking(True)
    s.settimeout(20)
    while True:
        if length is not None:
            head_end = got.find(b"\r\n\r\n")
            if head_end >= 0 and len(got) - head_end - 4 >= length:
                break
        elif got.endswith(b"0\r\n\r\n"):
            break
        data = s.recv(1 << 20)
        if not data:
            break
        got += data
    return bytes(got)


class TestBrotliSlowReaders:
    def test_forty_slow_br_readers_add_less_than_32_mib(self, tmp_path: Path) -> None:
        text = _text(9_400_000)
        (tmp_path / "big.txt").write_bytes(text)
        br = {"Accept-Encoding": "br"}
        with CliServer(tmp_path) as srv:
            s = http_get_head(srv.port, "/missing", {})
            assert read_head(s)[0] == 404  # warm: the first request's imports and caches
            s.close()
            base = srv.rss()
            peak = PeakRss(srv.pid)
            slow = _SlowReaders(rate=10 * 1024)
            try:
                for _ in range(40):
                    slow.add(http_get_head(srv.port, "/big.txt", br, rcvbuf=16384))
                # the attack runs until every reader has read SLOW_READ at 10 KiB/s (~4 s)
                wait_until(lambda: slow.least() >= SLOW_READ, 60, "40 slow readers' progress")
                # a fast reader finishes the shared compression (if the slow ones' socket
                # buffers did not): from then on later readers get the cached result
                fast = http_get_head(srv.port, "/big.txt", br)
                status, hs, rest = read_head(fast)
                assert (status, hs.get("content-encoding")) == (200, "br")
                cl = hs.get("content-length")
                got = bytearray(b"\r\n\r\n" + rest)
                body = _read_rest(fast, got, int(cl) if cl else None)[4:]
                assert brotli.decompress(body if cl else dechunk(body)) == text
                fast.close()
                for _ in range(20):
                    slow.add(http_get_head(srv.port, "/big.txt", br, rcvbuf=16384))
                wait_until(lambda: slow.least() >= SLOW_READ, 60, "20 more slow readers' progress")
            finally:
                slow.stop()
            grown = peak.stop() - base
            print(f"\nbrotli slow readers: RSS {base:.1f} MiB -> peak +{grown:.1f} MiB")
            # every reader, slow or not, gets the whole file, compressed
            lengths = []
            for s in slow.socks:
                got = slow.got[s]
                status, hs, _ = read_head(_Buffered(got))
                assert (status, hs.get("content-encoding")) == (200, "br")
                cl = hs.get("content-length")
                lengths.append(cl)
                data = _read_rest(s, got, int(cl) if cl else None)
                s.close()
                body = data.partition(b"\r\n\r\n")[2]
                assert brotli.decompress(body if cl else dechunk(body)) == text
            assert lengths.count(None) == 40  # the first 40 streamed (chunked) ...
            assert len(set(lengths) - {None}) == 1  # ... the 20 after it: cached, one length
            assert grown < BUDGET_MIB, f"40+20 slow br readers added {grown:.1f} MiB"


class _Buffered:
    """A socket-like object over bytes already received (for ``read_head``)."""

    def __init__(self, data: bytearray) -> None:
        self.data = bytes(data)

    def recv(self, n: int) -> bytes:
        data, self.data = self.data, b""
        return data


class TestSlowConsumersClosed:
    def test_rss_returns_after_each_round_of_1008_closes(self, tmp_path: Path) -> None:
        """Three rounds of 50 non-reading /ws/push clients, closed with 1008 for a full
        queue: after each round has closed, RSS is back within 32 MiB of the start."""
        limits = {"ws_close_timeout": 1.0, "send_timeout": 5.0, "ws_ping_interval": 0.0}
        with CliServer(tmp_path, limits=limits) as srv:
            sender, rest = ws_connect(srv.port, "/ws/push")
            inbox = bytearray(rest)
            counts: list[int] = []
            chat = b"x" * 64 * 1024
            relayed: list[int] = []  # one entry per message of the sender's relayed back to it

            def drain() -> None:
                """The sender reads everything (its own relayed messages, the stats)."""
                while True:
                    try:
                        data = sender.recv(1 << 20)
                    except OSError:
                        return
                    if not data:
                        return
                    inbox.extend(data)
                    for op, payload in ws_frames(inbox):
                        if op == 1 and payload.startswith(b'{"type":"stats"'):
                            counts.append(json.loads(payload)["connections"])
                        elif op == 1 and payload == chat:
                            relayed.append(1)

            reader = threading.Thread(target=drain, daemon=True)
            reader.start()
            wait_for(lambda: counts, 5, "a stats push")
            base = srv.rss()
            after = []
            message = ws_frame(1, chat)
            for _ in range(3):
                victims = [ws_connect(srv.port, "/ws/push", rcvbuf=4096)[0] for _ in range(50)]
                counts.clear()
                wait_for(lambda: counts and counts[-1] >= 51, 5, "50 push clients counted")
                # relay messages to everyone until every non-reader was dropped
                deadline = time.monotonic() + 30
                while not (counts and counts[-1] == 1):
                    assert time.monotonic() < deadline, "the slow consumers were not closed"
                    sent = len(relayed)
                    sender.sendall(message)
                    # paced by the server: the next message once this one is relayed back
                    wait_until(lambda n=sent: len(relayed) > n, 10, "the sender's message relayed")
                for v in victims:
                    v.close()
                wait_for(lambda: srv.rss() < base + BUDGET_MIB, 10, "RSS back near the start")
                after.append(srv.rss())
            sender.close()
            print(f"\nslow consumers: RSS {base:.1f} MiB, after each round {after}")
            assert max(after) < base + BUDGET_MIB
            assert after[-1] < after[0] + 8  # no growth across rounds


class TestFragmentFlood:
    def test_a_million_fragments_on_ten_connections_stay_within_32_mib(
        self, tmp_path: Path
    ) -> None:
        """The worst case: ``ws_max_fragments`` raised so that every fragment is taken
        (1-byte ones on five connections, empty ones on five), then the message ends and
        comes back whole."""
        with CliServer(tmp_path, limits={"ws_max_fragments": 1_100_000}) as srv:
            s, _ = ws_connect(srv.port, "/ws")
            s.sendall(ws_frame(1, b"warm"))
            s.close()
            base = srv.rss()
            peak = PeakRss(srv.pid)
            batch = 10_000
            conns = []
            for i in range(10):
                c, _ = ws_connect(srv.port, "/ws")
                c.sendall(ws_frame(1, b"<", fin=False))  # a text message in a million parts
                conns.append((c, ws_frame(0, b"x" if i % 2 else b"", fin=False) * batch))
            for _ in range(1_000_000 // batch):
                for c, data in conns:
                    c.sendall(data)
            for c, _ in conns:
                c.sendall(ws_frame(0, b">", fin=True))
            echoed = [_message(c) for c, _ in conns]
            grown = peak.stop() - base
            print(f"\nfragment flood: RSS {base:.1f} MiB -> peak +{grown:.1f} MiB")
            for i, msg in enumerate(echoed):  # each message came back whole
                assert msg == b"<" + (b"x" * 1_000_000 if i % 2 else b"") + b">"
            assert grown < BUDGET_MIB, f"the fragment flood added {grown:.1f} MiB"

    def test_past_ws_max_fragments_the_flood_is_refused_with_1009(self, tmp_path: Path) -> None:
        with CliServer(tmp_path) as srv:
            codes = []
            for payload in (b"x", b""):
                c, _ = ws_connect(srv.port, "/ws")
                c.sendall(ws_frame(1, b"<", fin=False))
                try:
                    c.sendall(ws_frame(0, payload, fin=False) * 100_000)
                except OSError:
                    pass  # the server closed while we were still sending
                codes.append(_close_code(c))
            assert codes == [1009, 1009]  # "message too big": Limits.ws_max_fragments


def _message(c: socket.socket) -> bytes:
    """Read one whole data message from the server."""
    c.settimeout(60)
    buf = bytearray()
    while True:
        data = c.recv(1 << 20)
        assert data, "closed before the message came back"
        buf += data
        for op, payload in ws_frames(buf):
            assert op in (1, 2), op
            return payload


def _close_code(c: socket.socket) -> int:
    """Read until the server's close frame; return its code (0: closed without one)."""
    c.settimeout(10)
    buf = bytearray()
    while True:
        try:
            data = c.recv(65536)
        except OSError:
            return 0
        if not data:
            return 0
        buf += data
        for op, payload in ws_frames(buf):
            if op == 8:
                c.close()
                return int.from_bytes(payload[:2], "big")

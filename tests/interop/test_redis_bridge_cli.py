"""``mgpy --redis URL`` and ``--workers N`` as a user runs them: CLI processes, a real
redis-server (started per test on a free port, persistence off, stopped by PID) and
WebSocket clients from the ``websockets`` library.

- two CLI instances on two ports relay the chat both ways through Redis;
- redis-server killed and restarted mid-test: both instances reconnect, later lines arrive;
- ``--workers 2``: a line sent to one worker reaches a client of the other.
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.redis_server import RedisServer, running
from tests.waiting import wait_until

URL_LINE = re.compile(r" on (http://127\.0\.0\.1:(\d+)/) ")
REPO = Path(__file__).resolve().parents[2]


class Cli:
    """``python -m mgpy`` on 127.0.0.1 (port 0 unless given), waited for by its URL line."""

    def __init__(self, root: Path, extra: list[str], port: int = 0) -> None:
        cmd = [sys.executable, "-m", "mgpy", "--root", str(root)]
        cmd += ["--listen", f"127.0.0.1:{port}", "--log-level", "warning", *extra]
        self.p = subprocess.Popen(
            cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self.q: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        m = URL_LINE.search(self.wait_line(" on http://"))
        assert m is not None
        self.url, self.port = m.group(1), int(m.group(2))

    def _read(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            self.q.put(line.rstrip("\n"))

    def wait_line(self, needle: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            for i, line in enumerate(self.lines):
                if needle in line:
                    del self.lines[i]
                    return line
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{needle!r} not printed; output: {self.lines}")
            try:
                self.lines.append(self.q.get(timeout=left))
            except queue.Empty:
                pass

    def wait_file(self, path: Path, needle: bytes, timeout: float) -> None:
        """Poll ``path`` (a client's output) until it holds ``needle``."""
        try:
            wait_until(lambda: needle in path.read_bytes(), timeout, f"{needle!r} in {path}", 0.02)
        except AssertionError as e:
            raise AssertionError(f"{needle!r} not in {path.read_bytes()[-500:]!r}") from e

    def stop(self) -> int:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(15)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return self.p.wait(10)


class Push:
    """A /ws/push client (the websockets library): the greeting, then chat lines."""

    def __init__(self, port: int) -> None:
        from websockets.sync.client import connect

        self.stack = contextlib.ExitStack()
        self.ws = self.stack.enter_context(connect(f"ws://127.0.0.1:{port}/ws/push"))
        self.greeting: dict[str, Any] = json.loads(self.ws.recv(timeout=10))
        self.chat: list[str] = []
        self.stats: dict[str, Any] = self.greeting

    def say(self, text: str) -> None:
        self.ws.send(json.dumps({"type": "chat", "name": "test", "text": text}))

    def until(self, cond: Callable[[], object], timeout: float = 15.0) -> None:
        """Read messages until ``cond()``: chat texts go to ``chat``, stats to ``stats``."""
        deadline = time.monotonic() + timeout
        while not cond():
            left = deadline - time.monotonic()
            assert left > 0, f"condition not met; chat so far: {self.chat}"
            try:
                msg = json.loads(self.ws.recv(timeout=min(left, 1.0)))
            except TimeoutError:
                continue
            if msg.get("type") == "chat":
                self.chat.append(msg["text"])
            elif msg.get("type") == "stats":
                self.stats = msg

    def close(self) -> None:
        self.stack.close()


def say(port: int, text: str) -> None:
    """Connect to /ws/push, send one chat line, close."""
    p = Push(port)
    p.say(text)
    p.until(lambda: text in p.chat)  # back to the sender too
    p.close()


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with running(tmp_path) as srv:
        yield srv


@pytest.fixture
def clis() -> Iterator[list[Cli]]:
    started: list[Cli] = []
    try:
        yield started
    finally:
        for c in started:
            c.stop()


def linked(p: Push) -> bool:
    r = p.stats.get("redis")
    return bool(r and r["up"])


def two_linked(tmp_path: Path, redis: RedisServer, clis: list[Cli]) -> tuple[Push, Push]:
    """Two CLI instances bridged through ``redis``, a /ws/push page on each, both linked."""
    a = Cli(tmp_path, ["--redis", redis.url])
    b = Cli(tmp_path, ["--redis", redis.url])
    clis += [a, b]
    pa, pb = Push(a.port), Push(b.port)
    pa.until(lambda: linked(pa))
    pb.until(lambda: linked(pb))
    return pa, pb


def test_two_instances_relay_chat_both_ways(
    tmp_path: Path, redis: RedisServer, clis: list[Cli]
) -> None:
    pa, pb = two_linked(tmp_path, redis, clis)
    pa.say("from a")
    pb.until(lambda: "from a" in pb.chat)
    pb.say("from b")
    pa.until(lambda: "from b" in pa.chat)
    pa.until(lambda: "from a" in pa.chat)  # the sender's page shows its own line too
    assert pa.stats["redis"]["url"] == redis.url and pa.stats["pid"] != pb.stats["pid"]
    pa.close()
    pb.close()


def test_redis_restart_mid_test_both_reconnect_and_later_lines_arrive(
    tmp_path: Path, redis: RedisServer, clis: list[Cli]
) -> None:
    pa, pb = two_linked(tmp_path, redis, clis)
    pa.say("before")
    pb.until(lambda: "before" in pb.chat)
    redis.stop(signal.SIGKILL)
    pa.until(lambda: not linked(pa))  # the stats say the link is down
    pb.until(lambda: not linked(pb))
    pa.say("while down")  # stays on a's side: counted, not lost silently
    pa.until(lambda: "while down" in pa.chat)
    pa.until(lambda: pa.stats["redis"]["not_crossed"] >= 1)
    redis.start()  # same port
    pa.until(lambda: linked(pa), timeout=20)
    pb.until(lambda: linked(pb), timeout=20)
    pb.say("after")
    pa.until(lambda: "after" in pa.chat)
    pb.until(lambda: "after" in pb.chat)
    assert "while down" not in pb.chat
    pa.close()
    pb.close()


def test_workers_share_the_chat_through_redis(
    tmp_path: Path, redis: RedisServer, clis: list[Cli]
) -> None:
    srv = Cli(tmp_path, ["--workers", "2", "--redis", redis.url])
    clis.append(srv)
    srv.wait_line(" on http://")  # the second worker is up too
    by_worker: dict[int, Push] = {}
    spare: list[Push] = []
    for _ in range(40):  # the kernel picks the worker of each new connection
        p = Push(srv.port)
        w = p.greeting["worker"]
        assert w["count"] == 2
        if w["index"] in by_worker:
            spare.append(p)
        else:
            by_worker[w["index"]] = p
        if len(by_worker) == 2:
            break
    assert sorted(by_worker) == [0, 1], "every connection went to the same worker"
    p0, p1 = by_worker[0], by_worker[1]
    p0.until(lambda: linked(p0))
    p1.until(lambda: linked(p1))
    assert p0.greeting["worker"]["pid"] != p1.greeting["worker"]["pid"]
    p0.say("worker 0 says hi")
    p1.until(lambda: "worker 0 says hi" in p1.chat)
    p1.say("worker 1 answers")
    p0.until(lambda: "worker 1 answers" in p0.chat)
    for p in [p0, p1, *spare]:
        p.close()
    assert srv.stop() == 0


def test_workers_refuse_mqtt(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "mgpy", "--root", str(tmp_path), "--listen", "127.0.0.1:0",
         "--workers", "2", "--mqtt", "127.0.0.1:0"],
        capture_output=True, text=True, timeout=30, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 2 and "--mqtt runs one broker" in r.stderr


def test_bad_redis_url_is_a_one_line_error(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "mgpy", "--root", str(tmp_path), "--listen", "127.0.0.1:0",
         "--redis", "http://nope"],
        capture_output=True, text=True, timeout=30, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "mgpy: error: bad Redis URL 'http://nope': expected redis:// or rediss://"
    ]

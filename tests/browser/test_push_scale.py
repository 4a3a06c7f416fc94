"""Push at scale in Debian's Chromium: the dashboard across worker processes bridged by a
real redis-server, and the browser's EventSource on /events.

- ``mgpy --workers 2 --redis URL``: pages are opened until two are served by different
  workers (the page says which: "served by worker N of 2"); a chat line typed in one
  appears in the other, both ways.  Then the first page's worker is killed with SIGKILL:
  the other page keeps its link and its live counters, the supervisor restarts the
  worker, the first page reconnects by itself and the chat goes on.
- A page's ``EventSource("/events")`` receives the stats and the chat typed in the
  dashboard.
- A reconnecting EventSource sends ``Last-Event-ID`` and gets exactly the events it
  missed (a small mgpy server in a thread ends the stream on demand, so the browser
  reconnects by itself, as after a network drop).
"""

from __future__ import annotations

import os
import queue
import re
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

import mgpy
from mgpy import Ev
from mgpy.pubsub import Hub, sse_end, sse_start, sse_stream
from tests.browser.conftest import ConsoleLog, MgpyProcess, screenshot
from tests.browser.test_dashboard import DESKTOP, SEES_TEXT, open_dashboard, text, wait_js
from tests.redis_server import RedisServer, running
from tests.waiting import wait_until

pytestmark = pytest.mark.browser

SERVED = re.compile(r"worker (\d) of 2 \(pid (\d+)\)")
MAX_PAGES = 12  # P(all on one worker) = 2**-11 with the kernel's hashing of source ports


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with running(tmp_path) as srv:
        yield srv


def served_by(page: Page) -> tuple[int, int]:
    wait_js(
        page, "() => /worker \\d of 2/.test(document.getElementById('stat-served').textContent)"
    )
    m = SERVED.search(text(page, "#stat-served"))
    assert m is not None
    return int(m.group(1)), int(m.group(2))


def say(page: Page, line: str) -> None:
    page.fill("#chat-text", line)
    page.press("#chat-text", "Enter")


def test_chat_typed_on_one_worker_appears_on_the_other_and_survives_a_killed_worker(
    browser: Browser, tmp_path: Path, redis: RedisServer, console: ConsoleLog
) -> None:
    srv = MgpyProcess(tmp_path / "uploads")
    srv.extra_args = ["--workers", "2", "--redis", redis.url]
    srv.start()
    contexts: list[BrowserContext] = []
    try:
        pages: dict[int, tuple[Page, int]] = {}
        for i in range(MAX_PAGES):
            ctx = browser.new_context(**DESKTOP)
            contexts.append(ctx)
            page = open_dashboard(ctx, srv, console, f"page{i}")
            worker, pid = served_by(page)
            pages.setdefault(worker, (page, pid))
            if len(pages) == 2:
                break
        assert sorted(pages) == [1, 2], "every page was served by the same worker"
        (one, pid_one), (two, _pid_two) = pages[1], pages[2]
        for page in (one, two):
            wait_js(page, "() => document.getElementById('stat-redis').textContent === 'linked'")

        say(one, "typed on worker 1")
        wait_js(two, SEES_TEXT, "typed on worker 1")
        say(two, "answered from worker 2")
        wait_js(one, SEES_TEXT, "answered from worker 2")
        screenshot(one, "workers-page-on-worker-1")
        screenshot(two, "workers-page-on-worker-2")

        uptime = text(two, "#stat-uptime")
        console.tolerate(r"WebSocket connection to .* failed")  # page one's link, refused
        os.kill(pid_one, signal.SIGKILL)
        # the other worker kept serving: page two's counters move on, its link stays open
        wait_js(two, "(u) => document.getElementById('stat-uptime').textContent !== u", uptime)
        assert two.get_attribute("#ws-state", "data-state") == "open"
        # page one lost its worker and comes back by itself (to either worker)
        one.wait_for_selector("#ws-state[data-state=open]", timeout=20_000)
        say(one, "back after the kill")
        wait_js(two, SEES_TEXT, "back after the kill")
        # the supervisor restarted worker 1 (a new pid in the same slot)
        restarting = f"(pid {pid_one}) killed by SIGKILL; restarting"
        try:  # the output reader thread appends lines: poll them
            wait_until(lambda: any(restarting in ln for ln in srv.lines), 15, restarting, 0.05)
        except AssertionError as e:
            raise AssertionError("".join(srv.lines)) from e
    finally:
        for ctx in contexts:
            ctx.close()
        srv.stop()
    console.assert_clean()


EVENTSOURCE = """() => {
  window.__events = [];
  const es = new EventSource("/events");
  for (const type of ["stats", "chat"]) {
    es.addEventListener(type, (e) => window.__events.push({type, data: e.data, id: e.lastEventId}));
  }
  window.__es = es;
}"""


def test_eventsource_receives_stats_and_chat(
    browser: Browser, mgpy_server: MgpyProcess, console: ConsoleLog
) -> None:
    ctx = browser.new_context(**DESKTOP)
    try:
        page = open_dashboard(ctx, mgpy_server, console, "dashboard")
        page.evaluate(EVENTSOURCE)
        wait_js(page, "() => window.__events.filter((e) => e.type === 'stats').length >= 2")
        first = page.evaluate("() => JSON.parse(window.__events[0].data)")
        assert first["type"] == "stats" and isinstance(first["history"], list)
        say(page, "to websockets and event streams")
        wait_js(page, SEES_TEXT, "to websockets and event streams")
        wait_js(page, "() => window.__events.some((e) => e.type === 'chat')")
        chat = page.evaluate("() => window.__events.find((e) => e.type === 'chat')")
        assert '"to websockets and event streams"' in chat["data"] and chat["id"]
        assert page.evaluate("() => window.__es.readyState") == 1  # OPEN
    finally:
        ctx.close()
    console.assert_clean()


class SseApp:
    """A small mgpy server in a thread: / (an empty page), /events (topic "news", retry
    300 ms); commands from the test thread go through a queue and ``mgr.wakeup()``."""

    def __init__(self) -> None:
        self.mgr = mgpy.Manager()
        self.hub = Hub(self.mgr)
        lc = self.mgr.bind("127.0.0.1:0", self.handler)
        lc.set_protocol_http_websocket()
        self.url = f"http://127.0.0.1:{lc.local[1]}/"
        self.streams: list[mgpy.Connection] = []
        self.last_ids: list[str | None] = []  # Last-Event-ID of each /events request
        self.commands: queue.Queue[tuple[str, str]] = queue.Queue()
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def handler(self, c: mgpy.Connection, ev: Any, hm: Any) -> None:
        if ev != Ev.HTTP_REQUEST:
            return
        if hm.uri == "/events":
            stream = sse_start(c, hm, retry=300)
            assert stream is not None
            self.last_ids.append(stream.last_event_id)
            self.streams.append(c)
            self.hub.subscribe(c, "news")
        else:
            mgpy.http_reply(
                c, 200, "<!doctype html><title>sse</title>", {"Content-Type": "text/html"}
            )

    def run(self) -> None:
        while not self.stop:
            self.mgr.poll(100)
            while not self.commands.empty():
                cmd, arg = self.commands.get()
                if cmd == "publish":
                    self.hub.publish("news", arg, event="news")
                elif cmd == "drop":
                    for c in self.streams:
                        if sse_stream(c) is not None:
                            sse_end(c)  # the response ends: EventSource reconnects
        self.mgr.close()

    def send(self, cmd: str, arg: str = "") -> None:
        self.commands.put((cmd, arg))
        self.mgr.wakeup()

    def close(self) -> None:
        self.stop = True
        self.mgr.wakeup()
        self.thread.join(10)


def test_eventsource_reconnect_with_last_event_id_gets_the_missed_events(
    browser: Browser, console: ConsoleLog
) -> None:
    app = SseApp()
    ctx = browser.new_context(**DESKTOP)
    try:
        page = ctx.new_page()
        console.attach(page, "eventsource")
        page.goto(app.url)
        page.evaluate(
            """() => {
              window.__news = [];
              window.__opens = 0;
              const es = new EventSource("/events");
              es.onopen = () => { window.__opens += 1; };
              es.addEventListener("news", (e) => window.__news.push([e.data, e.lastEventId]));
            }"""
        )
        wait_js(page, "() => window.__opens === 1")
        app.send("publish", "one")
        wait_js(page, "() => window.__news.length === 1")
        app.send("drop")  # the stream ends: the browser will reconnect in 300 ms ...
        app.send("publish", "two")  # ... and misses these two meanwhile
        app.send("publish", "three")
        wait_js(page, "() => window.__opens === 2")
        app.send("publish", "four")
        wait_js(page, "() => window.__news.length >= 4")
        news = page.evaluate("() => window.__news")
        assert [d for d, _ in news] == ["one", "two", "three", "four"]  # each exactly once
        ids = [int(i) for _, i in news]
        assert ids == sorted(ids)
        assert app.last_ids == [None, str(ids[0])]  # the browser said where it was
    finally:
        ctx.close()
        app.close()
    console.assert_clean()

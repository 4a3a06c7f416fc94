"""The CLI's push on the hub, in-process: /events (Server-Sent Events) beside /ws/push.

The CLI's ``Server`` is built from its real argument parser and polled by the test
thread; /events clients are raw-socket EventSources (``SseClient``), /ws/push clients
raw WebSockets.  curl -N is the real peer of the last test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mgpy.__main__ import Server
from tests.conftest import run_until
from tests.net.cli_server import running_cli
from tests.net.test_sse import SseClient
from tests.net.test_ws_cli import collect_until, connect


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[tuple[Server, int]]:
    with running_cli(tmp_path) as served:
        yield served


def test_events_greets_with_history_then_pushes_stats_each_second(
    cli: tuple[Server, int],
) -> None:
    srv, port = cli
    es = SseClient(srv.mgr, port)
    first = es.wait_events(1)[0]
    assert es.head["content-type"] == "text/event-stream" and es.parser.retry == 2000
    s = json.loads(first.data)
    assert first.type == "stats" and s["type"] == "stats" and "history" in s
    assert s["pid"] == os.getpid() and s["worker"] is None and s["redis"] is None
    es.until(lambda: len(es.events) >= 3, timeout=5)  # two ticks of the one-second timer
    later = [json.loads(e.data) for e in es.events[1:3]]
    assert all(e.type == "stats" for e in es.events[1:3])
    assert later[1]["time"] > later[0]["time"] and later[0]["sse_clients"] == 1
    es.close()


def test_chat_from_a_websocket_reaches_events_and_websockets(cli: tuple[Server, int]) -> None:
    srv, port = cli
    es = SseClient(srv.mgr, port)
    es.wait_events(1)
    a, b = connect(srv, port, "/ws/push"), connect(srv, port, "/ws/push")
    line = b'{"type":"chat","name":"ann","text":"hello\\nworld"}'
    a.send_frame(0x81, line)
    for ws in (a, b):
        collect_until(ws, lambda got: line in got)
    es.until(lambda: any(e.type == "chat" for e in es.events))
    chat = next(e for e in es.events if e.type == "chat")
    assert chat.data.encode() == line and chat.id  # chat carries an id: replayable
    for ws in (a, b):
        ws.close()
    es.close()


def test_last_event_id_replays_the_chat_a_client_missed(cli: tuple[Server, int]) -> None:
    srv, port = cli
    es = SseClient(srv.mgr, port)
    es.wait_events(1)
    ws = connect(srv, port, "/ws/push")
    ws.send_frame(0x81, b'{"type":"chat","name":"a","text":"seen"}')
    es.until(lambda: any(e.type == "chat" for e in es.events))
    last = es.events[-1].id
    es.close()
    run_until(srv.mgr, lambda: srv.push.hub.stats()["subscribers"] == 1)  # only ws
    for text in ("missed 1", "missed 2"):
        ws.send_frame(0x81, json.dumps({"type": "chat", "name": "a", "text": text}).encode())
    collect_until(ws, lambda got: any(b"missed 2" in m for m in got))
    again = SseClient(srv.mgr, port, last_id=last)
    again.until(lambda: len([e for e in again.events if e.type == "chat"]) >= 2)
    chats = [json.loads(e.data)["text"] for e in again.events if e.type == "chat"]
    assert chats[:2] == ["missed 1", "missed 2"]
    ws.close()
    again.close()


def test_events_refuses_other_methods(cli: tuple[Server, int]) -> None:
    srv, port = cli
    es = SseClient(srv.mgr, port, method="POST")
    es.until(lambda: es.status)
    assert es.status == 405 and es.head["allow"] == "GET, HEAD"
    es.close()


def test_curl_no_buffer_gets_stats_and_chat(tmp_path: Path) -> None:
    assert shutil.which("curl"), "curl is not installed: `make test` installs it (tools/sysdeps.sh)"
    """``mgpy`` as a subprocess, ``curl -N /events`` as the client."""
    from tests.interop.test_redis_bridge_cli import Cli, say

    srv = Cli(tmp_path, [])
    try:
        out = tmp_path / "curl.out"
        with out.open("wb") as f:
            curl = subprocess.Popen(
                ["curl", "-sN", "--max-time", "30", f"{srv.url}events"], stdout=f
            )
            try:
                srv.wait_file(out, b"event: stats\ndata: {", timeout=10)
                say(srv.port, "from a websocket")
                srv.wait_file(out, b"event: chat\n", timeout=10)
            finally:
                curl.kill()
                curl.wait(10)
        text = out.read_bytes().decode()
        chat = text.split("event: chat\ndata: ", 1)[1].split("\n", 1)[0]
        assert json.loads(chat)["text"] == "from a websocket" and "\nid: " in text
    finally:
        srv.stop()

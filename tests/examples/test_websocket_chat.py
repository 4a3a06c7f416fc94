"""examples/websocket_chat.py: the page, joins/leaves and relaying between WebSocket clients."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.sync.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "websocket_chat.py"
OPTS: dict[str, Any] = {"compression": None, "proxy": None, "open_timeout": 5, "close_timeout": 2}


@pytest.fixture
def chat() -> Iterator[str]:
    p = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stdout is not None
        line = p.stdout.readline()  # the example prints its URL first
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert m, f"unexpected first line {line!r}"
        yield f"127.0.0.1:{m.group(1)}"
    finally:
        p.terminate()
        assert p.wait(10) == 0


def recv_until(ws: ClientConnection, needle: str) -> list[str]:
    """Receive messages until one contains ``needle``; return them all."""
    got: list[str] = []
    while not any(needle in m for m in got):
        m = ws.recv(timeout=5)
        assert isinstance(m, str)
        got.append(m)
    return got


def test_help() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0 and "--listen" in out.stdout


def test_page_is_served(chat: str) -> None:
    with urllib.request.urlopen(f"http://{chat}/", timeout=5) as r:
        body = r.read().decode()
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
    assert "new WebSocket" in body and "/ws" in body
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://{chat}/nothing-here", timeout=5)
    assert e.value.code == 404


def test_messages_go_to_the_others_with_joins_and_leaves(chat: str) -> None:
    with connect(f"ws://{chat}/ws", **OPTS) as alice:
        with connect(f"ws://{chat}/ws", **OPTS) as bob:
            bob_addr = "{}:{}".format(*bob.local_address[:2])
            recv_until(alice, f"++ joined {bob_addr}")
            alice.send("hi bob")
            got = recv_until(bob, "hi bob")
            alice_addr = "{}:{}".format(*alice.local_address[:2])
            assert f"{alice_addr} hi bob" in got
            with connect(f"ws://{chat}/ws", **OPTS) as carol:
                recv_until(alice, "++ joined")
                recv_until(bob, "++ joined")
                bob.send("hello all")
                assert any("hello all" in m for m in recv_until(alice, "hello all"))
                assert any("hello all" in m for m in recv_until(carol, "hello all"))
        recv_until(alice, f"-- left {bob_addr}")
        # the sender never gets its own message back: the pong is all that comes
        alice.send("only for others")
        assert alice.ping().wait(5)
        with pytest.raises(TimeoutError):
            alice.recv(timeout=0)  # the pong came after anything sent before it


def test_too_large_message_closes_only_its_sender(chat: str) -> None:
    with connect(f"ws://{chat}/ws", **OPTS) as alice, connect(f"ws://{chat}/ws", **OPTS) as bob:
        recv_until(alice, "++ joined")
        bob.send("x" * 100_000)
        with pytest.raises(ConnectionClosedError):
            bob.recv(timeout=5)
        assert bob.close_code == 1009
        assert any("-- left" in m for m in recv_until(alice, "-- left"))


def test_wrong_websocket_path_is_404(chat: str) -> None:
    with pytest.raises(InvalidStatus) as e:
        connect(f"ws://{chat}/elsewhere", **OPTS)
    assert e.value.response.status_code == 404

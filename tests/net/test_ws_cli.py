"""``python -m mgpy``'s WebSocket routes, run in-process: /ws echo and /ws/push stats + relay.

The CLI's ``Server`` is built from its real argument parser and polled in the
test thread; raw-socket clients (``RawWs``) see every byte on the wire, which
is how "nothing else is ever sent on /ws" is checked.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import mgpy
from mgpy.__main__ import Server
from tests.conftest import run_until
from tests.net.cli_server import running_cli
from tests.net.test_ws_server import RawWs, upgrade_request


@pytest.fixture
def cli_server(tmp_path: Path) -> Iterator[tuple[Server, int]]:
    with running_cli(tmp_path) as served:
        yield served


def connect(srv: Server, port: int, path: str) -> RawWs:
    ws = RawWs(srv.mgr, port)
    assert ws.handshake(upgrade_request(path=path)) == 101
    return ws


def texts(ws: RawWs) -> list[bytes]:
    out: list[bytes] = []
    while True:
        f = ws.parse_frame()
        if f is None:
            return out
        assert f[0] == 0x81
        out.append(f[1])


def collect_until(ws: RawWs, pred: Callable[[list[bytes]], bool]) -> list[bytes]:
    """Gather text messages from ``ws`` until ``pred(messages)`` holds."""
    got: list[bytes] = []

    def check() -> bool:
        got.extend(texts(ws))
        return pred(got)

    ws.until(check)
    return got


def test_ws_echoes_each_message_with_its_opcode(cli_server: tuple[Server, int]) -> None:
    srv, port = cli_server
    ws = connect(srv, port, "/ws")
    ws.send_frame(0x81, "grüße".encode())
    ws.send_frame(0x82, b"\x00\x01\xfe\xff")
    ws.send_frame(0x01, b"in ")
    ws.send_frame(0x80, b"parts")
    ws.send_frame(0x82, bytes(300_000))
    assert ws.recv_frame() == (0x81, "grüße".encode())
    assert ws.recv_frame() == (0x82, b"\x00\x01\xfe\xff")
    assert ws.recv_frame() == (0x81, b"in parts")
    assert ws.recv_frame() == (0x82, bytes(300_000))
    ws.send_frame(0x88, b"\x03\xe8")
    assert ws.recv_close()[0] == 1000
    ws.wait_eof()


def test_ws_only_ever_sends_the_echo(cli_server: tuple[Server, int]) -> None:
    srv, port = cli_server
    echo = connect(srv, port, "/ws")
    push = connect(srv, port, "/ws/push")
    push.send_frame(0x81, b'{"type":"chat","name":"a","text":"relayed"}')

    def two_stats_and_the_relay(got: list[bytes]) -> bool:
        stats = [m for m in got if json.loads(m).get("type") == "stats"]
        return len(stats) >= 2 and any(b"relayed" in m for m in got)

    # a stats tick (the timer runs once a second) and a relay happened while /ws was open
    collect_until(push, two_stats_and_the_relay)
    echo.pump()
    assert echo.inbuf == b""
    echo.send_frame(0x81, b"only me")
    assert echo.recv_frame() == (0x81, b"only me")
    echo.pump()
    assert echo.inbuf == b""
    echo.close()
    push.close()


def test_push_sends_stats_at_once_and_every_second(cli_server: tuple[Server, int]) -> None:
    srv, port = cli_server
    push = connect(srv, port, "/ws/push")
    b0, first = push.recv_frame()
    assert b0 == 0x81
    s = json.loads(first)
    assert s["type"] == "stats"
    for field in (
        "time",
        "uptime",
        "connections",
        "ws_clients",
        "requests",
        "rps",
        "bytes_in",
        "bytes_out",
        "in_rate",
        "out_rate",
        "ws_messages",
        "ws_mps",
    ):
        assert isinstance(s[field], (int, float)), field
    assert s["ws_clients"] == 1 and s["connections"] >= 1
    b0, second = push.recv_frame(timeout=3)
    s2 = json.loads(second)
    assert s2["type"] == "stats" and s2["time"] > s["time"]
    push.close()


def test_push_relays_text_to_every_push_client_only(cli_server: tuple[Server, int]) -> None:
    srv, port = cli_server
    a, b = connect(srv, port, "/ws/push"), connect(srv, port, "/ws/push")
    echo = connect(srv, port, "/ws")
    msg = b'{"type":"chat","name":"alice","text":"hi all"}'
    a.send_frame(0x82, b"binary is not relayed")
    a.send_frame(0x81, msg)
    for ws in (a, b):
        got = collect_until(ws, lambda got: msg in got)
        assert not any(b"binary" in m for m in got)
    echo.pump()
    assert echo.inbuf == b""
    for ws in (a, b, echo):
        ws.close()


def test_other_websocket_paths_are_404(cli_server: tuple[Server, int]) -> None:
    srv, port = cli_server
    ws = RawWs(srv.mgr, port)
    assert ws.handshake(upgrade_request(path="/nope")) == 404
    ws.close()


def test_cli_accepts_16_mib_messages_with_ws_max_message(tmp_path: Path) -> None:
    with running_cli(tmp_path, "--ws-max-message", "16777216") as (srv, port):
        assert srv.mgr.limits.ws_max_message == 16 << 20
        ws = connect(srv, port, "/ws")
        big = bytes(range(256)) * (9 << 12)  # 9 MiB: over the 4 MiB send-queue cap
        ws.send_frame(0x82, big)
        assert ws.recv_frame(timeout=30) == (0x82, big)
        ws.close()
        run_until(srv.mgr, lambda: len(srv.mgr.connections) == 1)


def test_manager_counts_websocket_messages(cli_server: tuple[Server, int]) -> None:
    srv, port = cli_server
    ws = connect(srv, port, "/ws")
    before = srv.mgr.ws_messages
    for i in range(5):
        ws.send_frame(0x81, b"%d" % i)
    for i in range(5):
        assert ws.recv_frame() == (0x81, b"%d" % i)
    assert srv.mgr.ws_messages - before == 5
    assert isinstance(srv.mgr, mgpy.Manager)
    ws.close()

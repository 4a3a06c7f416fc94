"""examples/ws_client.py: echoes through ``python -m mgpy``, survives a server restart."""

from __future__ import annotations

import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "ws_client.py"


class Lines:
    """A subprocess whose stdout lines are collected by a thread, waited on with deadlines."""

    def __init__(self, args: list[str], cwd: Path = ROOT) -> None:
        self.p = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd
        )
        self.q: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            self.q.put(line.rstrip("\n"))

    def wait_for(self, needle: str, timeout: float = 10.0) -> str:
        """Return the next line containing ``needle``; fail at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{needle!r} not seen; output so far: {self.seen}")
            try:
                line = self.q.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(line)
            if needle in line:
                return line

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            return self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return self.p.wait(10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int, root: Path) -> Lines:
    srv = Lines(
        [
            sys.executable,
            "-m",
            "mgpy",
            "--root",
            str(root),
            "--listen",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
        ]
    )
    srv.wait_for("mgpy serving")
    return srv


@pytest.fixture
def procs() -> Iterator[list[Lines]]:
    started: list[Lines] = []
    try:
        yield started
    finally:
        for p in started:
            p.stop(signal.SIGKILL)


def test_help() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0
    for opt in ("--message", "--interval", "--min-backoff", "--max-backoff", "--count"):
        assert opt in out.stdout


def test_echo_then_clean_exit_after_count(tmp_path: Path, procs: list[Lines]) -> None:
    port = free_port()
    procs.append(start_server(port, tmp_path))
    cli = Lines(
        [
            sys.executable,
            str(SCRIPT),
            f"ws://127.0.0.1:{port}/ws",
            "--message",
            "hi",
            "--interval",
            "0.05",
            "--count",
            "3",
        ]
    )
    procs.append(cli)
    cli.wait_for("connected to")
    assert cli.wait_for("received:").endswith("received: hi #1")
    cli.wait_for("stopped after 3 messages")
    assert cli.p.wait(10) == 0


def test_reconnects_with_backoff_after_the_server_restarts(
    tmp_path: Path, procs: list[Lines]
) -> None:
    port = free_port()
    srv = start_server(port, tmp_path)
    procs.append(srv)
    cli = Lines(
        [
            sys.executable,
            str(SCRIPT),
            f"127.0.0.1:{port}/ws",
            "--message",
            "tick",
            "--interval",
            "0.05",
            "--min-backoff",
            "0.05",
            "--max-backoff",
            "0.4",
        ]
    )
    procs.append(cli)
    cli.wait_for("connected to")
    cli.wait_for("received: tick")
    srv.stop(signal.SIGKILL)  # the server dies
    cli.wait_for("disconnected")
    # while it is down the attempts fail and the delay grows (0.05, 0.1, 0.2, 0.4, 0.4 ...)
    delays = [float(cli.wait_for("reconnecting in").split()[-2]) for _ in range(4)]
    assert delays[-1] > delays[0] * 2.5
    assert max(delays) <= 0.4 * 1.2 + 1e-9
    srv2 = start_server(port, tmp_path)  # back on the same port
    procs.append(srv2)
    cli.wait_for("connected to", timeout=10)
    line = cli.wait_for("received: tick")
    assert int(line.rsplit("#", 1)[1]) > 1  # the counter carried on across connections
    # a successful handshake reset the backoff: the next outage starts from the minimum
    srv2.stop(signal.SIGKILL)
    cli.wait_for("disconnected")
    assert float(cli.wait_for("reconnecting in").split()[-2]) <= 0.05 * 1.2 + 1e-9
    assert cli.stop() == 0  # SIGTERM: a clean exit
    cli.wait_for("stopped after")


def test_help_says_count_counts_received_messages() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=30
    )
    text = " ".join(out.stdout.split())
    assert "exit after receiving N messages from the server" in text
    assert "what this client sends is not counted" in text


def test_count_exits_against_websocket_chat_which_does_not_echo(procs: list[Lines]) -> None:
    """The chat relays to the *others*: --count N counts what they say (and their joins)."""
    from websockets.sync.client import connect

    chat = Lines([sys.executable, str(ROOT / "examples" / "websocket_chat.py"), "--listen",
                  "127.0.0.1:0"])  # fmt: skip
    procs.append(chat)
    port = int(chat.wait_for("websocket_chat: open").split(":")[-1].split("/")[0])
    cli = Lines([sys.executable, str(SCRIPT), f"ws://127.0.0.1:{port}/ws", "--message", "me",
                 "--interval", "0.05", "--count", "3"])  # fmt: skip
    procs.append(cli)
    cli.wait_for("connected to")
    with connect(f"ws://127.0.0.1:{port}/ws", open_timeout=5) as other:
        other.send("first")
        other.send("second")
        cli.wait_for("stopped after 3 messages")  # "++ joined", "first", "second"
    assert cli.p.wait(10) == 0
    got = [line for line in cli.seen if "received:" in line]
    assert len(got) == 3 and "++ joined" in got[0]
    assert got[1].endswith(" first") and got[2].endswith(" second")
    assert not any(" me #" in line for line in got)  # its own lines never come back

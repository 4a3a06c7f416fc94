"""``make run``, the first command a newcomer types (issue #8), from start to Ctrl-C.

Strategy: run the Makefile's ``run`` target from the repo root exactly as a user
would, with ``HOST=127.0.0.1 PORT=0`` so that the kernel picks a free port and the
URL line the server prints says which one.  ``-o .venv/.installed-stamp`` tells
make not to (re)install the venv: the tests already run inside it, and a test must
not reach for the package index.  The checks are the ones a user makes: the
printed URL serves the dashboard, ``/ws/push`` pushes a stats JSON and relays a
chat message, and Ctrl-C (SIGINT to the whole process group, as a terminal sends
it) stops the server cleanly and quickly, with "mgpy: stopped." and no traceback.
GNU make, interrupted while its recipe runs, prints "make: *** [...] Interrupt"
and kills itself with the same signal, so the exit status is -SIGINT (what a
shell shows as 130); the server below it exits 0.

``make run`` saves uploads in ``./uploads``; the test creates it only if it was not
there and then removes it again only if it is still empty.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

REPO = Path(__file__).resolve().parents[1]
URL_LINE = re.compile(r"^mgpy serving .* on (http://127\.0\.0\.1:(\d+)/) ")
START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0


class Output:
    """Lines printed by a process, read by a background thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()

    def wait_for(self, pattern: re.Pattern[str], proc: subprocess.Popen[str]) -> re.Match[str]:
        """The first line matching ``pattern``; fail if the process exits or the deadline passes."""
        deadline = time.monotonic() + START_TIMEOUT
        with self.cond:
            while True:
                m = next(filter(None, map(pattern.search, self.lines)), None)
                if m is not None:
                    return m
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("make run did not print its URL:\n" + self.text())
                self.cond.wait(0.1)

    def text(self) -> str:
        with self.cond:
            return "".join(self.lines)


def test_make_run_serves_the_dashboard_and_stops_on_ctrl_c() -> None:
    uploads = REPO / "uploads"
    uploads_existed = uploads.exists()
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "-o", ".venv/.installed-stamp",
         "run", "HOST=127.0.0.1", "PORT=0"],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, like a job in a terminal
    )  # fmt: skip
    out = Output(proc)
    try:
        m = out.wait_for(URL_LINE, proc)
        url, port = m.group(1), int(m.group(2))
        assert out.lines[0].strip() == (
            ".venv/bin/python -m mgpy --root web_root --listen 127.0.0.1:0 --upload-dir uploads"
        )
        assert "Press Ctrl-C to stop." in m.string
        assert uploads.is_dir()

        with urllib.request.urlopen(url, timeout=5) as r:
            assert r.status == 200
            assert r.headers.get_content_type() == "text/html"
            page = r.read().decode()
        assert "<title>mgpy · device dashboard</title>" in page
        assert 'id="chart"' in page and 'src="app.js"' in page

        with connect(f"ws://127.0.0.1:{port}/ws/push", open_timeout=5, close_timeout=2) as ws:
            stats = json.loads(ws.recv(timeout=5))
            assert stats["type"] == "stats"
            assert stats["ws_clients"] == 1 and stats["connections"] >= 1
            assert stats["requests"] >= 2  # GET / and this handshake
            assert stats["uptime"] >= 0 and abs(stats["time"] - time.time()) < 60
            chat = json.dumps({"type": "chat", "name": "newcomer", "text": "hello ✓"})
            ws.send(chat)
            deadline = time.monotonic() + 5
            while (msg := ws.recv(timeout=max(0.1, deadline - time.monotonic()))) != chat:
                assert json.loads(msg)["type"] == "stats"

            # Ctrl-C with the dashboard's WebSocket still open.
            os.killpg(proc.pid, signal.SIGINT)
            try:
                rc = proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pytest.fail(f"make run still running {STOP_TIMEOUT}s after Ctrl-C:\n{out.text()}")
            out.thread.join(STOP_TIMEOUT)
            printed = out.text()
            assert "mgpy: stopped." in printed, printed
            assert "Traceback" not in printed, printed
            assert rc in (-signal.SIGINT, 0, 2), f"exit status {rc}:\n{printed}"
            with pytest.raises(ConnectionClosed):  # the server closed the WebSocket
                while True:
                    ws.recv(timeout=STOP_TIMEOUT)
        with pytest.raises(ConnectionRefusedError):  # and the port is free again
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(STOP_TIMEOUT)
        if not uploads_existed and uploads.is_dir() and not any(uploads.iterdir()):
            uploads.rmdir()

"""examples/sensor_feed.py: readings from a worker thread reach WebSocket clients."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def port() -> Iterator[int]:
    p = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "examples" / "sensor_feed.py"),
            "--listen",
            "127.0.0.1:0",
            "--period",
            "0.05",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stdout is not None
        m = re.search(r":(\d+)/", p.stdout.readline())
        assert m
        yield int(m.group(1))
    finally:
        p.terminate()
        p.wait(10)


def test_help() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "sensor_feed.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0 and "--period" in out.stdout


def test_two_clients_receive_the_same_increasing_readings(port: int) -> None:
    with (
        connect(f"ws://127.0.0.1:{port}/ws", open_timeout=5) as a,
        connect(f"ws://127.0.0.1:{port}/ws", open_timeout=5) as b,
    ):
        ra = [json.loads(a.recv(timeout=5)) for _ in range(5)]
        seqs = [r["seq"] for r in ra]
        assert seqs == sorted(seqs) and len(set(seqs)) == 5
        assert all(15 < r["value"] < 30 for r in ra)
        rb = json.loads(b.recv(timeout=5))
        assert rb["seq"] >= seqs[0]


def test_page_is_served(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/")
    r = conn.getresponse()
    body = r.read().decode()
    assert r.status == 200 and "new WebSocket" in body
    conn.request("GET", "/nope")
    assert conn.getresponse().status == 404

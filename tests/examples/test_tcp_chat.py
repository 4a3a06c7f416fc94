"""examples/tcp_chat.py: a custom line protocol plugged in front of the handler."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def chat_port() -> Iterator[int]:
    p = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "tcp_chat.py"), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stdout is not None
        line = p.stdout.readline()  # the example prints its address first
        m = re.search(r":(\d+)$", line.strip())
        assert m, f"unexpected first line {line!r}"
        yield int(m.group(1))
    finally:
        p.terminate()
        p.wait(10)


def read_until(s: socket.socket, needle: bytes, timeout: float = 5.0) -> bytes:
    buf = b""
    deadline = time.monotonic() + timeout
    while needle not in buf:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        d = s.recv(4096)
        if not d:
            break
        buf += d
    assert needle in buf, f"{needle!r} not in {buf!r}"
    return buf


def test_help() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "tcp_chat.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0 and "--listen" in out.stdout


def test_two_clients_chat_through_the_line_protocol(chat_port: int) -> None:
    a = socket.create_connection(("127.0.0.1", chat_port))
    read_until(a, b"welcome")
    b = socket.create_connection(("127.0.0.1", chat_port))
    read_until(b, b"welcome")
    read_until(a, b"joined")
    a.sendall(b"/nick alice\r\n")
    read_until(b, b"is now alice")
    a.sendall(b"hel")  # a line may arrive in pieces
    a.sendall(b"lo bob\n")
    assert b"<alice> hello bob" in read_until(b, b"hello bob")
    b.sendall(b"/who\n")
    assert b"alice" in read_until(b, b"here:")
    b.close()
    read_until(a, b"left")
    a.close()


def test_overlong_line_closes_only_that_client(chat_port: int) -> None:
    a = socket.create_connection(("127.0.0.1", chat_port))
    read_until(a, b"welcome")
    bad = socket.create_connection(("127.0.0.1", chat_port))
    read_until(bad, b"welcome")
    bad.sendall(b"x" * 10000)
    assert b"too long" in read_until(bad, b"too long")
    bad.settimeout(5)
    while bad.recv(4096):
        pass  # the server closes it
    a.sendall(b"/who\n")
    read_until(a, b"here:")
    a.close()


def read_to_eof(s: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes its side (fails at the deadline)."""
    buf = b""
    deadline = time.monotonic() + timeout
    while True:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        d = s.recv(4096)
        if not d:
            return buf
        buf += d


@pytest.fixture
def idle_chat_port() -> Iterator[int]:
    p = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "examples" / "tcp_chat.py"),
            "--listen",
            "127.0.0.1:0",
            "--idle",
            "0.5",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stdout is not None
        m = re.search(r":(\d+)$", p.stdout.readline().strip())
        assert m
        yield int(m.group(1))
    finally:
        p.terminate()
        p.wait(10)


def test_quit_gets_a_goodbye_then_eof_and_the_others_hear_it(chat_port: int) -> None:
    a = socket.create_connection(("127.0.0.1", chat_port))
    read_until(a, b"welcome")
    b = socket.create_connection(("127.0.0.1", chat_port))
    read_until(b, b"welcome")
    b.sendall(b"/quit\n")
    rest = read_to_eof(b)  # shutdown_write: every queued byte, then EOF
    assert rest.endswith(b"* bye\n")
    read_until(a, b"left")
    b.close()
    a.sendall(b"/who\n")
    here = read_until(a, b"here:")
    assert here.count(b"guest") == 1


def test_an_idle_client_is_let_go_politely(idle_chat_port: int) -> None:
    s = socket.create_connection(("127.0.0.1", idle_chat_port))
    t0 = time.monotonic()
    out = read_to_eof(s, timeout=5)
    assert out.startswith(b"* welcome")
    assert out.endswith(b"* idle too long, bye\n")
    assert time.monotonic() - t0 >= 0.4
    s.close()


def test_lines_push_the_idle_timeout_back(idle_chat_port: int) -> None:
    s = socket.create_connection(("127.0.0.1", idle_chat_port))
    read_until(s, b"welcome")
    deadline = time.monotonic() + 1.5  # three idle periods of talking
    while time.monotonic() < deadline:  # the server paces the talk: a line once it answered
        s.sendall(b"/who\n")
        read_until(s, b"here:")
    s.sendall(b"/who\n")
    assert b"here:" in read_until(s, b"here:")
    s.close()

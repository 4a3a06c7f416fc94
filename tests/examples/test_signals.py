"""Every example, and the README's quick start, stops cleanly on SIGINT and on SIGTERM.

A user stops a server with Ctrl-C in its terminal, with ``kill`` (SIGTERM), or with
systemd/docker (SIGTERM).  A program started in the background by a script (``cmd &``)
gets SIGINT ignored from the start, and Python keeps it ignored unless the program
installs a handler: that is how the SIGINT cases here start them (``background=True``).
"Cleanly" is what the user sees: the process exits promptly with status 0 (128 + the
signal for a client stopped before it finished), prints no traceback, and a server's
port is free again.
"""

from __future__ import annotations

import re
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.examples._proc import ROOT, Proc, example

SIGNALS = [
    pytest.param(signal.SIGINT, id="SIGINT-in-background"),
    pytest.param(signal.SIGTERM, id="SIGTERM"),
]
URL = r"http://127\.0\.0\.1:(\d+)/"

# name -> (arguments, given a temp dir; what it prints once it is serving)
SERVERS: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    "simplest_web_server.py": (lambda d: ["--root", str(d)], URL),
    "restful_server.py": (lambda d: [], URL),
    "digest_auth.py": (lambda d: ["--htdigest", str(d / "htdigest"), "--add-user", "a:b"], URL),
    "sensor_feed.py": (lambda d: ["--period", "0.05"], URL),
    "upload_server.py": (lambda d: ["--dir", str(d / "up")], URL),
    "websocket_chat.py": (lambda d: [], URL),
    "tcp_chat.py": (lambda d: [], r"tcp://127\.0\.0\.1:(\d+)"),
}


def port_is_free(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def assert_clean(p: Proc, rc: int, want: int) -> None:
    assert rc == want, f"exit status {rc}, not {want}\n{p.text()}"
    assert "Traceback" not in p.stderr(), p.text()


@pytest.fixture
def silent_peer() -> Iterator[socket.socket]:
    """A listening socket that accepts and never answers: a client waits on it forever."""
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(15)
    try:
        yield srv
    finally:
        srv.close()


@pytest.mark.parametrize("sig", SIGNALS)
@pytest.mark.parametrize("name", sorted(SERVERS))
def test_server_example_stops_cleanly(name: str, sig: int, tmp_path: Path) -> None:
    args, ready = SERVERS[name]
    p = example(name, "--listen", "127.0.0.1:0", *args(tmp_path), background=sig == signal.SIGINT)
    try:
        port = int(p.wait_for(ready).group(1))
        assert not port_is_free(port)
        assert_clean(p, p.stop(sig, timeout=5), 0)
        assert port_is_free(port)
    finally:
        p.kill()


@pytest.mark.parametrize("sig", SIGNALS)
def test_ws_client_stops_cleanly_while_it_waits_to_reconnect(sig: int) -> None:
    with socket.socket() as s:  # a port nobody listens on: the client keeps retrying
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = example(
        "ws_client.py", f"ws://127.0.0.1:{port}/ws", "--min-backoff", "5", "--max-backoff", "5",
        background=sig == signal.SIGINT,
    )  # fmt: skip
    try:
        p.wait_for("reconnecting in")
        assert_clean(p, p.stop(sig, timeout=5), 0)
        assert "stopped after 0 messages" in p.stdout()
    finally:
        p.kill()


@pytest.mark.parametrize("sig", SIGNALS)
def test_http_client_stops_cleanly_while_waiting_for_an_answer(
    sig: int, silent_peer: socket.socket
) -> None:
    port = silent_peer.getsockname()[1]
    p = example("http_client.py", f"http://127.0.0.1:{port}/slow", background=sig == signal.SIGINT)
    try:
        conn, _ = silent_peer.accept()
        with conn:
            conn.settimeout(10)
            assert conn.recv(4096).startswith(b"GET /slow HTTP/1.1\r\n")  # it is in its loop
            assert_clean(p, p.stop(sig, timeout=5), 128 + sig)
        assert p.stdout() == ""
        assert f"stopped by {signal.Signals(sig).name}" in p.stderr()
    finally:
        p.kill()


@pytest.mark.parametrize("sig", SIGNALS)
def test_autobahn_client_stops_cleanly_mid_run(sig: int, silent_peer: socket.socket) -> None:
    port = silent_peer.getsockname()[1]
    p = example(
        "ws_autobahn_client.py", f"ws://127.0.0.1:{port}", "mgpy", background=sig == signal.SIGINT
    )
    try:
        conn, _ = silent_peer.accept()
        with conn:
            conn.settimeout(10)
            assert b"GET /getCaseCount" in conn.recv(4096)
            assert_clean(p, p.stop(sig, timeout=5), 128 + sig)
        assert f"stopped by {signal.Signals(sig).name}" in p.stderr()
    finally:
        p.kill()


def quick_start() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"## Quick start\n\n```python\n(.*?)```", text, re.S)
    assert m, "README has a Quick start python block"
    return m.group(1)


@pytest.mark.parametrize("sig", SIGNALS)
def test_readme_quick_start_stops_cleanly(sig: int, tmp_path: Path) -> None:
    code = quick_start().replace("127.0.0.1:8000", "127.0.0.1:0")
    announce = "    print(f'http://127.0.0.1:{lc.local[1]}/', flush=True)\n"
    code = code.replace(
        "    lc.set_timer(time.time() + 1)\n", "    lc.set_timer(time.time() + 1)\n" + announce
    )
    assert "http://127.0.0.1:{lc.local[1]}" in code
    (tmp_path / "web_root").mkdir()
    script = tmp_path / "quick.py"
    script.write_text(code)
    p = Proc([sys.executable, str(script)], cwd=tmp_path, background=sig == signal.SIGINT)
    try:
        port = int(p.wait_for(URL).group(1))
        assert_clean(p, p.stop(sig, timeout=5), 0)
        assert port_is_free(port)
    finally:
        p.kill()

"""The ``mgpy`` command as installed in this environment (an editable install under
``make test``): its name in the usage line, ``--version``, the dashboard it serves
without ``--root``, what a dashboard gets when it connects, how it stops, and what it
says when a directory named ``mgpy/`` hides the package.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.examples._proc import Proc
from tests.packaging.conftest import ROOT, project_version

SCRIPT = Path(sys.executable).parent / "mgpy"  # the console script beside this interpreter
SHIPPED = ROOT / "mgpy" / "web_root"
SERVING = r"^mgpy serving (.+) on (http://127\.0\.0\.1:(\d+)/) "
WS = {"open_timeout": 5, "close_timeout": 2}


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=30, cwd=cwd)


def start(*args: str, cwd: Path, background: bool = False) -> tuple[Proc, str, int]:
    p = Proc(
        [sys.executable, "-m", "mgpy", "--listen", "127.0.0.1:0", "--log-level", "warning", *args],
        cwd=cwd,
        background=background,
    )
    m = p.wait_for(SERVING)
    return p, m.group(2), int(m.group(3))


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    try:
        yield started
    finally:
        for p in started:
            p.kill()


def messages(ws: ClientConnection, n: int) -> list[dict[str, Any]]:
    return [json.loads(ws.recv(timeout=5)) for _ in range(n)]


def test_usage_names_the_command_as_it_was_run() -> None:
    module = run(sys.executable, "-m", "mgpy", "--help")
    assert module.returncode == 0 and module.stdout.startswith("usage: python -m mgpy ")
    script = run(str(SCRIPT), "--help")
    assert script.returncode == 0 and script.stdout.startswith("usage: mgpy ")
    assert "--version" in script.stdout
    assert "default: the dashboard shipped with mgpy" in " ".join(script.stdout.split())
    bad = run(str(SCRIPT), "--no-such-option")
    assert bad.returncode == 2 and bad.stderr.startswith("mgpy: error: unrecognized arguments")


def test_version_is_the_one_in_pyproject() -> None:
    for cmd in ([str(SCRIPT)], [sys.executable, "-m", "mgpy"]):
        out = run(*cmd, "--version")
        assert (out.returncode, out.stdout) == (0, f"mgpy {project_version()}\n"), cmd


def test_without_root_the_shipped_dashboard_is_served(tmp_path: Path, procs: list[Proc]) -> None:
    p, url, _ = start(cwd=tmp_path)  # an empty directory: no web_root/ to find
    procs.append(p)
    assert p.wait_for(SERVING).group(1) == f"the dashboard ({SHIPPED})"
    for name in ("", "app.js", "style.css", "favicon.svg"):
        with urllib.request.urlopen(url + name, timeout=5) as r:
            want = (SHIPPED / (name or "index.html")).read_bytes()
            assert r.status == 200 and r.read() == want, name
    assert p.stop() == 0


def test_a_new_dashboard_gets_the_last_minute_and_the_upload_state(
    tmp_path: Path, procs: list[Proc]
) -> None:
    p, _, port = start(cwd=tmp_path)
    procs.append(p)
    with connect(f"ws://127.0.0.1:{port}/ws/push", **WS) as first:
        first_msgs = messages(first, 3)  # the greeting and two once-a-second pushes
        assert [m["type"] for m in first_msgs] == ["stats"] * 3
        assert (
            first_msgs[0]["history"] == []
            or first_msgs[0]["history"][-1]["time"] < (first_msgs[0]["time"])
        )
        with connect(f"ws://127.0.0.1:{port}/ws/push", **WS) as late:
            (greeting,) = messages(late, 1)
    history = greeting["history"]
    pushed = [m["time"] for m in first_msgs[1:]]
    times = [h["time"] for h in history]
    assert set(pushed) <= set(times)  # the samples the first page saw, the late one gets too
    assert times == sorted(times) and times[-1] < greeting["time"]
    assert len(history) <= 60
    for h in history:
        assert "type" not in h and "history" not in h
        assert isinstance(h["rps"], (int, float)) and isinstance(h["ws_mps"], (int, float))
    assert greeting["upload"] == {
        "enabled": False,
        "reason": "Uploads are off: this server was started without --upload-dir.",
    }
    assert greeting["version"] == project_version()
    assert p.stop() == 0

    q, _, port = start("--upload-dir", str(tmp_path / "up"), cwd=tmp_path)
    procs.append(q)
    with connect(f"ws://127.0.0.1:{port}/ws/push", **WS) as ws:
        (greeting,) = messages(ws, 1)
    assert greeting["upload"]["enabled"] is True
    assert q.stop() == 0


@pytest.mark.parametrize(
    "sig", [pytest.param(signal.SIGINT, id="SIGINT-in-background"), signal.SIGTERM]
)
def test_signals_stop_the_server_cleanly(sig: int, tmp_path: Path, procs: list[Proc]) -> None:
    p, _, port = start(cwd=tmp_path, background=sig == signal.SIGINT)
    procs.append(p)
    with connect(f"ws://127.0.0.1:{port}/ws/push", **WS) as ws:
        messages(ws, 1)
        assert p.stop(sig, timeout=5) == 0
        with pytest.raises(ConnectionClosed):
            while True:
                ws.recv(timeout=5)
        assert ws.close_code == 1001  # going away
    assert p.stdout().rstrip().endswith("mgpy: stopped.")
    assert "Traceback" not in p.stderr()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_a_clone_named_mgpy_in_the_current_directory_gets_a_clear_message(
    tmp_path: Path,
) -> None:
    """``python -m mgpy`` from the parent of a clone: Python may take the clone's directory
    for the package (an editable install resolves it after the current directory).  Then
    the user is told what happened and what to run instead, not a bare ImportError."""
    (tmp_path / "mgpy" / "mgpy").mkdir(parents=True)  # the clone: mgpy/ holding mgpy/
    (tmp_path / "mgpy" / "README.md").write_text("a clone\n")
    out = run(sys.executable, "-m", "mgpy", "--version", cwd=tmp_path)
    assert "Traceback" not in out.stderr, out.stderr
    if out.returncode == 0:  # an install that is found before the current directory
        assert out.stdout == f"mgpy {project_version()}\n"
    else:
        assert out.returncode == 2
        assert f"imported {tmp_path / 'mgpy'} as the package 'mgpy'" in out.stderr
        assert "Run the `mgpy` command" in out.stderr
    script = run(str(SCRIPT), "--version", cwd=tmp_path)  # the documented way always works
    assert (script.returncode, script.stdout) == (0, f"mgpy {project_version()}\n")

"""examples/simplest_web_server.py: serve a directory, started as a subprocess."""

from __future__ import annotations

import http.client
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "simplest_web_server.py"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    (tmp_path / "index.html").write_text("<h1>home</h1>\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("some notes\n")
    (tmp_path / "docs" / "data.bin").write_bytes(bytes(range(256)) * 4000)
    p = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--root", str(tmp_path), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stdout is not None
        line = p.stdout.readline()  # the example prints its URL first
        m = re.search(r":(\d+)/", line)
        assert m, f"unexpected first line {line!r}"
        yield int(m.group(1)), tmp_path
    finally:
        p.terminate()
        p.wait(10)


def get(
    conn: http.client.HTTPConnection, path: str, method: str = "GET"
) -> tuple[int, str | None, bytes]:
    conn.request(method, path)
    r = conn.getresponse()
    return r.status, r.getheader("Content-Type"), r.read()


def test_help() -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), "--help"], capture_output=True, text=True, timeout=10
    )
    assert out.returncode == 0
    assert "--root" in out.stdout and "--listen" in out.stdout


def test_serves_files_index_and_listing(site: tuple[int, Path]) -> None:
    port, root = site
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    status, ctype, body = get(conn, "/")
    assert (status, body) == (200, b"<h1>home</h1>\n")
    assert ctype is not None and ctype.startswith("text/html")
    assert get(conn, "/docs/notes.txt")[::2] == (200, b"some notes\n")
    assert get(conn, "/docs/data.bin")[2] == (root / "docs" / "data.bin").read_bytes()
    status, _, listing = get(conn, "/docs/")
    assert status == 200 and b"notes.txt" in listing and b"data.bin" in listing
    assert get(conn, "/docs/notes.txt", "HEAD")[::2] == (200, b"")
    assert get(conn, "/missing.txt")[0] == 404
    conn.close()


def test_busy_port_is_a_one_line_error(site: tuple[int, Path]) -> None:
    port, root = site
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), "--root", str(root), "--listen", f"127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert out.returncode != 0
    assert "already in use" in out.stderr and "Traceback" not in out.stderr

"""``python -m mgpy`` as a user runs it: a subprocess serving a temp directory.

--help, one-line errors with exit status 2 (bad option, busy port, missing
root), and the static file features through the CLI flags (--dir-listing,
--extra-header, --index), checked with curl.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import brotli  # type: ignore[import-untyped]
import pytest

from tests.net.static_helpers import write

CLI = [sys.executable, "-m", "mgpy"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=30, env=ENV, check=False
    )


class Served:
    def __init__(self, proc: subprocess.Popen[str], base: str) -> None:
        self.proc = proc
        self.base = base

    def curl(self, path: str, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["curl", "-sS", "--max-time", "10", *args, self.base + path.lstrip("/")],
            capture_output=True,
            timeout=30,
            check=False,
        )


def start(root: Path, *args: str) -> Served:
    proc = subprocess.Popen(
        [*CLI, "--root", str(root), "--listen", "127.0.0.1:0", "--log-level", "warning", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the server printed its address (or died)
    m = re.search(r"on (http://127\.0\.0\.1:\d+/)", line)
    if m is None:
        proc.kill()
        raise AssertionError(f"no address in {line!r}; stderr: {proc.communicate()[1]!r}")
    return Served(proc, m.group(1))


def stop(s: Served) -> tuple[int, str]:
    s.proc.send_signal(signal.SIGTERM)
    out, _ = s.proc.communicate(timeout=15)
    return s.proc.returncode, out


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    r = tmp_path_factory.mktemp("cli") / "site"
    write(r / "index.html", "<h1>cli home</h1>\n")
    write(r / "app.js", "".join(f"var v{i} = {i} * 2;\n" for i in range(500)))
    write(r / "files" / "a&b.txt", "ab\n")
    write(r / "files" / "b.txt", "b\n")
    write(r / "files" / ".hidden", "no\n")
    write(r / "data.bin", bytes(range(256)) * 64)
    write(r / "alt" / "start.html", "start page\n")
    return r


@pytest.fixture(scope="module")
def served(site: Path) -> Iterator[Served]:
    s = start(
        site,
        "--dir-listing",
        "--extra-header",
        "Access-Control-Allow-Origin: *",
        "--extra-header",
        "X-Served-By: mgpy",
    )
    try:
        yield s
    finally:
        if s.proc.poll() is None:
            stop(s)


class TestErrors:
    def test_help_documents_the_static_options(self) -> None:
        p = run_cli("--help")
        assert p.returncode == 0
        for opt in ("--root", "--listen", "--dir-listing", "--extra-header", "--index"):
            assert opt in p.stdout

    def test_bad_option_is_one_line_and_exit_2(self) -> None:
        p = run_cli("--no-such-option")
        assert p.returncode == 2
        assert len(p.stderr.strip().splitlines()) == 1
        assert p.stderr.startswith("mgpy: error:") and "--no-such-option" in p.stderr

    def test_bad_extra_header_is_one_line_and_exit_2(self) -> None:
        p = run_cli("--extra-header", "no colon here")
        assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1

    def test_busy_port_is_one_line_and_exit_2(self, site: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            port = s.getsockname()[1]
            p = run_cli("--root", str(site), "--listen", f"127.0.0.1:{port}")
        assert p.returncode == 2
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mgpy: error:")
        assert str(port) in lines[0]

    def test_missing_root_is_one_line_and_exit_2(self, tmp_path: Path) -> None:
        p = run_cli("--root", str(tmp_path / "nope"), "--listen", "127.0.0.1:0")
        assert p.returncode == 2
        assert len(p.stderr.strip().splitlines()) == 1 and "nope" in p.stderr


class TestServing:
    def test_serves_files_with_extra_headers(self, served: Served, site: Path) -> None:
        p = served.curl("/", "-i")
        head, _, body = p.stdout.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert b"\r\nAccess-Control-Allow-Origin: *" in head
        assert b"\r\nX-Served-By: mgpy" in head
        assert body == b"<h1>cli home</h1>\n"
        assert served.curl("/data.bin").stdout == (site / "data.bin").read_bytes()
        p = served.curl("/nope", "-i")
        assert p.stdout.startswith(b"HTTP/1.1 404") and b"X-Served-By: mgpy" in p.stdout

    def test_ranges_and_conditionals(self, served: Served, site: Path) -> None:
        data = (site / "data.bin").read_bytes()
        assert served.curl("/data.bin", "-r", "100-199").stdout == data[100:200]
        p = served.curl(
            "/data.bin", "-z", str(site / "data.bin"), "-o", "/dev/null", "-w", "%{http_code}"
        )
        assert p.stdout == b"304"

    def test_brotli(self, served: Served, site: Path) -> None:
        p = served.curl("/app.js", "-H", "Accept-Encoding: br", "-D", "-", "-o", "-")
        head, _, body = p.stdout.partition(b"\r\n\r\n")
        assert b"Content-Encoding: br" in head
        assert brotli.decompress(body) == (site / "app.js").read_bytes()

    def test_dir_listing_and_redirect(self, served: Served) -> None:
        p = served.curl("/files", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}")
        assert p.stdout.decode().startswith("301 ") and p.stdout.endswith(b"/files/")
        html = served.curl("/files/").stdout.decode()
        assert "a&amp;b.txt" in html and 'href="./a&b.txt"' in html
        assert ".hidden" not in html

    def test_listing_off_without_the_flag(self, site: Path) -> None:
        s = start(site)
        try:
            p = s.curl("/files/", "-o", "/dev/null", "-w", "%{http_code}")
            assert p.stdout == b"403"
        finally:
            stop(s)

    def test_index_option(self, site: Path) -> None:
        s = start(site, "--index", "start.html,index.html")
        try:
            assert s.curl("/alt/").stdout == b"start page\n"
        finally:
            stop(s)

    def test_sigterm_stops_cleanly(self, site: Path) -> None:
        s = start(site)
        assert s.curl("/").stdout == b"<h1>cli home</h1>\n"
        code, out = stop(s)
        assert code == 0 and "stopped" in out

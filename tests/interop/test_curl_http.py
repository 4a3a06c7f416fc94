"""curl against mgpy's HTTP/1.1 server.

curl runs as a subprocess while the Manager polls in the test thread:
keep-alive reuse of one connection, chunked uploads, a 50 MB upload streamed
with HTTP_CHUNK + DELETE_CHUNK in bounded memory (tracemalloc), 100-continue,
HEAD, DELETE, HTTP/1.0, chunked downloads and an early 413.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

import mgpy
from mgpy import Ev, F
from tests.conftest import run_until

CURL = shutil.which("curl") or "curl"


class App:
    """A small server: streaming hash upload, echo, chunked download, DELETE."""

    def __init__(self) -> None:
        self.accepts = 0
        self.requests: list[mgpy.HttpMessage] = []
        self.largest_chunk = 0

    def __call__(self, c: mgpy.Connection, ev: Any, hm: Any) -> None:
        if ev == Ev.ACCEPT:
            self.accepts += 1
        elif ev == Ev.HTTP_CHUNK and hm.uri == "/hash":
            # stream: hash what arrived and drop it (bounded memory for any size)
            if c.user_data is None:
                c.user_data = [hashlib.sha256(), 0]
            c.user_data[0].update(hm.body)
            c.user_data[1] += len(hm.body)
            self.largest_chunk = max(self.largest_chunk, len(hm.body))
            c.flags |= F.DELETE_CHUNK
        elif ev == Ev.HTTP_REQUEST:
            self.requests.append(hm)
            if hm.uri == "/hash":
                sha, n = c.user_data or [hashlib.sha256(), 0]
                sha.update(hm.body)
                c.user_data = None
                body = json.dumps({"sha256": sha.hexdigest(), "size": n + len(hm.body)})
                mgpy.http_reply(c, 200, body, {"Content-Type": "application/json"})
            elif hm.uri == "/stream":
                c.send_head(200, headers={"Content-Type": "text/plain"})
                for i in range(5):
                    c.printf_http_chunk("chunk %d\n", i)
                c.send_http_chunk(b"")
            elif hm.uri.startswith("/items/") and hm.method == "DELETE":
                mgpy.http_reply(c, 200, json.dumps({"deleted": hm.uri[7:]}))
            else:
                mgpy.http_reply(c, 200, f"{hm.method} {hm.uri} {len(hm.body)}")


@pytest.fixture
def app(mgr: mgpy.Manager) -> tuple[App, str]:
    a = App()
    lc = mgr.bind("127.0.0.1:0", a)
    lc.set_protocol_http_websocket()
    return a, f"http://127.0.0.1:{lc.local[1]}"


def curl(mgr: mgpy.Manager, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    """Run curl while polling the manager; return its result."""
    p = subprocess.Popen(
        [CURL, "-sS", "--no-progress-meter", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        run_until(mgr, lambda: p.poll() is not None, timeout)
    finally:
        if p.poll() is None:
            p.kill()
        out, err = p.communicate()
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def test_keep_alive_reuses_the_connection(mgr: mgpy.Manager, app: tuple[App, str]) -> None:
    a, url = app
    r = curl(mgr, "-v", f"{url}/one", f"{url}/two", f"{url}/three")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"GET /one 0GET /two 0GET /three 0"
    assert b"Re-using existing connection" in r.stderr
    assert a.accepts == 1


def test_head(mgr: mgpy.Manager, app: tuple[App, str]) -> None:
    _, url = app
    r = curl(mgr, "-I", f"{url}/page")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Length: 12\r\n" in r.stdout  # len("HEAD /page 0")
    assert r.stdout.endswith(b"\r\n\r\n")


def test_delete(mgr: mgpy.Manager, app: tuple[App, str]) -> None:
    a, url = app
    r = curl(mgr, "-X", "DELETE", f"{url}/items/42")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"deleted": "42"}
    assert a.requests[-1].method == "DELETE"


def test_chunked_download(mgr: mgpy.Manager, app: tuple[App, str]) -> None:
    _, url = app
    r = curl(mgr, "-i", f"{url}/stream")
    assert b"Transfer-Encoding: chunked" in r.stdout
    assert r.stdout.endswith(b"".join(b"chunk %d\n" % i for i in range(5)))


def test_http10(mgr: mgpy.Manager, app: tuple[App, str]) -> None:
    _, url = app
    r = curl(mgr, "-0", "-i", f"{url}/stream", f"{url}/x")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count(b"Connection: close") == 2
    assert b"Transfer-Encoding" not in r.stdout
    assert b"chunk 4\n" in r.stdout and r.stdout.endswith(b"GET /x 0")


def test_chunked_upload(mgr: mgpy.Manager, app: tuple[App, str], tmp_path: Path) -> None:
    _, url = app
    data = os.urandom(3 * 1024 * 1024 + 17)
    f = tmp_path / "up.bin"
    f.write_bytes(data)
    r = curl(mgr, "-H", "Transfer-Encoding: chunked", "--data-binary", f"@{f}", f"{url}/hash")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def test_50mb_upload_streams_in_bounded_memory(
    mgr: mgpy.Manager, app: tuple[App, str], tmp_path: Path
) -> None:
    a, url = app
    f = tmp_path / "big.bin"
    sha = hashlib.sha256()
    with open(f, "wb") as out:
        for _ in range(50):
            block = os.urandom(1024 * 1024)
            sha.update(block)
            out.write(block)
    tracemalloc.start()
    try:
        start = time.monotonic()
        r = curl(mgr, "-v", "--data-binary", f"@{f}", f"{url}/hash", timeout=40)
        elapsed = time.monotonic() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"sha256": sha.hexdigest(), "size": 50 * 1024 * 1024}
    assert b"< HTTP/1.1 100 Continue" in r.stderr  # curl asked with Expect: 100-continue
    print(f"50 MB upload: {elapsed:.2f} s, server peak {peak / 2**20:.2f} MiB")
    assert peak < 8 * 1024 * 1024, f"server peak {peak / 2**20:.1f} MiB"
    assert a.largest_chunk <= mgr.limits.max_recv_buffer
    assert elapsed < 30


def test_oversized_upload_gets_413_not_a_reset(
    mgr: mgpy.Manager, app: tuple[App, str], tmp_path: Path
) -> None:
    """A non-streaming endpoint refuses a body over max_body; curl reads the 413 cleanly."""
    _, url = app
    f = tmp_path / "big.bin"
    f.write_bytes(b"x" * (8 * 1024 * 1024))
    for extra in ([], ["-H", "Expect:"]):  # with and without 100-continue
        r = curl(mgr, "-i", *extra, "--data-binary", f"@{f}", f"{url}/buffered")
        assert r.returncode == 0, r.stderr
        assert b"HTTP/1.1 413 Content Too Large" in r.stdout
        assert b"Connection: close" in r.stdout

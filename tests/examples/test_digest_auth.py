"""examples/digest_auth.py: a Digest-protected server and the connect_http client."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from requests.auth import HTTPDigestAuth

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "digest_auth.py"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "note.txt").write_text("protected note\n")
    p = subprocess.Popen(
        [
            sys.executable,
            str(EXAMPLE),
            "--listen",
            "127.0.0.1:0",
            "--htdigest",
            str(tmp_path / "htdigest"),
            "--add-user",
            "alice:wonder land",
            "--root",
            str(tmp_path / "www"),
            "--realm",
            "example",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stdout is not None
        line = p.stdout.readline()  # the example prints its URL first
        m = re.search(r"(http://\S+/)", line)
        assert m, f"unexpected first line {line!r}"
        yield m.group(1)
    finally:
        p.terminate()
        p.wait(10)


def curl(*args: str) -> tuple[int, str]:
    out = subprocess.run(
        ["curl", "-sS", "-w", "\n%{http_code}", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    body, _, code = out.stdout.rpartition("\n")
    return int(code), body


def test_help() -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), "--help"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0 and "--listen" in out.stdout and "--add-user" in out.stdout


def test_curl_digest(server: str) -> None:
    assert curl(server) == (200, "public page: try /secret/ or /files/\n")
    assert curl("--digest", "-u", "alice:wonder land", server + "secret/") == (
        200,
        "hello alice, you used SHA-256\n",
    )
    assert curl("--digest", "-u", "alice:wrong", server + "secret/")[0] == 401
    assert curl(server + "secret/")[0] == 401


def test_static_files_are_protected(server: str) -> None:
    assert curl("--digest", "-u", "alice:wonder land", server + "files/note.txt") == (
        200,
        "protected note\n",
    )
    assert curl(server + "files/note.txt")[0] == 401


def test_requests_digest(server: str) -> None:
    r = requests.get(server + "secret/x", auth=HTTPDigestAuth("alice", "wonder land"), timeout=10)
    assert r.status_code == 200 and r.text == "hello alice, you used MD5\n"


def test_client_mode_answers_the_challenge(server: str) -> None:
    url = server.replace("http://", "http://alice:wonder%20land@") + "secret/"
    ok = subprocess.run(
        [sys.executable, str(EXAMPLE), "--get", url], capture_output=True, text=True, timeout=30
    )
    assert ok.returncode == 0 and ok.stdout == "200 OK\nhello alice, you used SHA-256\n"
    bad = subprocess.run(
        [sys.executable, str(EXAMPLE), "--get", url.replace("wonder%20land", "nope")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 1 and bad.stdout.startswith("401 ")

"""examples/upload_server.py: the upload page and POST /upload, started as a subprocess."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "upload_server.py"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    updir = tmp_path / "saved"
    p = subprocess.Popen(
        [
            sys.executable,
            str(EXAMPLE),
            "--dir",
            str(updir),
            "--listen",
            "127.0.0.1:0",
            "--max-size",
            "1000000",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stdout is not None
        line = p.stdout.readline()  # the example prints its URL first
        m = re.search(r"(http://\S+/)", line)
        assert m, f"unexpected first line {line!r}"
        yield m.group(1), updir
    finally:
        p.terminate()
        p.wait(10)


def test_help() -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), "--help"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0 and "--dir" in out.stdout and "--listen" in out.stdout


def test_page_has_a_file_form_and_a_progress_bar(server: tuple[str, Path]) -> None:
    url, _ = server
    r = requests.get(url, timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert 'enctype="multipart/form-data"' in r.text and 'type="file"' in r.text
    assert "<progress" in r.text and "upload.onprogress" in r.text


def test_curl_upload_saves_files_and_the_page_lists_them(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    url, updir = server
    a = tmp_path / "a.txt"
    a.write_text("hello")
    b = tmp_path / "b <i>.bin"
    b.write_bytes(bytes(range(256)) * 1000)
    out = subprocess.run(
        ["curl", "-sS", "-F", f"file=@{a}", "-F", f"file=@{b}", url + "upload"],
        capture_output=True,
        timeout=30,
    )
    assert json.loads(out.stdout) == {
        "ok": True,
        "files": [{"name": "a.txt", "size": 5}, {"name": "b i.bin", "size": 256_000}],
    }
    assert (updir / "a.txt").read_text() == "hello"
    assert (updir / "b i.bin").read_bytes() == b.read_bytes()
    page = requests.get(url, timeout=10).text
    assert "<li>a.txt</li>" in page and "<li>b i.bin</li>" in page


def test_too_large_file_is_413_and_not_saved(server: tuple[str, Path]) -> None:
    url, updir = server
    r = requests.post(url + "upload", files={"file": ("big.bin", b"x" * 2_000_000)}, timeout=10)
    assert r.status_code == 413 and r.json()["ok"] is False
    assert list(updir.iterdir()) == []

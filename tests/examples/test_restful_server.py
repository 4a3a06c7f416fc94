"""examples/restful_server.py: the JSON API, started as a subprocess and driven with
http.client (keep-alive) and curl."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "restful_server.py"


@pytest.fixture
def port() -> Iterator[int]:
    p = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--listen", "127.0.0.1:0", "--max-body", "1000"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stdout is not None
        line = p.stdout.readline()  # the example prints its URL first
        m = re.search(r":(\d+)/", line)
        assert m, f"unexpected first line {line!r}"
        yield int(m.group(1))
    finally:
        p.terminate()
        p.wait(10)


def call(
    conn: http.client.HTTPConnection, method: str, path: str, body: Any = None
) -> tuple[int, dict[str, str], Any]:
    data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
    conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    raw = r.read()
    headers = {k.lower(): v for k, v in r.getheaders()}
    return r.status, headers, json.loads(raw) if raw else None


def test_help() -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), "--help"], capture_output=True, text=True, timeout=10
    )
    assert out.returncode == 0
    assert "--listen" in out.stdout and "--max-body" in out.stdout


def test_crud_on_one_keep_alive_connection(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    assert call(conn, "GET", "/api/items")[::2] == (200, [])
    status, headers, item = call(conn, "POST", "/api/items", {"name": "apple", "qty": 3})
    assert status == 201 and item == {"name": "apple", "qty": 3, "id": 1}
    assert headers["location"] == "/api/items/1"
    assert headers["content-type"] == "application/json"
    call(conn, "POST", "/api/items", {"name": "pear"})
    assert [i["name"] for i in call(conn, "GET", "/api/items")[2]] == ["apple", "pear"]
    assert call(conn, "GET", "/api/items/1")[2]["name"] == "apple"
    status, _, item = call(conn, "PUT", "/api/items/1", {"name": "green apple"})
    assert status == 200 and item == {"name": "green apple", "id": 1}
    assert call(conn, "DELETE", "/api/items/1")[:1] == (204,)
    assert call(conn, "GET", "/api/items/1")[::2] == (404, {"error": "no item '1'"})
    assert call(conn, "GET", "/api/stats")[2]["items"] == 1
    assert call(conn, "DELETE", "/api/items")[0] == 204
    assert call(conn, "GET", "/api/items")[2] == []
    conn.close()


def test_json_errors(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    status, headers, body = call(conn, "PATCH", "/api/items")
    assert status == 405 and "POST" in headers["allow"] and body == {"error": "method not allowed"}
    assert call(conn, "POST", "/api/items", b"{not json")[::2] == (
        400,
        {"error": "body is not valid JSON"},
    )
    assert call(conn, "POST", "/api/items", [1, 2])[0] == 400
    assert call(conn, "GET", "/api/items/abc")[0] == 404
    assert call(conn, "GET", "/api/items/1/deeper")[::2] == (404, {"error": "no such resource"})
    assert call(conn, "GET", "/elsewhere")[0] == 404
    conn.close()


def test_body_over_max_body_is_a_json_413(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("POST", "/api/items", body=json.dumps({"name": "x" * 5000}))
    r = conn.getresponse()
    assert r.status == 413 and r.getheader("Connection") == "close"
    assert r.getheader("Content-Type") == "application/json"
    assert json.loads(r.read()) == {"error": "body larger than 1000 bytes"}


def test_chunked_body_over_max_body_is_a_json_413(port: int) -> None:
    """No Content-Length to judge by: the 413 comes once the body passes the limit."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    chunks = (b"x" * 600 for _ in range(4))
    conn.request("PUT", "/api/items/1", body=chunks, encode_chunked=True)
    r = conn.getresponse()
    assert r.status == 413 and r.getheader("Content-Type") == "application/json"
    assert json.loads(r.read()) == {"error": "body larger than 1000 bytes"}


def test_413_on_a_path_no_endpoint_matches_is_json_too(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("POST", "/elsewhere", body=b"y" * 3000)
    r = conn.getresponse()
    assert r.status == 413 and json.loads(r.read())["error"].startswith("body larger")


def test_every_error_answer_is_json(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    for method, path, body in [
        ("PATCH", "/api/items", None),
        ("POST", "/api/items", b"{not json"),
        ("GET", "/api/items/404", None),
        ("GET", "/nothing/here", None),
        ("DELETE", "/api/stats", None),
    ]:
        conn.request(method, path, body=body)
        r = conn.getresponse()
        raw = r.read()
        assert r.status >= 400, (method, path)
        assert r.getheader("Content-Type") == "application/json", (method, path)
        assert set(json.loads(raw)) == {"error"}, (method, path)


def test_with_curl(port: int) -> None:
    url = f"http://127.0.0.1:{port}/api/items"
    out = subprocess.run(
        ["curl", "-sS", "-d", '{"name": "fig"}', url, url],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()
    assert json.loads(first) == {"name": "fig", "id": 1}
    assert json.loads(second)["id"] == 2

"""curl against answers decided by the request head (issue 12 items 3 and 4).

A 20 MB upload that the server refuses from its head -- 405 at HTTP_HEADERS, 413 for a
buffering handler, 401 from a protected endpoint -- must reach curl as that status while
curl has sent only a small part of the body (``%{size_upload}``), with and without
``Expect: 100-continue``; an authorised Digest upload still goes through.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

import mgpy
from mgpy import Ev
from tests.interop.test_curl_http import curl

SIZE = 20 * 1024 * 1024
REALM = "early"
TABLE = {("alice", REALM): hashlib.md5(f"alice:{REALM}:secret".encode()).hexdigest()}


def handler(c: mgpy.Connection, ev: Any, hm: Any) -> None:
    if ev == Ev.HTTP_HEADERS and hm.uri == "/static":
        mgpy.http_send_error(c, 405, headers={"Allow": "GET, HEAD"})
    elif ev == Ev.HTTP_REQUEST:
        mgpy.http_reply(c, 200, f"{hm.method} {hm.uri} {len(hm.body)}")


@pytest.fixture
def url(mgr: mgpy.Manager) -> str:
    lc = mgr.bind("127.0.0.1:0", handler)
    lc.set_protocol_http_websocket()
    mgpy.register_http_endpoint(lc, "/secret", handler, auth_file=TABLE, auth_domain=REALM)
    return f"http://127.0.0.1:{lc.local[1]}"


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    f = tmp_path_factory.mktemp("early") / "big.bin"
    f.write_bytes(b"u" * SIZE)
    return f


@pytest.mark.parametrize("expect", [True, False])
@pytest.mark.parametrize(("path", "status"), [("/static", 405), ("/buffer", 413), ("/secret", 401)])
def test_refused_from_the_head_before_the_body_is_sent(
    mgr: mgpy.Manager, url: str, big: Path, path: str, status: int, expect: bool
) -> None:
    extra = [] if expect else ["-H", "Expect:"]
    r = curl(
        mgr,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{size_upload}",
        *extra,
        "--data-binary",
        f"@{big}",
        f"{url}{path}",
    )
    code, sent = r.stdout.split()
    assert int(code) == status, r.stderr
    # the answer came at the head: no 100 first, so curl with Expect sent nothing; without
    # it, curl stopped long before 20 MB (what the socket buffers took)
    assert int(sent) == 0 if expect else int(sent) < SIZE // 4, sent


def test_authorised_digest_upload_goes_through(mgr: mgpy.Manager, url: str, tmp_path: Path) -> None:
    f = tmp_path / "small.bin"
    f.write_bytes(b"d" * 300_000)
    r = curl(mgr, "--digest", "-u", "alice:secret", "--data-binary", f"@{f}", f"{url}/secret")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"POST /secret 300000"

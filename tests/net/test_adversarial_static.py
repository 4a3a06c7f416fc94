"""serve_http against an attacker: credentials files, URI spraying, range amplification,
listing injection.

Found while attacking the static server over real sockets: an htdigest file kept in the
document root was served to anyone (its HA1 hashes are all a Digest client needs to log
in as any user; mongoose hides its auth files), and every distinct URI up to the 8 KiB
request-line limit was cached, so 4096 sprayed URIs held ~32 MiB per document root.
"""

from __future__ import annotations

import hashlib
import socket
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

import mgpy
import mgpy.http.static.fs as fs
from mgpy import Ev
from mgpy.proto.digest import create_digest_auth_header
from tests.net.static_helpers import StaticServer, parse_head, run_in_thread, write

REALM = "adv"
HA1 = hashlib.md5(f"alice:{REALM}:pw".encode()).hexdigest()


@pytest.fixture
def www(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    write(root / "index.html", b"<h1>public</h1>")
    write(root / "htdigest", f"alice:{REALM}:{HA1}\n")
    write(root / "conf" / "users.digest", f"alice:{REALM}:{HA1}\n")
    write(root / "big.bin", bytes(range(256)) * 400)
    return root


def _raw_get(mgr: mgpy.Manager, port: int, target: str) -> tuple[int, bytes]:
    """GET ``target`` as sent (no client normalizes it); return (status, response bytes)."""

    def go() -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
            s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            out = bytearray()
            while b := s.recv(65536):
                out += b
            return bytes(out)

    data = run_in_thread(mgr, go)
    return parse_head(data)[0], data


class TestCredentialsFilesAreNeverServed:
    def test_auth_file_of_the_serve_opts(self, mgr: mgpy.Manager, www: Path) -> None:
        """Even to a client that logged in: the file holds everyone's HA1."""
        opts = mgpy.ServeOpts(
            document_root=str(www), auth_file=str(www / "htdigest"), auth_domain=REALM
        )
        srv = StaticServer(mgr, opts)
        r = srv.get("/index.html")
        assert r.status == 401
        auth = create_digest_auth_header(
            "alice", "pw", "GET", "/htdigest", r.h("WWW-Authenticate") or ""
        )
        r = srv.get("/htdigest", {"Authorization": auth})
        assert r.status == 404 and HA1.encode() not in r.body

    def test_endpoint_auth_file_is_hidden_from_a_public_root(
        self, mgr: mgpy.Manager, www: Path
    ) -> None:
        """Was: a public serve_http next to a Digest-protected endpoint served the
        endpoint's htdigest (kept in the web root) to anyone, before any login."""
        public = mgpy.ServeOpts(document_root=str(www), enable_directory_listing=True)
        srv = StaticServer(mgr, public)
        mgpy.register_http_endpoint(
            srv.lc,
            "/admin/**",
            lambda c, ev, hm: mgpy.http_reply(c, 200, "admin") if ev == Ev.HTTP_REQUEST else None,
            auth_file=str(www / "conf" / "users.digest"),
            auth_domain=REALM,
        )
        for target in ("/conf/users.digest", "/conf//users.digest", "/conf/users%2edigest"):
            status, data = _raw_get(mgr, srv.port, target)
            assert status == 404 and HA1.encode() not in data
        listing = srv.get("/conf/").body
        assert b"users.digest" not in listing

    def test_file_read_by_check_digest_auth_is_hidden_even_if_cached_before(
        self, mgr: mgpy.Manager, www: Path
    ) -> None:
        """A URI resolved (and cached) before the file became known as credentials."""
        public = mgpy.ServeOpts(document_root=str(www))
        srv = StaticServer(mgr, public)
        assert srv.get("/htdigest").status == 200  # nothing says yet what this file is

        def check(c: mgpy.Connection, ev: Any, hm: Any) -> None:
            if ev == Ev.HTTP_REQUEST:
                ok = mgpy.check_digest_auth(hm, str(www / "htdigest"), REALM, c) == "ok"
                mgpy.http_reply(c, 200 if ok else 403, "checked")

        lc = mgr.bind("127.0.0.1:0", check)
        lc.set_protocol_http_websocket()
        assert _raw_get(mgr, lc.local[1], "/login")[0] == 403
        r = srv.get("/htdigest")
        assert r.status == 404 and HA1.encode() not in r.body
        assert srv.get("/index.html").status == 200


class TestCachesAgainstSpraying:
    def test_long_uris_are_resolved_but_not_cached(self, mgr: mgpy.Manager, www: Path) -> None:
        opts = mgpy.ServeOpts(document_root=str(www))
        srv = StaticServer(mgr, opts)
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for i in range(150):  # 150 spellings of one file, 6-7 KiB each
                status, data = _raw_get(mgr, srv.port, "/" * (6000 + i) + "index.html")
                assert status == 200 and data.endswith(b"<h1>public</h1>")
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        root = fs.root_of(opts)
        assert sum(len(u) for u in root.entries) <= 150 * fs.MAX_CACHED_URI
        assert grown < 512 * 1024  # was ~1 MiB here (32 MiB at MAX_ENTRIES)
        assert srv.get("/index.html").status == 200


class TestRanges:
    def test_many_overlapping_ranges_do_not_amplify(self, mgr: mgpy.Manager, www: Path) -> None:
        """CVE-2011-3192 style: 64 overlapping ranges are coalesced into one part."""
        srv = StaticServer(mgr, mgpy.ServeOpts(document_root=str(www)))
        size = (www / "big.bin").stat().st_size
        r = srv.get("/big.bin", {"Range": "bytes=" + ",".join(["0-", "1-"] * 32)})
        assert r.status == 206 and len(r.body) == size

    def test_too_many_ranges_are_ignored(self, mgr: mgpy.Manager, www: Path) -> None:
        srv = StaticServer(mgr, mgpy.ServeOpts(document_root=str(www)))
        spec = ",".join(f"{i * 2}-{i * 2}" for i in range(500))
        r = srv.get("/big.bin", {"Range": "bytes=" + spec})
        assert r.status == 200 and r.h("Content-Range") is None


class TestListingInjection:
    @pytest.mark.parametrize(
        "name",
        [
            "javascript:alert(1)",
            "<img src=x onerror=alert(1)>",
            '" onmouseover="alert(1)',
            "//evil",
        ],
        ids=["scheme", "tag", "attribute", "scheme-relative"],
    )
    def test_hostile_names_stay_text_and_relative_links(
        self, mgr: mgpy.Manager, tmp_path: Path, name: str
    ) -> None:
        root = tmp_path / "list"
        fname = name.replace("/", "_")
        write(root / fname, b"x")
        srv = StaticServer(
            mgr, mgpy.ServeOpts(document_root=str(root), enable_directory_listing=True)
        )
        html = srv.get("/").body.decode()
        assert "<img" not in html and 'onmouseover="' not in html
        hrefs = [h.split('"', 1)[0] for h in html.split('href="')[1:]]
        assert hrefs and all(h.startswith("./") for h in hrefs)

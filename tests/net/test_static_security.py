"""serve_http never serves a byte from outside the document root, nor hidden files.

A table of hostile request targets (sent raw, so no client normalizes them):
encoded dots, double encoding, encoded and raw slashes/backslashes, NUL,
overlong UTF-8, symlinks (files, directories, precompressed twins) pointing
outside the root, hidden names reached directly, encoded or through a symlink.
Every answer must be an error and must not contain the secret marker.
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
from pathlib import Path

import brotli  # type: ignore[import-untyped]
import pytest

import mgpy
from tests.net.static_helpers import StaticServer, parse_head, write

MARK = b"TOPSECRET"
OK = b"ok content, plain text. " * 100  # compressible, above the on-the-fly minimum


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    write(tmp_path / "secret.txt", MARK + b"-outside")
    write(tmp_path / "evil.br", brotli.compress(MARK + b"-br-twin"))
    write(tmp_path / "evil.gz", gzip.compress(MARK + b"-gz-twin"))
    write(tmp_path / "outdir" / "page.txt", MARK + b"-outdir")
    www = tmp_path / "www"
    write(www / "ok.txt", OK)
    os.symlink("../../evil.br", str(www / "ok.txt.br"))  # relative symlinks, like real deploys
    os.symlink(str(tmp_path / "evil.gz"), str(www / "ok.txt.gz"))
    write(www / ".env", MARK + b"-dotenv")
    write(www / "sub" / ".git" / "config", MARK + b"-git")
    write(www / "sub" / "page.txt", b"inside page")
    os.symlink("../secret.txt", str(www / "link_out"))
    os.symlink(str(tmp_path), str(www / "dir_out"))
    os.symlink(".env", str(www / "link_hidden"))
    os.symlink("ok.txt", str(www / "inside_link"))
    os.mkfifo(str(www / "fifo"))
    return tmp_path


HOSTILE = [
    "/../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2E%2E/secret.txt",
    "/.%2e/secret.txt",
    "/%2e./secret.txt",
    "/..%2fsecret.txt",
    "/..%2Fsecret.txt",
    "/%2e%2e%2fsecret.txt",
    "/%252e%252e/secret.txt",  # double encoding: decoded once, it is a literal name
    "/%252e%252e%252fsecret.txt",
    "/..%252fsecret.txt",
    "/..\\secret.txt",
    "/..%5csecret.txt",
    "/%5c..%5csecret.txt",
    "/sub/../../secret.txt",
    "/sub/%2e%2e/%2e%2e/secret.txt",
    "/./../secret.txt",
    "//../secret.txt",
    "/%2f%2e%2e/secret.txt",
    "/%00",
    "/ok.txt%00.html",
    "/ok.txt%00",
    "/%c0%ae%c0%ae/secret.txt",  # overlong UTF-8 dots
    "/%e0%80%ae%e0%80%ae/secret.txt",
    "/%uff0e%uff0e/secret.txt",
    "/link_out",
    "/dir_out/secret.txt",
    "/dir_out/outdir/page.txt",
    "/dir_out/",
    "/.env",
    "/%2eenv",
    "/.%65nv",
    "/sub/.git/config",
    "/sub/%2egit/config",
    "/link_hidden",
    "/fifo",
    "/ok.txt.br",  # the twin itself, requested directly, is the outside file
    "/ok.txt.gz",
]


@pytest.fixture
def srv(mgr: mgpy.Manager, tree: Path) -> StaticServer:
    return StaticServer(mgr, mgpy.ServeOpts(document_root=str(tree / "www")))


def _ask(srv: StaticServer, target: str, extra: str = "") -> tuple[int, bytes]:
    req = (
        f"GET {target} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br, gzip\r\n{extra}"
        "Connection: close\r\n\r\n"
    )
    data = srv.raw(req.encode("latin-1"), until_close=False)
    status, _, _ = parse_head(data)
    return status, data


class TestTraversalTable:
    @pytest.mark.parametrize("target", HOSTILE)
    def test_hostile_target_is_refused_without_leaking(
        self, srv: StaticServer, target: str
    ) -> None:
        status, data = _ask(srv, target)
        assert status in (400, 403, 404), (target, data[:200])
        assert MARK not in data

    @pytest.mark.parametrize("target", ["/../secret.txt", "/%2e%2e/secret.txt", "/link_out"])
    def test_absolute_form_targets_too(self, srv: StaticServer, target: str) -> None:
        status, data = _ask(srv, "http://x" + target)
        assert status in (400, 403, 404)
        assert MARK not in data

    def test_curl_path_as_is(self, srv: StaticServer) -> None:
        for path in ("/../secret.txt", "/sub/../../secret.txt", "/%2e%2e/secret.txt"):
            p = srv.curl(path, "--path-as-is", "-w", "\n%{http_code}")
            assert MARK not in p.stdout
            assert p.stdout.rsplit(b"\n", 1)[1] in (b"400", b"403", b"404")

    def test_listing_does_not_show_hidden_or_outside_entries(
        self, mgr: mgpy.Manager, tree: Path
    ) -> None:
        srv = StaticServer(
            mgr, mgpy.ServeOpts(document_root=str(tree / "www"), enable_directory_listing=True)
        )
        html = srv.get("/").body
        for name in (b".env", b"link_out", b"dir_out", b"link_hidden"):
            assert name not in html
        assert b"ok.txt" in html and b"inside_link" in html


class TestPrecompressedTwins:
    @pytest.mark.parametrize("coding", ["br", "gzip", "br, gzip", "gzip;q=1, br;q=0.5"])
    def test_twin_symlinked_outside_is_never_served(self, srv: StaticServer, coding: str) -> None:
        r = srv.get("/ok.txt", {"Accept-Encoding": coding})
        assert r.status == 200
        enc = r.h("Content-Encoding")
        body = brotli.decompress(r.body) if enc == "br" else r.body
        assert enc in (None, "br")  # identity or on-the-fly brotli of ok.txt itself
        assert body == OK
        assert MARK not in r.body

    def test_twin_in_root_but_hidden_name_is_not_served(
        self, mgr: mgpy.Manager, tree: Path
    ) -> None:
        www = tree / "www"
        write(www / "a.css", b"body{}" * 400)
        write(www / "a.css.gz", gzip.compress(MARK))
        srv = StaticServer(
            mgr,
            mgpy.ServeOpts(document_root=str(www), hidden_file_pattern=r"\.gz$", compress=False),
        )
        r = srv.get("/a.css", {"Accept-Encoding": "gzip"})
        assert (r.status, r.h("Content-Encoding"), r.body) == (200, None, b"body{}" * 400)


class TestSymlinkPolicy:
    def test_inside_symlink_followed_by_default(self, srv: StaticServer) -> None:
        r = srv.get("/inside_link")
        assert (r.status, r.body) == (200, OK)

    def test_follow_symlinks_off_refuses_every_symlink(self, mgr: mgpy.Manager, tree: Path) -> None:
        www = tree / "www"
        srv = StaticServer(mgr, mgpy.ServeOpts(document_root=str(www), follow_symlinks=False))
        assert srv.get("/inside_link").status == 403
        assert srv.get("/ok.txt").body == OK
        # the ok.txt.br twin is a symlink: with follow_symlinks off it is refused too
        r = srv.get("/ok.txt", {"Accept-Encoding": "br"})
        assert r.h("Content-Encoding") == "br"  # compressed on the fly from ok.txt
        assert brotli.decompress(r.body) == OK

    def test_root_itself_may_be_a_symlink(self, mgr: mgpy.Manager, tree: Path) -> None:
        os.symlink(str(tree / "www"), str(tree / "www_link"))
        srv = StaticServer(
            mgr, mgpy.ServeOpts(document_root=str(tree / "www_link"), follow_symlinks=False)
        )
        assert srv.get("/ok.txt").body == OK
        assert srv.get("/link_out").status == 403


class TestOutsideSymlinksOptIn:
    """``allow_outside_symlinks=True``: links placed in the root may lead anywhere (a
    ``web_root/js -> /usr/share/javascript`` link); the rest of the safety model holds."""

    @pytest.fixture
    def out(self, mgr: mgpy.Manager, tree: Path) -> StaticServer:
        www = tree / "www"
        write(tree / "shared" / "lib.js", b"var lib = 1;")
        write(tree / "shared" / ".hidden.js", MARK + b"-hidden-outside")
        os.symlink(str(tree / "shared"), str(www / "js"))
        os.symlink("../shared/.hidden.js", str(www / "innocent.js"))
        opts = mgpy.ServeOpts(
            document_root=str(www), allow_outside_symlinks=True, enable_directory_listing=True
        )
        return StaticServer(mgr, opts)

    def test_default_refuses_the_outside_target_and_says_why_at_debug_level(
        self, mgr: mgpy.Manager, tree: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        www = tree / "www"
        write(tree / "shared" / "lib.js", b"var lib = 1;")
        os.symlink(str(tree / "shared"), str(www / "js"))
        srv = StaticServer(mgr, mgpy.ServeOpts(document_root=str(www)))
        with caplog.at_level(logging.DEBUG, "mgpy"):
            assert srv.get("/js/lib.js").status == 403
        why = [r.getMessage() for r in caplog.records if "/js/lib.js" in r.getMessage()]
        assert why and "allow_outside_symlinks" in why[0] and "403" in why[0]

    def test_opt_in_serves_files_and_listings_through_the_link(self, out: StaticServer) -> None:
        assert out.get("/js/lib.js").body == b"var lib = 1;"
        assert out.get("/link_out").body == MARK + b"-outside"  # the link was placed there
        listing = out.get("/js/").body
        assert b"lib.js" in listing and b".hidden.js" not in listing

    @pytest.mark.parametrize(
        "target", ["/js/.hidden.js", "/js/%2ehidden.js", "/innocent.js", "/../secret.txt", "/.env"]
    )
    def test_opt_in_still_refuses_hidden_names_and_traversal(
        self, out: StaticServer, target: str
    ) -> None:
        status, data = _ask(out, target)
        assert status in (400, 403, 404) and MARK not in data

    def test_opt_in_needs_follow_symlinks(self) -> None:
        with pytest.raises(ValueError, match="follow_symlinks"):
            mgpy.ServeOpts(follow_symlinks=False, allow_outside_symlinks=True)

    def test_options_with_and_without_the_opt_in_do_not_share_a_cache(
        self, mgr: mgpy.Manager, tree: Path, out: StaticServer
    ) -> None:
        assert out.get("/js/lib.js").status == 200
        strict = StaticServer(mgr, mgpy.ServeOpts(document_root=str(tree / "www")))
        assert strict.get("/js/lib.js").status == 403


class TestSwapsAfterCaching:
    def test_file_replaced_by_outside_symlink(self, srv: StaticServer, tree: Path) -> None:
        www = tree / "www"
        assert srv.get("/sub/page.txt").body == b"inside page"
        os.unlink(www / "sub" / "page.txt")
        os.symlink(str(tree / "secret.txt"), str(www / "sub" / "page.txt"))
        r = srv.get("/sub/page.txt")
        assert r.status == 403 and MARK not in r.body

    def test_directory_replaced_by_outside_symlink(self, srv: StaticServer, tree: Path) -> None:
        www = tree / "www"
        assert srv.get("/sub/page.txt").body == b"inside page"
        shutil.rmtree(www / "sub")
        os.symlink(str(tree / "outdir"), str(www / "sub"))
        r = srv.get("/sub/page.txt")
        assert r.status == 403 and MARK not in r.body

    def test_retargeted_symlink_inside_root_is_followed_at_once(
        self, srv: StaticServer, tree: Path
    ) -> None:
        www = tree / "www"
        write(www / "v1" / "app.txt", b"version 1")
        write(www / "v2" / "app.txt", b"version 2!")
        os.symlink("v1", str(www / "current"))
        assert srv.get("/current/app.txt").body == b"version 1"
        os.unlink(www / "current")
        os.symlink("v2", str(www / "current"))
        assert srv.get("/current/app.txt").body == b"version 2!"

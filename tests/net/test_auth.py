"""Basic and Digest (RFC 7616) authentication: endpoints, static files, uploads and the client.

Real peers: curl --digest, requests' HTTPDigestAuth, and raw sockets for the
attacks (forged and stale nonces, nonce-count replay, another URI).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.auth import HTTPDigestAuth

import mgpy
from mgpy import Ev
from mgpy.proto import digest
from mgpy.proto.digest import create_digest_auth_header, ha1, parse_authorization
from mgpy.proto.httputil import parse_header_params
from tests.conftest import run_until
from tests.net.test_multipart import RawClient, form_body, post_head, run_client
from tests.net.test_upload import curl

REALM = "test realm"


def htdigest_text(user: str, realm: str, password: str, algos: tuple[str, ...]) -> str:
    return "".join(f"{user}:{realm}:{ha1(user, realm, password, a)}\n" for a in algos)


class Server:
    """Digest-protected endpoints, static files, an upload endpoint and a Basic route."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.htdigest = tmp / "htdigest"
        self.htdigest.write_text(
            "# users of the test realm\n"
            + htdigest_text("alice", REALM, "secret", ("MD5", "SHA-256"))
            + htdigest_text("bob", "md5 only", "pw", ("MD5",))
        )
        self.root = tmp / "www"
        self.root.mkdir()
        (self.root / "page.txt").write_text("static secret\n")
        self.updir = tmp / "up"
        self.updir.mkdir()
        self.seen: list[tuple[str, str | None]] = []
        self.mgr = mgpy.Manager()
        lc = self.lc = self.mgr.bind("127.0.0.1:0", self.handler)
        f = str(self.htdigest)
        mgpy.register_http_endpoint(lc, "/secret/**", self.secret, auth_file=f, auth_domain=REALM)
        mgpy.register_http_endpoint(lc, "/md5/**", self.secret, auth_file=f, auth_domain="md5 only")
        mgpy.register_http_endpoint(
            lc, "/short/**", self.secret, auth_file=f, auth_domain=REALM, auth_max_age=0.3
        )
        mgpy.register_http_endpoint(
            lc,
            "/upload",
            mgpy.file_upload_handler(lambda c, n: str(self.updir / n)),
            auth_file=f,
            auth_domain=REALM,
        )
        self.port: int = lc.local[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.opts = mgpy.ServeOpts(document_root=str(self.root), auth_file=f, auth_domain=REALM)

    def secret(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.HTTP_REQUEST:
            auth = parse_authorization(ev_data.header("authorization") or "") or {}
            self.seen.append((ev_data.uri, auth.get("algorithm")))
            mgpy.http_reply(c, 200, f"hello {auth.get('username')} via {auth.get('algorithm')}")

    def handler(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev != Ev.HTTP_REQUEST:
            return
        hm = ev_data
        if hm.uri == "/basic":
            creds = mgpy.get_http_basic_auth(hm)
            if creds != ("alice", "s3cret:with colon"):
                mgpy.send_basic_auth_request(c, REALM)
            else:
                mgpy.http_reply(c, 200, "basic ok")
        elif hm.uri == "/manual":
            table = {("carol", "manual"): ha1("carol", "manual", "pw", "SHA-256")}
            r = mgpy.check_digest_auth(hm, table, "manual", c)
            if r == "ok":
                mgpy.http_reply(c, 200, "manual ok")
            else:
                mgpy.send_digest_auth_request(c, "manual", stale=r == "stale", htdigest=table)
        else:
            mgpy.serve_http(c, hm, self.opts)

    def close(self) -> None:
        self.mgr.close()


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path)
    yield s
    s.close()


def exchange(srv: Server, raw: bytes, n: int = 1) -> list[Any]:
    cli = run_client(srv.mgr, RawClient(srv.port, [raw], n=n))
    assert len(cli.responses) == n
    return cli.responses


def get(path: str, auth: str | None = None) -> bytes:
    extra = f"Authorization: {auth}\r\n" if auth else ""
    return f"GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n".encode()


def challenges(srv: Server, path: str) -> list[str]:
    """GET ``path`` without credentials; return its WWW-Authenticate values."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    out = bytearray()
    with s:
        s.sendall(get(path))

        def done() -> bool:
            try:
                s.settimeout(0.001)
                d = s.recv(65536)
                out.extend(d)
            except (TimeoutError, BlockingIOError):
                pass
            return b"\r\n\r\n" in out

        run_until(srv.mgr, done)
    head = bytes(out).split(b"\r\n\r\n")[0].decode()
    assert head.startswith("HTTP/1.1 401 ")
    return [
        line.split(":", 1)[1].strip()
        for line in head.split("\r\n")
        if line.lower().startswith("www-authenticate:")
    ]


def pick(chals: list[str], algo: str) -> str:
    return next(ch for ch in chals if f"algorithm={algo}" in ch)


class TestChallenges:
    def test_sha256_first_then_md5_with_one_fresh_nonce(self, srv: Server) -> None:
        chals = challenges(srv, "/secret/x")
        assert len(chals) == 2
        assert "algorithm=SHA-256" in chals[0] and "algorithm=MD5" in chals[1]
        params = [parse_header_params(ch[len("Digest ") :])[1] for ch in chals]
        assert {p["realm"] for p in params} == {REALM}
        assert {p["qop"] for p in params} == {"auth"}
        assert params[0]["nonce"] == params[1]["nonce"] and "stale" not in params[0]
        assert challenges(srv, "/secret/x")[0] != chals[0]  # a new nonce every time

    def test_md5_only_file_gets_an_md5_challenge(self, srv: Server) -> None:
        chals = challenges(srv, "/md5/x")
        assert len(chals) == 1 and "algorithm=MD5" in chals[0]

    def test_unprotected_paths_stay_open(self, srv: Server) -> None:
        (r,) = exchange(srv, get("/missing.txt"))
        assert r.status == 401  # the static files are protected too (ServeOpts.auth_file)
        (r,) = exchange(srv, get("/basic"))
        assert r.status == 401 and r.headers["www-authenticate"] == (
            f'Basic realm="{REALM}", charset="UTF-8"'
        )


class TestCurl:
    def test_digest_ok_with_sha256(self, srv: Server) -> None:
        code, body = curl(srv.mgr, "--digest", "-u", "alice:secret", srv.base + "/secret/a?b=1")
        assert (code, body) == (200, b"hello alice via SHA-256")

    def test_wrong_password_is_401(self, srv: Server) -> None:
        code, _ = curl(srv.mgr, "--digest", "-u", "alice:nope", srv.base + "/secret/a")
        assert code == 401
        code, _ = curl(srv.mgr, "--digest", "-u", "mallory:secret", srv.base + "/secret/a")
        assert code == 401

    def test_md5_htdigest(self, srv: Server) -> None:
        code, body = curl(srv.mgr, "--digest", "-u", "bob:pw", srv.base + "/md5/")
        assert (code, body) == (200, b"hello bob via MD5")

    def test_user_of_another_realm_is_refused(self, srv: Server) -> None:
        code, _ = curl(srv.mgr, "--digest", "-u", "bob:pw", srv.base + "/secret/a")
        assert code == 401

    def test_static_files(self, srv: Server) -> None:
        code, body = curl(srv.mgr, "--digest", "-u", "alice:secret", srv.base + "/page.txt")
        assert (code, body) == (200, b"static secret\n")
        code, _ = curl(srv.mgr, srv.base + "/page.txt")
        assert code == 401

    def test_protected_upload(self, srv: Server, tmp_path: Path) -> None:
        f = tmp_path / "doc.txt"
        f.write_bytes(b"d" * 300_000)
        code, _ = curl(srv.mgr, "-F", f"file=@{f}", srv.base + "/upload")
        assert code == 401 and os.listdir(srv.updir) == []
        code, body = curl(
            srv.mgr, "--digest", "-u", "alice:secret", "-F", f"file=@{f}", srv.base + "/upload"
        )
        assert code == 200, body
        assert (srv.updir / "doc.txt").read_bytes() == f.read_bytes()

    def test_basic(self, srv: Server) -> None:
        code, body = curl(srv.mgr, "-u", "alice:s3cret:with colon", srv.base + "/basic")
        assert (code, body) == (200, b"basic ok")
        code, _ = curl(srv.mgr, "-u", "alice:wrong", srv.base + "/basic")
        assert code == 401


class TestRequests:
    def test_http_digest_auth_session(self, srv: Server) -> None:
        out: dict[str, Any] = {}

        def go() -> None:
            with requests.Session() as s:
                s.auth = HTTPDigestAuth("alice", "secret")
                out["a"] = s.get(srv.base + "/secret/one", timeout=10)
                out["b"] = s.get(srv.base + "/secret/two", timeout=10)  # nonce reused, nc=2
                s.auth = HTTPDigestAuth("alice", "bad")
                out["c"] = s.get(srv.base + "/secret/three", timeout=10)

        t = threading.Thread(target=go, daemon=True)
        t.start()
        run_until(srv.mgr, lambda: not t.is_alive(), 20)
        assert out["a"].status_code == 200 and out["a"].text.startswith("hello alice")
        assert out["b"].status_code == 200
        assert out["c"].status_code == 401


class TestRawAttacks:
    def test_sha256_raw_header(self, srv: Server) -> None:
        ch = pick(challenges(srv, "/secret/x"), "SHA-256")
        auth = create_digest_auth_header("alice", "secret", "GET", "/secret/x", ch)
        assert "algorithm=SHA-256" in auth
        (r,) = exchange(srv, get("/secret/x", auth))
        assert (r.status, r.body) == (200, b"hello alice via SHA-256")

    def test_nonce_count_replay_is_refused(self, srv: Server) -> None:
        ch = pick(challenges(srv, "/secret/x"), "MD5")
        a1 = create_digest_auth_header("alice", "secret", "GET", "/secret/x", ch, nc=1)
        a2 = create_digest_auth_header("alice", "secret", "GET", "/secret/x", ch, nc=2)
        r1, r2, r3 = exchange(
            srv, get("/secret/x", a1) + get("/secret/x", a1) + get("/secret/x", a2), n=3
        )
        assert r1.status == 200
        assert r2.status == 401 and "stale=true" in r2.headers["www-authenticate"]
        assert r3.status == 200

    def test_forged_nonce_with_the_right_password_is_stale(self, srv: Server) -> None:
        ch = pick(challenges(srv, "/secret/x"), "MD5")
        forged = ch.replace(parse_header_params(ch[7:])[1]["nonce"], "A" * 43)
        good = create_digest_auth_header("alice", "secret", "GET", "/secret/x", forged)
        bad = create_digest_auth_header("alice", "guess", "GET", "/secret/x", forged)
        r1, r2 = exchange(srv, get("/secret/x", good) + get("/secret/x", bad), n=2)
        assert r1.status == 401 and "stale=true" in r1.headers["www-authenticate"]
        assert r2.status == 401 and "stale" not in r2.headers["www-authenticate"]

    def test_nonce_of_another_server_is_not_accepted(self, srv: Server, tmp_path: Path) -> None:
        (tmp_path / "other").mkdir()
        other = Server(tmp_path / "other")  # same users, its own nonce secret
        try:
            ch = pick(challenges(other, "/secret/x"), "MD5")
        finally:
            other.close()
        auth = create_digest_auth_header("alice", "secret", "GET", "/secret/x", ch)
        (r,) = exchange(srv, get("/secret/x", auth))
        assert r.status == 401 and "stale=true" in r.headers["www-authenticate"]

    def test_expired_nonce_is_stale_and_a_fresh_one_works(self, srv: Server) -> None:
        ch = pick(challenges(srv, "/short/x"), "MD5")
        t0 = time.monotonic()
        run_until(srv.mgr, lambda: time.monotonic() - t0 > 0.5)  # max_age is 0.3 s
        auth = create_digest_auth_header("alice", "secret", "GET", "/short/x", ch)
        (r,) = exchange(srv, get("/short/x", auth))
        assert r.status == 401 and "stale=true" in r.headers["www-authenticate"]
        ch2 = pick(challenges(srv, "/short/x"), "MD5")
        (r,) = exchange(
            srv,
            get("/short/x", create_digest_auth_header("alice", "secret", "GET", "/short/x", ch2)),
        )
        assert r.status == 200

    def test_answer_for_another_uri_is_denied(self, srv: Server) -> None:
        ch = pick(challenges(srv, "/secret/a"), "MD5")
        auth = create_digest_auth_header("alice", "secret", "GET", "/secret/a", ch)
        (r,) = exchange(srv, get("/secret/b", auth))
        assert r.status == 401 and "stale" not in r.headers["www-authenticate"]

    def test_unauthenticated_upload_is_refused_before_the_body(self, srv: Server) -> None:
        body = form_body([("file", "x.bin", b"x" * 2_000_000)])
        cli = run_client(
            srv.mgr,
            RawClient(srv.port, [post_head("/upload", len(body)), body], read_eof=True),
        )
        assert cli.responses[0].status == 401 and cli.eof
        assert cli.responses[0].headers["connection"] == "close"
        assert os.listdir(srv.updir) == []

    def test_manual_check_with_a_mapping(self, srv: Server) -> None:
        chals = challenges(srv, "/manual")
        assert len(chals) == 1 and "algorithm=SHA-256" in chals[0]
        auth = create_digest_auth_header("carol", "pw", "GET", "/manual", chals[0])
        (r,) = exchange(srv, get("/manual", auth))
        assert r.body == b"manual ok"


class TestHtdigestFile:
    def test_changes_are_picked_up(self, srv: Server) -> None:
        code, _ = curl(srv.mgr, "--digest", "-u", "alice:secret", srv.base + "/secret/a")
        assert code == 200
        srv.htdigest.write_text(htdigest_text("alice", REALM, "changed!", ("MD5",)))
        code, _ = curl(srv.mgr, "--digest", "-u", "alice:secret", srv.base + "/secret/a")
        assert code == 401
        code, body = curl(srv.mgr, "--digest", "-u", "alice:changed!", srv.base + "/secret/a")
        assert (code, body) == (200, b"hello alice via MD5")

    def test_missing_file_denies_and_warns(
        self, srv: Server, caplog: pytest.LogCaptureFixture
    ) -> None:
        srv.htdigest.unlink()
        with caplog.at_level(logging.WARNING, logger="mgpy"):
            code, _ = curl(srv.mgr, "--digest", "-u", "alice:secret", srv.base + "/secret/a")
        assert code == 401
        assert any("htdigest" in r.getMessage() for r in caplog.records)


class Client:
    """connect_http with a recording handler."""

    def __init__(self, mgr: mgpy.Manager, url: str) -> None:
        self.events: list[str] = []
        self.reply: mgpy.HttpMessage | None = None
        self.closed = False
        mgr.connect_http(url, self.handler)

    def handler(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev in (Ev.CONNECT, Ev.HTTP_REPLY, Ev.CLOSE, Ev.ERROR):
            self.events.append(Ev(ev).name)
        if ev == Ev.HTTP_REPLY:
            self.reply = ev_data
        elif ev == Ev.CLOSE:
            self.closed = True


class TestClient:
    def test_connect_http_answers_the_digest_challenge(self, srv: Server) -> None:
        cl = Client(srv.mgr, f"http://alice:secret@127.0.0.1:{srv.port}/secret/c?q=1")
        run_until(srv.mgr, lambda: cl.closed)
        assert cl.reply is not None and cl.reply.resp_code == 200
        assert cl.reply.body == b"hello alice via SHA-256"
        assert cl.events == ["CONNECT", "HTTP_REPLY", "CLOSE"]

    def test_connect_http_wrong_password_gets_the_401(self, srv: Server) -> None:
        cl = Client(srv.mgr, f"http://alice:bad@127.0.0.1:{srv.port}/secret/c")
        run_until(srv.mgr, lambda: cl.closed)
        assert cl.reply is not None and cl.reply.resp_code == 401
        assert cl.events == ["CONNECT", "HTTP_REPLY", "CLOSE"]

    def test_reconnects_when_the_server_closes_after_401(self, srv: Server) -> None:
        accepted: list[int] = []
        table = {("alice", "closing"): ha1("alice", "closing", "secret", "MD5")}
        secret = os.urandom(32)

        def closing(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            """A server that closes after its 401 (raw responses, proto.digest checks)."""
            if ev == Ev.ACCEPT:
                accepted.append(1)
            elif ev == Ev.HTTP_REQUEST:
                auth = parse_authorization(ev_data.header("authorization") or "")
                if (
                    auth is not None
                    and digest.verify(
                        auth,
                        "GET",
                        table,
                        "closing",
                        secret,
                        time.time(),
                        10,
                        digest.NonceCounter(),
                    )
                    == "ok"
                ):
                    mgpy.http_reply(c, 200, "second connection ok")
                    return
                chal = digest.challenge_header("closing", digest.make_nonce(secret, time.time()))
                c.send(
                    f"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: {chal}\r\n"
                    "Content-Length: 0\r\nConnection: close\r\n\r\n"
                )
                c.flags |= mgpy.F.SEND_AND_CLOSE

        lc = srv.mgr.bind("127.0.0.1:0", closing)
        lc.set_protocol_http_websocket()
        cl = Client(srv.mgr, f"http://alice:secret@127.0.0.1:{lc.local[1]}/x")
        run_until(srv.mgr, lambda: cl.closed)
        assert cl.reply is not None and cl.reply.body == b"second connection ok"
        assert cl.events == ["CONNECT", "HTTP_REPLY", "CLOSE"]
        assert len(accepted) == 2

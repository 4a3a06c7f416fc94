"""http_client.py and ws_client.py against servers with a private CA: --cacert, --insecure,
and a certificate failure that is reported once instead of retried.

The servers are independent of the examples: Python's ``http.server`` behind
``ssl`` for HTTPS, and the ``mgpy`` CLI with ``--tls-cert``/``--tls-key`` for WSS
(its /ws echoes).  Their certificate is signed by a CA made for the module
(``_tls.make_pki``), which no system store trusts.
"""

from __future__ import annotations

import ssl
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.examples._proc import Proc, example
from tests.examples._tls import Pki, make_pki

TIMEOUT = 20


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


class Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = b"hello over TLS\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def https_port(pki: Pki) -> Iterator[int]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.cert, pki.key)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    srv.daemon_threads = True
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield int(srv.server_address[1])
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture(scope="module")
def wss_port(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    root = tmp_path_factory.mktemp("site")
    srv = Proc(
        [sys.executable, "-m", "mgpy", "--root", str(root), "--listen", "127.0.0.1:0",
         "--tls-cert", str(pki.cert), "--tls-key", str(pki.key), "--log-level", "warning"]
    )  # fmt: skip
    try:
        yield int(srv.wait_for(r"on https://127\.0\.0\.1:(\d+)/").group(1))
    finally:
        srv.stop()


def http_client(*args: str) -> Proc:
    p = example("http_client.py", *args)
    p.wait(TIMEOUT)
    return p


# -- http_client.py -------------------------------------------------------------------


def test_http_client_help_lists_the_tls_options() -> None:
    p = http_client("--help")
    assert p.p.returncode == 0
    assert "--cacert FILE" in p.stdout() and "--insecure" in p.stdout()


def test_http_client_with_cacert_verifies_and_fetches(pki: Pki, https_port: int) -> None:
    p = http_client("--cacert", str(pki.ca), f"https://localhost:{https_port}/")
    assert p.p.returncode == 0, p.text()
    assert p.stdout().startswith("HTTP/1.1 200 ")
    assert p.stdout().endswith("\n\nhello over TLS\n")  # (text mode: CRLF read as LF)


def test_http_client_refuses_an_unknown_ca_and_says_how_to_fix_it(https_port: int) -> None:
    p = http_client(f"https://localhost:{https_port}/")
    assert p.p.returncode == 1
    assert p.stdout() == ""
    err = p.stderr()
    assert "certificate verify failed" in err and "--cacert FILE" in err, err
    assert "Traceback" not in err


def test_http_client_insecure_skips_verification(https_port: int) -> None:
    p = http_client("--insecure", f"https://127.0.0.1:{https_port}/")
    assert p.p.returncode == 0, p.text()
    assert p.stdout().endswith("hello over TLS\n")


def test_http_client_tls_options_are_checked(pki: Pki, tmp_path: Path) -> None:
    for args, why in [
        (["--cacert", str(pki.ca), "http://127.0.0.1:1/"], "https:// URLs only"),
        (["--insecure", "--cacert", str(pki.ca), "https://h/"], "exclude each other"),
        (["--cacert", str(tmp_path / "missing.pem"), "https://h/"], "no such file"),
    ]:
        p = http_client(*args)
        assert p.p.returncode == 2 and why in p.stderr(), (args, p.text())


# -- ws_client.py ---------------------------------------------------------------------


def ws_client(port: int, *args: str) -> Proc:
    return example(
        "ws_client.py", f"wss://localhost:{port}/ws", "--message", "tls", "--interval", "0.05",
        "--min-backoff", "0.05", *args,
    )  # fmt: skip


def test_ws_client_help_lists_the_tls_options() -> None:
    p = example("ws_client.py", "--help")
    assert p.wait(TIMEOUT) == 0
    assert "--cacert FILE" in p.stdout() and "--insecure" in p.stdout()


def test_ws_client_with_cacert_gets_its_echoes(pki: Pki, wss_port: int) -> None:
    p = ws_client(wss_port, "--cacert", str(pki.ca), "--count", "2")
    assert p.wait(TIMEOUT) == 0, p.text()
    assert "received: tls #1" in p.stdout() and "stopped after 2 messages" in p.stdout()


def test_ws_client_insecure_connects_to_an_unverified_server(wss_port: int) -> None:
    p = ws_client(wss_port, "--insecure", "--count", "1")
    assert p.wait(TIMEOUT) == 0, p.text()
    assert "received: tls #1" in p.stdout()


def test_ws_client_gives_up_at_once_on_a_certificate_failure(wss_port: int) -> None:
    p = ws_client(wss_port)  # the system store does not know the private CA
    assert p.wait(TIMEOUT) == 1, p.text()
    assert "certificate verify failed" in p.stdout()
    assert "reconnecting" not in p.stdout()  # not transient: no retry
    err = p.stderr()
    assert "not retrying" in err and "--cacert FILE" in err and "--insecure" in err
    assert "Traceback" not in err


def test_ws_client_tls_options_need_a_wss_url(pki: Pki) -> None:
    p = example("ws_client.py", "ws://127.0.0.1:1/ws", "--cacert", str(pki.ca))
    assert p.wait(TIMEOUT) == 2 and "wss://" in p.stderr()

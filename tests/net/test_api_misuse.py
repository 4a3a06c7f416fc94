"""API misuse found by trying the public API as a new user would: each is refused at the
call with a clear error instead of sending bytes a client would misread."""

from __future__ import annotations

import socket
from typing import Any

import pytest

import mgpy
from mgpy import Ev
from tests.conftest import run_until


def _serve_once(mgr: mgpy.Manager, answer: Any) -> tuple[list[BaseException], bytes]:
    """Run ``answer(c)`` on one request; return what it raised and what the client read."""
    raised: list[BaseException] = []

    def h(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.HTTP_REQUEST:
            try:
                answer(c)
            except mgpy.Error as e:
                raised.append(e)
                mgpy.http_reply(c, 500, "refused\n")

    lc = mgr.bind("127.0.0.1:0", h)
    lc.set_protocol_http_websocket()
    s = socket.create_connection(("127.0.0.1", lc.local[1]))
    s.setblocking(False)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    got = bytearray()

    def read() -> bool:
        try:
            d = s.recv(65536)
        except BlockingIOError:
            return False
        got.extend(d)
        return not d

    run_until(mgr, read)
    s.close()
    return raised, bytes(got)


@pytest.mark.parametrize("length", [1.5, True, -2, "10"])
def test_send_head_refuses_a_length_that_is_not_an_int(mgr: mgpy.Manager, length: Any) -> None:
    raised, got = _serve_once(mgr, lambda c: mgpy.send_head(c, 200, length))
    assert raised and isinstance(raised[0], mgpy.LocalProtocolError)
    assert got.startswith(b"HTTP/1.1 500")
    assert b"Content-Length: 1.5" not in got and b"Content-Length: True" not in got


def test_send_http_chunk_before_any_head_is_refused(mgr: mgpy.Manager) -> None:
    raised, got = _serve_once(mgr, lambda c: mgpy.send_http_chunk(c, b"raw"))
    assert raised and isinstance(raised[0], mgpy.LocalProtocolError)
    assert got.startswith(b"HTTP/1.1 500") and b"3\r\nraw" not in got


def test_connect_ws_with_a_bad_path_fails_at_the_call(mgr: mgpy.Manager) -> None:
    with pytest.raises(mgpy.LocalProtocolError):
        mgr.connect_ws("ws://127.0.0.1:1/a b", lambda *a: None)
    with pytest.raises(mgpy.LocalProtocolError):
        mgr.connect_http("http://127.0.0.1:1/a\r\nX: y", lambda *a: None)


def test_url_helpers_survive_lone_surrogates() -> None:
    assert mgpy.url_decode("a\udc80b") == "a\ufffdb"
    assert mgpy.url_encode("x\ud800") == "x%EF%BF%BD"
    assert mgpy.get_http_var("k\udc80=1&v=%E2%82%AC", "v") == "\u20ac"


def test_http_send_error_405_says_what_is_allowed(mgr: mgpy.Manager) -> None:
    _r, got = _serve_once(mgr, lambda c: mgpy.http_send_error(c, 405, headers={"Allow": "POST"}))
    assert b"\r\nAllow: POST\r\n" in got and b"GET, HEAD" not in got
    _r, got = _serve_once(mgr, lambda c: mgpy.http_send_error(c, 405))
    assert b"\r\nAllow: GET, HEAD\r\n" in got


def test_register_http_endpoint_refuses_a_misspelt_option(mgr: mgpy.Manager) -> None:
    lc = mgr.bind("127.0.0.1:0", lambda *a: None)
    with pytest.raises(TypeError):
        mgpy.register_http_endpoint(lc, "/x", lambda *a: None, authfile="htdigest")  # type: ignore[call-arg]


def test_check_digest_auth_in_an_if_lets_only_the_right_password_in(mgr: mgpy.Manager) -> None:
    from mgpy.proto.digest import parse_htdigest

    table = parse_htdigest(
        "alice:lab:" + __import__("hashlib").md5(b"alice:lab:s3cret").hexdigest()
    )

    def h(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.HTTP_REQUEST:
            if mgpy.check_digest_auth(ev_data, table, "lab", c):  # the mongoose-style test
                mgpy.http_reply(c, 200, "welcome\n")
            else:
                mgpy.send_digest_auth_request(c, "lab", htdigest=table)

    lc = mgr.bind("127.0.0.1:0", h)
    lc.set_protocol_http_websocket()
    codes: dict[str, int] = {}

    def client(name: str) -> Any:
        def on(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            if ev == Ev.HTTP_REPLY:
                codes[name] = ev_data.resp_code

        return on

    port = lc.local[1]
    mgr.connect_http(f"http://alice:wrong@127.0.0.1:{port}/", client("wrong"))
    mgr.connect_http(f"http://alice:s3cret@127.0.0.1:{port}/", client("right"))
    run_until(mgr, lambda: len(codes) == 2)
    assert codes == {"wrong": 401, "right": 200}
    assert not mgpy.AuthResult.DENIED and not mgpy.AuthResult.STALE and mgpy.AuthResult.OK
    assert mgpy.AuthResult.STALE == "stale" and mgpy.AuthResult.DENIED != "ok"

"""RFC 6455 section 4: the opening handshake helpers, over hand-built HttpMessages."""

from __future__ import annotations

import base64

import pytest
from websockets.utils import accept_key as websockets_accept_key

from mgpy.errors import LocalProtocolError, RemoteProtocolError
from mgpy.events import HttpMessage
from mgpy.proto.ws import (
    GUID,
    accept_key,
    check_client_handshake,
    check_server_handshake,
    client_handshake_headers,
    client_subprotocols,
    new_client_key,
    server_handshake_headers,
)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 1.3 example
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def request(headers: list[tuple[str, str]] | None = None, **kw: str) -> HttpMessage:
    if headers is None:
        headers = [
            ("Host", "server.example.com"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", KEY),
            ("Sec-WebSocket-Version", "13"),
        ]
    return HttpMessage(
        method=kw.get("method", "GET"),
        uri="/chat",
        proto=kw.get("proto", "HTTP/1.1"),
        headers=headers,
    )


def without(name: str) -> list[tuple[str, str]]:
    return [(k, v) for k, v in request().headers if k != name]


def replaced(name: str, value: str) -> list[tuple[str, str]]:
    return [(k, value if k == name else v) for k, v in request().headers]


def response(headers: list[tuple[str, str]] | None = None, code: int = 101) -> HttpMessage:
    if headers is None:
        headers = [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", ACCEPT),
        ]
    return HttpMessage(
        proto="HTTP/1.1", headers=headers, resp_code=code, resp_status_msg="Switching Protocols"
    )


class TestKeys:
    def test_accept_key_matches_the_rfc_example(self) -> None:
        assert GUID == "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
        assert accept_key(KEY) == ACCEPT

    def test_accept_key_matches_websockets(self) -> None:
        for _ in range(20):
            key = new_client_key()
            assert accept_key(key) == websockets_accept_key(key)

    def test_new_client_key_is_base64_of_16_random_bytes(self) -> None:
        keys = {new_client_key() for _ in range(50)}
        assert len(keys) == 50
        for key in keys:
            assert len(base64.b64decode(key, validate=True)) == 16

    def test_new_client_key_uses_the_given_rng(self) -> None:
        assert new_client_key(lambda n: b"\x00" * n) == "AAAAAAAAAAAAAAAAAAAAAA=="
        with pytest.raises(ValueError):
            new_client_key(lambda n: b"short")


class TestServerChecksClientHandshake:
    def test_server_receives_valid_handshake(self) -> None:
        assert check_client_handshake(request()) == KEY

    @pytest.mark.parametrize(
        "headers",
        [
            replaced("Upgrade", "WebSocket"),
            replaced("Connection", "keep-alive, Upgrade"),
            replaced("Connection", "UPGRADE"),
            [*without("Connection"), ("Connection", "keep-alive"), ("connection", "upgrade")],
            replaced("Sec-WebSocket-Key", f"  {KEY} "),
            [(k.lower(), v) for k, v in request().headers],
        ],
    )
    def test_server_receives_valid_handshake_variants(self, headers: list[tuple[str, str]]) -> None:
        assert check_client_handshake(request(headers)) == KEY

    def test_server_receives_handshake_with_post(self) -> None:
        with pytest.raises(RemoteProtocolError) as exc:
            check_client_handshake(request(method="POST"))
        assert exc.value.status == 405

    @pytest.mark.parametrize("proto", ["HTTP/1.0", "HTTP/0.9", "HTTX/1.1", "HTTP/x"])
    def test_server_receives_handshake_with_old_http(self, proto: str) -> None:
        with pytest.raises(RemoteProtocolError) as exc:
            check_client_handshake(request(proto=proto))
        assert exc.value.status == 400

    @pytest.mark.parametrize(
        "headers",
        [
            without("Host"),
            without("Upgrade"),
            replaced("Upgrade", "h2c"),
            replaced("Upgrade", "websocketx"),
            without("Connection"),
            replaced("Connection", "keep-alive"),
            replaced("Connection", "upgrade-ish"),
            without("Sec-WebSocket-Key"),
            [*request().headers, ("Sec-WebSocket-Key", KEY)],
            replaced("Sec-WebSocket-Key", "not base64!"),
            replaced("Sec-WebSocket-Key", base64.b64encode(b"x" * 15).decode()),
            replaced("Sec-WebSocket-Key", base64.b64encode(b"x" * 17).decode()),
            replaced("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ"),  # missing padding
            replaced("Sec-WebSocket-Key", "d\u00e9hlIHNhbXBsZSBub25jZQ=="),
        ],
    )
    def test_server_receives_bad_handshake(self, headers: list[tuple[str, str]]) -> None:
        with pytest.raises(RemoteProtocolError) as exc:
            check_client_handshake(request(headers))
        assert exc.value.status == 400

    @pytest.mark.parametrize(
        "headers",
        [
            without("Sec-WebSocket-Version"),
            replaced("Sec-WebSocket-Version", "8"),
            replaced("Sec-WebSocket-Version", "13, 8"),
            [*request().headers, ("Sec-WebSocket-Version", "13")],
        ],
    )
    def test_server_receives_handshake_with_other_version(
        self, headers: list[tuple[str, str]]
    ) -> None:
        """RFC 6455 4.2.2: 426 Upgrade Required, and the glue adds Sec-WebSocket-Version: 13."""
        with pytest.raises(RemoteProtocolError) as exc:
            check_client_handshake(request(headers))
        assert exc.value.status == 426


class TestSubprotocols:
    def test_server_receives_subprotocols_in_several_headers(self) -> None:
        hm = request(
            [
                *request().headers,
                ("Sec-WebSocket-Protocol", "chat, , superchat"),
                ("sec-websocket-protocol", "v2"),
            ]
        )
        assert client_subprotocols(hm) == ["chat", "superchat", "v2"]

    def test_server_receives_no_subprotocols(self) -> None:
        assert client_subprotocols(request()) == []

    def test_server_receives_invalid_subprotocol_name(self) -> None:
        hm = request([*request().headers, ("Sec-WebSocket-Protocol", "chat, bad name")])
        with pytest.raises(RemoteProtocolError):
            client_subprotocols(hm)

    def test_server_sends_handshake_headers(self) -> None:
        assert server_handshake_headers(KEY) == [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", ACCEPT),
        ]
        assert server_handshake_headers(KEY, "chat")[-1] == ("Sec-WebSocket-Protocol", "chat")
        with pytest.raises(LocalProtocolError):
            server_handshake_headers(KEY, "a, b")


class TestClientHandshake:
    def test_client_sends_handshake_headers(self) -> None:
        assert client_handshake_headers("example.com:8000", KEY, ["chat", "v2"]) == [
            ("Host", "example.com:8000"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", KEY),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Protocol", "chat, v2"),
        ]
        assert len(client_handshake_headers("h", KEY)) == 5

    @pytest.mark.parametrize("host,protos", [("a\r\nb", None), ("", None), ("h", ["bad name"])])
    def test_client_sends_invalid_handshake_values(
        self, host: str, protos: list[str] | None
    ) -> None:
        with pytest.raises(LocalProtocolError):
            client_handshake_headers(host, KEY, protos)

    def test_client_receives_valid_response(self) -> None:
        assert check_server_handshake(response(), KEY, None) is None

    def test_client_receives_chosen_subprotocol(self) -> None:
        resp = response([*response().headers, ("Sec-WebSocket-Protocol", "v2")])
        assert check_server_handshake(resp, KEY, ["chat", "v2"]) == "v2"

    @pytest.mark.parametrize(
        "resp,offered",
        [
            (response(code=200), None),
            (response(code=403), None),
            (response([("Connection", "Upgrade"), ("Sec-WebSocket-Accept", ACCEPT)]), None),
            (response([("Upgrade", "websocket"), ("Sec-WebSocket-Accept", ACCEPT)]), None),
            (response([("Upgrade", "websocket"), ("Connection", "Upgrade")]), None),
            (
                response(
                    [
                        ("Upgrade", "websocket"),
                        ("Connection", "Upgrade"),
                        ("Sec-WebSocket-Accept", accept_key("x")),
                    ]
                ),
                None,
            ),
            (response([*response().headers, ("Sec-WebSocket-Accept", ACCEPT)]), None),
            (
                response([*response().headers, ("Sec-WebSocket-Extensions", "permessage-deflate")]),
                None,
            ),
            (response([*response().headers, ("Sec-WebSocket-Protocol", "chat")]), None),
            (response([*response().headers, ("Sec-WebSocket-Protocol", "chat")]), ["v2"]),
            (
                response([*response().headers, ("Sec-WebSocket-Protocol", "chat, v2")]),
                ["chat", "v2"],
            ),
            (
                response([*response().headers, *[("Sec-WebSocket-Protocol", "chat")] * 2]),
                ["chat"],
            ),
        ],
    )
    def test_client_receives_bad_response(
        self, resp: HttpMessage, offered: list[str] | None
    ) -> None:
        with pytest.raises(RemoteProtocolError):
            check_server_handshake(resp, KEY, offered)

    def test_handshake_round_trip(self) -> None:
        key = new_client_key()
        req = HttpMessage(
            method="GET", uri="/ws", headers=client_handshake_headers("h", key, ["a", "b"])
        )
        assert check_client_handshake(req) == key
        offered = client_subprotocols(req)
        assert offered == ["a", "b"]
        resp = response(server_handshake_headers(key, offered[1]))
        assert check_server_handshake(resp, key, ["a", "b"]) == "b"

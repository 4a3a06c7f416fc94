"""WebSocket opening handshake (RFC 6455 section 4) over already-parsed HttpMessages.

The HTTP core parses the request/response; these helpers only check and build
header lists, so the glue can answer with its own serializer.  Server side:
``check_client_handshake`` (returns the key or raises RemoteProtocolError with
the HTTP status to answer: 405, 400, or 426 where the glue must add
``Sec-WebSocket-Version: 13``), ``client_subprotocols``,
``server_handshake_headers``.  Client side: ``new_client_key``,
``client_handshake_headers``, ``check_server_handshake``.  No extension is
ever negotiated: a server that answers with one is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from collections.abc import Callable
from typing import Final

from ..errors import LocalProtocolError, RemoteProtocolError
from ..events import HttpMessage

__all__ = [
    "GUID",
    "accept_key",
    "check_client_handshake",
    "check_server_handshake",
    "client_handshake_headers",
    "client_subprotocols",
    "new_client_key",
    "server_handshake_headers",
]

#: RFC 6455 1.3: the GUID appended to Sec-WebSocket-Key before hashing
GUID: Final = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# RFC 9110 5.6.2: token = 1*tchar (subprotocol names are tokens, RFC 6455 4.1)
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def accept_key(key: str) -> str:
    """Return Sec-WebSocket-Accept for ``key``: base64(SHA-1(key + GUID)) (RFC 6455 4.2.2)."""
    digest = hashlib.sha1((key + GUID).encode("utf-8")).digest()
    return base64.b64encode(digest).decode("ascii")


def new_client_key(rng: Callable[[int], bytes] | None = None) -> str:
    """Return a fresh Sec-WebSocket-Key: base64 of 16 random bytes (RFC 6455 4.1)."""
    raw = (rng if rng is not None else secrets.token_bytes)(16)
    if len(raw) != 16:
        raise ValueError("rng must return the number of bytes asked for")
    return base64.b64encode(raw).decode("ascii")


def _has_token(values: list[str], token: str) -> bool:
    """True if a comma-separated header list holds ``token`` (ASCII case-insensitive)."""
    for value in values:
        for part in value.split(","):
            if part.strip().lower() == token:
                return True
    return False


def _http11_or_later(proto: str) -> bool:
    if not proto.startswith("HTTP/"):
        return False
    major, _, minor = proto[5:].partition(".")
    try:
        return (int(major), int(minor or "0")) >= (1, 1)
    except ValueError:
        return False


def check_client_handshake(hm: HttpMessage) -> str:
    """Validate a client's opening handshake (RFC 6455 4.2.1); return its Sec-WebSocket-Key.

    Raises RemoteProtocolError whose ``status`` is the answer to send: 405
    (not GET; add ``Allow: GET``), 426 (version not 13; add
    ``Sec-WebSocket-Version: 13``) or 400.
    """
    # RFC 6455 4.2.1 item 1: "An HTTP/1.1 or higher GET request".
    if hm.method != "GET":
        raise RemoteProtocolError(f"WebSocket handshake with method {hm.method}", status=405)
    if not _http11_or_later(hm.proto):
        raise RemoteProtocolError(f"WebSocket handshake over {hm.proto}", status=400)
    # Item 2: a Host header.
    if not hm.header_all("Host"):
        raise RemoteProtocolError("WebSocket handshake without Host", status=400)
    # Item 3: Upgrade containing "websocket", ASCII case-insensitive.
    if not _has_token(hm.header_all("Upgrade"), "websocket"):
        raise RemoteProtocolError("missing Upgrade: websocket", status=400)
    # Item 4: Connection including the "Upgrade" token, ASCII case-insensitive.
    if not _has_token(hm.header_all("Connection"), "upgrade"):
        raise RemoteProtocolError("missing Connection: upgrade", status=400)
    # Item 6 and 4.4: version 13, else 426 with the versions we support.
    versions = hm.header_all("Sec-WebSocket-Version")
    if len(versions) != 1 or versions[0].strip() != "13":
        raise RemoteProtocolError("unsupported Sec-WebSocket-Version", status=426)
    # Item 5: Sec-WebSocket-Key, base64 of a 16-byte value, exactly once.
    keys = hm.header_all("Sec-WebSocket-Key")
    if len(keys) != 1:
        raise RemoteProtocolError("missing or repeated Sec-WebSocket-Key", status=400)
    key = keys[0].strip()
    try:
        raw = base64.b64decode(key.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise RemoteProtocolError("Sec-WebSocket-Key is not base64", status=400) from None
    if len(raw) != 16:
        raise RemoteProtocolError("Sec-WebSocket-Key is not 16 bytes", status=400)
    return key


def client_subprotocols(hm: HttpMessage) -> list[str]:
    """Return the subprotocols the client offered, in order (RFC 6455 4.1 item 10).

    Every Sec-WebSocket-Protocol header counts; empty list elements are
    skipped (RFC 9110 5.6.1).  Raises RemoteProtocolError (400) for a name that
    is not a token.
    """
    offered: list[str] = []
    for value in hm.header_all("Sec-WebSocket-Protocol"):
        for part in value.split(","):
            name = part.strip()
            if not name:
                continue
            if not _TOKEN.fullmatch(name):
                raise RemoteProtocolError("invalid subprotocol name", status=400)
            offered.append(name)
    return offered


def server_handshake_headers(key: str, subprotocol: str | None = None) -> list[tuple[str, str]]:
    """Return the headers of the 101 response to a handshake with ``key`` (RFC 6455 4.2.2)."""
    headers = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_key(key)),
    ]
    if subprotocol is not None:
        if not _TOKEN.fullmatch(subprotocol):
            raise LocalProtocolError(f"invalid subprotocol name {subprotocol!r}")
        headers.append(("Sec-WebSocket-Protocol", subprotocol))
    return headers


def client_handshake_headers(
    host: str, key: str, subprotocols: list[str] | None = None
) -> list[tuple[str, str]]:
    """Return the headers of a client's opening handshake GET (RFC 6455 4.1)."""
    if any(c in host for c in "\r\n\0") or not host:
        raise LocalProtocolError(f"invalid Host {host!r}")
    headers = [
        ("Host", host),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13"),
    ]
    if subprotocols:
        for name in subprotocols:
            if not _TOKEN.fullmatch(name):
                raise LocalProtocolError(f"invalid subprotocol name {name!r}")
        headers.append(("Sec-WebSocket-Protocol", ", ".join(subprotocols)))
    return headers


def check_server_handshake(resp: HttpMessage, key: str, offered: list[str] | None) -> str | None:
    """Validate the server's handshake response (RFC 6455 4.1); return the chosen subprotocol.

    Raises RemoteProtocolError when the client MUST fail the connection.
    """
    # RFC 6455 4.1, response item 1: anything but 101 is handled per HTTP, not accepted here.
    if resp.resp_code != 101:
        raise RemoteProtocolError(f"WebSocket handshake answered with {resp.resp_code}")
    # Items 2 and 3: Upgrade: websocket and Connection: Upgrade, case-insensitive.
    if not _has_token(resp.header_all("Upgrade"), "websocket"):
        raise RemoteProtocolError("handshake response without Upgrade: websocket")
    if not _has_token(resp.header_all("Connection"), "upgrade"):
        raise RemoteProtocolError("handshake response without Connection: upgrade")
    # Item 4: Sec-WebSocket-Accept must be base64(SHA-1(key + GUID)).
    accepts = resp.header_all("Sec-WebSocket-Accept")
    if len(accepts) != 1 or accepts[0].strip() != accept_key(key):
        raise RemoteProtocolError("wrong Sec-WebSocket-Accept")
    # Item 5: an extension we did not offer (we offer none) -> fail.
    if any(v.strip() for v in resp.header_all("Sec-WebSocket-Extensions")):
        raise RemoteProtocolError("server selected an extension that was not offered")
    # Item 6: a subprotocol we did not offer -> fail.
    protos = resp.header_all("Sec-WebSocket-Protocol")
    if not protos:
        return None
    chosen = protos[0].strip()
    if len(protos) != 1 or "," in chosen or not offered or chosen not in offered:
        raise RemoteProtocolError("server selected a subprotocol that was not offered")
    return chosen

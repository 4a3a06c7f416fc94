"""WebSocket handshakes: the opening one (RFC 6455 4) and the closing one's payload (5.5.1, 7.4).

The HTTP core parses the request/response; these helpers only check and build
header lists, so the glue can answer with its own serializer.  Server side:
``check_client_handshake`` (returns the key or raises RemoteProtocolError with
the HTTP status to answer: 405, 400, or 426 where the glue must add
``Sec-WebSocket-Version: 13``), ``client_subprotocols``,
``server_handshake_headers``.  Client side: ``new_client_key``,
``client_handshake_headers``, ``check_server_response`` (subprotocol and
permessage-deflate parameters; ``check_server_handshake`` refuses any
extension).  The server negotiates permessage-deflate with
``deflate.negotiate`` and passes its answer to ``server_handshake_headers``.

Closing handshake: ``close_payload`` builds ours, ``check_close_payload``
checks a raw one the application gives, ``parse_close`` reads the peer's.
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
from .deflate import DeflateOptions, DeflateParams, accept

__all__ = [
    "GUID",
    "accept_key",
    "check_client_handshake",
    "check_close_payload",
    "check_server_handshake",
    "check_server_response",
    "client_handshake_headers",
    "client_subprotocols",
    "close_payload",
    "new_client_key",
    "parse_close",
    "server_handshake_headers",
    "valid_close_code",
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


def server_handshake_headers(
    key: str, subprotocol: str | None = None, extensions: str | None = None
) -> list[tuple[str, str]]:
    """Return the headers of the 101 response to a handshake with ``key`` (RFC 6455 4.2.2).

    ``extensions``: the Sec-WebSocket-Extensions value ``deflate.negotiate`` returned.
    """
    headers = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_key(key)),
    ]
    if subprotocol is not None:
        if not _TOKEN.fullmatch(subprotocol):
            raise LocalProtocolError(f"invalid subprotocol name {subprotocol!r}")
        headers.append(("Sec-WebSocket-Protocol", subprotocol))
    if extensions:
        headers.append(("Sec-WebSocket-Extensions", _checked_value(extensions)))
    return headers


def _checked_value(value: str) -> str:
    if any(c in value for c in "\r\n\0"):
        raise LocalProtocolError(f"invalid header value {value!r}")
    return value


def client_handshake_headers(
    host: str,
    key: str,
    subprotocols: list[str] | None = None,
    extensions: str | None = None,
) -> list[tuple[str, str]]:
    """Return the headers of a client's opening handshake GET (RFC 6455 4.1).

    ``extensions``: the Sec-WebSocket-Extensions offer, e.g. ``deflate.offer(options)``.
    """
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
    if extensions:
        headers.append(("Sec-WebSocket-Extensions", _checked_value(extensions)))
    return headers


def check_server_handshake(resp: HttpMessage, key: str, offered: list[str] | None) -> str | None:
    """Validate the server's handshake response (RFC 6455 4.1); return the chosen subprotocol.

    For a client that offered no extension.  Raises RemoteProtocolError when the
    client MUST fail the connection.
    """
    return check_server_response(resp, key, offered, None)[0]


def check_server_response(
    resp: HttpMessage, key: str, offered: list[str] | None, compression: DeflateOptions | None
) -> tuple[str | None, DeflateParams | None]:
    """Validate the server's handshake response (RFC 6455 4.1).

    ``compression``: the options our offer was made from (None: we offered no
    extension).  Return the chosen subprotocol and the agreed permessage-deflate
    parameters (None: not negotiated).  Raises RemoteProtocolError when the client
    MUST fail the connection.
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
    # Item 5: an extension we did not offer -> fail (RFC 7692 5.1 for permessage-deflate).
    values = resp.header_all("Sec-WebSocket-Extensions")
    if compression is not None:
        params = accept(values, compression)
    elif any(v.strip() for v in values):
        raise RemoteProtocolError("server selected an extension that was not offered")
    else:
        params = None
    # Item 6: a subprotocol we did not offer -> fail.
    protos = resp.header_all("Sec-WebSocket-Protocol")
    if not protos:
        return None, params
    chosen = protos[0].strip()
    if len(protos) != 1 or "," in chosen or not offered or chosen not in offered:
        raise RemoteProtocolError("server selected a subprotocol that was not offered")
    return chosen, params


# -- the closing handshake's payload (RFC 6455 5.5.1, 7.4) ------------------------

#: RFC 6455 5.5: a control frame carries at most 125 bytes, 2 of them the close code
_MAX_CLOSE_PAYLOAD: Final = 125
_MAX_REASON: Final = _MAX_CLOSE_PAYLOAD - 2
#: RFC 6455 7.1.5: the code reported when a close frame had no status code
NO_STATUS: Final = 1005


def valid_close_code(code: int) -> bool:
    """Return True for a close code an endpoint may send (RFC 6455 7.4.1, 7.4.2).

    1004-1006 and 1015 are reserved and MUST NOT be sent; 3000-4999 belong to
    libraries and applications.  Everything from 1012 to 2999 is refused,
    including the later IANA registrations 1012-1014, matching what older and
    current Autobahn suites accept.
    """
    return 1000 <= code <= 1003 or 1007 <= code <= 1011 or 3000 <= code <= 4999


def close_payload(code: int, reason: str) -> bytes:
    """Return the payload of our close frame.

    Raises LocalProtocolError for a code that may not be sent or a reason
    longer than 123 bytes of UTF-8 (RFC 6455 5.5, 7.4).
    """
    if not valid_close_code(code):
        raise LocalProtocolError(f"close code {code} may not be sent")
    raw = reason.encode("utf-8")
    if len(raw) > _MAX_REASON:
        raise LocalProtocolError("close reason longer than 123 bytes")
    return code.to_bytes(2, "big") + raw


def check_close_payload(payload: bytes) -> bytes:
    """Validate a raw close payload the application gives to ``send(WS_OP_CLOSE, ...)``."""
    if not payload:
        return payload
    if len(payload) < 2:
        raise LocalProtocolError("close payload must be empty or start with a 2-byte code")
    if len(payload) > _MAX_CLOSE_PAYLOAD:
        raise LocalProtocolError("control frame payload > 125 bytes")
    code = (payload[0] << 8) | payload[1]
    if not valid_close_code(code):
        raise LocalProtocolError(f"close code {code} may not be sent")
    try:
        payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise LocalProtocolError("close reason is not valid UTF-8") from None
    return payload


def parse_close(payload: bytes) -> tuple[int, str]:
    """Return the (code, reason) of the peer's close frame (RFC 6455 5.5.1, 7.4).

    Raises RemoteProtocolError (1002; 1007 for a reason that is not UTF-8).
    """
    if not payload:
        return NO_STATUS, ""
    if len(payload) == 1:
        raise RemoteProtocolError("close frame with a 1-byte payload")
    code = (payload[0] << 8) | payload[1]
    if not valid_close_code(code):
        raise RemoteProtocolError(f"invalid close code {code}")
    try:
        # RFC 6455 5.5.1 / 8.1: the reason is UTF-8 encoded data.
        return code, payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise RemoteProtocolError("invalid UTF-8 in close reason", ws_code=1007) from None

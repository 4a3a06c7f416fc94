"""HTTP authentication glue: Basic and Digest (RFC 7616) for handlers, endpoints and static files.

Strategy.  The Digest maths is sans-IO in ``mgpy.proto.digest``; this module
adds what needs the clock, the file system and the connection:

- one random 32-byte nonce secret and one ``NonceCounter`` per Manager (kept in
  a WeakKeyDictionary keyed by the manager), so nonces are stateless, bound to
  this server (and realm), expire after ``max_age`` seconds (300, Apache
  AuthDigestNonceLifetime) and cannot be replayed (nonce count);
- htdigest files (``user:realm:HA1``, HA1 of 32 hex digits for MD5 or 64 for
  SHA-256) parsed once and cached by path, re-read when mtime or size change;
- challenges: one ``WWW-Authenticate`` per algorithm, SHA-256 first then MD5
  (RFC 7616 3.7: preferred first), ``qop="auth"``, one fresh nonce; SHA-256
  only when every user of the realm has a SHA-256 HA1 (clients answer the first
  challenge they support, and an Apache htdigest file holds MD5 only).

``check_digest_auth`` answers ``AuthResult.OK``, ``STALE`` or ``DENIED``: a ``str`` enum
equal to "ok", "stale" or "denied" that is true *only* for OK, so the mongoose-style
``if mgpy.check_digest_auth(...):`` is safe.  "stale" (answer 401
with ``stale=true``, the client retries with the new nonce without asking its
user) is given only to a client whose response proves it knows the password:
an expired nonce, a replayed nonce count, or a nonce this server cannot vouch
for (forged, or issued before a restart).  A wrong password, unknown user,
other realm or another request-target is "denied".  Nothing about the cause is
sent to the client; Basic credentials are only parsed here (check them
yourself, over TLS).
"""

from __future__ import annotations

import enum
import hmac
import logging
import os
import secrets
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Union

from ..events import HttpMessage
from ..proto.digest import (
    NonceCounter,
    challenge_header,
    check_nonce,
    compute_response,
    make_nonce,
    parse_authorization,
    parse_htdigest,
    stored_ha1,
    verify,
)
from ..proto.httputil import parse_basic_auth, request_target
from .respond import http_reply
from .static.fs import protect

if TYPE_CHECKING:
    from ..core import Connection, Manager

__all__ = [
    "NONCE_MAX_AGE",
    "AuthResult",
    "HtDigest",
    "check_digest_auth",
    "get_http_basic_auth",
    "load_htdigest",
    "require_digest",
    "send_basic_auth_request",
    "send_digest_auth_request",
]

log = logging.getLogger("mgpy")

#: what ``check_digest_auth`` accepts as credentials: a path or a parsed ``{(user, realm): HA1}``
HtDigest = Union[str, "os.PathLike[str]", Mapping[tuple[str, str], str]]

#: seconds a nonce stays valid (Apache mod_auth_digest AuthDigestNonceLifetime 300 s)
NONCE_MAX_AGE = 300.0
#: algorithms offered in a challenge, the preferred first (RFC 7616 3.7)
DIGEST_ALGORITHMS = ("SHA-256", "MD5")
#: parsed htdigest files kept (by path)
_CACHE_SIZE = 64

_ALGORITHMS = {
    "MD5": "MD5",
    "MD5-SESS": "MD5-sess",
    "SHA-256": "SHA-256",
    "SHA-256-SESS": "SHA-256-sess",
}


class _DigestState:
    """A manager's nonce secret and replay counter."""

    __slots__ = ("counter", "secret")

    def __init__(self) -> None:
        self.secret = secrets.token_bytes(32)
        self.counter = NonceCounter()


class AuthResult(str, enum.Enum):
    """The outcome of ``check_digest_auth``: compares equal to "ok", "stale" or "denied".

    Only ``OK`` is true in a boolean context: ``if check_digest_auth(...):`` lets in
    exactly the requests with valid credentials.
    """

    OK = "ok"
    STALE = "stale"  #: the password was right but the nonce expired: ask again, stale=true
    DENIED = "denied"

    def __bool__(self) -> bool:
        return self is AuthResult.OK

    def __str__(self) -> str:
        return str(self.value)


_files: dict[str, tuple[int, int, dict[tuple[str, str], str]]] = {}
_warned: set[str] = set()


def _state(mgr: Manager) -> _DigestState:
    st = mgr.proto_state.get("http.digest")
    if st is None:
        st = mgr.proto_state["http.digest"] = _DigestState()
    assert isinstance(st, _DigestState)
    return st


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- Basic ----------------------------------------------------------------------------


def get_http_basic_auth(hm: HttpMessage) -> tuple[str, str] | None:
    """Return ``(user, password)`` from a Basic ``Authorization`` header, or None."""
    return parse_basic_auth(hm.header("authorization"))


def send_basic_auth_request(c: Connection, realm: str = "mgpy") -> None:
    """Answer 401 with a Basic challenge for ``realm`` (RFC 7617 2: ``charset="UTF-8"``).

    Example::

        creds = mgpy.get_http_basic_auth(hm)
        if creds is None or not check(creds):
            mgpy.send_basic_auth_request(c, "my realm")
    """
    challenge = f'Basic realm={_quote(realm)}, charset="UTF-8"'
    http_reply(
        c,
        401,
        "401 Unauthorized\n",
        [("WWW-Authenticate", challenge), ("Content-Type", "text/plain; charset=utf-8")],
    )


# --- Digest ---------------------------------------------------------------------------


def load_htdigest(path: str | os.PathLike[str]) -> dict[tuple[str, str], str]:
    """Return the parsed htdigest file at ``path``, cached until its mtime or size changes.

    An unreadable file gives an empty mapping (every login is denied) and a
    logged warning.
    """
    key = os.path.abspath(os.fspath(path))
    try:
        stat = os.stat(key)
        cached = _files.get(key)
        if cached is not None and cached[0] == stat.st_mtime_ns and cached[1] == stat.st_size:
            return cached[2]
        with open(key, encoding="utf-8", errors="replace") as f:
            table = parse_htdigest(f.read())
    except OSError as e:
        if key not in _warned:
            _warned.add(key)
            log.warning("cannot read htdigest file %r: %s; denying every login", key, e)
        return {}
    _warned.discard(key)
    protect(key)  # never served as a static file: its HA1s are as good as the passwords
    if len(_files) >= _CACHE_SIZE:
        _files.clear()
    _files[key] = (stat.st_mtime_ns, stat.st_size, table)
    return table


def _table(htdigest: HtDigest) -> dict[tuple[str, str], str]:
    if isinstance(htdigest, dict):
        return htdigest
    if isinstance(htdigest, Mapping):
        return dict(htdigest)
    return load_htdigest(htdigest)


def _request_target(hm: HttpMessage) -> str:
    """The request-target exactly as received (RFC 7616 3.4.6 compares ``uri`` with it)."""
    target = request_target(hm.head) if hm.head else None
    if target is not None:
        return target
    return hm.uri + ("?" + hm.query_string if hm.query_string else "")


def _knows_password(
    auth: Mapping[str, str],
    method: str,
    table: Mapping[tuple[str, str], str],
    realm: str,
    target: str,
) -> bool:
    """True if ``auth`` carries the right response for its (possibly unknown) nonce."""
    user = auth.get("username")
    algo = _ALGORITHMS.get(auth.get("algorithm", "MD5").strip().upper())
    response = auth.get("response", "").lower()
    nc = auth.get("nc", "")
    cnonce = auth.get("cnonce", "")
    if (
        not user
        or algo is None
        or auth.get("realm") != realm
        or auth.get("uri") != target
        or auth.get("qop") != "auth"
        or not cnonce
        or len(nc) != 8
        or not response
    ):
        return False
    stored = stored_ha1(table, user, realm, algo)
    if stored is None:
        return False
    expected = compute_response(
        algo, stored, method, target, auth.get("nonce", ""), nc, cnonce, "auth"
    )
    return hmac.compare_digest(expected.encode(), response.encode())


def check_digest_auth(
    hm: HttpMessage,
    htdigest: HtDigest,
    realm: str,
    c: Connection,
    *,
    max_age: float = NONCE_MAX_AGE,
) -> AuthResult:
    """Check the request's ``Authorization: Digest`` against an htdigest file or mapping.

    ``htdigest`` is a path (``user:realm:HA1`` lines, cached) or a mapping
    ``{(user, realm): HA1}`` as ``mgpy.proto.digest.parse_htdigest`` returns.
    ``c`` is the request's connection: nonces are checked against its
    manager's secret and replay counter.  Returns ``AuthResult.OK`` (the only true
    value), ``STALE`` (answer ``send_digest_auth_request(c, realm, stale=True)``) or
    ``DENIED``; each compares equal to its string ("ok", "stale", "denied").

    Example::

        r = mgpy.check_digest_auth(hm, "htdigest", "example.com", c)
        if not r:
            mgpy.send_digest_auth_request(c, "example.com", stale=(r == "stale"))
    """
    if not isinstance(htdigest, Mapping):
        protect(htdigest)  # a credentials file is never served as a static file
    value = hm.header("authorization")
    if value is None:
        return AuthResult.DENIED
    auth = parse_authorization(value)
    if auth is None:
        return AuthResult.DENIED
    st = _state(c.mgr)
    table = _table(htdigest)
    target = _request_target(hm)
    now = time.time()
    result = verify(
        auth,
        hm.method,
        table,
        realm,
        st.secret,
        now,
        max_age,
        st.counter,
        opaque=realm,
        request_uri=target,
    )
    if (
        result == "denied"
        and check_nonce(st.secret, auth.get("nonce", ""), now, max_age, realm) == "invalid"
        and _knows_password(auth, hm.method, table, realm, target)
    ):
        # a nonce we cannot vouch for (another server instance, a restart): RFC 7616 3.3
        # lets a client that proved the password retry with a fresh one
        return AuthResult.STALE
    return AuthResult(result)


def _offered(table: Mapping[tuple[str, str], str], realm: str) -> tuple[str, ...]:
    """The algorithms the realm's users can log in with, preferred first.

    A client answers the first challenge it supports (curl, browsers), so SHA-256
    is offered only when every user of the realm has a SHA-256 HA1; an Apache
    htdigest file (MD5 only) gets an MD5 challenge.
    """
    lens = [{len(d) for d in v.split(",")} for (_u, r), v in table.items() if r == realm]
    if not lens:
        return DIGEST_ALGORITHMS
    sha = all(64 in s for s in lens)
    md5 = any(32 in s for s in lens)
    return tuple(a for a, ok in (("SHA-256", sha), ("MD5", md5)) if ok) or DIGEST_ALGORITHMS


def send_digest_auth_request(
    c: Connection,
    realm: str = "mgpy",
    stale: bool = False,
    *,
    htdigest: HtDigest | None = None,
    algorithms: tuple[str, ...] | None = None,
) -> None:
    """Answer 401 with Digest challenges (``qop="auth"``, one fresh nonce, RFC 7616 3.3).

    One challenge per algorithm, preferred first: ``algorithms``, else those
    every user of ``realm`` in ``htdigest`` can use, else SHA-256 and MD5.
    """
    st = _state(c.mgr)
    if algorithms is None:
        algorithms = _offered(_table(htdigest), realm) if htdigest is not None else None
    nonce = make_nonce(st.secret, time.time(), realm)
    headers = [
        ("WWW-Authenticate", challenge_header(realm, nonce, algo, stale=stale))
        for algo in algorithms or DIGEST_ALGORITHMS
    ]
    headers.append(("Content-Type", "text/plain; charset=utf-8"))
    http_reply(c, 401, "401 Unauthorized\n", headers)


def require_digest(
    c: Connection, hm: HttpMessage, auth_file: HtDigest, realm: str, max_age: float
) -> bool:
    """True if ``hm`` carries valid Digest credentials; else answer 401 and return False."""
    result = check_digest_auth(hm, auth_file, realm, c, max_age=max_age)
    if result is AuthResult.OK:
        return True
    send_digest_auth_request(c, realm, stale=result is AuthResult.STALE, htdigest=auth_file)
    return False

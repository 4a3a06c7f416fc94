"""HTTP Digest authentication (RFC 7616): server checks and client answers, no I/O.

Server side, stateless nonces: ``make_nonce`` returns
``base64url(ms_timestamp[8] || random[8] || HMAC-SHA256(secret, ...)[:16])``,
so ``check_nonce`` needs only the secret and the clock to tell a nonce we
issued ("ok"), one we issued too long ago ("stale") and anything else
("invalid").  ``NonceCounter`` remembers the highest ``nc`` per nonce (LRU
bounded) to refuse replays.  ``verify`` runs the checks in the order RFC 7616
3.3 implies: a bad response is "denied" even on an old nonce, and "stale" is
only answered to a client that proved it knows the password, so it may retry
with a fresh nonce without asking its user again.

Credentials come from an Apache ``htdigest`` mapping ``{(user, realm): HA1}``
(``parse_htdigest``).  The algorithm of a stored HA1 is told by its length: 32
hex digits are MD5 (Apache's format), 64 are SHA-256.  One (user, realm) may
hold both, as two lines in the file or joined with ``","`` in the mapping
value, so MD5-only and SHA-256 clients can both log in.

Supported: algorithms MD5, SHA-256 and their ``-sess`` variants, ``qop=auth``,
``username*`` (RFC 8187), and ``userhash`` on the client side.  Refused:
``qop=auth-int``; on the server side ``userhash`` and answers without ``qop``
(RFC 2069 has no nonce count, so no replay protection).  The client side still
answers an RFC 2069 challenge.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
from collections import OrderedDict
from collections.abc import Mapping
from typing import Literal
from urllib.parse import quote

from ..errors import LocalProtocolError, RemoteProtocolError
from .httputil import parse_header_params, parse_list_header, url_decode

__all__ = [
    "NonceCounter",
    "challenge_header",
    "check_nonce",
    "check_password",
    "compute_response",
    "create_digest_auth_header",
    "ha1",
    "make_nonce",
    "parse_authorization",
    "parse_htdigest",
    "stored_ha1",
    "verify",
]

#: Canonical spelling of each supported algorithm, keyed by its upper-case name.
_ALGORITHMS = {
    "MD5": "MD5",
    "MD5-SESS": "MD5-sess",
    "SHA-256": "SHA-256",
    "SHA-256-SESS": "SHA-256-sess",
}
_HASHES = {"MD5": "md5", "SHA-256": "sha256"}
_HEX_LEN = {"MD5": 32, "SHA-256": 64}
_NONCE_TAG = b"mgpy digest nonce v1\0"
_NONCE_RAW_LEN = 8 + 8 + 16
_MIN_SECRET = 16
_HEX = frozenset("0123456789abcdefABCDEF")


def _canonical(algorithm: str) -> str | None:
    return _ALGORITHMS.get(algorithm.strip().upper())


def _base(algorithm: str) -> str:
    """Return the hash family ("MD5" or "SHA-256") of a canonical algorithm name."""
    return algorithm[:-5] if algorithm.endswith("-sess") else algorithm


def _h(algorithm: str, data: str) -> str:
    return hashlib.new(_HASHES[_base(algorithm)], data.encode("utf-8")).hexdigest()


def _require_algorithm(algorithm: str) -> str:
    canon = _canonical(algorithm)
    if canon is None:
        raise LocalProtocolError(f"unsupported Digest algorithm {algorithm!r}")
    return canon


def ha1(user: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """Return ``H(user:realm:password)`` as lower-case hex, the value an htdigest file stores.

    For a ``-sess`` algorithm this is the base hash; the per-session HA1 is
    derived in ``compute_response``.
    """
    return _h(_require_algorithm(algorithm), f"{user}:{realm}:{password}")


def parse_htdigest(text: str) -> dict[tuple[str, str], str]:
    """Parse Apache htdigest lines ``user:realm:HA1`` into ``{(user, realm): HA1}``.

    Blank lines, ``#`` comments and malformed lines are skipped.  A second line
    for the same (user, realm) with an HA1 of the other length (MD5 vs SHA-256)
    is joined with ``","``; a second line of the same length is ignored.
    """
    out: dict[tuple[str, str], str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, rest = line.partition(":")
        realm, sep2, digest = rest.rpartition(":")
        digest = digest.lower()
        if not (sep and sep2 and user) or len(digest) not in (32, 64):
            continue
        try:
            bytes.fromhex(digest)
        except ValueError:
            continue
        key = (user, realm)
        old = out.get(key)
        if old is None:
            out[key] = digest
        elif all(len(d) != len(digest) for d in old.split(",")):
            out[key] = old + "," + digest
    return out


# --- nonces ---------------------------------------------------------------------------


def _nonce_mac(secret: bytes, head: bytes, opaque: str) -> bytes:
    if len(secret) < _MIN_SECRET:
        raise LocalProtocolError(f"the Digest nonce secret must be at least {_MIN_SECRET} bytes")
    msg = _NONCE_TAG + head + opaque.encode("utf-8")
    return hmac.new(secret, msg, hashlib.sha256).digest()[:16]


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def make_nonce(secret: bytes, now: float, opaque: str = "") -> str:
    """Return a fresh nonce that only the holder of ``secret`` can mint or check.

    ``opaque`` is server-side data the nonce is bound to (for example the
    client's IP address); it is not sent to the client and must be passed
    again to ``check_nonce``/``verify``.  ``secret`` must be at least 16 bytes.
    """
    # RFC 7616 5.4: the nonce embeds a timestamp and a MAC keyed by a server secret;
    # the random part makes each nonce unique so nonce counts never collide.
    head = struct.pack(">Q", max(0, int(now * 1000))) + secrets.token_bytes(8)
    return _b64url(head + _nonce_mac(secret, head, opaque))


def check_nonce(
    secret: bytes, nonce: str, now: float, max_age: float, opaque: str = ""
) -> Literal["ok", "stale", "invalid"]:
    """Tell whether ``nonce`` was made by ``make_nonce`` with this secret and is still fresh.

    "stale" means genuine but older than ``max_age`` seconds (or from the
    future, after a clock step); "invalid" means forged, corrupted or bound to
    another ``opaque``.
    """
    if len(nonce) != 43:
        return "invalid"
    try:
        raw = base64.urlsafe_b64decode(nonce + "=")
    except (binascii.Error, ValueError):
        return "invalid"
    # Only the canonical spelling is accepted: the replay counter is keyed by the nonce text.
    if len(raw) != _NONCE_RAW_LEN or _b64url(raw) != nonce:
        return "invalid"
    head, mac = raw[:16], raw[16:]
    if not hmac.compare_digest(mac, _nonce_mac(secret, head, opaque)):
        return "invalid"
    issued = struct.unpack(">Q", head[:8])[0] / 1000.0
    age = now - issued
    if age > max_age or age < -1.0:
        return "stale"
    return "ok"


class NonceCounter:
    """Replay guard: the highest nonce count seen per nonce, for the ``capacity`` latest nonces.

    Memory is bounded; a nonce pushed out by ``capacity`` newer ones is
    forgotten, so keep ``capacity`` above the number of nonces authenticated
    within the nonce ``max_age``.
    """

    def __init__(self, capacity: int = 10000) -> None:
        """Create an empty counter holding at most ``capacity`` nonces."""
        if capacity < 1:
            raise LocalProtocolError("NonceCounter capacity must be at least 1")
        self.capacity = capacity
        self._seen: OrderedDict[str, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def check_and_update(self, nonce: str, nc: int) -> bool:
        """Return True and remember ``nc`` if it is higher than any seen for ``nonce``."""
        last = self._seen.get(nonce)
        if last is not None:
            if nc <= last:
                return False
            self._seen.move_to_end(nonce)
        self._seen[nonce] = nc
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True


# --- header values --------------------------------------------------------------------


def _quote(s: str) -> str:
    if "\r" in s or "\n" in s or "\0" in s:
        raise LocalProtocolError("CR, LF or NUL in a Digest header value")
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def challenge_header(
    realm: str,
    nonce: str,
    algorithm: str = "MD5",
    stale: bool = False,
    opaque: str | None = None,
    qop: str = "auth",
) -> str:
    """Return a ``WWW-Authenticate`` value: ``Digest realm="r", qop="auth", algorithm=MD5, ...``.

    Send one header per algorithm to offer several, the preferred first
    (RFC 7616 3.7).  An empty ``qop`` gives a legacy RFC 2069 challenge.
    """
    parts = [f"realm={_quote(realm)}"]
    if qop:
        parts.append(f"qop={_quote(qop)}")
    parts.append(f"algorithm={_require_algorithm(algorithm)}")
    parts.append(f"nonce={_quote(nonce)}")
    if opaque is not None:
        parts.append(f"opaque={_quote(opaque)}")
    if stale:
        parts.append("stale=true")
    return "Digest " + ", ".join(parts)


def _split_scheme(value: str) -> tuple[str, str]:
    value = value.strip(" \t")
    scheme, _, rest = value.partition(" ")
    return scheme, rest


def parse_authorization(value: str) -> dict[str, str] | None:
    """Parse ``Digest username="u", ...`` into a dict with lower-cased keys; None if not Digest."""
    scheme, rest = _split_scheme(value)
    if scheme.lower() != "digest":
        return None
    return parse_header_params(rest)[1]


def compute_response(
    algorithm: str,
    ha1: str,
    method: str,
    uri: str,
    nonce: str,
    nc: str,
    cnonce: str,
    qop: str,
) -> str:
    """Return the ``response`` directive for ``qop=auth`` (RFC 7616 3.4.1) or RFC 2069 (empty qop).

    ``ha1`` is the stored ``H(user:realm:password)``; for ``-sess`` algorithms
    the session key ``H(ha1:nonce:cnonce)`` is derived here (RFC 7616 3.4.2).
    """
    algo = _require_algorithm(algorithm)
    if qop and qop != "auth":
        raise LocalProtocolError(f"unsupported Digest qop {qop!r}")
    key = ha1.lower()
    if algo.endswith("-sess"):
        key = _h(algo, f"{key}:{nonce}:{cnonce}")
    ha2 = _h(algo, f"{method}:{uri}")
    if qop:
        return _h(algo, f"{key}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _h(algo, f"{key}:{nonce}:{ha2}")


def _username(auth: dict[str, str]) -> str | None:
    plain = auth.get("username")
    ext = auth.get("username*")
    if ext is not None:
        if plain is not None:
            return None  # RFC 7616 3.4.4: both MUST NOT be present
        # RFC 8187 3.2: ext-value = charset "'" [ language ] "'" value-chars
        charset, q1, rest = ext.partition("'")
        _, q2, encoded = rest.partition("'")
        if not (q1 and q2) or charset.lower() != "utf-8":
            return None
        return url_decode(encoded, form=False)
    return plain


def stored_ha1(
    htdigest: Mapping[tuple[str, str], str], user: str, realm: str, algorithm: str = "MD5"
) -> str | None:
    """The HA1 an htdigest table keeps for ``user`` in ``realm`` and ``algorithm``'s hash.

    An entry may hold several comma-separated digests (MD5 and SHA-256); the one of the
    right length is returned, or None.
    """
    value = htdigest.get((user, realm))
    if value is None:
        return None
    want = _HEX_LEN[_base(_require_algorithm(algorithm))]
    for d in value.split(","):
        d = d.strip()
        if len(d) == want:
            return d
    return None


def check_password(
    htdigest: Mapping[tuple[str, str], str], user: str, realm: str, password: str
) -> bool:
    """True if ``password`` is ``user``'s in ``realm`` (the MD5 HA1, compared in constant time).

    For protocols that receive the password itself (MQTT CONNECT, HTTP Basic).
    """
    stored = stored_ha1(htdigest, user, realm)
    return stored is not None and hmac.compare_digest(stored, ha1(user, realm, password))


def verify(
    auth: dict[str, str],
    method: str,
    htdigest: dict[tuple[str, str], str],
    realm: str,
    secret: bytes,
    now: float,
    max_age: float,
    counter: NonceCounter,
    opaque: str = "",
    request_uri: str | None = None,
) -> Literal["ok", "stale", "denied"]:
    """Check a parsed ``Authorization: Digest`` against the credentials; "ok", "stale" or "denied".

    "stale" (answer 401 with ``stale=true`` and a new nonce) means the client
    knows the password but its nonce expired or its nonce count was replayed.
    ``opaque`` is what the nonce was bound to in ``make_nonce``.  When
    ``request_uri`` (the request-target as received) is given, the ``uri``
    directive must equal it (RFC 7616 3.4.6).
    """
    user = _username(auth)
    nonce = auth.get("nonce", "")
    uri = auth.get("uri", "")
    response = auth.get("response", "").lower()
    if not user or not nonce or not uri or not response:
        return "denied"
    if auth.get("realm") != realm:
        return "denied"
    if request_uri is not None and uri != request_uri:
        return "denied"
    if auth.get("userhash", "false").lower() != "false":
        return "denied"
    algo = _canonical(auth.get("algorithm", "MD5"))
    if algo is None:
        return "denied"
    # RFC 7616 3.3: our challenges always carry qop="auth"; answers without it (RFC 2069)
    # have no nonce count and could be replayed, so they are refused.
    qop = auth.get("qop", "")
    nc_text = auth.get("nc", "")
    cnonce = auth.get("cnonce", "")
    # RFC 7616 3.4: nc-value = 8LHEX
    if qop != "auth" or not cnonce or len(nc_text) != 8 or not _HEX.issuperset(nc_text):
        return "denied"
    nc = int(nc_text, 16)
    if nc < 1:
        return "denied"
    nonce_state = check_nonce(secret, nonce, now, max_age, opaque)
    if nonce_state == "invalid":
        return "denied"
    stored = stored_ha1(htdigest, user, realm, algo)
    # Unknown users cost the same hashing as known ones (no user enumeration by timing).
    expected = compute_response(
        algo, stored or "0" * _HEX_LEN[_base(algo)], method, uri, nonce, nc_text, cnonce, qop
    )
    if not hmac.compare_digest(expected.encode(), response.encode()) or stored is None:
        return "denied"
    if nonce_state == "stale":
        return "stale"
    # RFC 7616 3.4: the server MUST refuse a nonce count it has already seen (replay).
    if not counter.check_and_update(nonce, nc):
        return "stale"
    return "ok"


# --- client side ----------------------------------------------------------------------


def _digest_token_ok(s: str) -> bool:
    return all(0x20 <= ord(c) < 0x7F for c in s)


def create_digest_auth_header(
    user: str,
    password: str,
    method: str,
    uri: str,
    challenge: str,
    nc: int = 1,
    cnonce: str | None = None,
) -> str:
    """Return the ``Authorization`` value answering a ``WWW-Authenticate: Digest ...`` challenge.

    Picks ``qop=auth`` when offered (RFC 2069 style when no qop is offered),
    supports MD5, SHA-256 and their ``-sess`` variants, echoes ``opaque``, and
    sends ``username*`` (RFC 8187) for names that are not printable ASCII.
    ``uri`` is the request-target (``/path?query``); ``nc`` counts the requests
    made with this nonce, starting at 1.

    Raises RemoteProtocolError when the challenge is not a usable Digest
    challenge (no realm or nonce, unknown algorithm, only ``auth-int``).
    """
    scheme, rest = _split_scheme(challenge)
    if scheme.lower() != "digest":
        raise RemoteProtocolError("not a Digest challenge")
    params = parse_header_params(rest)[1]
    realm = params.get("realm")
    nonce = params.get("nonce")
    if realm is None or not nonce:
        raise RemoteProtocolError("Digest challenge without realm or nonce")
    algo = _canonical(params.get("algorithm", "MD5"))
    if algo is None:
        raise RemoteProtocolError("Digest challenge with an unsupported algorithm")
    qop = ""
    if "qop" in params:
        offered = [q.lower() for q in parse_list_header(params["qop"])]
        if "auth" not in offered:
            raise RemoteProtocolError("Digest challenge offers no qop=auth")
        qop = "auth"
    if not 1 <= nc <= 0xFFFFFFFF:
        raise LocalProtocolError("Digest nonce count out of range")
    nc_text = f"{nc:08x}"
    if cnonce is None:
        cnonce = secrets.token_hex(16)
    userhash = params.get("userhash", "false").lower() == "true"
    response = compute_response(
        algo, ha1(user, realm, password, algo), method, uri, nonce, nc_text, cnonce, qop
    )
    if userhash:
        user_part = f"username={_quote(_h(algo, f'{user}:{realm}'))}"
    elif _digest_token_ok(user):
        user_part = f"username={_quote(user)}"
    else:
        # RFC 7616 3.4.4: a name that cannot be sent as a quoted-string goes as username*.
        user_part = "username*=UTF-8''" + _rfc8187_encode(user)
    parts = [
        user_part,
        f"realm={_quote(realm)}",
        f"nonce={_quote(nonce)}",
        f"uri={_quote(uri)}",
        f"algorithm={algo}",
        f"response={_quote(response)}",
    ]
    if "opaque" in params:
        parts.append(f"opaque={_quote(params['opaque'])}")
    if qop:
        parts.extend([f"qop={qop}", f"nc={nc_text}", f"cnonce={_quote(cnonce)}"])
    if userhash:
        parts.append("userhash=true")
    return "Digest " + ", ".join(parts)


def _rfc8187_encode(s: str) -> str:
    # RFC 8187 3.2.1: attr-char = ALPHA / DIGIT / "!" / "#" / "$" / "&" / "+" / "-" / "." /
    # "^" / "_" / "`" / "|" / "~"; everything else is pct-encoded UTF-8.
    return quote(s.encode("utf-8"), safe="!#$&+-.^_`|~")

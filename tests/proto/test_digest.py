"""Tests for mgpy.proto.digest: RFC 7616 vectors, nonces, replay, and interop with requests."""

from __future__ import annotations

import hashlib

import pytest
from requests.auth import HTTPDigestAuth

from mgpy.errors import LocalProtocolError, RemoteProtocolError
from mgpy.proto.digest import (
    NonceCounter,
    challenge_header,
    check_nonce,
    check_password,
    compute_response,
    create_digest_auth_header,
    ha1,
    make_nonce,
    parse_authorization,
    parse_htdigest,
    stored_ha1,
    verify,
)
from mgpy.proto.httputil import parse_header_params

SECRET = b"0123456789abcdef0123456789abcdef"
NOW = 1_700_000_000.0
REALM = "test@mgpy"


def _store(user: str, password: str, realm: str = REALM) -> dict[tuple[str, str], str]:
    both = ha1(user, realm, password, "MD5") + "," + ha1(user, realm, password, "SHA-256")
    return {(user, realm): both}


class TestRfcVectors:
    """RFC 7616 3.9.1 and RFC 2617 3.5 worked examples."""

    RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
    RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
    RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
    RFC7616_REALM = "http-auth@example.org"

    @pytest.mark.parametrize(
        ("algorithm", "expected"),
        [
            ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
            ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
        ],
    )
    def test_rfc7616_response(self, algorithm: str, expected: str) -> None:
        key = ha1("Mufasa", self.RFC7616_REALM, "Circle of Life", algorithm)
        got = compute_response(
            algorithm,
            key,
            "GET",
            "/dir/index.html",
            self.RFC7616_NONCE,
            "00000001",
            self.RFC7616_CNONCE,
            "auth",
        )
        assert got == expected

    @pytest.mark.parametrize(
        ("algorithm", "expected"),
        [
            ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
            ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
        ],
    )
    def test_rfc7616_client_answer(self, algorithm: str, expected: str) -> None:
        challenge = (
            f'Digest realm="{self.RFC7616_REALM}", qop="auth, auth-int", '
            f'algorithm={algorithm}, nonce="{self.RFC7616_NONCE}", '
            f'opaque="{self.RFC7616_OPAQUE}"'
        )
        value = create_digest_auth_header(
            "Mufasa",
            "Circle of Life",
            "GET",
            "/dir/index.html",
            challenge,
            cnonce=self.RFC7616_CNONCE,
        )
        auth = parse_authorization(value)
        assert auth == {
            "username": "Mufasa",
            "realm": self.RFC7616_REALM,
            "nonce": self.RFC7616_NONCE,
            "uri": "/dir/index.html",
            "algorithm": algorithm,
            "response": expected,
            "opaque": self.RFC7616_OPAQUE,
            "qop": "auth",
            "nc": "00000001",
            "cnonce": self.RFC7616_CNONCE,
        }

    def test_rfc7616_authorization_header_parses(self) -> None:
        value = (
            'Digest username="Mufasa",\r\n realm="http-auth@example.org",\r\n'
            ' uri="/dir/index.html",\r\n algorithm=SHA-256,\r\n'
            f' nonce="{self.RFC7616_NONCE}",\r\n nc=00000001,\r\n'
            f' cnonce="{self.RFC7616_CNONCE}",\r\n qop=auth,\r\n'
            ' response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",\r\n'
            f' opaque="{self.RFC7616_OPAQUE}"'
        ).replace("\r\n", "")
        auth = parse_authorization(value)
        assert auth is not None
        assert auth["username"] == "Mufasa"
        assert auth["algorithm"] == "SHA-256"
        assert auth["nc"] == "00000001"
        assert auth["response"].startswith("753927fa")

    def test_rfc2617_example(self) -> None:
        key = ha1("Mufasa", "testrealm@host.com", "Circle Of Life")
        assert key == "939e7578ed9e3c518a452acee763bce9"
        got = compute_response(
            "MD5",
            key,
            "GET",
            "/dir/index.html",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "00000001",
            "0a4f113b",
            "auth",
        )
        assert got == "6629fae49393a05397450978507c4ef1"

    def test_rfc2069_legacy_response(self) -> None:
        key = ha1("u", "r", "p")
        got = compute_response("MD5", key, "GET", "/x", "n", "", "", "")
        ha2 = hashlib.md5(b"GET:/x").hexdigest()
        assert got == hashlib.md5(f"{key}:n:{ha2}".encode()).hexdigest()

    def test_unsupported_algorithm_or_qop_raises(self) -> None:
        with pytest.raises(LocalProtocolError):
            ha1("u", "r", "p", "SHA-1")
        with pytest.raises(LocalProtocolError):
            compute_response("MD5", "0" * 32, "GET", "/", "n", "00000001", "c", "auth-int")


class TestHtdigest:
    def test_parses_apache_lines(self) -> None:
        md5 = ha1("alice", "r1", "pw")
        text = (
            "# comment\n"
            "\n"
            f"alice:r1:{md5}\n"
            "broken line\n"
            "bob:r1:nothex" + "z" * 26 + "\n"
            "carol:r1:abc\n"
            f":r1:{md5}\n"
            f"dave:realm:with:colons:{md5.upper()}\r\n"
        )
        assert parse_htdigest(text) == {
            ("alice", "r1"): md5,
            ("dave", "realm:with:colons"): md5,
        }

    def test_md5_and_sha256_lines_for_one_user_are_joined(self) -> None:
        md5 = ha1("u", "r", "pw", "MD5")
        sha = ha1("u", "r", "pw", "SHA-256")
        other = ha1("u", "r", "other", "MD5")
        table = parse_htdigest(f"u:r:{md5}\nu:r:{other}\nu:r:{sha}\n")
        assert table == {("u", "r"): f"{md5},{sha}"}


class TestNonce:
    def test_fresh_nonce_is_ok(self) -> None:
        nonce = make_nonce(SECRET, NOW)
        assert check_nonce(SECRET, nonce, NOW + 5, 60) == "ok"

    def test_nonces_are_unique(self) -> None:
        assert len({make_nonce(SECRET, NOW) for _ in range(100)}) == 100

    def test_old_nonce_is_stale(self) -> None:
        nonce = make_nonce(SECRET, NOW)
        assert check_nonce(SECRET, nonce, NOW + 60.5, 60) == "stale"

    def test_nonce_from_the_future_is_stale(self) -> None:
        nonce = make_nonce(SECRET, NOW + 30)
        assert check_nonce(SECRET, nonce, NOW, 60) == "stale"

    def test_other_secret_or_binding_is_invalid(self) -> None:
        nonce = make_nonce(SECRET, NOW, opaque="10.0.0.1")
        assert check_nonce(SECRET, nonce, NOW, 60, opaque="10.0.0.1") == "ok"
        assert check_nonce(SECRET, nonce, NOW, 60, opaque="10.0.0.2") == "invalid"
        assert check_nonce(b"x" * 32, nonce, NOW, 60, opaque="10.0.0.1") == "invalid"

    def test_tampered_nonce_is_invalid(self) -> None:
        nonce = make_nonce(SECRET, NOW)
        for i in range(len(nonce)):
            for c in "ABab01-_+/":
                if c != nonce[i]:
                    tampered = nonce[:i] + c + nonce[i + 1 :]
                    assert check_nonce(SECRET, tampered, NOW, 60) == "invalid", tampered

    def test_only_the_canonical_spelling_is_accepted(self) -> None:
        # The last base64 character carries two padding bits: an alias of the same
        # bytes must not pass, or it would dodge the replay counter.
        for _ in range(64):
            nonce = make_nonce(SECRET, NOW)
            alias = nonce[:-1] + chr(ord(nonce[-1]) + 1)
            assert check_nonce(SECRET, alias, NOW, 60) == "invalid"

    @pytest.mark.parametrize("nonce", ["", "abc", "!" * 43, "A" * 43, "A" * 44, "é" * 43])
    def test_garbage_is_invalid(self, nonce: str) -> None:
        assert check_nonce(SECRET, nonce, NOW, 60) == "invalid"

    def test_short_secret_is_refused(self) -> None:
        with pytest.raises(LocalProtocolError):
            make_nonce(b"short", NOW)


class TestNonceCounter:
    def test_counts_must_increase(self) -> None:
        c = NonceCounter()
        assert c.check_and_update("n", 1)
        assert not c.check_and_update("n", 1)
        assert c.check_and_update("n", 3)
        assert not c.check_and_update("n", 2)
        assert c.check_and_update("other", 1)

    def test_bounded_lru(self) -> None:
        c = NonceCounter(capacity=2)
        assert c.check_and_update("a", 1)
        assert c.check_and_update("b", 1)
        assert c.check_and_update("a", 2)  # a becomes the most recent
        assert c.check_and_update("c", 1)  # evicts b
        assert len(c) == 2
        assert not c.check_and_update("a", 2)
        assert c.check_and_update("b", 1)  # forgotten, so accepted again


class TestChallenge:
    def test_challenge_header(self) -> None:
        assert challenge_header(REALM, "NONCE") == (
            'Digest realm="test@mgpy", qop="auth", algorithm=MD5, nonce="NONCE"'
        )
        assert challenge_header('a"b', "N", "sha-256", stale=True, opaque="O") == (
            'Digest realm="a\\"b", qop="auth", algorithm=SHA-256, nonce="N", opaque="O", stale=true'
        )
        assert challenge_header("r", "N", qop="") == 'Digest realm="r", algorithm=MD5, nonce="N"'

    def test_challenge_round_trips_through_the_parser(self) -> None:
        value = challenge_header('we "quote", ok', "N", "SHA-256-sess", opaque="x")
        scheme, params = parse_header_params(value)
        assert scheme == "Digest"
        assert params["realm"] == 'we "quote", ok'
        assert params["algorithm"] == "SHA-256-sess"

    def test_challenge_refuses_bad_input(self) -> None:
        with pytest.raises(LocalProtocolError):
            challenge_header("evil\r\nX-Injected: 1", "N")
        with pytest.raises(LocalProtocolError):
            challenge_header("r", "N", algorithm="SHA-1")

    def test_parse_authorization_needs_digest_scheme(self) -> None:
        assert parse_authorization("Basic dTpw") is None
        assert parse_authorization("") is None
        assert parse_authorization('digest Username="u", NC=00000001') == {
            "username": "u",
            "nc": "00000001",
        }


def _answer(
    user: str,
    password: str,
    *,
    algorithm: str = "MD5",
    method: str = "GET",
    uri: str = "/private",
    nonce: str | None = None,
    nc: int = 1,
    realm: str = REALM,
) -> dict[str, str]:
    nonce = nonce if nonce is not None else make_nonce(SECRET, NOW)
    value = create_digest_auth_header(
        user, password, method, uri, challenge_header(realm, nonce, algorithm), nc=nc
    )
    auth = parse_authorization(value)
    assert auth is not None
    return auth


def _verify(auth: dict[str, str], **kw: object) -> str:
    args: dict[str, object] = {
        "method": "GET",
        "htdigest": _store("alice", "secret"),
        "realm": REALM,
        "secret": SECRET,
        "now": NOW + 1,
        "max_age": 300.0,
        "counter": NonceCounter(),
    }
    args.update(kw)
    return verify(auth, **args)  # type: ignore[arg-type]


class TestVerify:
    @pytest.mark.parametrize("algorithm", ["MD5", "MD5-sess", "SHA-256", "SHA-256-sess"])
    def test_right_password_is_ok(self, algorithm: str) -> None:
        assert _verify(_answer("alice", "secret", algorithm=algorithm)) == "ok"

    def test_wrong_password_is_denied(self) -> None:
        assert _verify(_answer("alice", "wrong")) == "denied"

    def test_unknown_user_is_denied(self) -> None:
        assert _verify(_answer("mallory", "secret")) == "denied"

    def test_other_realm_is_denied(self) -> None:
        auth = _answer("alice", "secret", realm="other")
        assert _verify(auth) == "denied"

    def test_other_method_is_denied(self) -> None:
        assert _verify(_answer("alice", "secret"), method="POST") == "denied"

    def test_uri_must_be_present_and_match_the_request(self) -> None:
        auth = _answer("alice", "secret", uri="/private?x=1")
        assert _verify(auth, request_uri="/private?x=1") == "ok"
        assert _verify(dict(auth), request_uri="/elsewhere") == "denied"
        del auth["uri"]
        assert _verify(auth) == "denied"

    def test_unsupported_algorithm_is_denied(self) -> None:
        auth = _answer("alice", "secret")
        auth["algorithm"] = "SHA-512"
        assert _verify(auth) == "denied"

    def test_answer_without_qop_is_denied(self) -> None:
        nonce = make_nonce(SECRET, NOW)
        value = create_digest_auth_header(
            "alice", "secret", "GET", "/p", challenge_header(REALM, nonce, qop="")
        )
        auth = parse_authorization(value)
        assert auth is not None and "qop" not in auth
        assert _verify(auth) == "denied"

    @pytest.mark.parametrize("nc", ["1", "0000000g", "00000000", "", "0x000001", "+0000001"])
    def test_malformed_nonce_count_is_denied(self, nc: str) -> None:
        auth = _answer("alice", "secret")
        auth["nc"] = nc
        assert _verify(auth) == "denied"

    def test_algorithm_without_a_stored_ha1_is_denied(self) -> None:
        md5_only = {("alice", REALM): ha1("alice", REALM, "secret", "MD5")}
        assert _verify(_answer("alice", "secret", algorithm="MD5"), htdigest=md5_only) == "ok"
        assert (
            _verify(_answer("alice", "secret", algorithm="SHA-256"), htdigest=md5_only) == "denied"
        )

    def test_expired_nonce_is_stale_only_with_the_right_password(self) -> None:
        nonce = make_nonce(SECRET, NOW)
        later = NOW + 301
        assert _verify(_answer("alice", "secret", nonce=nonce), now=later) == "stale"
        assert _verify(_answer("alice", "wrong", nonce=nonce), now=later) == "denied"

    def test_forged_nonce_is_denied(self) -> None:
        forged = make_nonce(b"attacker-secret-0123456789", NOW)
        assert _verify(_answer("alice", "secret", nonce=forged)) == "denied"
        assert _verify(_answer("alice", "secret", nonce="made-up")) == "denied"

    def test_nonce_bound_to_another_client_is_denied(self) -> None:
        nonce = make_nonce(SECRET, NOW, opaque="10.0.0.1")
        auth = _answer("alice", "secret", nonce=nonce)
        assert _verify(auth, opaque="10.0.0.2") == "denied"
        assert _verify(auth, opaque="10.0.0.1") == "ok"

    def test_replayed_nonce_count_is_refused(self) -> None:
        counter = NonceCounter()
        nonce = make_nonce(SECRET, NOW)
        first = _answer("alice", "secret", nonce=nonce, nc=1)
        second = _answer("alice", "secret", nonce=nonce, nc=2)
        assert _verify(first, counter=counter) == "ok"
        assert _verify(first, counter=counter) == "stale"
        assert _verify(second, counter=counter) == "ok"
        assert _verify(first, counter=counter) == "stale"

    def test_failed_attempts_do_not_burn_nonce_counts(self) -> None:
        counter = NonceCounter()
        nonce = make_nonce(SECRET, NOW)
        bad = _answer("alice", "wrong", nonce=nonce, nc=5)
        assert _verify(bad, counter=counter) == "denied"
        assert len(counter) == 0
        assert _verify(_answer("alice", "secret", nonce=nonce, nc=1), counter=counter) == "ok"

    def test_non_ascii_user_goes_as_username_star(self) -> None:
        user = "J\u00e4s\u00f8n Doe"
        auth = _answer(user, "pw")
        assert "username" not in auth
        assert auth["username*"] == "UTF-8''J%C3%A4s%C3%B8n%20Doe"
        assert _verify(auth, htdigest=_store(user, "pw")) == "ok"

    def test_both_username_forms_is_denied(self) -> None:
        auth = _answer("J\u00e4", "pw")
        auth["username"] = "J\u00e4"
        assert _verify(auth, htdigest=_store("J\u00e4", "pw")) == "denied"

    def test_quotes_in_user_and_uri_survive(self) -> None:
        user = 'a "quoted" \\ user'
        auth = _answer(user, "pw", uri='/a"b')
        assert auth["username"] == user
        assert auth["uri"] == '/a"b'
        assert _verify(auth, htdigest=_store(user, "pw")) == "ok"


class TestRequestsInterop:
    """The header requests.auth.HTTPDigestAuth builds must verify."""

    @staticmethod
    def _requests_header(
        challenge: str, method: str, url: str, auth: HTTPDigestAuth | None = None
    ) -> tuple[HTTPDigestAuth, str]:
        if auth is None:
            auth = HTTPDigestAuth("alice", "secret")
            auth.init_per_thread_state()
        auth._thread_local.chal = parse_header_params(challenge)[1]
        value = auth.build_digest_header(method, url)
        assert value is not None
        return auth, value

    @pytest.mark.parametrize("algorithm", ["MD5", "MD5-sess", "SHA-256"])
    def test_requests_header_verifies(self, algorithm: str) -> None:
        nonce = make_nonce(SECRET, NOW)
        challenge = challenge_header(REALM, nonce, algorithm, opaque="op")
        _, value = self._requests_header(challenge, "GET", "http://h/files/a.txt?x=1&y=2")
        auth = parse_authorization(value)
        assert auth is not None
        assert auth["opaque"] == "op"
        assert _verify(auth, request_uri="/files/a.txt?x=1&y=2") == "ok"

    def test_requests_nonce_counts_and_replay(self) -> None:
        counter = NonceCounter()
        challenge = challenge_header(REALM, make_nonce(SECRET, NOW), "SHA-256")
        client, first = self._requests_header(challenge, "POST", "http://h/upload")
        _, second = self._requests_header(challenge, "POST", "http://h/upload", client)
        a1, a2 = parse_authorization(first), parse_authorization(second)
        assert a1 is not None and a2 is not None
        assert (a1["nc"], a2["nc"]) == ("00000001", "00000002")
        assert _verify(a1, method="POST", counter=counter) == "ok"
        assert _verify(a2, method="POST", counter=counter) == "ok"
        assert _verify(a1, method="POST", counter=counter) == "stale"

    def test_requests_wrong_password_is_denied(self) -> None:
        client = HTTPDigestAuth("alice", "guess")
        client.init_per_thread_state()
        challenge = challenge_header(REALM, make_nonce(SECRET, NOW))
        _, value = self._requests_header(challenge, "GET", "http://h/", client)
        auth = parse_authorization(value)
        assert auth is not None
        assert _verify(auth) == "denied"


class TestClientHeader:
    def test_prefers_auth_among_offered_qops(self) -> None:
        value = create_digest_auth_header(
            "u", "p", "GET", "/", 'Digest realm="r", nonce="n", qop="auth-int,auth"', nc=10
        )
        auth = parse_authorization(value)
        assert auth is not None
        assert (auth["qop"], auth["nc"]) == ("auth", "0000000a")
        assert len(auth["cnonce"]) == 32
        assert "opaque" not in auth

    def test_userhash(self) -> None:
        value = create_digest_auth_header(
            "u", "p", "GET", "/", 'Digest realm="r", nonce="n", qop=auth, userhash=true'
        )
        auth = parse_authorization(value)
        assert auth is not None
        assert auth["userhash"] == "true"
        assert auth["username"] == hashlib.md5(b"u:r").hexdigest()

    @pytest.mark.parametrize(
        "challenge",
        [
            'Basic realm="r"',
            'Digest realm="r"',
            'Digest nonce="n"',
            'Digest realm="r", nonce="n", qop="auth-int"',
            'Digest realm="r", nonce="n", algorithm=SHA-512',
        ],
    )
    def test_unusable_challenge_raises(self, challenge: str) -> None:
        with pytest.raises(RemoteProtocolError):
            create_digest_auth_header("u", "p", "GET", "/", challenge)

    def test_bad_nonce_count_or_crlf_raises(self) -> None:
        ch = 'Digest realm="r", nonce="n", qop=auth'
        with pytest.raises(LocalProtocolError):
            create_digest_auth_header("u", "p", "GET", "/", ch, nc=0)
        with pytest.raises(LocalProtocolError):
            create_digest_auth_header("u", "p", "GET", "/x\r\nY: z", ch)


class TestStoredPasswords:
    TABLE = {
        ("ann", "lab"): ha1("ann", "lab", "pässwörd")
        + ","
        + ha1("ann", "lab", "pässwörd", "SHA-256"),
        ("bob", "lab"): ha1("bob", "lab", "x", "SHA-256"),  # no MD5 digest
    }

    def test_stored_ha1_picks_the_digest_of_the_algorithms_length(self) -> None:
        assert stored_ha1(self.TABLE, "ann", "lab") == ha1("ann", "lab", "pässwörd")
        assert stored_ha1(self.TABLE, "ann", "lab", "SHA-256-sess") == ha1(
            "ann", "lab", "pässwörd", "SHA-256"
        )
        assert stored_ha1(self.TABLE, "bob", "lab") is None
        assert stored_ha1(self.TABLE, "ann", "other") is None

    def test_check_password(self) -> None:
        assert check_password(self.TABLE, "ann", "lab", "pässwörd")
        assert not check_password(self.TABLE, "ann", "lab", "password")
        assert not check_password(self.TABLE, "ann", "other", "pässwörd")
        assert not check_password(self.TABLE, "bob", "lab", "x")  # only SHA-256 stored
        assert not check_password(self.TABLE, "eve", "lab", "")

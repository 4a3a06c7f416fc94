"""permessage-deflate negotiation (RFC 7692 5, 7.1) and the Sec-WebSocket-Extensions grammar.

Server: the first acceptable offer wins, a bad offer is declined (never a failed
handshake).  Client: a response that breaks RFC 7692 5.1 / 7.1 fails the connection.
"""

from __future__ import annotations

import dataclasses
import itertools
import random

import pytest

from mgpy.errors import LocalProtocolError, RemoteProtocolError
from mgpy.events import HttpMessage
from mgpy.proto.deflate import (
    DeflateOptions,
    DeflateParams,
    accept,
    negotiate,
    offer,
    parse_extensions,
)
from mgpy.proto.ws_handshake import (
    accept_key,
    check_server_handshake,
    check_server_response,
    client_handshake_headers,
    server_handshake_headers,
)

PMD = "permessage-deflate"
DEFAULT = DeflateOptions()
#: options that add nothing unasked: the response mirrors the offer
PLAIN = DeflateOptions(
    server_no_context_takeover=False,
    client_no_context_takeover=False,
    server_max_window_bits=None,
    client_max_window_bits=None,
)


def params(
    snct: bool, cnct: bool, smwb: int, cmwb: int, o: DeflateOptions = DEFAULT
) -> DeflateParams:
    return DeflateParams(snct, cnct, smwb, cmwb, o.level, o.mem_level, o.threshold)


class TestExtensionGrammar:
    """RFC 6455 9.1: extension-list = 1#extension; extension = token *( ";" param )."""

    def test_parses_tokens_and_parameters_in_order(self) -> None:
        got = parse_extensions(
            ["permessage-deflate; client_max_window_bits; server_max_window_bits=10"]
        )
        assert got == [(PMD, (("client_max_window_bits", None), ("server_max_window_bits", "10")))]

    def test_parses_several_extensions_across_several_header_values(self) -> None:
        got = parse_extensions(["foo, permessage-deflate", "bar; x=1 ,, baz"])
        assert [name for name, _ in got] == ["foo", PMD, "bar", "baz"]
        assert got[2] == ("bar", (("x", "1"),))

    def test_quoted_string_values_are_unescaped(self) -> None:
        got = parse_extensions(['permessage-deflate; server_max_window_bits="1\\0"'])
        assert got == [(PMD, (("server_max_window_bits", "10"),))]

    def test_quoted_commas_do_not_split_elements(self) -> None:
        """Split naively, the quoted value would hide an acceptable offer."""
        assert negotiate(['x; a="b,permessage-deflate,c"'], PLAIN) is None
        with pytest.raises(RemoteProtocolError):
            parse_extensions(['x; a="b,c;d"'])  # one element, its value not a token

    def test_whitespace_around_separators_is_allowed(self) -> None:
        got = parse_extensions(["  permessage-deflate ;\tserver_max_window_bits = 9 ,"])
        assert got == [(PMD, (("server_max_window_bits", "9"),))]

    def test_empty_values_give_no_extensions(self) -> None:
        assert parse_extensions(["", " , ,"]) == []

    @pytest.mark.parametrize(
        "value",
        [
            "; x",  # no extension token
            "permessage-deflate; ",  # empty parameter
            "permessage-deflate; a b",  # two tokens
            "permessage-deflate; x=",  # no value
            'permessage-deflate; x="unterminated',
            'permessage-deflate; x="a b"',  # quoted value, not a token once unquoted
            "permessage-deflate; x=a=b",
            "perm(essage)",
            "permessage-deflate; x=\u00e9",
        ],
    )
    def test_malformed_elements_raise(self, value: str) -> None:
        with pytest.raises(RemoteProtocolError) as info:
            parse_extensions([value])
        assert info.value.status == 400


# (offer, options, response value or None to decline, agreed params)
SERVER_TABLE: list[tuple[str, DeflateOptions, str | None, DeflateParams | None]] = [
    # Chromium's offer, default options: both no-context-takeover added (7.1.1.1, 7.1.1.2)
    (
        f"{PMD}; client_max_window_bits",
        DEFAULT,
        f"{PMD}; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=12; client_max_window_bits=12",
        params(True, True, 12, 12),
    ),
    # Firefox's and Safari's: no client_max_window_bits -> never in the response (7.1.2.2)
    (
        PMD,
        DEFAULT,
        f"{PMD}; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12",
        params(True, True, 12, 15),
    ),
    (PMD, PLAIN, PMD, params(False, False, 15, 15, PLAIN)),
    (
        f"{PMD}; server_no_context_takeover",
        PLAIN,
        f"{PMD}; server_no_context_takeover",
        params(True, False, 15, 15, PLAIN),
    ),
    (
        f"{PMD}; client_no_context_takeover",
        PLAIN,
        f"{PMD}; client_no_context_takeover",
        params(False, True, 15, 15, PLAIN),
    ),
    # server_max_window_bits: the same or smaller than offered (7.1.2.1)
    (
        f"{PMD}; server_max_window_bits=10",
        PLAIN,
        f"{PMD}; server_max_window_bits=10",
        params(False, False, 10, 15, PLAIN),
    ),
    (
        f"{PMD}; server_max_window_bits=15",
        DEFAULT,
        f"{PMD}; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12",
        params(True, True, 12, 15),
    ),
    (
        f"{PMD}; server_max_window_bits=8",
        DEFAULT,
        f"{PMD}; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8",
        params(True, True, 8, 15),
    ),
    # client_max_window_bits with a value: the same or smaller (7.1.2.2)
    (
        f"{PMD}; client_max_window_bits=9",
        DEFAULT,
        f"{PMD}; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=12; client_max_window_bits=9",
        params(True, True, 12, 9),
    ),
    (
        f"{PMD}; client_max_window_bits=14",
        PLAIN,
        f"{PMD}; client_max_window_bits=14",
        params(False, False, 15, 14, PLAIN),
    ),
    (f"{PMD}; client_max_window_bits", PLAIN, PMD, params(False, False, 15, 15, PLAIN)),
    # all four at once, in any order
    (
        f"{PMD}; client_max_window_bits=10; server_max_window_bits=11; "
        "client_no_context_takeover; server_no_context_takeover",
        PLAIN,
        f"{PMD}; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=11; client_max_window_bits=10",
        params(True, True, 11, 10, PLAIN),
    ),
    # declined: unknown, duplicated, valueless where a value is required, bad values
    (f"{PMD}; foo", DEFAULT, None, None),
    (f"{PMD}; server_no_context_takeover; server_no_context_takeover", DEFAULT, None, None),
    (f"{PMD}; client_max_window_bits; client_max_window_bits=10", DEFAULT, None, None),
    (f"{PMD}; server_no_context_takeover=1", DEFAULT, None, None),
    (f"{PMD}; client_no_context_takeover=true", DEFAULT, None, None),
    (f"{PMD}; server_max_window_bits", DEFAULT, None, None),
    (f"{PMD}; server_max_window_bits=7", DEFAULT, None, None),
    (f"{PMD}; server_max_window_bits=16", DEFAULT, None, None),
    (f"{PMD}; server_max_window_bits=09", DEFAULT, None, None),
    (f"{PMD}; client_max_window_bits=0", DEFAULT, None, None),
    (f"{PMD}; client_max_window_bits=abc", DEFAULT, None, None),
    ("x-webkit-deflate-frame", DEFAULT, None, None),
    ("", DEFAULT, None, None),
]


class TestServerNegotiation:
    @pytest.mark.parametrize("offered,opts,response,agreed", SERVER_TABLE)
    def test_server_answers_an_offer(
        self,
        offered: str,
        opts: DeflateOptions,
        response: str | None,
        agreed: DeflateParams | None,
    ) -> None:
        got = negotiate([offered], opts)
        if response is None:
            assert got is None
        else:
            assert got == (agreed, response)

    def test_server_takes_the_first_acceptable_of_several_offers(self) -> None:
        """RFC 7692 7.1.3: a preferred offer, then a fallback."""
        got = negotiate([f"{PMD}; foo=1, {PMD}; server_max_window_bits=10, {PMD}"], PLAIN)
        assert got is not None and got[1] == f"{PMD}; server_max_window_bits=10"

    def test_server_finds_the_offer_in_a_later_header_value(self) -> None:
        got = negotiate(["x-other; a=1", f"{PMD}; client_max_window_bits"], PLAIN)
        assert got is not None and got[1] == PMD

    def test_server_skips_a_malformed_element_and_takes_the_next(self) -> None:
        got = negotiate([f'{PMD}; x="a b", {PMD}; server_no_context_takeover'], PLAIN)
        assert got is not None and got[1] == f"{PMD}; server_no_context_takeover"

    def test_server_declines_when_every_offer_is_bad(self) -> None:
        assert negotiate([f"{PMD}; a, {PMD}; server_max_window_bits=99"], DEFAULT) is None

    def test_server_declines_an_unterminated_quote_without_failing(self) -> None:
        assert negotiate([f'{PMD}; server_max_window_bits="10'], DEFAULT) is None

    def test_server_accepts_quoted_window_bits(self) -> None:
        got = negotiate([f'{PMD}; server_max_window_bits="10"'], PLAIN)
        assert got is not None and got[0].server_max_window_bits == 10

    def test_server_never_adds_client_max_window_bits_unasked(self) -> None:
        """RFC 7692 7.1.2.2: MUST NOT include it when the offer lacks it."""
        for opts in (DEFAULT, PLAIN, DeflateOptions(client_max_window_bits=9)):
            got = negotiate([f"{PMD}; server_no_context_takeover"], opts)
            assert got is not None and "client_max_window_bits" not in got[1]

    def test_server_honours_a_requested_server_no_context_takeover_whatever_its_options(
        self,
    ) -> None:
        """RFC 7692 7.1.1.1: an accepted offer with it MUST get it back."""
        got = negotiate([f"{PMD}; server_no_context_takeover"], PLAIN)
        assert got is not None and got[0].server_no_context_takeover


class TestClientOffer:
    def test_default_offer_has_a_fallback_without_server_max_window_bits(self) -> None:
        """RFC 7692 7.1.3: the server that cannot limit its window takes the second."""
        assert offer(DEFAULT) == (
            f"{PMD}; server_no_context_takeover; client_no_context_takeover; "
            f"server_max_window_bits=12; client_max_window_bits=12, "
            f"{PMD}; server_no_context_takeover; client_no_context_takeover; "
            "client_max_window_bits=12"
        )

    def test_plain_offer_announces_client_max_window_bits_without_a_value(self) -> None:
        assert offer(PLAIN) == f"{PMD}; client_max_window_bits"

    def test_the_offer_parses_under_the_grammar(self) -> None:
        assert [name for name, _ in parse_extensions([offer(DEFAULT)])] == [PMD, PMD]


class TestClientAccept:
    def test_no_extension_in_the_response_means_no_compression(self) -> None:
        assert accept([], DEFAULT) is None
        assert accept([""], DEFAULT) is None

    def test_accepts_the_default_servers_answer(self) -> None:
        got = accept(
            [
                f"{PMD}; server_no_context_takeover; client_no_context_takeover; "
                "server_max_window_bits=12; client_max_window_bits=12"
            ],
            DEFAULT,
        )
        assert got == params(True, True, 12, 12)

    def test_a_server_that_took_the_fallback_may_use_any_window(self) -> None:
        got = accept([f"{PMD}; server_no_context_takeover"], DEFAULT)
        assert got == params(True, True, 15, 12)

    def test_client_max_window_bits_absent_keeps_what_we_offered(self) -> None:
        got = accept([f"{PMD}; server_no_context_takeover"], DEFAULT)
        assert got is not None and got.client_max_window_bits == 12

    def test_server_may_lower_client_max_window_bits(self) -> None:
        got = accept([f"{PMD}; server_no_context_takeover; client_max_window_bits=9"], DEFAULT)
        assert got is not None and got.client_max_window_bits == 9

    def test_server_may_add_no_context_takeover_unasked(self) -> None:
        """RFC 7692 7.1.1.1 / 7.1.1.2: both MAY appear although not offered."""
        got = accept([f"{PMD}; server_no_context_takeover; client_no_context_takeover"], PLAIN)
        assert got == params(True, True, 15, 15, PLAIN)

    @pytest.mark.parametrize(
        "response",
        [
            "x-webkit-deflate-frame",  # RFC 6455 9.1: not offered
            f"{PMD}; server_no_context_takeover, {PMD}; server_no_context_takeover",  # twice
            f"{PMD}; server_no_context_takeover, x-other",
            f"{PMD}; server_no_context_takeover; foo",  # unknown parameter
            f"{PMD}; server_no_context_takeover; server_no_context_takeover",  # duplicated
            f"{PMD}; server_no_context_takeover; client_max_window_bits",  # needs a value
            f"{PMD}; server_no_context_takeover; server_max_window_bits=16",
            f"{PMD}; server_no_context_takeover; server_max_window_bits",
            f"{PMD}; server_no_context_takeover=yes",
            f"{PMD}; client_no_context_takeover",  # dropped server_no_context_takeover
            f'{PMD}; server_no_context_takeover; x="',  # does not parse
        ],
    )
    def test_client_fails_the_connection(self, response: str) -> None:
        """RFC 7692 5.1 / 7.1: the client MUST _Fail the WebSocket Connection_."""
        with pytest.raises(RemoteProtocolError):
            accept([response], DEFAULT)

    def test_client_keeps_its_window_when_the_server_names_a_larger_one(self) -> None:
        # RFC 7692 7.1.2.2: the server may ignore the value we offered; we keep ours
        got = accept([f"{PMD}; server_no_context_takeover; client_max_window_bits=13"], DEFAULT)
        assert got is not None and got.client_max_window_bits == 12

    def test_client_without_a_window_limit_accepts_any_client_window(self) -> None:
        got = accept([f"{PMD}; client_max_window_bits=15"], PLAIN)
        assert got is not None and got.client_max_window_bits == 15


OPTION_VARIANTS = [
    DeflateOptions(
        server_no_context_takeover=a,
        client_no_context_takeover=b,
        server_max_window_bits=c,
        client_max_window_bits=d,
    )
    for a, b, c, d in itertools.product([True, False], [True, False], [None, 9, 15], [None, 8, 12])
]


class TestBothEndsAgree:
    @pytest.mark.parametrize("client_opts", OPTION_VARIANTS)
    def test_client_accepts_what_our_server_answers(self, client_opts: DeflateOptions) -> None:
        for server_opts in (DEFAULT, PLAIN):
            got = negotiate([offer(client_opts)], server_opts)
            assert got is not None
            server_params, response = got
            client_params = accept([response], client_opts)
            assert client_params is not None
            # what one side compresses with, the other inflates with
            assert client_params.server_max_window_bits == server_params.server_max_window_bits
            assert client_params.client_max_window_bits <= server_params.client_max_window_bits
            assert client_params.server_no_context_takeover == (
                server_params.server_no_context_takeover
            )
            if server_params.client_no_context_takeover:
                assert client_params.client_no_context_takeover


class TestOptions:
    @pytest.mark.parametrize(
        "kw",
        [
            {"server_max_window_bits": 7},
            {"server_max_window_bits": 16},
            {"client_max_window_bits": 0},
            {"level": 10},
            {"level": -2},
            {"mem_level": 0},
            {"mem_level": 10},
            {"threshold": -1},
        ],
    )
    def test_out_of_range_values_are_refused(self, kw: dict[str, int]) -> None:
        with pytest.raises(ValueError):
            DeflateOptions(**kw)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        "kw",
        [
            {"server_no_context_takeover": 1},
            {"client_max_window_bits": 12.0},
            {"level": True},
            {"threshold": "128"},
        ],
    )
    def test_wrong_types_are_refused(self, kw: dict[str, object]) -> None:
        with pytest.raises(TypeError):
            DeflateOptions(**kw)  # type: ignore[arg-type]

    def test_options_are_frozen(self) -> None:
        with pytest.raises(dataclasses.FrozenInstanceError):
            DEFAULT.level = 9  # type: ignore[misc]

    def test_equal_params_from_two_handshakes_group_together(self) -> None:
        """A broadcast keys frames by parameters: equal ones must hash and compare equal."""
        a = negotiate([f"{PMD}; client_max_window_bits"], DEFAULT)
        b = negotiate([PMD + "; client_max_window_bits=15"], DEFAULT)
        c = negotiate([PMD], DEFAULT)
        assert a is not None and b is not None and c is not None
        groups: dict[DeflateParams, int] = {}
        for p in (a[0], b[0], c[0]):
            groups[p] = groups.get(p, 0) + 1
        assert groups == {a[0]: 2, c[0]: 1}


def _response(headers: list[tuple[str, str]], key: str) -> HttpMessage:
    base = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_key(key)),
    ]
    return HttpMessage(resp_code=101, headers=base + headers)


KEY = "dGhlIHNhbXBsZSBub25jZQ=="


class TestHandshakeHeaders:
    def test_server_101_carries_the_negotiated_extension(self) -> None:
        got = negotiate([f"{PMD}; client_max_window_bits"], DEFAULT)
        assert got is not None
        headers = server_handshake_headers(KEY, None, got[1])
        assert ("Sec-WebSocket-Extensions", got[1]) in headers

    def test_client_request_carries_the_offer(self) -> None:
        headers = client_handshake_headers("example.com", KEY, None, offer(DEFAULT))
        assert ("Sec-WebSocket-Extensions", offer(DEFAULT)) in headers

    def test_header_values_with_line_breaks_are_refused(self) -> None:
        with pytest.raises(LocalProtocolError):
            server_handshake_headers(KEY, None, "permessage-deflate\r\nX: y")

    def test_client_gets_subprotocol_and_params_from_the_101(self) -> None:
        resp = _response(
            [
                ("Sec-WebSocket-Protocol", "chat"),
                ("Sec-WebSocket-Extensions", f"{PMD}; server_no_context_takeover"),
            ],
            KEY,
        )
        proto, agreed = check_server_response(resp, KEY, ["chat"], DEFAULT)
        assert proto == "chat" and agreed == params(True, True, 15, 12)

    def test_client_that_offered_nothing_fails_on_an_extension(self) -> None:
        resp = _response([("Sec-WebSocket-Extensions", PMD)], KEY)
        with pytest.raises(RemoteProtocolError):
            check_server_handshake(resp, KEY, None)
        with pytest.raises(RemoteProtocolError):
            check_server_response(resp, KEY, None, None)

    def test_client_fails_on_a_bad_extension_response(self) -> None:
        resp = _response([("Sec-WebSocket-Extensions", f"{PMD}; bogus")], KEY)
        with pytest.raises(RemoteProtocolError):
            check_server_response(resp, KEY, None, DEFAULT)


def test_params_refuse_window_bits_zlib_cannot_use() -> None:
    with pytest.raises(ValueError):
        DeflateParams(True, True, 7, 15, 6, 8, 0)


GRAMMAR = [
    *' ,;="\\\t',
    "permessage-deflate",
    "server_no_context_takeover",
    "client_no_context_takeover",
    "server_max_window_bits",
    "client_max_window_bits",
    "x",
    *["8", "9", "12", "15", "16", "08", "\u00e9", "\r", "\x00"],
]


def test_fuzzed_headers_decline_or_fail_as_documented() -> None:
    """negotiate never raises; parse_extensions and accept raise RemoteProtocolError only."""
    rnd = random.Random(7692)
    for _ in range(3000):
        values = ["".join(rnd.choice(GRAMMAR) for _ in range(rnd.randrange(12))) for _ in range(2)]
        got = negotiate(values, rnd.choice([DEFAULT, PLAIN]))
        if got is not None:
            assert parse_extensions([got[1]])  # our answer is always well-formed
        try:
            parse_extensions(values)
        except RemoteProtocolError:
            pass
        try:
            accept(values, DEFAULT)
        except RemoteProtocolError:
            pass

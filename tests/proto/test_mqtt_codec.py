"""MQTT codec: every control packet of 3.1.1 and 5.0 encoded, then decoded fed whole,
byte by byte and with trailing data; hand-built wire bytes from the spec decode to the
packets the encoder writes."""

from __future__ import annotations

import dataclasses

import pytest

from mgpy.errors import LocalProtocolError
from mgpy.proto.mqtt import (
    MQTT_V5,
    MQTT_V311,
    NEED_DATA,
    NO_PROPERTIES,
    Auth,
    Connack,
    Connect,
    Disconnect,
    MqttReader,
    Packet,
    PingReq,
    PingResp,
    Properties,
    PubAck,
    PubComp,
    Publish,
    PublishTemplate,
    PubRec,
    PubRel,
    ReasonCode,
    Suback,
    Subscribe,
    Subscription,
    Unsuback,
    Unsubscribe,
    Will,
    encode_varint,
)
from mgpy.proto.mqtt_wire import read_varint
from tests.proto.test_mqtt_helpers import (
    one,
    receive,
    ref_connect,
    ref_packet,
    ref_str,
    ref_varint,
)

BOTH = pytest.mark.parametrize("version", [MQTT_V311, MQTT_V5])

USER = (("region", "eu"), ("region", "us"), ("\u00e9t\u00e9", "\U0001f600"))


def roundtrip(pkt: Packet, version: int, side: str) -> Packet:
    """Encode ``pkt``, decode it on ``side`` (fed three ways); return the decoded packet."""
    if isinstance(pkt, Connect):
        r = receive(pkt.encode(), "server", opened=False)
        assert r.error is None, r.error
        assert len(r.packets) == 1
        return r.packets[0]
    return one(pkt.encode(version), side, version, opened=not isinstance(pkt, Connack))


class TestVariableByteInteger:
    @pytest.mark.parametrize(
        "n", [0, 1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, 268_435_455]
    )
    def test_encoder_matches_the_spec_algorithm_at_every_boundary(self, n: int) -> None:
        assert encode_varint(n) == ref_varint(n)
        assert read_varint(ref_varint(n), 0, 4) == (n, len(ref_varint(n)))

    @pytest.mark.parametrize("n", [-1, 268_435_456])
    def test_encoder_refuses_values_out_of_range(self, n: int) -> None:
        with pytest.raises(LocalProtocolError):
            encode_varint(n)


class TestConnect:
    def test_server_receives_a_minimal_3_1_1_connect_built_by_hand(self) -> None:
        pkt = receive(ref_connect(4), opened=False).packets[0]
        assert pkt == Connect("c", True, 60, version=4)

    def test_server_receives_a_5_0_connect_with_everything(self) -> None:
        will = Will(
            "dev/1/status",
            b"offline",
            qos=1,
            retain=True,
            properties=Properties(
                will_delay_interval=30,
                payload_format_indicator=1,
                message_expiry_interval=3600,
                content_type="text/plain",
                response_topic="dev/1/reply",
                correlation_data=b"\x00\x01",
                user_properties=USER,
            ),
        )
        pkt = Connect(
            "dev-1",
            clean_start=False,
            keepalive=45,
            username="user",
            password=b"\x00secret\xff",
            will=will,
            properties=Properties(
                session_expiry_interval=600,
                receive_maximum=32,
                maximum_packet_size=4096,
                topic_alias_maximum=5,
                request_response_information=True,
                request_problem_information=False,
                authentication_method="SCRAM-SHA-1",
                authentication_data=b"client-first",
                user_properties=USER,
            ),
        )
        assert roundtrip(pkt, MQTT_V5, "server") == pkt

    @BOTH
    def test_user_name_password_and_will_survive_the_trip(self, version: int) -> None:
        pkt = Connect("", True, 0, "u", b"p", Will("last/will", b"x", 2), version=version)
        assert roundtrip(pkt, version, "server") == pkt

    def test_5_0_allows_a_password_without_a_user_name(self) -> None:
        pkt = Connect("c", password=b"token", version=MQTT_V5)
        assert roundtrip(pkt, MQTT_V5, "server") == pkt

    def test_3_1_1_encoder_refuses_a_password_without_a_user_name(self) -> None:
        with pytest.raises(LocalProtocolError):
            Connect("c", password=b"token", version=MQTT_V311).encode()

    def test_3_1_1_encoder_refuses_an_empty_client_id_without_clean_session(self) -> None:
        with pytest.raises(LocalProtocolError):
            Connect("", clean_start=False, version=MQTT_V311).encode()

    def test_bom_in_a_string_is_kept_not_stripped(self) -> None:
        """[MQTT-1.5.4-3]: 0xEF 0xBB 0xBF is U+FEFF and stays."""
        pkt = receive(ref_connect(5, client_id=b"\xef\xbb\xbfid"), opened=False).packets[0]
        assert isinstance(pkt, Connect)
        assert pkt.client_id == "\ufeffid"

    def test_encode_with_another_version_is_refused(self) -> None:
        with pytest.raises(LocalProtocolError):
            Connect("c", version=MQTT_V5).encode(MQTT_V311)

    def test_reader_reports_the_version_the_connect_chose(self) -> None:
        for v in (MQTT_V311, MQTT_V5):
            r = MqttReader(side="server")
            assert r.version is None and not r.connected
            pkt, _ = r.next_event(Connect("c", version=v).encode())
            assert isinstance(pkt, Connect) and r.version == v and r.connected


class TestConnack:
    @BOTH
    def test_accepted_with_session_present(self, version: int) -> None:
        assert roundtrip(Connack(True), version, "client") == Connack(True)

    def test_5_0_connack_with_every_property(self) -> None:
        pkt = Connack(
            False,
            ReasonCode.SUCCESS,
            Properties(
                session_expiry_interval=0xFFFFFFFF,
                assigned_client_identifier="auto-1",
                server_keep_alive=30,
                receive_maximum=20,
                topic_alias_maximum=10,
                maximum_qos=1,
                retain_available=False,
                maximum_packet_size=1 << 20,
                wildcard_subscription_available=True,
                subscription_identifier_available=True,
                shared_subscription_available=False,
                response_information="resp/",
                server_reference="other:1883",
                reason_string="welcome",
                authentication_method="m",
                authentication_data=b"d",
                user_properties=USER,
            ),
        )
        assert roundtrip(pkt, MQTT_V5, "client") == pkt

    @pytest.mark.parametrize(
        ("v3", "reason"),
        [
            (1, ReasonCode.UNSUPPORTED_PROTOCOL_VERSION),
            (2, ReasonCode.CLIENT_IDENTIFIER_NOT_VALID),
            (3, ReasonCode.SERVER_UNAVAILABLE),
            (4, ReasonCode.BAD_USER_NAME_OR_PASSWORD),
            (5, ReasonCode.NOT_AUTHORIZED),
        ],
    )
    def test_3_1_1_return_codes_map_to_5_0_reason_codes_both_ways(
        self, v3: int, reason: ReasonCode
    ) -> None:
        wire = bytes((0x20, 2, 0, v3))
        assert Connack(False, reason).encode(MQTT_V311) == wire
        assert one(wire, "client", MQTT_V311, opened=False) == Connack(False, reason)

    def test_a_5_0_refusal_without_a_3_1_1_twin_becomes_server_unavailable(self) -> None:
        assert Connack(False, ReasonCode.QUOTA_EXCEEDED).encode(MQTT_V311) == b"\x20\x02\x00\x03"

    def test_refusal_with_session_present_is_not_encoded(self) -> None:
        with pytest.raises(LocalProtocolError):
            Connack(True, ReasonCode.NOT_AUTHORIZED).encode(MQTT_V5)


class TestPublish:
    def test_spec_example_bytes_decode(self) -> None:
        """A QoS 1 PUBLISH to "a/b" with id 10, built by hand (3.3.2 figure)."""
        wire = ref_packet(0x32, ref_str("a/b") + b"\x00\x0a" + b"\x00" + b"payload")
        pkt = one(wire)
        assert pkt == Publish("a/b", b"payload", 1, packet_id=10)
        assert Publish("a/b", b"payload", 1, packet_id=10).encode(MQTT_V5) == wire

    @BOTH
    @pytest.mark.parametrize("qos", [0, 1, 2])
    @pytest.mark.parametrize("retain", [False, True])
    def test_every_qos_and_retain_both_directions(
        self, version: int, qos: int, retain: bool
    ) -> None:
        pkt = Publish("s/k/t", b"21.5", qos, retain, dup=qos > 0, packet_id=qos and 65535)
        for side in ("server", "client"):
            assert roundtrip(pkt, version, side) == pkt

    def test_5_0_message_properties_and_subscription_ids_to_a_client(self) -> None:
        pkt = Publish(
            "x",
            "caf\u00e9".encode(),
            1,
            packet_id=3,
            properties=Properties(
                payload_format_indicator=1,
                message_expiry_interval=10,
                topic_alias=4,
                response_topic="r/1",
                correlation_data=b"cd",
                user_properties=USER,
                subscription_identifiers=(1, 268_435_455),
                content_type="text/plain",
            ),
        )
        assert roundtrip(pkt, MQTT_V5, "client") == pkt

    def test_5_0_empty_topic_with_a_topic_alias(self) -> None:
        pkt = Publish("", b"v", properties=Properties(topic_alias=2))
        assert roundtrip(pkt, MQTT_V5, "server") == pkt

    @pytest.mark.parametrize("size", [0, 1, 127, 128, 16_384, 300_000])
    def test_payload_sizes_across_remaining_length_boundaries(self, size: int) -> None:
        payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
        pkt = Publish("big", payload, 1, packet_id=1)
        assert roundtrip(pkt, MQTT_V5, "server") == pkt

    def test_unicode_topic(self) -> None:
        pkt = Publish("\u0434\u043e\u043c/\u043a\u0443\u0445\u043d\u044f/\U0001f321", b"1")
        assert roundtrip(pkt, MQTT_V5, "server") == pkt

    @pytest.mark.parametrize(
        "kw",
        [
            {"qos": 3, "packet_id": 1},
            {"qos": 1},
            {"qos": 1, "packet_id": 65536},
            {"qos": 0, "packet_id": 5},
            {"qos": 0, "dup": True},
            {"topic": "a/+"},
            {"topic": "a/#"},
            {"topic": ""},
            {"topic": "a\x00b"},
        ],
    )
    def test_encoder_refuses_what_a_peer_must_refuse(self, kw: dict[str, object]) -> None:
        fields: dict[str, object] = {"topic": "t"} | kw
        with pytest.raises(LocalProtocolError):
            Publish(**fields).encode(MQTT_V5)  # type: ignore[arg-type]

    def test_properties_are_refused_on_3_1_1(self) -> None:
        with pytest.raises(LocalProtocolError):
            Publish("t", properties=Properties(content_type="x")).encode(MQTT_V311)


class TestAcknowledgements:
    ACKS = (PubAck, PubRec, PubRel, PubComp)

    @BOTH
    @pytest.mark.parametrize("cls", ACKS)
    def test_short_form_is_two_bytes_and_round_trips(self, version: int, cls: type) -> None:
        pkt = cls(1234)
        wire = pkt.encode(version)
        assert len(wire) == 4
        assert wire[0] == (cls.TYPE << 4) | (2 if cls is PubRel else 0)
        for side in ("server", "client"):
            assert roundtrip(pkt, version, side) == pkt

    @pytest.mark.parametrize(
        ("cls", "code"),
        [
            (PubAck, ReasonCode.NO_MATCHING_SUBSCRIBERS),
            (PubRec, ReasonCode.QUOTA_EXCEEDED),
            (PubRel, ReasonCode.PACKET_IDENTIFIER_NOT_FOUND),
            (PubComp, ReasonCode.PACKET_IDENTIFIER_NOT_FOUND),
        ],
    )
    def test_5_0_reason_code_alone_takes_three_bytes(self, cls: type, code: ReasonCode) -> None:
        wire = cls(7, code).encode(MQTT_V5)
        assert wire[1] == 3
        assert roundtrip(cls(7, code), MQTT_V5, "client") == cls(7, code)

    @pytest.mark.parametrize("cls", ACKS)
    def test_5_0_reason_string_and_user_properties(self, cls: type) -> None:
        pkt = cls(9, ReasonCode.SUCCESS, Properties(reason_string="ok", user_properties=USER))
        assert roundtrip(pkt, MQTT_V5, "server") == pkt

    def test_5_0_reason_code_not_allowed_in_the_packet_is_not_encoded(self) -> None:
        with pytest.raises(LocalProtocolError):
            PubRel(1, ReasonCode.QUOTA_EXCEEDED).encode(MQTT_V5)

    def test_3_1_1_reason_code_is_not_encoded(self) -> None:
        with pytest.raises(LocalProtocolError):
            PubAck(1, ReasonCode.QUOTA_EXCEEDED).encode(MQTT_V311)


class TestSubscribe:
    @BOTH
    def test_several_filters_with_their_qos(self, version: int) -> None:
        pkt = Subscribe(
            10,
            [
                Subscription("sensors/+/temp", 1),
                Subscription("cmd/#", 2),
                Subscription("$SYS/broker/uptime", 0),
                Subscription("$share/g1/jobs/+", 1),
            ],
        )
        assert roundtrip(pkt, version, "server") == pkt

    def test_5_0_options_and_subscription_identifier(self) -> None:
        pkt = Subscribe(
            1,
            [
                Subscription("a", 2, no_local=True, retain_as_published=True, retain_handling=2),
                Subscription("b/+", 0, retain_handling=1),
            ],
            Properties(subscription_identifiers=(77,), user_properties=USER),
        )
        assert roundtrip(pkt, MQTT_V5, "server") == pkt

    def test_3_1_1_options_byte_is_the_qos_only(self) -> None:
        wire = Subscribe(1, [Subscription("a", 1, no_local=True)]).encode(MQTT_V311)
        assert wire == ref_packet(0x82, b"\x00\x01" + ref_str("a") + b"\x01")

    @BOTH
    def test_suback_codes_in_order(self, version: int) -> None:
        pkt = Suback(10, [ReasonCode.GRANTED_QOS_1, ReasonCode.UNSPECIFIED_ERROR, 2])
        assert roundtrip(pkt, version, "client") == Suback(
            10, [ReasonCode.GRANTED_QOS_1, ReasonCode.UNSPECIFIED_ERROR, ReasonCode.GRANTED_QOS_2]
        )

    def test_5_0_suback_failures_become_0x80_for_3_1_1(self) -> None:
        wire = Suback(1, [ReasonCode.TOPIC_FILTER_INVALID, 1]).encode(MQTT_V311)
        assert wire == b"\x90\x04\x00\x01\x80\x01"

    @BOTH
    def test_unsubscribe_and_unsuback(self, version: int) -> None:
        pkt = Unsubscribe(5, ["a/+", "$share/g/b"])
        assert roundtrip(pkt, version, "server") == pkt
        ack = Unsuback(5, [ReasonCode.SUCCESS, ReasonCode.NO_SUBSCRIPTION_EXISTED])
        want = ack if version == MQTT_V5 else Unsuback(5)
        assert roundtrip(ack, version, "client") == want

    def test_empty_lists_are_not_encoded(self) -> None:
        with pytest.raises(LocalProtocolError):
            Subscribe(1, []).encode(MQTT_V5)
        with pytest.raises(LocalProtocolError):
            Unsubscribe(1, []).encode(MQTT_V5)

    def test_no_local_on_a_shared_subscription_is_not_encoded(self) -> None:
        with pytest.raises(LocalProtocolError):
            Subscribe(1, [Subscription("$share/g/a", no_local=True)]).encode(MQTT_V5)


class TestPingDisconnectAuth:
    @BOTH
    def test_ping_request_and_response(self, version: int) -> None:
        assert PingReq().encode(version) == b"\xc0\x00"
        assert PingResp().encode(version) == b"\xd0\x00"
        assert roundtrip(PingReq(), version, "server") == PingReq()
        assert roundtrip(PingResp(), version, "client") == PingResp()

    @BOTH
    def test_normal_disconnect_is_two_bytes(self, version: int) -> None:
        assert Disconnect().encode(version) == b"\xe0\x00"
        assert roundtrip(Disconnect(), version, "server") == Disconnect()

    def test_5_0_disconnect_from_the_server_with_reason_and_reference(self) -> None:
        pkt = Disconnect(
            ReasonCode.USE_ANOTHER_SERVER,
            Properties(server_reference="b:1883", reason_string="moving"),
        )
        assert roundtrip(pkt, MQTT_V5, "client") == pkt
        assert Disconnect(ReasonCode.SERVER_BUSY).encode(MQTT_V5) == b"\xe0\x01\x89"

    def test_5_0_client_disconnect_may_set_session_expiry(self) -> None:
        pkt = Disconnect(
            ReasonCode.DISCONNECT_WITH_WILL_MESSAGE, Properties(session_expiry_interval=0)
        )
        assert roundtrip(pkt, MQTT_V5, "server") == pkt

    def test_auth_exchange(self) -> None:
        assert Auth().encode(MQTT_V5) == b"\xf0\x00"
        pkt = Auth(
            ReasonCode.CONTINUE_AUTHENTICATION,
            Properties(authentication_method="SCRAM-SHA-1", authentication_data=b"xyz"),
        )
        assert roundtrip(pkt, MQTT_V5, "server") == pkt
        assert roundtrip(pkt, MQTT_V5, "client") == pkt

    def test_auth_may_come_before_the_connack(self) -> None:
        pkt = Auth(ReasonCode.CONTINUE_AUTHENTICATION, Properties(authentication_method="m"))
        r = receive(pkt.encode(MQTT_V5) + Connack().encode(MQTT_V5), "client", 5, opened=False)
        assert r.error is None and r.packets == [pkt, Connack()]

    def test_auth_does_not_exist_in_3_1_1(self) -> None:
        with pytest.raises(LocalProtocolError):
            Auth().encode(MQTT_V311)


class TestReader:
    def test_several_packets_in_one_buffer_come_out_in_order(self) -> None:
        pkts: list[Packet] = [
            Publish("a", b"1"),
            Publish("b", b"2", 1, packet_id=1),
            PubRel(9),
            PingReq(),
            Subscribe(2, [Subscription("x")]),
        ]
        r = receive(b"".join(p.encode(MQTT_V5) for p in pkts))
        assert r.error is None and r.packets == pkts

    def test_nothing_is_consumed_until_a_packet_is_whole(self) -> None:
        wire = Publish("t", b"x" * 200, 1, packet_id=1).encode(MQTT_V5)
        r = MqttReader(MQTT_V5, side="client")
        r.next_event(Connack().encode(MQTT_V5))
        for i in range(len(wire)):
            assert r.next_event(wire[:i]) == (NEED_DATA, 0)
        pkt, n = r.next_event(wire)
        assert n == len(wire) and isinstance(pkt, Publish)

    def test_reader_works_on_a_bytearray_buffer_and_payloads_are_bytes(self) -> None:
        wire = bytearray(Publish("t", b"y" * 5000).encode(MQTT_V5))
        r = MqttReader(MQTT_V5, side="client")
        r.next_event(Connack().encode(MQTT_V5))
        pkt, n = r.next_event(wire)
        assert isinstance(pkt, Publish) and type(pkt.payload) is bytes
        del wire[:n]  # no buffer export kept alive

    def test_constructor_rejects_nonsense(self) -> None:
        with pytest.raises(ValueError):
            MqttReader(side="client")
        with pytest.raises(ValueError):
            MqttReader(3)
        with pytest.raises(ValueError):
            MqttReader(side="both")  # type: ignore[arg-type]


class TestPublishTemplate:
    @BOTH
    @pytest.mark.parametrize("qos", [0, 1, 2])
    def test_template_bytes_equal_the_publish_encoder(self, version: int, qos: int) -> None:
        props = (
            Properties(content_type="c", user_properties=USER)
            if version == MQTT_V5
            else NO_PROPERTIES
        )
        t = PublishTemplate("a/b", b"payload", props)
        for retain in (False, True):
            for dup in [False, True] if qos else [False]:
                pid = 77 if qos else 0
                want = Publish("a/b", b"payload", qos, retain, dup, pid, props).encode(version)
                assert t.encode(version, qos, pid, retain, dup) == want
                assert t.size(version, qos) == len(want)

    def test_qos0_receivers_share_one_bytes_object(self) -> None:
        t = PublishTemplate("a", b"x" * 64)
        assert t.encode(MQTT_V5) is t.encode(MQTT_V5)

    def test_subscription_ids_are_per_receiver_and_aliases_are_dropped(self) -> None:
        props = Properties(topic_alias=3, subscription_identifiers=(9,), content_type="c")
        t = PublishTemplate("a", b"x", props)
        got = one(t.encode(MQTT_V5, 1, 5, subscription_ids=(1, 2)), "client")
        assert isinstance(got, Publish)
        assert got.properties == Properties(content_type="c", subscription_identifiers=(1, 2))
        plain = one(t.encode(MQTT_V5, 1, 5), "client")
        assert isinstance(plain, Publish)
        assert plain.properties == Properties(content_type="c")

    def test_invalid_topic_or_packet_id_is_refused(self) -> None:
        with pytest.raises(LocalProtocolError):
            PublishTemplate("a/#")
        with pytest.raises(LocalProtocolError):
            PublishTemplate("a").encode(MQTT_V5, 1, 0)


def test_properties_are_immutable_and_print_only_what_is_set() -> None:
    p = Properties(reason_string="r")
    assert repr(p) == "Properties(reason_string='r')"
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.reason_string = "x"  # type: ignore[misc]
    assert repr(NO_PROPERTIES) == "Properties()"

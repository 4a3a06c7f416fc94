"""Strict decoding: every malformed or forbidden packet raises MqttError with the 5.0
reason code to send (0x81 Malformed, 0x82 Protocol Error, 0x84, 0x85, 0x8F, 0x90, 0x95,
0x99), whole, byte by byte and with trailing data alike; the reader stays failed;
``error_reply`` picks the CONNACK / DISCONNECT / nothing the spec asks for."""

from __future__ import annotations

import pytest

from mgpy.errors import LimitExceeded, RemoteProtocolError
from mgpy.proto.mqtt import (
    MQTT_V5,
    MQTT_V311,
    Connack,
    Connect,
    Disconnect,
    MqttError,
    MqttLimitExceeded,
    MqttReader,
    Properties,
    Publish,
    ReasonCode,
    error_reply,
)
from tests.proto.test_mqtt_helpers import (
    CONNECT_BYTES,
    drive,
    receive,
    ref_connect,
    ref_packet,
    ref_str,
    refused,
)

R = ReasonCode
MALFORMED = R.MALFORMED_PACKET
PROTOCOL = R.PROTOCOL_ERROR
BOTH = pytest.mark.parametrize("version", [MQTT_V311, MQTT_V5])


def props(*items: bytes) -> bytes:
    body = b"".join(items)
    return bytes((len(body),)) + body


def publish(
    topic: bytes = b"t",
    flags: int = 0x32,
    pid: bytes = b"\x00\x01",
    p: bytes = b"\x00",
    payload: bytes = b"x",
) -> bytes:
    """A 5.0 PUBLISH built by hand (flags 0x32 = QoS 1)."""
    qos = (flags >> 1) & 3
    return ref_packet(flags, ref_str(topic) + (pid if qos else b"") + p + payload)


class TestFixedHeader:
    @BOTH
    @pytest.mark.parametrize(
        "b0",
        [
            0x21,  # CONNACK to a server (flags checked first: wrong flags)
            0x41,
            0x48,
            0x60,
            0x63,
            0x6A,
            0x80,
            0x83,
            0xA0,
            0xC1,
            0xE1,
            0xE8,
        ],
    )
    def test_reserved_flag_bits_must_be_as_listed(self, version: int, b0: int) -> None:
        """[MQTT-2.1.3-1] (3.1.1 [MQTT-2.2.2-1/2]); PUBREL, SUBSCRIBE, UNSUBSCRIBE need 0010."""
        assert refused(bytes((b0, 2, 0, 1)), version=version) == MALFORMED

    def test_auth_flags_must_be_zero(self) -> None:
        assert refused(b"\xf1\x00") == MALFORMED  # [MQTT-3.15.1-1]

    @BOTH
    def test_packet_type_0_is_reserved(self, version: int) -> None:
        assert refused(b"\x00\x00", version=version) == MALFORMED

    def test_type_15_is_reserved_in_3_1_1(self) -> None:
        assert refused(b"\xf0\x00", version=MQTT_V311) == MALFORMED

    @BOTH
    def test_remaining_length_of_five_bytes(self, version: int) -> None:
        assert refused(b"\x30\xff\xff\xff\xff\x01", version=version) == MALFORMED

    @BOTH
    def test_remaining_length_not_minimal(self, version: int) -> None:
        """[MQTT-1.5.5-1]: 0x80 0x00 encodes 0 in two bytes."""
        assert refused(b"\xc0\x80\x00", version=version) == MALFORMED

    def test_too_large_is_refused_before_the_body_arrives(self) -> None:
        r = MqttReader(side="server", max_packet_size=100)
        r.next_event(CONNECT_BYTES[5])
        head = b"\x30\x65"  # declares 101 bytes of body
        with pytest.raises(MqttLimitExceeded) as info:
            r.next_event(head)
        assert info.value.reason_code == R.PACKET_TOO_LARGE
        assert isinstance(info.value, LimitExceeded) and info.value.ws_code == 1009

    def test_max_packet_size_counts_the_fixed_header(self) -> None:
        wire = Publish("t", b"x" * 100).encode(MQTT_V5)
        assert receive(wire, max_packet_size=len(wire)).error is None
        assert refused(wire, max_packet_size=len(wire) - 1) == R.PACKET_TOO_LARGE

    def test_the_connect_itself_is_bounded(self) -> None:
        big = Connect("c" * 500).encode()
        r = receive(big, opened=False, max_packet_size=100)
        assert r.code == R.PACKET_TOO_LARGE


class TestPhaseAndDirection:
    def test_first_packet_must_be_connect(self) -> None:
        """[MQTT-3.1.0-1]."""
        r = receive(b"\xc0\x00", opened=False)
        assert r.code == PROTOCOL

    def test_second_connect(self) -> None:
        """[MQTT-3.1.0-2]."""
        assert refused(CONNECT_BYTES[5]) == PROTOCOL

    def test_client_needs_connack_first(self) -> None:
        """[MQTT-3.2.0-1]."""
        r = receive(b"\xd0\x00", "client", MQTT_V5, opened=False)
        assert r.code == PROTOCOL

    def test_second_connack(self) -> None:
        """[MQTT-3.2.0-2]."""
        assert refused(Connack().encode(5), "client") == PROTOCOL

    @pytest.mark.parametrize(
        "wire", [b"\x20\x02\x00\x00", b"\x90\x03\x00\x01\x00", b"\xb0\x02\x00\x01", b"\xd0\x00"]
    )
    def test_server_refuses_packets_only_a_server_sends(self, wire: bytes) -> None:
        assert refused(wire) == PROTOCOL

    @pytest.mark.parametrize(
        "wire", [b"\x82\x04\x00\x01\x00\x00", b"\xa2\x02\x00\x01", b"\xc0\x00"]
    )
    def test_client_refuses_packets_only_a_client_sends(self, wire: bytes) -> None:
        assert refused(wire, "client") == PROTOCOL

    def test_3_1_1_server_sends_no_disconnect(self) -> None:
        assert refused(b"\xe0\x00", "client", MQTT_V311) == PROTOCOL

    def test_reader_stays_failed(self) -> None:
        r = MqttReader(side="server")
        res = drive(r, [b"\xc0\x00"])
        assert res.error is not None
        with pytest.raises(MqttError) as info:
            r.next_event(CONNECT_BYTES[5])
        assert info.value.reason_code == PROTOCOL
        assert r.failed is res.error


class TestConnect:
    def test_unknown_protocol_name(self) -> None:
        """[MQTT-3.1.2-1]: 0x84 (3.1.1: return code 1)."""
        wire = ref_packet(0x10, ref_str("MQTX") + b"\x04\x02\x00\x3c" + ref_str("c"))
        assert receive(wire, opened=False).code == R.UNSUPPORTED_PROTOCOL_VERSION

    @pytest.mark.parametrize(("name", "level"), [("MQIsdp", 3), ("MQTT", 3), ("MQTT", 6)])
    def test_unsupported_protocol_level(self, name: str, level: int) -> None:
        """[MQTT-3.1.2-2]."""
        wire = ref_packet(0x10, ref_str(name) + bytes((level, 2)) + b"\x00\x3c" + ref_str("c"))
        assert receive(wire, opened=False).code == R.UNSUPPORTED_PROTOCOL_VERSION

    def test_server_limited_to_one_version(self) -> None:
        r = receive(Connect("c", version=MQTT_V311).encode(), opened=False, accept=MQTT_V5)
        assert r.code == R.UNSUPPORTED_PROTOCOL_VERSION

    @BOTH
    @pytest.mark.parametrize(
        "flags",
        [
            0x03,  # reserved bit [MQTT-3.1.2-3]
            0x0A,  # will QoS 1 without will [MQTT-3.1.2-11]
            0x22,  # will retain without will [MQTT-3.1.2-13]
            0x1E,  # will QoS 3 [MQTT-3.1.2-12]
        ],
    )
    def test_bad_connect_flags(self, version: int, flags: int) -> None:
        assert receive(ref_connect(version, flags), opened=False).code == MALFORMED

    def test_3_1_1_password_without_user_name(self) -> None:
        """[MQTT-3.1.2-22] (3.1.1)."""
        wire = ref_connect(4, 0x42, ref_str(b"pw"))
        assert receive(wire, opened=False).code == MALFORMED

    def test_3_1_1_empty_client_id_needs_clean_session(self) -> None:
        """[MQTT-3.1.3-8] (3.1.1): CONNACK 0x02 Identifier rejected."""
        wire = ref_connect(4, 0x00, client_id=b"")
        assert receive(wire, opened=False).code == R.CLIENT_IDENTIFIER_NOT_VALID

    def test_5_0_empty_client_id_is_allowed_with_any_clean_start(self) -> None:
        assert receive(ref_connect(5, 0x00, client_id=b""), opened=False).error is None

    @BOTH
    def test_missing_fields_and_extra_bytes(self, version: int) -> None:
        """[MQTT-3.1.3-1] [MQTT-3.1.4-1]: the flags say what follows, nothing else."""
        assert receive(ref_connect(version, 0x82), opened=False).code == MALFORMED  # no user
        assert receive(ref_connect(version, 0x02, b"\x00"), opened=False).code == MALFORMED

    @BOTH
    def test_will_topic_with_a_wildcard(self, version: int) -> None:
        p = b"\x00" if version == 5 else b""
        wire = ref_connect(version, 0x06, p + ref_str("a/+") + ref_str(b"x"))
        assert receive(wire, opened=False).code == R.TOPIC_NAME_INVALID

    def test_will_payload_declared_utf8_must_be_utf8(self) -> None:
        wire = ref_connect(5, 0x06, props(b"\x01\x01") + ref_str("w") + ref_str(b"\xff"))
        assert receive(wire, opened=False).code == R.PAYLOAD_FORMAT_INVALID

    def test_authentication_data_without_method(self) -> None:
        body = ref_str("MQTT") + b"\x05\x02\x00\x3c" + props(b"\x16" + ref_str(b"d")) + ref_str("c")
        assert receive(ref_packet(0x10, body), opened=False).code == PROTOCOL


class TestStrings:
    @pytest.mark.parametrize(
        "raw",
        [
            b"a\x00b",  # [MQTT-1.5.4-2]
            b"\xed\xa0\x80",  # an encoded surrogate [MQTT-1.5.4-1]
            b"\xc0\xaf",  # overlong "/"
            b"\xff",
            b"\xe2\x82",  # truncated sequence
        ],
    )
    def test_ill_formed_utf8_in_a_topic(self, raw: bytes) -> None:
        assert refused(publish(topic=raw)) == MALFORMED

    def test_string_running_past_the_packet(self) -> None:
        assert refused(ref_packet(0x30, b"\x00\x09abc")) == MALFORMED

    def test_user_name_with_a_null(self) -> None:
        wire = ref_connect(5, 0x82, ref_str(b"u\x00"))
        assert receive(wire, opened=False).code == MALFORMED


class TestPublish:
    @BOTH
    def test_qos_3(self, version: int) -> None:
        assert refused(publish(flags=0x36), version=version) == MALFORMED  # [MQTT-3.3.1-4]

    @BOTH
    def test_dup_on_qos_0(self, version: int) -> None:
        assert refused(publish(flags=0x38), version=version) == MALFORMED  # [MQTT-3.3.1-2]

    @BOTH
    def test_packet_id_0(self, version: int) -> None:
        p = b"\x00" if version == 5 else b""
        assert refused(publish(pid=b"\x00\x00", p=p), version=version) == PROTOCOL

    @BOTH
    @pytest.mark.parametrize("topic", [b"a/+", b"#", b"a/#/b", b"+"])
    def test_wildcards_in_a_topic_name(self, version: int, topic: bytes) -> None:
        """[MQTT-3.3.2-2]."""
        p = b"\x00" if version == 5 else b""
        assert refused(publish(topic=topic, p=p), version=version) == R.TOPIC_NAME_INVALID

    @BOTH
    def test_empty_topic_without_alias(self, version: int) -> None:
        p = b"\x00" if version == 5 else b""
        assert refused(publish(topic=b"", p=p), version=version) == PROTOCOL

    def test_topic_longer_than_the_limit(self) -> None:
        assert refused(publish(topic=b"a" * 11), max_topic_length=10) == R.TOPIC_NAME_INVALID
        assert receive(publish(topic=b"a" * 10), max_topic_length=10).error is None

    def test_topic_deeper_than_the_limit(self) -> None:
        assert refused(publish(topic=b"a/" * 4 + b"a"), max_topic_levels=4) == R.TOPIC_NAME_INVALID

    def test_truncated_packet_id(self) -> None:
        assert refused(ref_packet(0x32, ref_str("t") + b"\x01")) == MALFORMED

    def test_subscription_identifier_from_a_client(self) -> None:
        """[MQTT-3.3.4-6]; the same PUBLISH is fine from a server."""
        wire = publish(p=props(b"\x0b\x05"))
        assert refused(wire) == PROTOCOL
        assert receive(wire, "client").error is None

    def test_payload_declared_utf8_is_checked(self) -> None:
        assert refused(publish(p=props(b"\x01\x01"), payload=b"\xff")) == R.PAYLOAD_FORMAT_INVALID
        assert receive(publish(p=props(b"\x01\x01"), payload="\u00e9".encode())).error is None

    def test_response_topic_with_a_wildcard(self) -> None:
        """[MQTT-3.3.2-14]."""
        assert refused(publish(p=props(b"\x08" + ref_str("r/#")))) == PROTOCOL


class TestProperties:
    def test_unknown_identifier(self) -> None:
        assert refused(publish(p=props(b"\x7f\x00"))) == MALFORMED

    def test_identifier_not_allowed_in_the_packet(self) -> None:
        """2.2.2.2: Session Expiry Interval has no place in a PUBLISH."""
        assert refused(publish(p=props(b"\x11\x00\x00\x00\x01"))) == MALFORMED

    def test_duplicate_property(self) -> None:
        assert refused(publish(p=props(b"\x02\x00\x00\x00\x01" * 2))) == PROTOCOL

    def test_user_property_may_repeat(self) -> None:
        pair = b"\x26" + ref_str("k") + ref_str("v")
        pkt = receive(publish(p=props(pair * 3))).packets[0]
        assert isinstance(pkt, Publish)
        assert pkt.properties.user_properties == (("k", "v"),) * 3

    @pytest.mark.parametrize("item", [b"\x23\x00\x00", b"\x01\x02"])
    def test_values_out_of_range(self, item: bytes) -> None:
        """Topic Alias 0 [MQTT-3.3.2-8], Payload Format Indicator 2."""
        assert refused(publish(p=props(item))) == PROTOCOL

    def test_connect_receive_maximum_0(self) -> None:
        body = ref_str("MQTT") + b"\x05\x02\x00\x3c" + props(b"\x21\x00\x00") + ref_str("c")
        assert receive(ref_packet(0x10, body), opened=False).code == PROTOCOL

    def test_property_length_past_the_packet(self) -> None:
        assert refused(publish(p=b"\x09\x02\x00", payload=b"")) == MALFORMED

    def test_property_value_past_the_property_length(self) -> None:
        assert refused(publish(p=b"\x02\x02\x00\x00\x00\x01", payload=b"")) == MALFORMED

    def test_subscription_identifier_twice_in_subscribe(self) -> None:
        wire = ref_packet(0x82, b"\x00\x01" + props(b"\x0b\x01\x0b\x02") + ref_str("a") + b"\x00")
        assert refused(wire) == PROTOCOL


class TestAcks:
    @BOTH
    @pytest.mark.parametrize("b0", [0x40, 0x50, 0x62, 0x70])
    def test_packet_id_0(self, version: int, b0: int) -> None:
        assert refused(bytes((b0, 2, 0, 0)), version=version) == PROTOCOL

    @pytest.mark.parametrize("b0", [0x40, 0x50, 0x62, 0x70])
    def test_3_1_1_ack_longer_than_two_bytes(self, b0: int) -> None:
        assert refused(bytes((b0, 3, 0, 1, 0)), version=MQTT_V311) == MALFORMED

    @pytest.mark.parametrize(("b0", "code"), [(0x40, 0x92), (0x62, 0x10), (0x70, 0x80)])
    def test_reason_code_not_valid_for_the_packet(self, b0: int, code: int) -> None:
        assert refused(bytes((b0, 3, 0, 1, code))) == PROTOCOL

    def test_truncated(self) -> None:
        assert refused(b"\x40\x01\x00") == MALFORMED


class TestSubscribe:
    def sub(self, payload: bytes, version: int = 5) -> bytes:
        p = b"\x00" if version == 5 else b""
        return ref_packet(0x82, b"\x00\x01" + p + payload)

    @BOTH
    def test_empty_payload(self, version: int) -> None:
        """[MQTT-3.8.3-2] (3.1.1: [MQTT-3.8.3-3])."""
        assert refused(self.sub(b"", version), version=version) == PROTOCOL

    @BOTH
    def test_filter_without_options(self, version: int) -> None:
        assert refused(self.sub(ref_str("a"), version), version=version) == MALFORMED

    @pytest.mark.parametrize(("version", "opt"), [(5, 0x40), (5, 0x80), (4, 0x04), (4, 0x10)])
    def test_reserved_option_bits(self, version: int, opt: int) -> None:
        """[MQTT-3.8.3-5] (3.1.1: [MQTT-3-8.3-4])."""
        wire = self.sub(ref_str("a") + bytes((opt,)), version)
        assert refused(wire, version=version) == MALFORMED

    @BOTH
    def test_qos_3(self, version: int) -> None:
        assert refused(self.sub(ref_str("a") + b"\x03", version), version=version) == MALFORMED

    def test_retain_handling_3(self) -> None:
        assert refused(self.sub(ref_str("a") + b"\x30")) == PROTOCOL

    def test_no_local_on_a_shared_subscription(self) -> None:
        """[MQTT-3.8.3-4]."""
        assert refused(self.sub(ref_str("$share/g/a") + b"\x04")) == PROTOCOL

    @BOTH
    @pytest.mark.parametrize(
        "f", ["", "a/#/b", "a#", "a/b+", "+a", "$share/", "$share/g", "$share//a", "$share/g+/a"]
    )
    def test_invalid_topic_filters(self, version: int, f: str) -> None:
        """[MQTT-4.7.1-1] [MQTT-4.7.1-2] [MQTT-4.7.3-1] [MQTT-4.8.2-1] [MQTT-4.8.2-2]."""
        wire = self.sub(ref_str(f) + b"\x00", version)
        assert refused(wire, version=version) == R.TOPIC_FILTER_INVALID

    @BOTH
    def test_unsubscribe_empty_and_invalid(self, version: int) -> None:
        p = b"\x00" if version == 5 else b""
        assert refused(ref_packet(0xA2, b"\x00\x01" + p), version=version) == PROTOCOL
        wire = ref_packet(0xA2, b"\x00\x01" + p + ref_str("a/#/b"))
        assert refused(wire, version=version) == R.TOPIC_FILTER_INVALID

    def test_suback_with_no_codes_or_bad_codes(self) -> None:
        assert refused(b"\x90\x03\x00\x01\x00", "client") == PROTOCOL
        assert refused(b"\x90\x04\x00\x01\x00\x03", "client") == PROTOCOL
        assert refused(b"\x90\x03\x00\x01\x87", "client", MQTT_V311) == PROTOCOL

    def test_3_1_1_unsuback_has_only_the_packet_id(self) -> None:
        assert refused(b"\xb0\x03\x00\x01\x00", "client", MQTT_V311) == MALFORMED


class TestConnackAndOthers:
    def test_connack_reserved_flags(self) -> None:
        """[MQTT-3.2.2-1]."""
        assert receive(b"\x20\x03\x02\x00\x00", "client", 5, opened=False).code == MALFORMED

    def test_connack_refusal_with_session_present(self) -> None:
        """[MQTT-3.2.2-6]."""
        assert receive(b"\x20\x03\x01\x87\x00", "client", 5, opened=False).code == PROTOCOL

    def test_connack_codes_not_in_the_table(self) -> None:
        assert receive(b"\x20\x03\x00\x8f\x00", "client", 5, opened=False).code == PROTOCOL
        assert receive(b"\x20\x02\x00\x06", "client", 4, opened=False).code == PROTOCOL

    @BOTH
    def test_ping_with_a_body(self, version: int) -> None:
        assert refused(b"\xc0\x01\x00", version=version) == MALFORMED

    def test_3_1_1_disconnect_with_a_body(self) -> None:
        assert refused(b"\xe0\x01\x00", version=MQTT_V311) == MALFORMED

    def test_server_disconnect_with_session_expiry(self) -> None:
        """[MQTT-3.14.2-2]."""
        assert refused(b"\xe0\x07\x00" + props(b"\x11\x00\x00\x00\x00"), "client") == PROTOCOL

    def test_auth_reason_code_not_in_the_table(self) -> None:
        assert refused(b"\xf0\x01\x87") == PROTOCOL


class TestErrorReply:
    def fail(self, reader: MqttReader, data: bytes) -> MqttError:
        res = drive(reader, [data])
        assert res.error is not None
        return res.error

    def test_bad_5_0_connect_gets_a_connack_with_the_reason(self) -> None:
        r = MqttReader(side="server")
        err = self.fail(r, ref_connect(5, 0x03))
        assert error_reply(err, r) == Connack(False, MALFORMED).encode(MQTT_V5)

    def test_3_1_1_unsupported_level_and_identifier_get_their_return_codes(self) -> None:
        r = MqttReader(side="server")
        err = self.fail(r, ref_packet(0x10, ref_str("MQIsdp") + b"\x03\x02\x00\x3c" + ref_str("c")))
        assert error_reply(err, r) == b"\x20\x02\x00\x01"
        r = MqttReader(side="server")
        err = self.fail(r, ref_connect(4, 0x00, client_id=b""))
        assert error_reply(err, r) == b"\x20\x02\x00\x02"

    def test_3_1_1_malformed_connect_just_closes(self) -> None:
        """[MQTT-3.1.4-1] (3.1.1): close without a CONNACK."""
        r = MqttReader(side="server")
        err = self.fail(r, ref_connect(4, 0x03))
        assert error_reply(err, r) == b""

    def test_no_connect_at_all_just_closes(self) -> None:
        r = MqttReader(side="server")
        assert error_reply(self.fail(r, b"\xc0\x00"), r) == b""
        r = MqttReader(MQTT_V5, side="server")  # even when the version is known
        assert error_reply(self.fail(r, b"\xc0\x00"), r) == b""

    def test_5_0_after_connack_gets_a_disconnect(self) -> None:
        r = MqttReader(side="server")
        err = self.fail(r, CONNECT_BYTES[5] + publish(flags=0x36))
        assert error_reply(err, r) == Disconnect(MALFORMED).encode(MQTT_V5)
        assert error_reply(err, r, connack_sent=False) == b""  # [MQTT-3.14.0-1]

    def test_5_0_client_sends_a_disconnect_too(self) -> None:
        r = MqttReader(MQTT_V5, side="client")
        err = self.fail(r, Connack().encode(5) + publish(topic=b"a/+"))
        assert error_reply(err, r) == b"\xe0\x01\x90"

    def test_3_1_1_after_connect_just_closes(self) -> None:
        r = MqttReader(side="server")
        err = self.fail(r, CONNECT_BYTES[4] + b"\x30\x03\x00\x01+")
        assert error_reply(err, r) == b""

    def test_errors_are_remote_protocol_errors_with_a_reason_code(self) -> None:
        err = MqttError("x", R.TOPIC_ALIAS_INVALID)
        assert isinstance(err, RemoteProtocolError)
        assert err.reason_code is R.TOPIC_ALIAS_INVALID and err.reason_code.is_error

    def test_too_large_disconnect_reason(self) -> None:
        r = MqttReader(side="server", max_packet_size=64)
        err = self.fail(r, CONNECT_BYTES[5] + Publish("t", b"x" * 100).encode(5))
        assert error_reply(err, r) == b"\xe0\x01\x95"

    def test_publish_with_properties_in_3_1_1_is_just_payload(self) -> None:
        """3.1.1 has no properties: a 5.0-looking byte is payload, not an error."""
        wire = Publish("t", b"\x00abc").encode(MQTT_V311)
        pkt = receive(wire, version=MQTT_V311).packets[0]
        assert isinstance(pkt, Publish) and pkt.payload == b"\x00abc"
        assert pkt.properties == Properties()

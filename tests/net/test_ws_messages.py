"""WebSocket frames over real sockets: messages, fragments, control frames, close, keepalive.

The server is mgpy on 127.0.0.1 port 0; the client is a raw socket
(``RawWs``) writing hand-made frames, so every rule of RFC 6455 the glue
enforces is seen from the wire: what comes back, with which close code, and
when TCP closes.
"""

from __future__ import annotations

import struct
import time
from typing import Any

import pytest

import mgpy
from mgpy import Ev, F, Limits
from tests.conftest import run_until
from tests.net.test_ws_server import RawWs, WsRecorder, ws_server


def open_ws(mgr: mgpy.Manager, limits: Limits | None = None) -> tuple[WsRecorder, RawWs]:
    rec, port = ws_server(mgr, limits)
    cli = RawWs(mgr, port)
    assert cli.handshake() == 101
    run_until(mgr, lambda: rec.conns)
    return rec, cli


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


class TestMessages:
    def test_text_and_binary_echo_with_their_opcode(self, mgr: mgpy.Manager) -> None:
        rec, cli = open_ws(mgr)
        cli.send_frame(0x81, "héllo".encode())
        cli.send_frame(0x82, bytes(range(256)))
        cli.send_frame(0x82, b"x" * 70000)  # 64-bit length form
        assert cli.recv_frame() == (0x81, "héllo".encode())
        assert cli.recv_frame() == (0x82, bytes(range(256)))
        assert cli.recv_frame() == (0x82, b"x" * 70000)
        msgs = rec.data("WS_FRAME")
        assert [m.opcode for m in msgs] == [1, 2, 2] and all(m.fin for m in msgs)
        assert msgs[0].text == "héllo"
        cli.close()

    def test_fragments_are_reassembled_into_one_message(self, mgr: mgpy.Manager) -> None:
        rec, cli = open_ws(mgr)
        cli.send_frame(0x01, b"frag")
        cli.send_frame(0x00, b"men")
        cli.send_frame(0x80, b"ted")
        assert cli.recv_frame() == (0x81, b"fragmented")
        [msg] = rec.data("WS_FRAME")
        assert (msg.opcode, msg.fin, msg.data) == (1, True, b"fragmented")
        cli.close()

    def test_ping_between_fragments_is_answered_at_once(self, mgr: mgpy.Manager) -> None:
        rec, cli = open_ws(mgr)
        cli.send_frame(0x02, b"part1-")
        cli.send_frame(0x89, b"are you there")
        # the pong comes back while the message is still incomplete
        assert cli.recv_frame() == (0x8A, b"are you there")
        assert not rec.data("WS_FRAME")
        assert [m.opcode for m in rec.data("WS_CONTROL_FRAME")] == [mgpy.WS_OP_PING]
        cli.send_frame(0x80, b"part2")
        assert cli.recv_frame() == (0x82, b"part1-part2")
        cli.close()

    def test_no_defrag_delivers_every_fragment(self, mgr: mgpy.Manager) -> None:
        rec, port = ws_server(mgr)
        rec.echo = False
        rec.on_done = lambda c, hm: setattr(c, "flags", c.flags | F.WEBSOCKET_NO_DEFRAG)
        cli = RawWs(mgr, port)
        assert cli.handshake() == 101
        cli.send_frame(0x01, b"a")
        cli.send_frame(0x00, b"b")
        cli.send_frame(0x80, b"c")
        cli.send_frame(0x82, b"whole")
        run_until(mgr, lambda: len(rec.data("WS_FRAME")) == 4)
        got = [(m.opcode, m.fin, m.data) for m in rec.data("WS_FRAME")]
        assert got == [(1, False, b"a"), (0, False, b"b"), (0, True, b"c"), (2, True, b"whole")]
        cli.close()

    def test_no_defrag_still_validates_utf8_across_fragments(self, mgr: mgpy.Manager) -> None:
        rec, port = ws_server(mgr)
        rec.on_done = lambda c, hm: setattr(c, "flags", c.flags | F.WEBSOCKET_NO_DEFRAG)
        cli = RawWs(mgr, port)
        assert cli.handshake() == 101
        cli.send_frame(0x01, "é".encode()[:1])
        cli.send_frame(0x80, b"\xff")
        assert cli.recv_close()[0] == 1007
        cli.wait_eof()

    def test_server_sends_fragments_with_ws_dont_fin(self, mgr: mgpy.Manager) -> None:
        rec, port = ws_server(mgr)

        def fragments(c: mgpy.Connection, hm: Any) -> None:
            c.send_websocket_frame(mgpy.WS_OP_TEXT | mgpy.WS_DONT_FIN, "one ")
            c.send_websocket_frame(mgpy.WS_OP_PING, b"in between")
            c.send_websocket_frame(mgpy.WS_OP_CONTINUE | mgpy.WS_DONT_FIN, "two ")
            c.send_websocket_frame(mgpy.WS_OP_CONTINUE, "three")

        rec.on_done = fragments
        cli = RawWs(mgr, port)
        assert cli.handshake() == 101
        frames = [cli.recv_frame() for _ in range(4)]
        assert frames == [(0x01, b"one "), (0x89, b"in between"), (0x00, b"two "), (0x80, b"three")]
        cli.close()

    def test_sending_out_of_order_fragments_raises(self, mgr: mgpy.Manager) -> None:
        rec, cli = open_ws(mgr)
        c = rec.conns[0]
        with pytest.raises(mgpy.LocalProtocolError):
            c.send_websocket_frame(mgpy.WS_OP_CONTINUE, b"no message started")
        c.send_websocket_frame(mgpy.WS_OP_BINARY | mgpy.WS_DONT_FIN, b"a")
        with pytest.raises(mgpy.LocalProtocolError):
            c.send_websocket_frame(mgpy.WS_OP_TEXT, b"interleaved")
        cli.close()

    def test_send_on_plain_http_connection_raises(self, mgr: mgpy.Manager) -> None:
        errors: list[Exception] = []

        def h(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
            if ev == Ev.HTTP_REQUEST:
                try:
                    c.send_websocket_frame(mgpy.WS_OP_TEXT, "x")
                except mgpy.LocalProtocolError as e:
                    errors.append(e)
                mgpy.http_reply(c, 200, "ok")

        lc = mgr.bind("127.0.0.1:0", h)
        lc.set_protocol_http_websocket()
        cli = RawWs(mgr, lc.local[1])
        cli.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        cli.until(lambda: b"ok" in cli.inbuf)
        assert len(errors) == 1
        cli.close()

    def test_automatic_pong_echoes_ping_payload(self, mgr: mgpy.Manager) -> None:
        rec, cli = open_ws(mgr)
        cli.send_frame(0x89, b"")
        cli.send_frame(0x89, b"p" * 125)
        assert cli.recv_frame() == (0x8A, b"")
        assert cli.recv_frame() == (0x8A, b"p" * 125)
        pings = rec.data("WS_CONTROL_FRAME")
        assert [(m.opcode, m.data) for m in pings] == [(9, b""), (9, b"p" * 125)]
        cli.close()

    def test_unsolicited_pong_is_delivered_and_not_answered(self, mgr: mgpy.Manager) -> None:
        rec, cli = open_ws(mgr)
        cli.send_frame(0x8A, b"heartbeat")
        cli.send_frame(0x81, b"after")
        assert cli.recv_frame() == (0x81, b"after")  # nothing was sent for the pong
        assert [(m.opcode, m.data) for m in rec.data("WS_CONTROL_FRAME")] == [(10, b"heartbeat")]
        cli.close()


class TestCloseHandshake:
    def test_peer_close_is_echoed_then_tcp_closes(self, mgr: mgpy.Manager) -> None:
        rec, cli = open_ws(mgr)
        cli.send_frame(0x88, close_payload(1000, b"bye"))
        assert cli.recv_close() == (1000, b"")
        cli.wait_eof()
        run_until(mgr, lambda: "CLOSE" in rec.names())
        [ctl] = rec.data("WS_CONTROL_FRAME")
        assert ctl.opcode == mgpy.WS_OP_CLOSE and ctl.data == close_payload(1000, b"bye")
        assert "ERROR" not in rec.names()

    def test_empty_close_is_echoed_empty(self, mgr: mgpy.Manager) -> None:
        _rec, cli = open_ws(mgr)
        cli.send_frame(0x88, b"")
        assert cli.recv_frame() == (0x88, b"")
        cli.wait_eof()

    def test_frames_after_the_close_are_ignored(self, mgr: mgpy.Manager) -> None:
        rec, cli = open_ws(mgr)
        cli.send_frame(0x88, close_payload(1001))
        cli.send_frame(0x81, b"too late")
        assert cli.recv_close()[0] == 1001
        cli.wait_eof()
        assert not rec.data("WS_FRAME")

    def test_close_mid_fragmented_message_is_echoed_with_1000(self, mgr: mgpy.Manager) -> None:
        # Autobahn 7.1.5: the unfinished message is dropped, the close echoed normally
        rec, cli = open_ws(mgr)
        cli.send_frame(0x01, b"frag1")
        cli.send_frame(0x88, close_payload(1000))
        cli.send_frame(0x80, b"frag2")
        assert cli.recv_close()[0] == 1000
        cli.wait_eof()
        assert not rec.data("WS_FRAME")

    def test_our_close_waits_for_the_peers_reply(self, mgr: mgpy.Manager) -> None:
        rec, cli = open_ws(mgr)
        c = rec.conns[0]
        c.ws_close(1001, "going away")
        assert cli.recv_close() == (1001, b"going away")
        # the server still reads (RFC 6455 1.4): a late message arrives, but no reply is sent
        cli.send_frame(0x81, b"still here")
        run_until(mgr, lambda: rec.data("WS_FRAME"))
        assert not c.closed and not cli.eof
        cli.send_frame(0x88, close_payload(1001))
        cli.wait_eof()
        run_until(mgr, lambda: c.closed)
        assert "ERROR" not in rec.names()
        assert len(cli.inbuf) == 0  # the echo of "still here" was not sent after our close

    def test_our_close_times_out_when_the_peer_never_replies(self, mgr: mgpy.Manager) -> None:
        rec, cli = open_ws(mgr, Limits(ws_close_timeout=0.2))
        c = rec.conns[0]
        t0 = time.monotonic()
        c.ws_close()
        assert cli.recv_close() == (1000, b"")
        cli.wait_eof()
        assert 0.15 < time.monotonic() - t0 < 3.0
        assert any("close timed out" in e for e in rec.data("ERROR"))

    def test_close_sent_as_a_raw_frame_waits_for_the_reply_too(self, mgr: mgpy.Manager) -> None:
        rec, cli = open_ws(mgr)
        c = rec.conns[0]
        c.send_websocket_frame(mgpy.WS_OP_CLOSE, close_payload(4000, b"app"))
        c.send_websocket_frame(mgpy.WS_OP_TEXT, "dropped: after our close")
        assert cli.recv_close() == (4000, b"app")
        cli.send_frame(0x88, close_payload(4000))
        cli.wait_eof()
        assert len(cli.inbuf) == 0

    @pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000])
    def test_invalid_close_code_fails_with_1002(self, mgr: mgpy.Manager, code: int) -> None:
        rec, cli = open_ws(mgr)
        cli.send_frame(0x88, close_payload(code))
        assert cli.recv_close()[0] == 1002
        cli.wait_eof()
        run_until(mgr, lambda: "CLOSE" in rec.names())
        assert any("1002" in e for e in rec.data("ERROR"))

    @pytest.mark.parametrize("code", [1000, 1001, 1003, 1007, 1011, 3000, 4999])
    def test_valid_close_codes_are_echoed(self, mgr: mgpy.Manager, code: int) -> None:
        _rec, cli = open_ws(mgr)
        cli.send_frame(0x88, close_payload(code, b"ok"))
        assert cli.recv_close()[0] == code
        cli.wait_eof()

    def test_one_byte_close_payload_fails_with_1002(self, mgr: mgpy.Manager) -> None:
        _rec, cli = open_ws(mgr)
        cli.send_frame(0x88, b"\x03")
        assert cli.recv_close()[0] == 1002
        cli.wait_eof()

    def test_invalid_utf8_close_reason_fails_with_1007(self, mgr: mgpy.Manager) -> None:
        _rec, cli = open_ws(mgr)
        cli.send_frame(0x88, close_payload(1000, b"\xce\xba\xe1\xbd"))
        assert cli.recv_close()[0] == 1007
        cli.wait_eof()

    def test_ws_close_rejects_codes_that_may_not_be_sent(self, mgr: mgpy.Manager) -> None:
        rec, cli = open_ws(mgr)
        with pytest.raises(mgpy.LocalProtocolError):
            rec.conns[0].ws_close(1005)
        cli.close()


class TestProtocolErrors:
    @pytest.mark.parametrize(
        "raw, code",
        [
            (dict(b0=0x81, payload=b"\xff\xfe"), 1007),  # invalid UTF-8
            (dict(b0=0x81, payload=b"\xed\xa0\x80"), 1007),  # UTF-8 surrogate
            (dict(b0=0x81, payload=b"hi", masked=False), 1002),  # unmasked client frame
            (dict(b0=0xC1, payload=b"hi"), 1002),  # RSV1
            (dict(b0=0xA1, payload=b"hi"), 1002),  # RSV2
            (dict(b0=0x91, payload=b"hi"), 1002),  # RSV3
            (dict(b0=0x83, payload=b""), 1002),  # reserved data opcode 3
            (dict(b0=0x87, payload=b""), 1002),  # reserved data opcode 7
            (dict(b0=0x8B, payload=b""), 1002),  # reserved control opcode 0xB
            (dict(b0=0x8F, payload=b""), 1002),  # reserved control opcode 0xF
            (dict(b0=0x80, payload=b"orphan"), 1002),  # continuation without a message
            (dict(b0=0x09, payload=b""), 1002),  # fragmented ping
            (dict(b0=0x89, payload=b"p" * 126), 1002),  # control frame > 125 bytes
            (dict(b0=0x82, payload=b"x" * 10, form=16), 1002),  # non-minimal length
        ],
        ids=[
            "utf8",
            "surrogate",
            "unmasked",
            "rsv1",
            "rsv2",
            "rsv3",
            "op3",
            "op7",
            "opB",
            "opF",
            "orphan-continuation",
            "fragmented-ping",
            "big-ping",
            "non-minimal-length",
        ],
    )
    def test_violation_gets_its_close_code_then_tcp_closes(
        self, mgr: mgpy.Manager, raw: dict[str, Any], code: int
    ) -> None:
        rec, cli = open_ws(mgr)
        cli.send_frame(**raw)
        cli.send_frame(0x81, b"never delivered")
        assert cli.recv_close()[0] == code
        cli.wait_eof()
        run_until(mgr, lambda: "CLOSE" in rec.names())
        assert not rec.data("WS_FRAME")
        [err] = rec.data("ERROR")
        assert f"({code})" in err
        assert rec.names()[-2:] == ["ERROR", "CLOSE"]

    def test_new_message_inside_a_fragmented_one_fails_with_1002(self, mgr: mgpy.Manager) -> None:
        _rec, cli = open_ws(mgr)
        cli.send_frame(0x01, b"start")
        cli.send_frame(0x81, b"interleaved")
        assert cli.recv_close()[0] == 1002
        cli.wait_eof()

    def test_oversized_frame_is_refused_from_its_header_with_1009(self, mgr: mgpy.Manager) -> None:
        _rec, cli = open_ws(mgr, Limits(ws_max_message=1000))
        # only the header (declaring 10 MB) is sent: the verdict cannot wait for the payload
        cli.send(struct.pack("!BBQ", 0x82, 0xFF, 10_000_000) + b"MASK")
        assert cli.recv_close()[0] == 1009
        cli.wait_eof()

    def test_message_over_the_limit_across_fragments_gets_1009(self, mgr: mgpy.Manager) -> None:
        _rec, cli = open_ws(mgr, Limits(ws_max_message=1000))
        cli.send_frame(0x02, b"a" * 600)
        # again only the header of the fragment that would pass the limit
        cli.send(struct.pack("!BBH", 0x80, 0xFE, 600) + b"MASK")
        assert cli.recv_close()[0] == 1009
        cli.wait_eof()

    def test_message_at_the_limit_is_accepted(self, mgr: mgpy.Manager) -> None:
        _rec, cli = open_ws(mgr, Limits(ws_max_message=1000))
        cli.send_frame(0x02, b"a" * 500)
        cli.send_frame(0x80, b"b" * 500)
        assert cli.recv_frame() == (0x82, b"a" * 500 + b"b" * 500)
        cli.close()

    def test_large_message_streams_through_a_small_receive_buffer(self, mgr: mgpy.Manager) -> None:
        lim = Limits(ws_max_message=8 << 20, max_recv_buffer=64 << 10)
        _rec, cli = open_ws(mgr, lim)
        big = bytes(range(256)) * (6 << 12)  # 6 MiB
        cli.send_frame(0x82, big)
        b0, data = cli.recv_frame(timeout=20)
        assert b0 == 0x82 and data == big
        cli.close()


class TestKeepalive:
    def test_idle_peer_that_answers_pings_stays_connected(self, mgr: mgpy.Manager) -> None:
        rec, cli = open_ws(mgr, Limits(ws_ping_interval=0.1, ws_pong_timeout=0.2))
        pings = 0
        deadline = time.monotonic() + 10
        while pings < 3:
            assert time.monotonic() < deadline
            b0, payload = cli.recv_frame()
            assert b0 == 0x89
            cli.send_frame(0x8A, payload)
            pings += 1
        run_until(mgr, lambda: len(rec.data("WS_CONTROL_FRAME")) == 3)
        assert [m.opcode for m in rec.data("WS_CONTROL_FRAME")] == [0xA] * 3
        assert not rec.conns[0].closed and not cli.eof
        cli.close()

    def test_dead_peer_is_closed_with_1011_after_the_pong_timeout(self, mgr: mgpy.Manager) -> None:
        lim = Limits(ws_ping_interval=0.1, ws_pong_timeout=0.2, ws_close_timeout=0.2)
        rec, cli = open_ws(mgr, lim)
        t0 = time.monotonic()
        assert cli.recv_frame()[0] == 0x89
        assert cli.recv_close()[0] == 1011
        cli.wait_eof()
        assert 0.25 < time.monotonic() - t0 < 5
        run_until(mgr, lambda: "CLOSE" in rec.names())
        assert any("keepalive" in e for e in rec.data("ERROR"))

    def test_traffic_counts_as_alive_and_postpones_the_ping(self, mgr: mgpy.Manager) -> None:
        rec, cli = open_ws(mgr, Limits(ws_ping_interval=0.3, ws_pong_timeout=0.3))
        t0 = time.monotonic()
        for n in range(9):  # a message every 0.1 s: never silent for 0.3 s
            cli.send_frame(0x81, b"%d" % n)
            assert cli.recv_frame() == (0x81, b"%d" % n)
            pace = t0 + 0.1 * (n + 1)
            run_until(mgr, lambda pace=pace: time.monotonic() >= pace)  # type: ignore[misc]
        assert all(m.opcode == 1 for m in rec.data("WS_FRAME"))
        assert not rec.data("WS_CONTROL_FRAME")
        cli.close()

    def test_pong_timeout_off_keeps_pinging_a_silent_peer(self, mgr: mgpy.Manager) -> None:
        rec, cli = open_ws(mgr, Limits(ws_ping_interval=0.05, ws_pong_timeout=0))
        for _ in range(4):  # never answered, never closed
            assert cli.recv_frame()[0] == 0x89
        assert not rec.conns[0].closed and not cli.eof
        cli.close()

    def test_keepalive_off_sends_no_ping(self, mgr: mgpy.Manager) -> None:
        _rec, cli = open_ws(mgr, Limits(ws_ping_interval=0, ws_pong_timeout=0.1))
        end = time.monotonic() + 0.4  # an observation window, not a synchronisation
        while time.monotonic() < end:
            cli.pump()
            mgr.poll(20)
        assert cli.inbuf == b"" and not cli.eof
        cli.send_frame(0x81, b"alive")
        assert cli.recv_frame() == (0x81, b"alive")
        cli.close()

"""examples/ws_autobahn_client.py against a miniature fuzzing server (not Autobahn itself).

The real conformance run is ``make autobahn`` (minutes, Python 2.7 wstest); this
checks, in a second, that the client follows the fuzzing-server protocol:
``/getCaseCount``, then ``/runCase?case=N&agent=A`` for N = 1..count echoing every
message with its opcode until the server closes, then ``/updateReports?agent=A``,
and exit 0 (or 1 when the case count cannot be read).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import mgpy
from mgpy import Ev
from tests.conftest import run_until

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "ws_autobahn_client.py"


class FakeFuzzingServer:
    """Speaks the fuzzing server's URL protocol; each case sends three messages to echo."""

    def __init__(self, mgr: mgpy.Manager, count: int = 3) -> None:
        self.count = count
        self.visits: list[tuple[str, str]] = []
        self.echoes: dict[int, list[tuple[int, bytes]]] = {}
        lc = mgr.bind("127.0.0.1:0", self.handler, limits=mgpy.Limits(ws_max_message=4 << 20))
        lc.set_protocol_http_websocket()
        self.url = f"ws://127.0.0.1:{lc.local[1]}"

    @staticmethod
    def case_of(c: mgpy.Connection) -> int:
        return int(c.user_data)

    def handler(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.WS_HANDSHAKE_REQUEST:
            self.visits.append((ev_data.uri, ev_data.query_string))
        elif ev == Ev.WS_HANDSHAKE_DONE:
            uri, query = ev_data.uri, ev_data.query_string
            if uri == "/getCaseCount":
                c.send_websocket_frame(mgpy.WS_OP_TEXT, str(self.count))
                c.ws_close(1000)
            elif uri == "/runCase":
                n = int(mgpy.get_http_var(query.encode(), "case") or 0)
                c.user_data = n
                self.echoes[n] = []
                c.send_websocket_frame(mgpy.WS_OP_TEXT, f"case {n} ✓")
                c.send_websocket_frame(mgpy.WS_OP_BINARY, bytes([n]) * (1 << 20))
                c.send_websocket_frame(mgpy.WS_OP_TEXT | mgpy.WS_DONT_FIN, "frag")
                c.send_websocket_frame(mgpy.WS_OP_PING, b"ping")
                c.send_websocket_frame(mgpy.WS_OP_CONTINUE, "mented")
            else:
                c.ws_close(1000)  # updateReports: "the report is written"
        elif ev == Ev.WS_FRAME and c.user_data is not None:
            got = self.echoes[self.case_of(c)]
            got.append((ev_data.opcode, ev_data.data))
            if len(got) == 3:
                c.ws_close(1000)


def run_client(mgr: mgpy.Manager, url: str) -> subprocess.Popen[str]:
    p = subprocess.Popen(
        [sys.executable, str(SCRIPT), url, "mgpy test"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    run_until(mgr, lambda: p.poll() is not None, timeout=30)
    return p


def test_help() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0 and "agent" in out.stdout


def test_runs_every_case_echoing_then_asks_for_the_report(mgr: mgpy.Manager) -> None:
    srv = FakeFuzzingServer(mgr)
    p = run_client(mgr, srv.url)
    out = p.stdout.read() if p.stdout else ""
    assert p.returncode == 0, out
    assert "3 cases" in out
    agent = "agent=mgpy%20test"
    assert srv.visits == [
        ("/getCaseCount", ""),
        ("/runCase", f"case=1&{agent}"),
        ("/runCase", f"case=2&{agent}"),
        ("/runCase", f"case=3&{agent}"),
        ("/updateReports", agent),
    ]
    for n in (1, 2, 3):
        assert srv.echoes[n] == [
            (mgpy.WS_OP_TEXT, f"case {n} ✓".encode()),
            (mgpy.WS_OP_BINARY, bytes([n]) * (1 << 20)),
            (mgpy.WS_OP_TEXT, b"fragmented"),
        ]


def test_exits_1_when_the_case_count_cannot_be_read(mgr: mgpy.Manager) -> None:
    def refuse(c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.WS_HANDSHAKE_REQUEST:
            mgpy.http_send_error(c, 404)

    lc = mgr.bind("127.0.0.1:0", refuse)
    lc.set_protocol_http_websocket()
    p = run_client(mgr, f"ws://127.0.0.1:{lc.local[1]}")
    out = p.stdout.read() if p.stdout else ""
    assert p.returncode == 1
    assert "getCaseCount: the server answered 404" in out

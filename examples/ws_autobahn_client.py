"""Autobahn|Testsuite fuzzing-server client built on ``connect_ws``.

Strategy: one Manager, one WebSocket at a time, driven by CLOSE events.  The
client asks ``URL/getCaseCount`` for the number of cases (one text message
holding a JSON number), then for N = 1..count opens
``URL/runCase?case=N&agent=AGENT`` and echoes every data message back with the
same opcode until the fuzzing server closes, and finally opens
``URL/updateReports?agent=AGENT`` so the server writes its report.  Whatever
happens inside a case (a protocol error, a refused connection) is the fuzzing
server's to judge, so the client simply moves on to the next case; failing to
read the case count is an error (exit 1).

Section 9 sends 16 MiB messages and 4 MiB messages in 64-byte frames (65 536 of
them and an empty final one), so the limits are raised to 16 MiB messages of up to
65 537 frames; keepalive pings stay
at the library default.  Compression is ``connect_ws``'s default: permessage-deflate
is offered with ``DeflateOptions()``, and sections 12-13 exercise it.

Usage::

    python examples/ws_autobahn_client.py ws://127.0.0.1:9001 mgpy

(``make autobahn-client`` runs it against ``wstest -m fuzzingserver``.)  SIGINT
(Ctrl-C) or SIGTERM stops it cleanly, with exit status 128 + the signal's number.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import urllib.parse
from typing import Any

import mgpy
from mgpy import Ev

#: Autobahn 9.1.6 / 9.2.6 send 16 MiB messages
MAX_MESSAGE = 16 * 1024 * 1024
#: Autobahn 9.3.1 / 9.4.1 send 4 MiB in 64-byte frames: 65 536 of them, then an empty FIN
MAX_FRAGMENTS = 65537
LIMITS = mgpy.Limits(
    ws_max_message=MAX_MESSAGE,
    ws_max_fragments=MAX_FRAGMENTS,
    ws_send_queue=4 * MAX_MESSAGE,
    max_send_buffer=8 * MAX_MESSAGE,
)


class AutobahnClient:
    """Runs the fuzzing server's cases one after the other."""

    def __init__(self, url: str, agent: str, limits: mgpy.Limits = LIMITS) -> None:
        self.url = url.rstrip("/")
        self.agent = agent
        self.mgr = mgpy.Manager(limits=limits)
        self.count = -1
        self.case = 0
        self.done = False
        self.reported = False
        self.error: str | None = None

    # -- handlers -------------------------------------------------------------------
    def _on_count(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.WS_HANDSHAKE_DONE and ev_data.resp_code != 101:
            self.error = f"getCaseCount: the server answered {ev_data.resp_code}"
        elif ev == Ev.WS_FRAME:
            try:
                self.count = int(json.loads(ev_data.data))
            except ValueError:
                self.error = f"getCaseCount answered {ev_data.data[:80]!r}"
            # the server closes right after the count; its close is echoed for us
        elif ev == Ev.ERROR and self.count < 0:
            # (once the count is read, a reset as wstest closes does not matter)
            self.error = f"getCaseCount: {ev_data}"
        elif ev == Ev.CLOSE:
            if self.count < 0:
                self.error = self.error or "getCaseCount: no answer"
                self.done = True
                return
            print(f"ws_autobahn_client: {self.count} cases", flush=True)
            self._next_case()

    def _on_case(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.WS_FRAME:
            c.send_websocket_frame(ev_data.opcode, ev_data.data)  # echo, same opcode
        elif ev == Ev.CLOSE:
            self._next_case()

    def _on_report(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.WS_CONTROL_FRAME and ev_data.opcode == mgpy.WS_OP_CLOSE:
            self.reported = True  # the server closes once the report is written
        elif ev == Ev.ERROR and not self.reported:
            # (after its close, wstest may exit at once: a reset then is no error)
            self.error = f"updateReports: {ev_data}"
        elif ev == Ev.CLOSE:
            self.done = True

    # -- sequencing -------------------------------------------------------------------
    def _next_case(self) -> None:
        agent = urllib.parse.quote(self.agent)
        if self.case < self.count:
            self.case += 1
            self.mgr.connect_ws(f"{self.url}/runCase?case={self.case}&agent={agent}", self._on_case)
        else:
            self.mgr.connect_ws(f"{self.url}/updateReports?agent={agent}", self._on_report)

    def run(self, timeout: float = 3600.0) -> int:
        """Run every case; return the exit status (0 = the report was written)."""
        deadline = time.monotonic() + timeout
        stop: list[int] = []

        def on_signal(signum: int, frame: object) -> None:
            stop.append(signum)
            self.mgr.wakeup()  # leave poll() now

        signal.signal(signal.SIGINT, on_signal)  # Ctrl-C, also when run in the background
        signal.signal(signal.SIGTERM, on_signal)
        self.mgr.connect_ws(f"{self.url}/getCaseCount", self._on_count)
        try:
            while not self.done and not stop:
                if time.monotonic() > deadline:
                    self.error = f"gave up after {timeout:.0f} s at case {self.case}"
                    break
                self.mgr.poll(100)
        finally:
            self.mgr.close()
        if stop:
            name = signal.Signals(stop[0]).name
            print(f"ws_autobahn_client: stopped by {name} at case {self.case}", file=sys.stderr)
            return 128 + stop[0]
        if self.error:
            print(f"ws_autobahn_client: error: {self.error}", file=sys.stderr, flush=True)
            return 1
        print(f"ws_autobahn_client: done, {self.count} cases", flush=True)
        return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the cases."""
    p = argparse.ArgumentParser(
        description="Run every case of an Autobahn fuzzing server with mgpy's WebSocket "
        "client (connect_ws), echoing each message, then ask for the report."
    )
    p.add_argument("url", help="fuzzing server URL, e.g. ws://127.0.0.1:9001")
    p.add_argument("agent", help="agent name shown in the report, e.g. mgpy")
    p.add_argument("--timeout", type=float, default=3600.0, help="give up after this many seconds")
    args = p.parse_args(argv)
    try:
        return AutobahnClient(args.url, args.agent).run(args.timeout)
    except mgpy.Error as e:
        print(f"ws_autobahn_client: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

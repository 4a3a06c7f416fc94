"""A WebSocket client that keeps its connection: ``connect_ws(..., reconnect=...)``.

It connects to URL (``ws://``, ``http://`` or just ``host:port/path``), sends
MESSAGE every INTERVAL seconds and prints whatever the server sends back.
When the connection fails or closes, mgpy dials again by itself
(``mgpy.ws.client.ReconnectOpts``): the delay starts at ``--min-backoff``, doubles
after every failed attempt up to ``--max-backoff``, is spread by +-20 % so that
many clients do not reconnect in lockstep, and goes back to the minimum once a
handshake succeeds.  Between attempts the handler gets ``WsEv.RECONNECTING``; the
connection's CLOSE comes once, when the client stops.

A failure to verify the server's TLS certificate is not transient, so mgpy does
not retry it: the client says why and exits with status 1.  ``--cacert FILE``
trusts a private CA (a self-signed certificate is its own CA); ``--insecure``
skips verification altogether.  A refusal such as 403 is not retried either.

``--count N`` exits after N messages *received*, whatever the server sends:
echoes, broadcasts, pushes.  Against a chat server that does not echo your own
lines (``examples/websocket_chat.py``) that is what the others say.

Everything runs on one thread: the reconnect is mgpy's timer and the periodic
send a connection timer (``c.set_timer``), so there is no sleeping anywhere and
Ctrl-C (or SIGTERM) closes the WebSocket cleanly with 1001.

Try it:  mgpy &                                 (echo server at /ws)
         python examples/ws_client.py ws://127.0.0.1:8000/ws --message hello
         python examples/ws_client.py wss://device.local/ws --cacert device-ca.pem
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Any

import mgpy
from mgpy import Ev
from mgpy.ws.client import ReconnectOpts, WsEv, WsReconnect, connect_ws


class ReconnectingClient:
    """The handler of one reconnecting WebSocket, and the loop that polls it."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.mgr = mgpy.Manager()
        self.rc: WsReconnect | None = None
        self.sent = 0
        self.received = 0
        self.was_up = False  # the connection that just ended had been open
        self.done = False  # CLOSE delivered: the client stopped
        self.failure: str | None = None  # why the client gave up (exit status 1)
        self.tls = tls_options(args)

    def say(self, text: str) -> None:
        print(f"ws_client: {text}", flush=True)

    # -- the handler -----------------------------------------------------------------
    def handler(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.CONNECT and ev_data != 0:
            self.say(f"cannot connect to {self.args.url} (error {ev_data})")
        elif ev == Ev.WS_HANDSHAKE_DONE:
            if ev_data.resp_code != 101:
                code, why = ev_data.resp_code, ev_data.resp_status_msg
                self.say(f"server refused the WebSocket: {code} {why}")
                return
            self.was_up = True
            self.say(f"connected to {self.args.url}")
            self.send_next(c)
        elif ev == Ev.TIMER:
            self.send_next(c)
        elif ev == Ev.WS_FRAME:
            self.received += 1
            text = ev_data.opcode == mgpy.WS_OP_TEXT
            shown = ev_data.text if text else f"<{len(ev_data.data)} bytes>"
            self.say(f"received: {shown}")
            if self.args.count and self.received >= self.args.count:
                self.stop()
        elif ev == Ev.ERROR:
            self.say(f"error: {ev_data}")
        elif ev == WsEv.RECONNECTING:
            if self.was_up:
                self.was_up = False
                self.say("disconnected")
            self.say(f"reconnecting in {ev_data.delay:.2f} s")
        elif ev == Ev.CLOSE:
            self.done = True
            reason = self.rc.reason if self.rc is not None else ""
            if "certificate verify failed" in reason:
                self.failure = (
                    "the server's TLS certificate was not accepted; not retrying. Pass "
                    "--cacert FILE to trust its CA, or --insecure to skip verification"
                )
            elif reason.startswith("the server refused"):  # 4xx: asking again changes nothing
                self.failure = reason

    def send_next(self, c: mgpy.Connection) -> None:
        if c.closed or not c.is_websocket or self.rc is None or self.rc.stopped:
            return
        self.sent += 1
        c.send_websocket_frame(mgpy.WS_OP_TEXT, f"{self.args.message} #{self.sent}")
        c.set_timer(time.time() + self.args.interval)

    # -- running ---------------------------------------------------------------------------
    def stop(self) -> None:
        """Close the WebSocket with 1001 (going away); CLOSE ends the loop."""
        if self.rc is not None:
            self.rc.close(1001, "client stopping")

    def run(self) -> int:
        """Poll until stopped; return the exit status."""

        def on_signal(signum: int, frame: object) -> None:
            self.stop()
            self.mgr.wakeup()  # let poll() return now and send the close frame

        # SIGINT too: started in the background (`... &`) the client would ignore Ctrl-C
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        a = self.args
        opts = ReconnectOpts(min_delay=a.min_backoff, max_delay=a.max_backoff)
        headers = {"User-Agent": "mgpy-ws-client-example"}
        try:
            self.rc = connect_ws(
                self.mgr, a.url, self.handler, a.protocol, headers, tls=self.tls, reconnect=opts
            )
            while not self.done:
                self.mgr.poll(200)
        finally:
            self.mgr.close()
        if self.failure is not None:
            print(f"ws_client: error: {self.failure}", file=sys.stderr, flush=True)
            return 1
        self.say(f"stopped after {self.received} messages")
        return 0


def tls_options(args: argparse.Namespace) -> mgpy.TlsOpts | None:
    """TLS settings for a wss:// URL from --cacert / --insecure (None: plain ws://)."""
    if not args.url.lower().startswith(("wss://", "https://")):
        return None
    if args.insecure:
        return mgpy.TlsOpts(verify=False)
    return mgpy.TlsOpts(ca=args.cacert)  # ca=None: the system's CA store


def positive(text: str) -> float:
    v = float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return v


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the client."""
    p = argparse.ArgumentParser(
        description="Connect to a WebSocket server, send a message periodically, print what "
        "comes back, and reconnect with exponential backoff when the connection drops."
    )
    p.add_argument(
        "url",
        nargs="?",
        default="ws://127.0.0.1:8000/ws",
        help="server URL: ws://host:port/path, http://... or host:port/path "
        "(default: ws://127.0.0.1:8000/ws, the echo of python -m mgpy)",
    )
    p.add_argument("--message", default="hello", help="text to send (a counter is appended)")
    p.add_argument(
        "--interval", type=positive, default=1.0, help="seconds between messages (default 1)"
    )
    p.add_argument("--protocol", default=None, help="subprotocol(s) to offer, comma-separated")
    p.add_argument(
        "--min-backoff",
        type=positive,
        default=0.5,
        help="first reconnect delay in seconds (default 0.5)",
    )
    p.add_argument(
        "--max-backoff",
        type=positive,
        default=30.0,
        help="longest reconnect delay in seconds (default 30)",
    )
    p.add_argument(
        "--count",
        type=int,
        default=0,
        metavar="N",
        help="exit after receiving N messages from the server, whatever they are (echoes, "
        "broadcasts, pushes); what this client sends is not counted, so against a chat that "
        "does not echo your own lines it counts what the others say (default 0: run until "
        "Ctrl-C)",
    )
    p.add_argument(
        "--cacert",
        metavar="FILE",
        help="for wss://: trust the CA certificate(s) in this PEM file instead of the system's "
        "(a self-signed server certificate is its own CA)",
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        help="for wss://: do not verify the server's certificate (testing only)",
    )
    args = p.parse_args(argv)
    if args.max_backoff < args.min_backoff:
        p.error("--max-backoff must not be smaller than --min-backoff")
    if args.cacert and args.insecure:
        p.error("--cacert and --insecure exclude each other")
    if (args.cacert or args.insecure) and tls_options(args) is None:
        p.error("--cacert and --insecure apply to wss:// (or https://) URLs only")
    if args.cacert and not os.path.isfile(args.cacert):
        p.error(f"--cacert {args.cacert!r}: no such file")
    try:
        return ReconnectingClient(args).run()
    except mgpy.Error as e:
        print(f"ws_client: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

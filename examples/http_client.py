"""Fetch a URL with connect_http and print the status line, headers and body.

Like a tiny curl -i:

    python examples/http_client.py http://127.0.0.1:8000/api/items
    python examples/http_client.py -X POST -d '{"name": "pear"}' \\
        -H 'Content-Type: application/json' http://127.0.0.1:8000/api/items
    python examples/http_client.py http://user:secret@example.com/private
    python examples/http_client.py --cacert device-ca.pem https://device.local/status

The body streams to stdout as it arrives (HTTP_CHUNK with DELETE_CHUNK), so
large downloads use little memory.  https:// URLs verify the server's
certificate against the system's CAs, or against ``--cacert FILE`` (a private
CA, or a self-signed certificate); ``--insecure`` skips the check.  Exit
status: 0 when a response arrived (whatever its status), 1 when the
connection or the response failed, 2 for bad arguments, 128 + the signal's
number when stopped by SIGINT (Ctrl-C) or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Any, BinaryIO

import mgpy
from mgpy import Ev, F


class Fetch:
    """The connection's handler: prints the response as it arrives."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.head_printed = False
        self.done = False
        self.ok = False
        self.error: str | None = None

    def _print_head(self, hm: mgpy.HttpMessage) -> None:
        if self.head_printed:
            return
        self.head_printed = True
        reason = f" {hm.resp_status_msg}" if hm.resp_status_msg else ""
        lines = [f"{hm.proto} {hm.resp_code}{reason}"] + [f"{k}: {v}" for k, v in hm.headers]
        self.out.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def __call__(self, c: mgpy.Connection, ev: int, ev_data: Any) -> None:
        if ev == Ev.CONNECT and ev_data != 0:
            self.error = self.error or f"cannot connect (error {ev_data})"
        elif ev == Ev.HTTP_CHUNK:
            self._print_head(ev_data)
            self.out.write(ev_data.body)
            c.flags |= F.DELETE_CHUNK  # written out: do not keep it in memory
        elif ev == Ev.HTTP_REPLY:
            self._print_head(ev_data)
            self.out.write(ev_data.body)
            self.out.flush()
            self.ok = True
            c.close()
        elif ev == Ev.ERROR:
            self.error = ev_data
            if "certificate verify failed" in str(ev_data):
                self.error += " (pass --cacert FILE to trust the server's CA, or --insecure)"
        elif ev == Ev.CLOSE:
            self.done = True


def parse_header(text: str) -> tuple[str, str]:
    """Turn ``'Name: value'`` into a pair (argparse type)."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {text!r}")
    return name.strip(), value.strip()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Fetch a URL and print the status line, headers and body (like curl -i)."
    )
    ap.add_argument("url", help="http://[user:pass@]host[:port]/path (https:// needs TLS support)")
    ap.add_argument("-X", "--request", metavar="METHOD", help="method (default GET, POST with -d)")
    ap.add_argument("-d", "--data", help="request body; @FILE reads it from a file")
    ap.add_argument(
        "-H",
        "--header",
        action="append",
        type=parse_header,
        default=[],
        metavar="'Name: value'",
        help="extra request header (repeatable)",
    )
    ap.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="give up after SECONDS (default 30)",
    )
    ap.add_argument(
        "--cacert",
        metavar="FILE",
        help="for https://: trust the CA certificate(s) in this PEM file instead of the "
        "system's (a self-signed server certificate is its own CA)",
    )
    ap.add_argument(
        "--insecure",
        action="store_true",
        help="for https://: do not verify the server's certificate (testing only)",
    )
    args = ap.parse_args(argv)
    https = args.url.lower().startswith("https://")
    if args.cacert and args.insecure:
        ap.error("--cacert and --insecure exclude each other")
    if (args.cacert or args.insecure) and not https:
        ap.error("--cacert and --insecure apply to https:// URLs only")
    if args.cacert and not os.path.isfile(args.cacert):
        ap.error(f"--cacert {args.cacert!r}: no such file")
    tls = None
    if https:
        tls = mgpy.TlsOpts(verify=False) if args.insecure else mgpy.TlsOpts(ca=args.cacert)

    body: bytes | None = None
    if args.data is not None:
        if args.data.startswith("@"):
            try:
                with open(args.data[1:], "rb") as f:
                    body = f.read()
            except OSError as e:
                print(f"http_client: {e}", file=sys.stderr)
                return 2
        else:
            body = args.data.encode()
    method = args.request.upper() if args.request else None
    fetch = Fetch(sys.stdout.buffer)
    stop: list[int] = []
    with mgpy.Manager() as mgr:

        def on_signal(signum: int, frame: object) -> None:
            stop.append(signum)
            mgr.wakeup()  # leave poll() now

        signal.signal(signal.SIGINT, on_signal)  # Ctrl-C, also when run in the background
        signal.signal(signal.SIGTERM, on_signal)
        try:
            mgr.connect_http(
                args.url, fetch, method=method, headers=args.header, body=body, tls=tls
            )
        except mgpy.Error as e:
            print(f"http_client: {e}", file=sys.stderr)
            return 2
        deadline = time.monotonic() + args.timeout
        while not fetch.done and not stop:
            if time.monotonic() > deadline:
                fetch.error = fetch.error or f"no response within {args.timeout:g} s"
                break
            mgr.poll(100)
    sys.stdout.flush()
    if stop and not fetch.ok:
        print(f"http_client: stopped by {signal.Signals(stop[0]).name}", file=sys.stderr)
        return 128 + stop[0]
    if not fetch.ok:
        print(
            f"http_client: {fetch.error or 'connection closed without a response'}", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""HTTP keep-alive hello world on mgpy: every request gets 200 "Hello, World!"."""

from __future__ import annotations

import argparse
from typing import Any

import mgpy
from mgpy import Ev

BODY = b"Hello, World!"
HEADERS = {"Content-Type": "text/plain"}


def handler(c: Any, ev: int, ev_data: Any) -> None:
    """Answer every request with the same small body."""
    if ev == Ev.HTTP_REQUEST:
        mgpy.http_reply(c, 200, BODY, headers=HEADERS)


def main() -> None:
    """Listen on 127.0.0.1:PORT and poll forever."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls-cert", help="serve HTTPS with this certificate (and --tls-key)")
    ap.add_argument("--tls-key")
    args = ap.parse_args()
    mgr = mgpy.Manager()
    tls = mgpy.TlsOpts(cert=args.tls_cert, key=args.tls_key) if args.tls_cert else None
    lc = mgr.bind(f"127.0.0.1:{args.port}", handler, tls=tls)
    lc.set_protocol_http_websocket()
    while True:
        mgr.poll(1000)


if __name__ == "__main__":
    main()

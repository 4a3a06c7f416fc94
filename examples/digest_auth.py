"""HTTP Digest authentication (RFC 7616), server and client.

Server: ``/`` is public; ``/secret/...`` is protected by an htdigest file
(Apache's ``user:realm:HA1`` format) through ``register_http_endpoint``
options, and ``/files/...`` serves a directory protected the same way through
``ServeOpts``.  ``--add-user NAME:PASSWORD`` writes MD5 and SHA-256 entries for
a user into the file first (so SHA-256 clients such as curl and MD5-only ones
both log in).  Nonces expire after five minutes and are bound to this process;
a replayed request is refused.

Client: ``--get URL`` fetches a URL with ``connect_http``; ``user:pass@`` in the
URL answers the server's Digest challenge (one retry, on a new connection if
the server closed the first one).

Try it:  python examples/digest_auth.py --htdigest htdigest --add-user alice:secret
         curl --digest -u alice:secret http://127.0.0.1:8000/secret/
         python examples/digest_auth.py --get http://alice:secret@127.0.0.1:8000/secret/
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any

import mgpy
from mgpy import Ev
from mgpy.proto.digest import ha1, parse_authorization


def add_user(path: str, realm: str, spec: str) -> None:
    """Replace ``user``'s lines for ``realm`` in the htdigest file with MD5 + SHA-256 ones."""
    user, sep, password = spec.partition(":")
    if not sep or not user:
        sys.exit(f"digest_auth: --add-user wants NAME:PASSWORD, got {spec!r}")
    keep = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            keep = [ln for ln in f if not ln.startswith(f"{user}:{realm}:")]
    keep += [f"{user}:{realm}:{ha1(user, realm, password, a)}\n" for a in ("SHA-256", "MD5")]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.writelines(keep)


def serve(args: argparse.Namespace) -> None:
    htdigest = os.path.abspath(args.htdigest)
    opts = mgpy.ServeOpts(document_root=args.root, auth_file=htdigest, auth_domain=args.realm)

    def public(c: mgpy.Connection, ev: int, ev_data: Any) -> None:
        if ev == Ev.HTTP_REQUEST:
            if ev_data.uri.startswith("/files/"):
                ev_data.uri = ev_data.uri[len("/files") :]
                mgpy.serve_http(c, ev_data, opts)
            else:
                mgpy.http_reply(c, 200, "public page: try /secret/ or /files/\n")

    def secret(c: mgpy.Connection, ev: int, ev_data: Any) -> None:
        if ev == Ev.HTTP_REQUEST:  # only reached with valid credentials
            auth = parse_authorization(ev_data.header("authorization") or "") or {}
            user = auth.get("username", "?")
            mgpy.http_reply(c, 200, f"hello {user}, you used {auth.get('algorithm', 'MD5')}\n")

    with mgpy.Manager() as mgr:
        try:
            lc = mgr.bind(args.listen, public)
        except mgpy.Error as e:
            sys.exit(f"digest_auth: {e}")
        lc.set_protocol_http_websocket()
        mgpy.register_http_endpoint(
            lc, "/secret/**", secret, auth_file=htdigest, auth_domain=args.realm
        )
        stop: list[int] = []

        def on_signal(signum: int, frame: object) -> None:
            stop.append(signum)  # leave the loop below; the `with` then closes every connection
            mgr.wakeup()  # now, not when poll() times out

        signal.signal(signal.SIGINT, on_signal)  # Ctrl-C, also when started in the background
        signal.signal(signal.SIGTERM, on_signal)  # kill, systemd, docker stop
        print(
            f"digest_auth on http://{lc.local[0]}:{lc.local[1]}/ realm {args.realm!r}", flush=True
        )
        while not stop:
            mgr.poll(1000)


def get(url: str) -> int:
    """Fetch ``url``; print the status and body; return 0 for a 2xx answer."""
    result: dict[str, Any] = {}

    def handler(c: mgpy.Connection, ev: int, ev_data: Any) -> None:
        if ev == Ev.HTTP_REPLY:
            result["reply"] = ev_data
        elif ev == Ev.ERROR:
            result["error"] = ev_data
        elif ev == Ev.CLOSE:
            result["done"] = True

    with mgpy.Manager() as mgr:
        mgr.connect_http(url, handler)
        while "done" not in result:
            mgr.poll(100)
    hm = result.get("reply")
    if hm is None:
        print(f"error: {result.get('error', 'no reply')}", file=sys.stderr)
        return 1
    print(hm.resp_code, hm.resp_status_msg)
    sys.stdout.write(hm.body.decode("utf-8", "replace"))
    return 0 if 200 <= hm.resp_code < 300 else 1


def main() -> int:
    ap = argparse.ArgumentParser(description="Digest authentication: a protected server, a client.")
    ap.add_argument("--listen", default="127.0.0.1:8000", help="address (default 127.0.0.1:8000)")
    ap.add_argument("--htdigest", default="htdigest", help="htdigest file (default: ./htdigest)")
    ap.add_argument("--realm", default="mgpy example", help="the realm (default: mgpy example)")
    ap.add_argument("--root", default=".", help="directory served under /files/ (default: .)")
    ap.add_argument(
        "--add-user",
        action="append",
        default=[],
        metavar="NAME:PASSWORD",
        help="write this user into the htdigest file first (repeatable)",
    )
    ap.add_argument("--get", metavar="URL", help="client mode: fetch URL and print the answer")
    args = ap.parse_args()
    if args.get:
        return get(args.get)
    for spec in args.add_user:
        add_user(args.htdigest, args.realm, spec)
    serve(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``mgpy`` command (also ``python -m mgpy``): serve a directory, with a WebSocket
echo and a live stats push.

Routes:
  /ws         WebSocket echo: every data message goes back to its sender, same opcode
  /ws/push    live server stats pushed once a second (JSON); the first message also
              carries the last 60 s of samples and whether uploads are on; every text
              message a client sends is broadcast to all /ws/push clients
  /upload     POST multipart/form-data, saved to --upload-dir (403 when not configured)
  /*          static files from --root, by default the dashboard shipped in the package
              (GET/HEAD, ranges, ETags, brotli/gzip)

SIGINT (Ctrl-C) and SIGTERM stop the server cleanly (open WebSockets get 1001), also
when it was started in the background with SIGINT ignored.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import logging
import os
import signal
import sys
import time
from typing import Any, NoReturn

import mgpy

try:
    from mgpy import Ev, F
    from mgpy._version import __version__
except ImportError:
    if getattr(mgpy, "__file__", None) is None:
        # ``python -m mgpy`` run next to a directory named mgpy/ without __init__.py (the
        # parent of a clone of the repository): Python took that directory for the package.
        where = ", ".join(getattr(mgpy, "__path__", [])) or "a directory named mgpy"
        sys.stderr.write(
            f"mgpy: error: Python imported {where} as the package 'mgpy' instead of the "
            "installed one (a directory named mgpy/ in the current directory hides it). "
            "Run the `mgpy` command, or `python -m mgpy` from another directory.\n"
        )
        sys.exit(2)
    raise

log = logging.getLogger("mgpy.cli")

#: the dashboard shipped inside the package, served when no --root is given
DASHBOARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web_root")
#: seconds of stats history a /ws/push client gets when it connects (one sample a second)
HISTORY_SECONDS = 60

_PUSH = F.USER_1  # marks /ws/push clients
_CLOSE = int(Ev.CLOSE)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"mgpy: error: {message} (see --help)\n")
        sys.exit(2)


def _size(text: str) -> int:
    mult = {"k": 1024, "m": 1024**2, "g": 1024**3}
    t = text.strip().lower().rstrip("b").rstrip("i")
    try:
        if t and t[-1] in mult:
            return int(float(t[:-1]) * mult[t[-1]])
        return int(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 16777216, 16M)") from None


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {text!r}")
    return name.strip(), value.strip()


def build_parser(prog: str = "mgpy") -> argparse.ArgumentParser:
    """The command-line interface; ``prog`` is how the usage line names the command."""
    p = _Parser(
        prog=prog,
        description="Serve a directory over HTTP/1.1 with a WebSocket echo (/ws) and a live "
        "stats push (/ws/push), like mongoose's simplest web server. Without --root it "
        "serves mgpy's own dashboard.",
    )
    p.add_argument("--version", action="version", version=f"mgpy {__version__}")
    p.add_argument(
        "--root",
        default=None,
        help="directory to serve (default: the dashboard shipped with mgpy)",
    )
    p.add_argument(
        "--listen",
        default="127.0.0.1:8000",
        help="address to listen on: PORT, HOST:PORT, [IPv6]:PORT, http://..., https://... "
        "(default: 127.0.0.1:8000)",
    )
    p.add_argument(
        "--dir-listing", action="store_true", help="list directories without an index file"
    )
    p.add_argument(
        "--extra-header",
        action="append",
        type=_header,
        default=[],
        metavar="'NAME: VALUE'",
        help="add a header to every static response (repeatable), "
        "e.g. 'Access-Control-Allow-Origin: *'",
    )
    p.add_argument("--index", default="index.html,index.htm", help="index files, comma-separated")
    p.add_argument("--upload-dir", default=None, help="enable POST /upload, saving files here")
    p.add_argument(
        "--max-upload", type=_size, default=_size("1G"), help="largest upload per file (default 1G)"
    )
    p.add_argument(
        "--ws-max-message",
        type=_size,
        default=None,
        help="largest WebSocket message in bytes (default 1 MiB)",
    )
    p.add_argument("--tls-cert", default=None, help="PEM certificate chain: serve HTTPS and WSS")
    p.add_argument("--tls-key", default=None, help="PEM private key for --tls-cert")
    p.add_argument("--auth-file", default=None, help="htdigest file protecting every static file")
    p.add_argument(
        "--auth-realm", default="mgpy", help="Digest realm for --auth-file (default: mgpy)"
    )
    p.add_argument("--no-push", action="store_true", help="do not push stats on /ws/push")
    p.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="logging level (default: info)",
    )
    return p


class Server:
    """The CLI's server: static files, /ws echo, /ws/push stats, /upload."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        limits = mgpy.Limits()
        if args.ws_max_message is not None:
            limits = dataclasses.replace(
                limits,
                ws_max_message=args.ws_max_message,
                max_recv_buffer=max(limits.max_recv_buffer, 1 << 20),
            )
        self.mgr = mgpy.Manager(limits=limits)
        self.root = args.root if args.root is not None else DASHBOARD
        self.opts = mgpy.ServeOpts(
            document_root=self.root,
            index_files=[s.strip() for s in args.index.split(",") if s.strip()],
            enable_directory_listing=args.dir_listing,
            extra_headers=args.extra_header,
        )
        if args.auth_file:
            self.opts = dataclasses.replace(
                self.opts, auth_file=args.auth_file, auth_domain=args.auth_realm
            )
        self.upload = None
        if args.upload_dir:
            os.makedirs(args.upload_dir, exist_ok=True)
            self.upload = mgpy.file_upload_handler(
                lambda c, name: os.path.join(args.upload_dir, name),
                max_file_size=args.max_upload,
            )
        self.started = time.time()
        self.last = (self.started, 0, 0, 0, 0)
        self.history: collections.deque[dict[str, Any]] = collections.deque(maxlen=HISTORY_SECONDS)
        self.listener: mgpy.Connection | None = None

    # -- handler ------------------------------------------------------------------
    def handler(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev <= _CLOSE:
            return  # POLL, ACCEPT, CONNECT, RECV, SEND, CLOSE: nothing to do (hot: every poll)
        if ev == Ev.HTTP_REQUEST:
            if ev_data.uri == "/upload":
                mgpy.http_reply(
                    c,
                    405 if self.upload is not None else 403,
                    json.dumps(
                        {
                            "ok": False,
                            "error": "POST multipart/form-data here"
                            if self.upload is not None
                            else "uploads are disabled",
                        }
                    ),
                    {"Content-Type": "application/json"},
                )
                return
            mgpy.serve_http(c, ev_data, self.opts)
        elif ev == Ev.WS_HANDSHAKE_REQUEST:
            if ev_data.uri not in ("/ws", "/ws/push"):
                mgpy.http_send_error(c, 404)
        elif ev == Ev.WS_HANDSHAKE_DONE:
            if ev_data.uri == "/ws/push":
                c.flags |= _PUSH
                if not self.args.no_push:
                    c.send_websocket_frame(mgpy.WS_OP_TEXT, self.greeting_json())
        elif ev == Ev.WS_FRAME:
            if c.flags & _PUSH:
                if ev_data.opcode == mgpy.WS_OP_TEXT:
                    for other in self.mgr.connections:
                        if other.flags & _PUSH:
                            other.send_websocket_frame(mgpy.WS_OP_TEXT, ev_data.data)
            else:
                c.send_websocket_frame(ev_data.opcode, ev_data.data)
        elif ev in (
            Ev.HTTP_MULTIPART_REQUEST,
            Ev.HTTP_PART_BEGIN,
            Ev.HTTP_PART_DATA,
            Ev.HTTP_PART_END,
            Ev.HTTP_MULTIPART_REQUEST_END,
        ):
            self.on_upload(c, ev, ev_data)
        elif ev == Ev.TIMER and c is self.listener:
            self.push_stats()
            c.set_timer(time.time() + 1.0)

    def on_upload(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.HTTP_MULTIPART_REQUEST:
            if ev_data.uri != "/upload" or self.upload is None:
                code = 404 if ev_data.uri != "/upload" else 403
                msg = "not found" if code == 404 else "uploads are disabled"
                mgpy.http_reply(
                    c,
                    code,
                    json.dumps({"ok": False, "error": msg}),
                    {"Content-Type": "application/json"},
                )
                return
        if self.upload is not None:
            self.upload(c, ev, ev_data)

    # -- stats ----------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        m = self.mgr
        now = time.time()
        conns = [c for c in m.connections if not c.flags & F.LISTENING]
        t0, req0, in0, out0, ws0 = self.last
        dt = max(now - t0, 1e-3)
        s = {
            "type": "stats",
            "time": now,
            "uptime": now - self.started,
            "connections": len(conns),
            "ws_clients": sum(1 for c in conns if c.flags & _PUSH),
            "requests": m.requests,
            "rps": (m.requests - req0) / dt,
            "bytes_in": m.bytes_in,
            "bytes_out": m.bytes_out,
            "in_rate": (m.bytes_in - in0) / dt,
            "out_rate": (m.bytes_out - out0) / dt,
            "ws_messages": m.ws_messages,
            "ws_mps": (m.ws_messages - ws0) / dt,
        }
        return s

    def greeting(self) -> dict[str, Any]:
        """The first message of a /ws/push client: a stats sample, plus what a page needs
        once (docs/push_protocol.md): the samples of the last 60 s, oldest first, so its
        chart starts full; whether uploads are on (and why not); the server's version."""
        s = self.stats()
        s["history"] = list(self.history)
        if self.upload is not None:
            s["upload"] = {"enabled": True, "max_size": self.args.max_upload}
        else:
            s["upload"] = {
                "enabled": False,
                "reason": "Uploads are off: this server was started without --upload-dir.",
            }
        s["version"] = __version__
        return s

    def greeting_json(self) -> str:
        return json.dumps(self.greeting(), separators=(",", ":"))

    def push_stats(self) -> None:
        s = self.stats()
        m = self.mgr
        self.last = (s["time"], m.requests, m.bytes_in, m.bytes_out, m.ws_messages)
        self.history.append({k: v for k, v in s.items() if k != "type"})
        if self.args.no_push:
            return
        text = json.dumps(s, separators=(",", ":"))
        for c in m.connections:
            if c.flags & _PUSH:
                c.send_websocket_frame(mgpy.WS_OP_TEXT, text)

    # -- run --------------------------------------------------------------------------
    def start(self) -> str:
        a = self.args
        tls = None
        if a.tls_cert or a.tls_key:
            if not (a.tls_cert and a.tls_key):
                raise mgpy.Error("--tls-cert and --tls-key go together")
            tls = mgpy.TlsOpts(cert=a.tls_cert, key=a.tls_key)
        lc = self.listener = self.mgr.bind(a.listen, self.handler, tls=tls)
        lc.set_protocol_http_websocket()
        lc.set_timer(time.time() + 1.0)
        host, port = lc.local[0], lc.local[1]
        scheme = "https" if tls is not None or a.listen.startswith(("https:", "wss:")) else "http"
        shown = f"[{host}]" if ":" in host else host
        return f"{scheme}://{shown}:{port}/"


def main(argv: list[str] | None = None, prog: str = "mgpy") -> int:
    """Entry point of the ``mgpy`` command and ``python -m mgpy``; returns the exit status."""
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    root = args.root if args.root is not None else DASHBOARD
    if not os.path.isdir(root):
        what = "--root" if args.root is not None else "the dashboard shipped with mgpy"
        sys.stderr.write(f"mgpy: error: {what} {root!r} is not a directory\n")
        return 2
    try:
        srv = Server(args)
        url = srv.start()
    except mgpy.Error as e:
        sys.stderr.write(f"mgpy: error: {e}\n")
        return 2
    stop: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        stop.append(signum)
        srv.mgr.wakeup()  # return from poll() now, not at its timeout

    # Both signals stop the loop cleanly, also when SIGINT was ignored at start (a job
    # started in the background by a non-interactive shell).
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        served = os.path.abspath(root) if args.root is not None else f"the dashboard ({root})"
        print(
            f"mgpy serving {served} on {url} "
            f"(WebSocket echo at /ws, live stats at /ws/push). Press Ctrl-C to stop.",
            flush=True,
        )
        while not stop:
            srv.mgr.poll(1000)
    finally:
        srv.mgr.close()
    print("mgpy: stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m mgpy"))

"""The ``mgpy`` command's server: static files, a WebSocket echo, a live stats push, uploads.

Routes:
  /ws         WebSocket echo: every data message goes back to its sender, same opcode
  /ws/push    live server stats pushed once a second (JSON); the first message also
              carries the last 60 s of samples and whether uploads are on; every text
              message a client sends is broadcast to all /ws/push and /events clients
              (of every worker and host bridged with --redis)
  /events     the same stream as Server-Sent Events (event: stats / chat / mqtt),
              Last-Event-ID replays what a reconnecting client missed (``push``)
  /upload     POST multipart/form-data, saved to --upload-dir (403 when not configured)
  /*          static files from --root, by default the dashboard shipped in the package
              (GET/HEAD, ranges, ETags, brotli/gzip)

Under ``--workers N`` each worker process runs one ``Server`` on the shared port; the
stats say which one serves.

A plain GET of /ws or /ws/push gets 426 Upgrade Required.  A request whose answer its
head decides (a POST to a static file, an upload when uploads are off, no credentials)
is answered at once, before its body is read (Ev.HTTP_HEADERS).  With --auth-file every
path needs Digest credentials: static files, uploads and both WebSocket paths.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import logging
import os
import time
from typing import Any

import mgpy
from mgpy import Ev, F

from .._version import __version__
from ..mqtt import MqttBroker
from ..workers import Worker
from .mqtt import start_broker
from .push import TOPICS, Push

__all__ = ["DASHBOARD", "Server"]

log = logging.getLogger("mgpy.cli")

#: the dashboard shipped inside the package, served when no --root is given
DASHBOARD = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "web_root")
#: seconds of stats history a /ws/push client gets when it connects (one sample a second)
HISTORY_SECONDS = 60
#: the WebSocket paths; a plain GET of them gets 426
WS_PATHS = ("/ws", "/ws/push")
#: the Server-Sent Events stream
EVENTS_PATH = "/events"

_PUSH = F.USER_1  # marks /ws/push clients
_CLOSE = int(Ev.CLOSE)
_UPLOAD_EVENTS = (
    Ev.HTTP_MULTIPART_REQUEST,
    Ev.HTTP_PART_BEGIN,
    Ev.HTTP_PART_DATA,
    Ev.HTTP_PART_END,
    Ev.HTTP_MULTIPART_REQUEST_END,
)
_JSON = {"Content-Type": "application/json"}


def _limits(args: argparse.Namespace) -> mgpy.Limits:
    limits = mgpy.Limits()
    if args.ws_max_message is not None:
        limits = dataclasses.replace(
            limits,
            ws_max_message=args.ws_max_message,
            max_recv_buffer=max(limits.max_recv_buffer, 1 << 20),
        )
    if args.ws_max_fragments is not None:
        limits = dataclasses.replace(limits, ws_max_fragments=args.ws_max_fragments)
    return limits


class Server:
    """The CLI's server: static files, /ws echo, /ws/push and /events stats, /upload."""

    def __init__(self, args: argparse.Namespace, worker: Worker | None = None) -> None:
        self.args = args
        self.worker = worker
        self.mgr = mgpy.Manager(limits=_limits(args))
        self.push = Push(self.mgr, args, worker)
        if not getattr(args, "no_access_log", False):
            mgpy.enable_access_log(self.mgr)
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
        self.broker: MqttBroker | None = None  # --mqtt

    # -- handler ------------------------------------------------------------------
    def handler(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev <= _CLOSE:
            return  # POLL, ACCEPT, CONNECT, RECV, SEND, CLOSE: nothing to do (hot: every poll)
        if ev == Ev.HTTP_REQUEST:
            self.on_request(c, ev_data)
        elif ev == Ev.HTTP_HEADERS:
            self.on_head(c, ev_data)
        elif ev == Ev.WS_HANDSHAKE_REQUEST:
            if ev_data.uri not in WS_PATHS:
                mgpy.http_send_error(c, 404)
        elif ev == Ev.WS_HANDSHAKE_DONE:
            if ev_data.uri == "/ws/push":
                c.flags |= _PUSH
                if not self.args.no_push:
                    self.push.ws_client(c, self.greeting_json())
                else:
                    self.push.hub.subscribe(c, [t for t in TOPICS if t != "stats"])
        elif ev == Ev.WS_FRAME:
            if c.flags & _PUSH:
                if ev_data.opcode == mgpy.WS_OP_TEXT:
                    self.push.chat(ev_data.data)
            else:
                c.send_websocket_frame(ev_data.opcode, ev_data.data)
        elif ev in _UPLOAD_EVENTS:
            self.on_upload(c, ev, ev_data)
        elif ev == Ev.TIMER and c is self.listener:
            self.push_stats()
            c.set_timer(time.time() + 1.0)

    def on_request(self, c: mgpy.Connection, hm: mgpy.HttpMessage) -> None:
        if hm.uri in WS_PATHS:
            mgpy.http_send_error(c, 426)  # a WebSocket path asked for without the upgrade
        elif hm.uri == EVENTS_PATH:
            if hm.method in ("GET", "HEAD"):
                self.push.sse_client(c, hm, self.greeting_json())
            else:
                mgpy.http_send_error(c, 405, headers={"Allow": "GET, HEAD"})
        elif hm.uri == "/upload":
            self.upload_refused(c, 405 if self.upload is not None else 403)
        else:
            mgpy.serve_http(c, hm, self.opts)

    def on_head(self, c: mgpy.Connection, hm: mgpy.HttpMessage) -> None:
        """The head of a request with a body: answer now what needs no body (405, 403, 426)."""
        if hm.uri in WS_PATHS:
            mgpy.http_send_error(c, 426)
        elif hm.uri == EVENTS_PATH:
            mgpy.http_send_error(c, 405, headers={"Allow": "GET, HEAD"})
        elif hm.uri == "/upload":
            if self.upload is None:
                self.upload_refused(c, 403)
            # else: a multipart upload goes on (anything else is answered 405 at its end)
        elif hm.method not in ("GET", "HEAD"):
            mgpy.serve_http(c, hm, self.opts)  # static files take no body: 405 + Allow now

    def upload_refused(self, c: mgpy.Connection, code: int) -> None:
        msg = "POST multipart/form-data here" if code == 405 else "uploads are disabled"
        headers = dict(_JSON)
        if code == 405:
            headers["Allow"] = "POST"
        mgpy.http_reply(c, code, json.dumps({"ok": False, "error": msg}), headers)

    def on_upload(self, c: mgpy.Connection, ev: Any, ev_data: Any) -> None:
        if ev == Ev.HTTP_MULTIPART_REQUEST:
            if ev_data.uri != "/upload" or self.upload is None:
                code = 404 if ev_data.uri != "/upload" else 403
                msg = "not found" if code == 404 else "uploads are disabled"
                mgpy.http_reply(c, code, json.dumps({"ok": False, "error": msg}), _JSON)
                return
        if self.upload is not None:
            self.upload(c, ev, ev_data)

    # -- stats ----------------------------------------------------------------------
    def push_clients(self) -> list[mgpy.Connection]:
        return [c for c in self.mgr.connections if c.flags & _PUSH]

    def stats(self) -> dict[str, Any]:
        m = self.mgr
        now = time.time()
        conns = [c for c in m.connections if not c.is_listener]
        t0, req0, in0, out0, ws0 = self.last
        dt = max(now - t0, 1e-3)
        return {
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
            "pid": os.getpid(),
            **self.push.stats(),
        }

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
        if not self.args.no_push:
            self.push.local("stats", json.dumps(s, separators=(",", ":")))

    # -- run --------------------------------------------------------------------------
    def start(self, listen: str | None = None, reuse_port: bool = False) -> str:
        """Listen on ``listen`` (default ``--listen``); return the URL to print."""
        a = self.args
        tls = None
        if a.tls_cert or a.tls_key:
            if not (a.tls_cert and a.tls_key):
                raise mgpy.Error("--tls-cert and --tls-key go together")
            tls = mgpy.TlsOpts(cert=a.tls_cert, key=a.tls_key)
        compression = None if getattr(a, "no_ws_compression", False) else mgpy.DeflateOptions()
        addr = listen if listen is not None else a.listen
        lc = self.listener = self.mgr.bind(
            addr, self.handler, tls=tls, compression=compression, reuse_port=reuse_port
        )
        lc.set_protocol_http_websocket()
        if a.auth_file:
            # everything behind the credentials, answered on the head (before an upload's
            # body, a 100 Continue or a 101): "/ws" also covers /ws/push
            for pattern in ("/upload", "/ws", EVENTS_PATH):
                mgpy.register_http_endpoint(
                    lc, pattern, self.handler, auth_file=a.auth_file, auth_domain=a.auth_realm
                )
        if getattr(a, "mqtt", None):
            self.broker = start_broker(self, lc, a.mqtt, a.mqtt_prefix, a.auth_file, a.auth_realm)
        lc.set_timer(time.time() + 1.0)
        host, port = lc.local[0], lc.local[1]
        scheme = "https" if tls is not None or addr.startswith(("https:", "wss:")) else "http"
        shown = f"[{host}]" if ":" in host else host
        return f"{scheme}://{shown}:{port}/"

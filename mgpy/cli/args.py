"""The ``mgpy`` command line: every option, with its default and what it changes."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from .._version import __version__

__all__ = ["build_parser", "parse_size"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"mgpy: error: {message} (see --help)\n")
        sys.exit(2)


def parse_size(text: str) -> int:
    """``16777216``, ``16M``, ``512k``, ``1GiB`` -> bytes."""
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


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def build_parser(prog: str = "mgpy") -> argparse.ArgumentParser:
    """The command-line interface; ``prog`` is how the usage line names the command."""
    p = _Parser(
        prog=prog,
        description="Serve a directory over HTTP/1.1 with a WebSocket echo (/ws) and a live "
        "stats push (/ws/push, and /events as Server-Sent Events), like mongoose's simplest "
        "web server. Without --root it serves mgpy's own dashboard.",
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
        "(default: 127.0.0.1:8000; a bare PORT listens on every interface)",
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
        "--max-upload-size",
        "--max-upload",
        dest="max_upload",
        type=parse_size,
        default=parse_size("1G"),
        metavar="SIZE",
        help="largest uploaded file, e.g. 100M (default 1G); larger uploads get 413",
    )
    p.add_argument(
        "--ws-max-message",
        type=parse_size,
        default=None,
        metavar="SIZE",
        help="largest WebSocket message in bytes (default 1 MiB); conformance runs need 16M",
    )
    p.add_argument(
        "--ws-max-fragments",
        type=_positive,
        default=None,
        metavar="N",
        help="most fragments in one WebSocket message (default 4096; more -> close 1009)",
    )
    p.add_argument(
        "--no-ws-compression",
        action="store_true",
        help="do not negotiate WebSocket compression (permessage-deflate, on by default)",
    )
    p.add_argument("--tls-cert", default=None, help="PEM certificate chain: serve HTTPS and WSS")
    p.add_argument("--tls-key", default=None, help="PEM private key for --tls-cert")
    p.add_argument(
        "--auth-file",
        default=None,
        help="htdigest file: every path needs Digest credentials (static files, /upload, "
        "/ws and /ws/push)",
    )
    p.add_argument(
        "--auth-realm", default="mgpy", help="Digest realm for --auth-file (default: mgpy)"
    )
    p.add_argument("--no-push", action="store_true", help="do not push stats on /ws/push")
    p.add_argument(
        "--mqtt",
        default=None,
        metavar="ADDR",
        help="also run an MQTT broker on ADDR (e.g. 127.0.0.1:1883), and MQTT over "
        "WebSocket at /mqtt; with --auth-file it asks for credentials from that file",
    )
    p.add_argument(
        "--mqtt-prefix",
        default="sensors/",
        metavar="PREFIX",
        help="MQTT messages under this topic prefix appear on the dashboard "
        "(default: sensors/; '' shows every topic)",
    )
    p.add_argument(
        "--redis",
        default=None,
        metavar="URL",
        help="bridge /ws/push chat and /events across processes and hosts through Redis 6+: "
        "redis://[[user]:password@]host[:port][/db], rediss:// for TLS. Delivery is at most "
        "once: while Redis is down each process serves its own clients",
    )
    p.add_argument(
        "--redis-prefix",
        default="mgpy:",
        metavar="PREFIX",
        help="Redis channel and key prefix; servers with the same prefix share a chat "
        "(default: mgpy:)",
    )
    p.add_argument(
        "--workers",
        type=_positive,
        default=None,
        metavar="N",
        help="run N worker processes sharing the port (SO_REUSEPORT), restarted if they "
        "crash; each has its own counters. Use --redis to share the chat between them",
    )
    p.add_argument(
        "--no-access-log",
        action="store_true",
        help="do not log one line per request (logger mgpy.access, at --log-level info)",
    )
    p.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="logging level (default: info)",
    )
    return p

"""The ``mgpy`` command (also ``python -m mgpy``): serve a directory, with a WebSocket
echo and a live stats push; see ``server`` for the routes and ``args`` for the options.

SIGINT (Ctrl-C) and SIGTERM stop the server cleanly (open WebSockets get 1001), also
when it was started in the background with SIGINT ignored.  ``--workers N`` runs N such
servers in worker processes on one port (``mgpy.workers``); the supervisor forwards the
signals and restarts a worker that crashes.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

import mgpy

from ..workers import Worker, run_workers
from .args import build_parser
from .server import DASHBOARD, Server

__all__ = ["Server", "build_parser", "main"]

log = logging.getLogger("mgpy.cli")


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
    served = os.path.abspath(root) if args.root is not None else f"the dashboard ({root})"
    if args.workers is not None:
        return _main_workers(args, served)
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
        say(f"mgpy serving {served} on {url} ({_ROUTES}). Press Ctrl-C to stop.")
        while not stop:
            srv.mgr.poll(1000)
    finally:
        srv.mgr.close()
    say("mgpy: stopped.")
    return 0


_ROUTES = "WebSocket echo at /ws, live stats at /ws/push and /events"


def say(line: str) -> None:
    """Print one line in one write: the workers share stdout, and print() makes two writes
    when Python runs unbuffered (PYTHONUNBUFFERED), which could interleave their lines."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _main_workers(args: argparse.Namespace, served: str) -> int:
    """``--workers N``: the supervisor; each worker runs a ``Server`` on the shared port."""
    if args.mqtt:
        sys.stderr.write("mgpy: error: --mqtt runs one broker: it cannot go with --workers\n")
        return 2
    if args.redis is None and args.workers > 1:
        log.warning("--workers without --redis: a chat line reaches the pages of one worker")

    def serve(w: Worker) -> int:
        try:
            srv = Server(args, worker=w)
            url = srv.start(listen=w.listen, reuse_port=True)
        except mgpy.Error as e:
            sys.stderr.write(f"mgpy: error: {e}\n")
            return 2
        say(
            f"mgpy serving {served} on {url} ({_ROUTES}; worker {w.index + 1} of {w.count}, "
            f"pid {w.pid}). Press Ctrl-C to stop."
        )
        w.run(srv.mgr)
        return 0

    try:
        status = run_workers(args.workers, serve, listen=args.listen)
    except mgpy.Error as e:
        sys.stderr.write(f"mgpy: error: {e}\n")
        return 2
    say("mgpy: stopped.")
    return status

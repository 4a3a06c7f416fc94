"""mongoose's simplest_web_server: serve a directory over HTTP.

Try it:  python examples/simplest_web_server.py --root . --listen 127.0.0.1:8000
Ctrl-C (SIGINT) or SIGTERM stops it cleanly.
"""

import argparse
import signal
import sys

import mgpy

ap = argparse.ArgumentParser(description="Serve a directory over HTTP (mongoose's classic).")
ap.add_argument("--root", default=".", help="directory to serve (default: the current one)")
ap.add_argument("--listen", default="127.0.0.1:8000", help="address (default 127.0.0.1:8000)")
args = ap.parse_args()
opts = mgpy.ServeOpts(document_root=args.root, enable_directory_listing=True)


def handler(c: mgpy.Connection, ev: int, ev_data: mgpy.HttpMessage) -> None:
    if ev == mgpy.Ev.HTTP_REQUEST:
        mgpy.serve_http(c, ev_data, opts)


with mgpy.Manager() as mgr:
    try:
        lc = mgr.bind(args.listen, handler)
    except mgpy.Error as e:
        sys.exit(f"simplest_web_server: {e}")
    lc.set_protocol_http_websocket()
    stop: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        stop.append(signum)  # leave the loop below; the `with` then closes every connection
        mgr.wakeup()  # now, not when poll() times out

    signal.signal(signal.SIGINT, on_signal)  # Ctrl-C, also when started in the background
    signal.signal(signal.SIGTERM, on_signal)  # kill, systemd, docker stop
    print(f"serving {args.root} on http://{lc.local[0]}:{lc.local[1]}/", flush=True)
    while not stop:
        mgr.poll(1000)

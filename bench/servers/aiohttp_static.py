"""Static files on aiohttp: web.static serving ROOT at /, access log off."""

from __future__ import annotations

import argparse

from aiohttp import web


def main() -> None:
    """Serve ROOT on 127.0.0.1:PORT."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--root", required=True)
    args = ap.parse_args()
    app = web.Application()
    app.add_routes([web.static("/", args.root)])
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()

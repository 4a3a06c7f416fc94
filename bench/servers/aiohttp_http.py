"""HTTP keep-alive hello world on aiohttp (web.Application, access log off)."""

from __future__ import annotations

import argparse

from aiohttp import web


async def hello(request: web.Request) -> web.Response:
    """Return the fixed body."""
    return web.Response(body=b"Hello, World!", content_type="text/plain")


def main() -> None:
    """Serve GET / on 127.0.0.1:PORT."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    app = web.Application()
    app.router.add_get("/", hello)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()

"""A small JSON API built with register_http_endpoint.

Endpoints (an in-memory store of items ``{"id": 1, "name": "...", ...}``):

    GET    /api/items           list the items
    POST   /api/items           create one from a JSON object -> 201 + Location
    DELETE /api/items           delete them all
    GET    /api/items/<id>      one item, or 404
    PUT    /api/items/<id>      replace it (400 on bad JSON, 404 if missing)
    DELETE /api/items/<id>      delete it -> 204
    GET    /api/stats           request counters

Errors are JSON too: ``{"error": "..."}`` with 400, 404, 405 (+ Allow), 413
(a body over --max-body, refused as soon as its Content-Length or its first
bytes show it) or 500 (a bug in a handler).  Everything else is 404.  Each
endpoint handler receives only the requests its pattern matches (the longest
pattern wins); ``json_errors`` wraps each one.  Only requests too malformed to
reach a handler (a broken request line, oversized headers) get mgpy's own
plain-text 400/414/431.

Ctrl-C (SIGINT) or SIGTERM stops the server cleanly.

Try it:
    python examples/restful_server.py --listen 127.0.0.1:8000
    curl -d '{"name": "apple"}' http://127.0.0.1:8000/api/items
    curl http://127.0.0.1:8000/api/items/1
    curl -X DELETE http://127.0.0.1:8000/api/items/1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any

import mgpy
from mgpy import Ev

JSON = {"Content-Type": "application/json"}
Handler = Callable[[mgpy.Connection, Any, Any], None]
log = logging.getLogger("restful_server")


class Store:
    """The items, kept in memory."""

    def __init__(self) -> None:
        self.items: dict[int, dict[str, Any]] = {}
        self.next_id = 1

    def add(self, fields: dict[str, Any]) -> dict[str, Any]:
        item = {**fields, "id": self.next_id}
        self.items[self.next_id] = item
        self.next_id += 1
        return item


def reply_json(
    c: mgpy.Connection, code: int, obj: Any, headers: dict[str, str] | None = None
) -> None:
    """Send ``obj`` as a JSON response."""
    mgpy.http_reply(c, code, json.dumps(obj) + "\n", {**JSON, **(headers or {})})


def error(
    c: mgpy.Connection, code: int, message: str, headers: dict[str, str] | None = None
) -> None:
    """Send a JSON error."""
    reply_json(c, code, {"error": message}, headers)


def not_allowed(c: mgpy.Connection, allow: str) -> None:
    error(c, 405, "method not allowed", {"Allow": allow})


def parse_object(c: mgpy.Connection, hm: mgpy.HttpMessage) -> dict[str, Any] | None:
    """Decode the request body as a JSON object, or answer 400 and return None."""
    try:
        obj = json.loads(hm.body)
    except ValueError:
        error(c, 400, "body is not valid JSON")
        return None
    if not isinstance(obj, dict):
        error(c, 400, "body must be a JSON object")
        return None
    obj.pop("id", None)
    return obj


def make_app(store: Store, stats: dict[str, int]) -> dict[str, Handler]:
    """Return the endpoint handlers, by pattern."""

    def items(c: mgpy.Connection, ev: int, hm: Any) -> None:
        if ev != Ev.HTTP_REQUEST:
            return
        stats["requests"] += 1
        if hm.method in ("GET", "HEAD"):
            reply_json(c, 200, list(store.items.values()))
        elif hm.method == "POST":
            fields = parse_object(c, hm)
            if fields is not None:
                item = store.add(fields)
                reply_json(c, 201, item, {"Location": f"/api/items/{item['id']}"})
        elif hm.method == "DELETE":
            store.items.clear()
            mgpy.http_reply(c, 204)
        else:
            not_allowed(c, "GET, HEAD, POST, DELETE")

    def item(c: mgpy.Connection, ev: int, hm: Any) -> None:
        if ev != Ev.HTTP_REQUEST:
            return
        stats["requests"] += 1
        key = hm.uri.rsplit("/", 1)[1]
        found = store.items.get(int(key)) if key.isdigit() else None
        if hm.method not in ("GET", "HEAD", "PUT", "DELETE"):
            not_allowed(c, "GET, HEAD, PUT, DELETE")
        elif found is None:
            error(c, 404, f"no item {key!r}")
        elif hm.method == "PUT":
            fields = parse_object(c, hm)
            if fields is not None:
                found.clear()
                found.update(fields, id=int(key))
                reply_json(c, 200, found)
        elif hm.method == "DELETE":
            del store.items[int(key)]
            mgpy.http_reply(c, 204)
        else:
            reply_json(c, 200, found)

    def stats_endpoint(c: mgpy.Connection, ev: int, hm: Any) -> None:
        if ev == Ev.HTTP_REQUEST:
            stats["requests"] += 1
            if hm.method in ("GET", "HEAD"):
                reply_json(c, 200, {**stats, "items": len(store.items)})
            else:
                not_allowed(c, "GET, HEAD")

    # "$" anchors a pattern at the end of the path; "|" separates alternatives
    return {"/api/items$|/api/items/$": items, "/api/items/*$": item, "/api/stats$": stats_endpoint}


def fallback(c: mgpy.Connection, ev: int, hm: Any) -> None:
    """Requests no endpoint matched."""
    if ev == Ev.HTTP_REQUEST:
        error(c, 404, "no such resource")


def json_errors(handler: Handler, max_body: int) -> Handler:
    """Wrap ``handler`` so that the errors it does not answer itself are JSON too.

    A request body is delivered as HTTP_CHUNK events while it arrives; one over
    ``max_body`` (declared or received) is answered here with a JSON 413 before
    mgpy's own plain-text 413 (``Limits.max_body``) would be.  An exception in
    the handler becomes a JSON 500.
    """

    def wrapped(c: mgpy.Connection, ev: int, hm: Any) -> None:
        if ev == Ev.HTTP_CHUNK:
            declared = hm.header("content-length") or ""
            if len(hm.body) > max_body or (declared.isdigit() and int(declared) > max_body):
                error(c, 413, f"body larger than {max_body} bytes", {"Connection": "close"})
            return
        try:
            handler(c, ev, hm)
        except Exception:
            log.exception("handler failed on %s %s", hm.method, hm.uri)
            if ev == Ev.HTTP_REQUEST:
                error(c, 500, "internal error", {"Connection": "close"})

    return wrapped


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="A JSON API over HTTP/1.1 (items store).")
    ap.add_argument("--listen", default="127.0.0.1:8000", help="address (default 127.0.0.1:8000)")
    ap.add_argument(
        "--max-body",
        type=int,
        default=64 * 1024,
        help="largest request body in bytes; larger -> 413 (default 65536)",
    )
    args = ap.parse_args(argv)
    store, stats = Store(), {"requests": 0}
    limits = dataclasses.replace(mgpy.Limits(), max_body=args.max_body)
    with mgpy.Manager(limits=limits) as mgr:
        try:
            lc = mgr.bind(args.listen, json_errors(fallback, args.max_body))
        except mgpy.Error as e:
            print(f"restful_server: {e}", file=sys.stderr)
            return 2
        for pattern, handler in make_app(store, stats).items():
            mgpy.register_http_endpoint(lc, pattern, json_errors(handler, args.max_body))
        stop: list[int] = []

        def on_signal(signum: int, frame: object) -> None:
            stop.append(signum)  # leave the loop below; the `with` then closes every connection
            mgr.wakeup()  # now, not when poll() times out

        signal.signal(signal.SIGINT, on_signal)  # Ctrl-C, also when started in the background
        signal.signal(signal.SIGTERM, on_signal)  # kill, systemd, docker stop
        print(f"REST API on http://{lc.local[0]}:{lc.local[1]}/api/items", flush=True)
        while not stop:
            mgr.poll(1000)
    return 0


if __name__ == "__main__":
    sys.exit(main())

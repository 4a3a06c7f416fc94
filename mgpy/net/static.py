"""Static files: serve_http and serve_file (placeholder, being rewritten)."""

from __future__ import annotations

import dataclasses
import mimetypes
import os
from typing import TYPE_CHECKING

from ..events import HttpMessage
from ..proto.httputil import url_decode
from .respond import http_reply, http_send_error

if TYPE_CHECKING:
    from .conn import Connection

__all__ = ["ServeOpts", "serve_http", "serve_file"]


@dataclasses.dataclass(frozen=True)
class ServeOpts:
    """How serve_http maps URLs to files."""

    document_root: str = "."
    index_files: list[str] = dataclasses.field(default_factory=lambda: ["index.html", "index.htm"])
    enable_directory_listing: bool = False
    extra_headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    auth_file: str | None = None
    auth_domain: str = "mgpy"


def serve_file(c: Connection, hm: HttpMessage, path: str, mime: str | None = None) -> None:
    """Send the file at ``path`` as the response to ``hm``."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        http_send_error(c, 404)
        return
    ctype = mime or mimetypes.guess_type(path)[0] or "application/octet-stream"
    http_reply(c, 200, data, {"Content-Type": ctype})


def serve_http(c: Connection, hm: HttpMessage, opts: ServeOpts) -> None:
    """Serve ``hm`` from ``opts.document_root``."""
    path = url_decode(hm.uri, form=False)
    if "\0" in path or ".." in path.split("/"):
        http_send_error(c, 400)
        return
    full = os.path.join(opts.document_root, path.lstrip("/"))
    if os.path.isdir(full):
        for name in opts.index_files:
            if os.path.isfile(os.path.join(full, name)):
                full = os.path.join(full, name)
                break
    serve_file(c, hm, full)

"""Saving uploaded files to disk: ``file_upload_handler`` (mongoose's mg_file_upload_handler).

Strategy.  The returned handler consumes the streaming multipart events
(``mgpy.http.multipart``) of one request at a time per connection:

    HTTP_MULTIPART_REQUEST      start a per-request record (files saved, bytes so far)
    HTTP_PART_BEGIN             a part with a file name: sanitise the name, ask
                                ``name_fn(c, safe_name)`` for the final path (None -> 403),
                                create a temporary file next to it (mkstemp: O_EXCL, 0600)
    HTTP_PART_DATA              check the quotas first (-> 413), then write
    HTTP_PART_END status 0      close, then rename into place with os.replace
    HTTP_PART_END status < 0    close and remove the temporary file
    HTTP_MULTIPART_REQUEST_END  status 0: answer 200 ``{"ok":true,"files":[...]}``

Parts without a file name (plain form fields) and empty file inputs
(``filename=""``) are left to the application.  The client's name never
reaches the file system unsanitised (no directories, no control or reserved
characters, no device names), and a file appears under its final name only
once its part ended cleanly: an aborted upload, a quota breach or a write
error leaves nothing behind.  Each file is committed when its own part ends,
so a request that fails on its third file keeps the first two.

Errors are answered with a JSON body ``{"ok":false,"error":...}`` (the contract
of ``docs/push_protocol.md``) and close the connection: 403 (name refused),
413 (``max_file_size`` / ``max_total_size``), 500 (the file could not be
written; the cause is logged, never sent).  The protocol handler then drains
the rest of the body before closing, so the client reads the answer.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import tempfile
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Union

from ..events import Ev, HttpMessage, MultipartPart
from ..proto.multipart import sanitize_filename
from .exchange import may_answer
from .respond import http_reply

if TYPE_CHECKING:
    from ..core import Connection

__all__ = ["FileUploadHandler", "file_upload_handler"]

log = logging.getLogger("mgpy")

EV_HTTP_MULTIPART_REQUEST = Ev.HTTP_MULTIPART_REQUEST
EV_HTTP_MULTIPART_REQUEST_END = Ev.HTTP_MULTIPART_REQUEST_END
EV_HTTP_PART_BEGIN = Ev.HTTP_PART_BEGIN
EV_HTTP_PART_DATA = Ev.HTTP_PART_DATA
EV_HTTP_PART_END = Ev.HTTP_PART_END
EV_HTTP_REQUEST = Ev.HTTP_REQUEST

#: ``name_fn(c, sanitized_file_name)`` returns the path to save to, or None to refuse
NameFn = Callable[["Connection", str], Union[str, "os.PathLike[str]", None]]


#: "name (1).ext" ... tried before giving up when ``overwrite=False``
_MAX_RENAMES = 1000


class _File:
    """A file being received: its temporary and final paths."""

    __slots__ = ("fd", "field", "final", "size", "tmp")

    def __init__(self, fd: int, tmp: str, final: str, field: str | None) -> None:
        self.fd = fd
        self.tmp = tmp
        self.final = final
        self.field = field
        self.size = 0

    def discard(self) -> None:
        """Close and remove the temporary file (idempotent)."""
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1
        if self.tmp:
            try:
                os.unlink(self.tmp)
            except OSError:
                pass
            self.tmp = ""


class _Request:
    """Per-request record of one multipart upload."""

    __slots__ = ("cur", "failed", "files", "total")

    def __init__(self) -> None:
        self.cur: _File | None = None
        self.files: list[dict[str, Any]] = []
        self.total = 0
        self.failed = False


class FileUploadHandler:
    """The handler ``file_upload_handler`` returns; call it with the multipart events."""

    def __init__(
        self,
        name_fn: NameFn,
        max_file_size: int | None = None,
        max_total_size: int | None = None,
        *,
        reply: bool = True,
        overwrite: bool = True,
        mode: int = 0o600,
    ) -> None:
        if max_file_size is not None and max_file_size < 0:
            raise ValueError("max_file_size must be >= 0")
        if max_total_size is not None and max_total_size < 0:
            raise ValueError("max_total_size must be >= 0")
        self.name_fn = name_fn
        self.max_file_size = max_file_size
        self.max_total_size = max_total_size
        self.reply = reply
        self.overwrite = overwrite
        self.mode = mode
        self._reqs: weakref.WeakKeyDictionary[Connection, _Request] = weakref.WeakKeyDictionary()

    def __call__(self, c: Connection, ev: Any, ev_data: Any) -> None:
        """Handle one event; events other than the multipart ones are ignored."""
        if ev == EV_HTTP_PART_DATA:
            self._data(c, ev_data)
        elif ev == EV_HTTP_PART_BEGIN:
            self._begin(c, ev_data)
        elif ev == EV_HTTP_PART_END:
            self._end(c, ev_data)
        elif ev == EV_HTTP_MULTIPART_REQUEST:
            old = self._reqs.pop(c, None)
            if old is not None and old.cur is not None:
                old.cur.discard()
            self._reqs[c] = _Request()
        elif ev == EV_HTTP_MULTIPART_REQUEST_END:
            self._request_end(c, ev_data)
        elif ev == EV_HTTP_REQUEST and self.reply:
            self._not_multipart(c, ev_data)

    # -- events ---------------------------------------------------------------------
    def _begin(self, c: Connection, part: MultipartPart) -> None:
        req = self._reqs.get(c)
        if req is None or req.failed:
            return
        if req.cur is not None:  # a PART_END was not forwarded to us
            req.cur.discard()
            req.cur = None
        if not part.file_name:
            return  # a plain field, or a file input left empty (filename="")
        safe = sanitize_filename(part.file_name)
        path = self.name_fn(c, safe) if safe is not None else None
        if path is None:
            self._fail(c, req, 403, "file name refused")
            return
        final = os.path.abspath(os.fspath(path))
        try:
            fd, tmp = tempfile.mkstemp(
                prefix="." + os.path.basename(final)[:64] + ".",
                suffix=".part",
                dir=os.path.dirname(final),
            )
        except OSError as e:
            log.warning("upload: cannot create a temporary file for %r: %s", final, e)
            self._fail(c, req, 500, "the file could not be written")
            return
        req.cur = _File(fd, tmp, final, part.var_name)

    def _data(self, c: Connection, part: MultipartPart) -> None:
        req = self._reqs.get(c)
        if req is None or req.cur is None:
            return
        f = req.cur
        n = len(part.data)
        if self.max_file_size is not None and f.size + n > self.max_file_size:
            self._fail(c, req, 413, "the file is larger than the server accepts")
            return
        if self.max_total_size is not None and req.total + n > self.max_total_size:
            self._fail(c, req, 413, "the upload is larger than the server accepts")
            return
        try:
            _write_all(f.fd, part.data)
        except OSError as e:
            log.warning("upload: writing %r failed: %s", f.final, e)
            self._fail(c, req, 500, "the file could not be written")
            return
        f.size += n
        req.total += n

    def _end(self, c: Connection, part: MultipartPart) -> None:
        req = self._reqs.get(c)
        if req is None or req.cur is None:
            return
        f = req.cur
        req.cur = None
        if part.status != 0:
            f.discard()
            return
        try:
            os.fchmod(f.fd, self.mode)
            os.close(f.fd)
            f.fd = -1
            final = self._commit(f)
        except OSError as e:
            log.warning("upload: saving %r failed: %s", f.final, e)
            f.discard()
            self._fail(c, req, 500, "the file could not be written")
            return
        f.tmp = ""
        req.files.append(
            {"name": os.path.basename(final), "size": f.size, "path": final, "field": f.field}
        )

    def _commit(self, f: _File) -> str:
        """Rename the temporary file into place; return the path it got."""
        if self.overwrite:
            os.replace(f.tmp, f.final)
            return f.final
        stem, ext = os.path.splitext(f.final)
        for i in range(_MAX_RENAMES):
            cand = f.final if i == 0 else f"{stem} ({i}){ext}"
            try:
                # reserve the name atomically, then move the data over the placeholder
                os.close(os.open(cand, os.O_CREAT | os.O_EXCL | os.O_WRONLY, self.mode))
            except FileExistsError:
                continue
            try:
                os.replace(f.tmp, cand)
            except OSError:
                os.unlink(cand)
                raise
            return cand
        raise OSError(errno.EEXIST, "no free file name", f.final)

    def _request_end(self, c: Connection, end: MultipartPart) -> None:
        req = self._reqs.pop(c, None)
        if req is None:
            return
        if req.cur is not None:
            req.cur.discard()
            req.cur = None
        if end.status != 0 or req.failed:
            return
        files = [{"name": f["name"], "size": f["size"]} for f in req.files]
        #: what was saved, for an application that answers itself (``reply=False``)
        end.user_data = req.files
        if self.reply and may_answer(c):
            body = json.dumps({"ok": True, "files": files}, separators=(",", ":"))
            http_reply(c, 200, body, {"Content-Type": "application/json"})

    def _not_multipart(self, c: Connection, hm: HttpMessage) -> None:
        if not may_answer(c):
            return
        if hm.method in ("GET", "HEAD"):
            code, msg = 405, "POST a multipart/form-data body here"
            headers = [("Allow", "POST")]
        else:
            code, msg = 400, "expected a multipart/form-data body"
            headers = []
        headers.append(("Content-Type", "application/json"))
        http_reply(c, code, json.dumps({"ok": False, "error": msg}), headers)

    def _fail(self, c: Connection, req: _Request, code: int, msg: str) -> None:
        """Give up on this request: remove the current file, answer ``code`` and close."""
        if req.cur is not None:
            req.cur.discard()
            req.cur = None
        req.failed = True
        if may_answer(c):
            http_reply(
                c,
                code,
                json.dumps({"ok": False, "error": msg}),
                {"Content-Type": "application/json", "Connection": "close"},
            )
        else:
            c.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def file_upload_handler(
    name_fn: NameFn,
    max_file_size: int | None = None,
    max_total_size: int | None = None,
    *,
    reply: bool = True,
    overwrite: bool = True,
    mode: int = 0o600,
) -> FileUploadHandler:
    """Return a handler that saves uploaded files where ``name_fn`` says.

    ``name_fn(c, safe_name)`` gets the sanitised base name the client sent and
    returns the path to save to, or None to refuse the file (403).  Quotas:
    ``max_file_size`` bytes per file, ``max_total_size`` bytes of file data per
    request (413 and close when passed).  With ``reply=True`` the handler
    answers ``200 {"ok":true,"files":[{"name":..., "size":...}]}`` at
    HTTP_MULTIPART_REQUEST_END unless the application already answered; with
    ``reply=False`` the application answers, and finds what was saved in
    ``ev_data.user_data`` of HTTP_MULTIPART_REQUEST_END (dicts with ``name``,
    ``size``, ``path``, ``field``).  ``overwrite=False`` saves ``a (1).txt``
    instead of replacing an existing ``a.txt``.  Files get permission ``mode``.

    Example::

        upload = mgpy.file_upload_handler(
            lambda c, name: os.path.join("uploads", name), max_file_size=100 << 20)

        def handler(c, ev, ev_data):
            if ev in (Ev.HTTP_MULTIPART_REQUEST, Ev.HTTP_PART_BEGIN, Ev.HTTP_PART_DATA,
                      Ev.HTTP_PART_END, Ev.HTTP_MULTIPART_REQUEST_END):
                upload(c, ev, ev_data)

    or ``mgpy.register_http_endpoint(lc, "/upload", upload)``.
    """
    return FileUploadHandler(
        name_fn, max_file_size, max_total_size, reply=reply, overwrite=overwrite, mode=mode
    )
